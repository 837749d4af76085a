// RemoteShardHandle: a ShardHandle whose shard lives in another process,
// reached over the RPC layer (common/rpc.h) with the MetaService messages of
// proto/meta.proto — one RPC per virtual call. Shards use it to reach their
// peers (remote parent directories, two-phase commit); MetaClient uses it
// to reach every shard. No RocksDB or server code: it links sluice_common.
//
// Thread-safe (RpcClient is).
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "common/rpc.h"
#include "common/meta/shard_handle.h"

namespace sluice::meta {

// Full RPC method names ("sluice.meta.MetaService/Lookup").
std::string MetaMethod(const char* method);

// Entries per readdir page over the wire (a page must fit one RPC frame:
// 512 names of 255 bytes are ~140 KiB of the 256 KiB frame).
constexpr uint32_t kMaxWireDirEntries = 512;

struct RemoteShardOptions {
  // Deadline of each call.
  uint32_t timeout_ms = 10000;
  // The cluster-map version each call carries; the shard refuses a version
  // older than its own with kStaleMap. nullptr or 0: unchecked (shard-to-shard
  // calls, whose shard layout is fixed by the config).
  const std::atomic<uint64_t>* map_version = nullptr;
};

class RemoteShardHandle : public ShardHandle {
 public:
  // `rpc` must outlive the handle; `peer` is the shard's address.
  RemoteShardHandle(rpc::RpcClient* rpc, rpc::Peer peer, uint32_t shard_id,
                    RemoteShardOptions options = {});

  const rpc::Peer& peer() const { return peer_; }
  // The newest map version any reply of this shard reported (0 if none).
  uint64_t seen_map_version() const { return seen_map_version_.load(); }
  // Lookups asked and Lookup/LookupBatch RPCs sent for them so far.
  uint64_t lookups() const { return lookups_.load(std::memory_order_relaxed); }
  uint64_t lookup_rpcs() const { return lookup_rpcs_.load(std::memory_order_relaxed); }

  uint32_t shard_id() const override { return shard_id_; }
  Result<InodeAttr> Lookup(const Caller& caller, uint64_t parent, std::string_view name) override;
  // One asynchronous RPC; `done` runs on the RPC client's progress thread.
  void LookupAsync(const Caller& caller, uint64_t parent, std::string_view name,
                   std::function<void(Result<InodeAttr>)> done) override;
  // One LookupBatch RPC; `done` runs on the RPC client's progress thread.
  void LookupBatchAsync(const Caller& caller, std::vector<LookupItem> items,
                        std::function<void(std::vector<Result<InodeAttr>>)> done) override;
  Result<InodeAttr> GetAttr(uint64_t ino) override;
  Result<InodeAttr> SetAttr(const SetAttrRequest& req) override;
  Result<CreateResult> Create(const Caller& caller, uint64_t parent, std::string_view name,
                              uint32_t mode, bool exclusive) override;
  Result<InodeAttr> Mkdir(const Caller& caller, uint64_t parent, std::string_view name,
                          uint32_t mode) override;
  Result<InodeAttr> Symlink(const Caller& caller, uint64_t parent, std::string_view name,
                            std::string_view target) override;
  Result<std::string> Readlink(uint64_t ino) override;
  Status Unlink(const Caller& caller, uint64_t parent, std::string_view name,
                InodeAttr* victim = nullptr) override;
  Result<ShardDirPage> ReadDirShard(uint64_t dir, std::string_view after,
                                    uint32_t max_entries) override;
  Result<StatFsResult> StatFs() override;
  Result<std::string> GetXattr(const Caller& caller, uint64_t ino, std::string_view name) override;
  Status SetXattr(const Caller& caller, uint64_t ino, std::string_view name,
                  std::string_view value, uint32_t flags) override;
  Result<std::vector<std::string>> ListXattr(const Caller& caller, uint64_t ino) override;
  Status RemoveXattr(const Caller& caller, uint64_t ino, std::string_view name) override;
  Result<uint64_t> ReportLength(uint64_t ino, uint64_t length) override;
  Status SetDirLayout(const Caller& caller, uint64_t dir, const FileLayout& layout) override;
  Result<DirStats> GetDirStats(uint64_t dir) override;
  // One asynchronous RPC; `done` runs on the RPC client's progress thread.
  void GetDirStatsAsync(uint64_t dir, std::function<void(Result<DirStats>)> done) override;
  Status ForgetDir(uint64_t dir) override;
  Status TxnPrepare(const TxnPrepareRecord& record) override;
  Status TxnDecide(uint64_t txid, bool commit) override;
  Status TxnApply(const std::vector<TxnOp>& ops) override;
  Result<std::vector<uint64_t>> TxnListPrepared() override;
  // Served by the coordinator shard: send these to shard 0's handle.
  Status Rename(const RenameRequest& req) override;
  Result<InodeAttr> Link(const Caller& caller, uint64_t ino, uint64_t new_parent,
                         std::string_view new_name) override;
  Status Rmdir(const Caller& caller, uint64_t parent, std::string_view name) override;
  // Sent as the Unlink RPC to the coordinator shard, which removes the entry
  // and its inode whatever shards they live on.
  Status UnlinkAny(const Caller& caller, uint64_t parent, std::string_view name,
                   InodeAttr* victim = nullptr) override;

 private:
  Status Call(const char* method, const google::protobuf::Message& req,
              google::protobuf::Message* resp);
  rpc::CallOptions Options() const;
  // The call's status as callers see it (transport failures name the shard);
  // notes the map version the shard reported.
  Status Finish(const char* method, const rpc::CallResult& r);

  rpc::RpcClient* rpc_;
  rpc::Peer peer_;
  uint32_t shard_id_;
  RemoteShardOptions options_;
  std::string label_;  // "meta shard 1 (127.0.0.1:7102)"
  std::atomic<uint64_t> seen_map_version_{0};
  std::atomic<uint64_t> lookups_{0};
  std::atomic<uint64_t> lookup_rpcs_{0};
};

}  // namespace sluice::meta
