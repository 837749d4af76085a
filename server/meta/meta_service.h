// MetaService: the RPC face of one shard. Registers a handler for every
// method of `service MetaService` (proto/meta.proto) on an RpcServer and
// serves it from this shard's MetaStore, the coordinator (shard 0 only) and
// handles to the other shards (readdir fan-out).
//
// Cluster-map versions: every reply carries the shard's map version; a
// request built against an older version (non-zero and below the shard's)
// is refused with kStaleMap before it touches anything, so the caller can
// refresh its map and resend. Version 0 means "unchecked" (shard-to-shard
// calls and tools).
//
// Methods beyond the proto's service block: "TxnApply" (a one-shard
// transaction, request TxnPrepareRequest whose record carries only ops,
// response TxnPrepareResponse) — the coordinator needs it when every op of a
// rename or link lands on one other shard.
//
// Unlink: the shard owning the dentry removes it when the inode is local;
// otherwise (kCrossDevice) the coordinator shard does the cross-shard
// unlink, so an Unlink sent to shard 0 removes any entry wherever it lives.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string_view>
#include <vector>

#include "common/rpc.h"
#include "server/meta/meta_store.h"
#include "common/meta/shard_handle.h"
#include "server/meta/txn_coordinator.h"

namespace sluice::meta {

struct MetaServiceStats {
  std::atomic<uint64_t> stale_refused{0};  // requests refused with kStaleMap
};

class MetaService {
 public:
  // `store` is this shard; `shards` reaches every shard by id (this one's
  // entry a local handle); `coordinator` is non-null on shard 0 only. All
  // must outlive the service and the server it is registered with.
  MetaService(MetaStore* store, std::vector<ShardHandle*> shards, TxnCoordinator* coordinator);
  MetaService(const MetaService&) = delete;
  MetaService& operator=(const MetaService&) = delete;

  // Registers every method. Call before server->Start().
  void RegisterWith(rpc::RpcServer* server);

  // Raises the shard's known map version (never lowers it).
  void SetMapVersion(uint64_t version);
  uint64_t map_version() const { return map_version_.load(); }
  const MetaServiceStats& stats() const { return stats_; }

  // Fault-injection hook for crash tests: called before each handler runs
  // (after = false) and after it returns, before the reply is sent (after =
  // true, with its status). Set before the server starts.
  using CallHook = std::function<void(std::string_view method, bool after, const Status& result)>;
  void SetCallHook(CallHook hook) { hook_ = std::move(hook); }

 private:
  template <typename Req, typename Resp, typename Fn>
  // Registers `method`; `read_only` ones are also tried on the RPC progress
  // thread first (RpcServer::RegisterInline).
  void Add(rpc::RpcServer* server, const char* method, Fn fn, bool read_only = false);
  Status Unlink(const UnlinkRequest& req, UnlinkResponse* resp);

  MetaStore* store_;
  std::vector<ShardHandle*> shards_;
  TxnCoordinator* coordinator_;
  std::atomic<uint64_t> map_version_{0};
  MetaServiceStats stats_;
  CallHook hook_;
};

}  // namespace sluice::meta
