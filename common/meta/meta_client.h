// MetaClient: the namespace of a running Sluice cluster, as libsluice (and
// tools, tests, benchmarks) call it. It learns the meta shards from
// sluice-mgmtd's cluster map, reaches each over RPC (RemoteShardHandle), and
// routes every operation like ShardRouter does: a name (parent, name) to
// shard DentryHash(parent, name) % N, an inode number to the shard in its
// high bits, rename / link / rmdir / cross-shard unlink to the coordinator
// shard (shard 0), readdir fanned out over every shard with a resumable
// cookie. Operations refused with kBusy (a key held by a cross-shard
// transaction) are retried for `busy_retry_ms`.
//
// Map changes: every call carries the cached map version. When a shard
// answers kStaleMap (the map moved on) or kUnavailable (the shard is down or
// restarting), the client refetches the map from mgmtd and resends, for up
// to `unavailable_retry_ms`, waiting between attempts while a shard is down.
// A resend after kUnavailable may meet its own earlier effect if the shard
// applied the request but its reply was lost: an exclusive create then sees
// EEXIST, an unlink ENOENT (as over NFS).
//
// Depends on common/ and proto/ only (no RocksDB, no server code). Thread-safe.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "common/mgmt_client.h"
#include "common/rpc.h"
#include "common/status.h"
#include "common/meta/dir_reader.h"
#include "common/meta/meta_types.h"
#include "common/meta/shard_handle.h"

namespace sluice {
struct ClusterConfig;
}

namespace sluice::meta {

struct MetaClientOptions {
  // libfabric provider ("tcp", "shm", "verbs;ofi_rxm"): the cluster's.
  std::string provider = "tcp";
  std::string mgmtd_host = "127.0.0.1";
  uint16_t mgmtd_port = 7000;
  // The tenant credential every request carries.
  rpc::Credential credential;
  // Deadline of each RPC.
  uint32_t timeout_ms = 10000;
  // How long an operation refused with kBusy is retried.
  uint32_t busy_retry_ms = 5000;
  // How long an operation meeting kStaleMap / kUnavailable is resent (with a
  // map refresh before each resend) before the error is returned.
  uint32_t unavailable_retry_ms = 15000;
};

// Options for the cluster described by a config file (provider, mgmtd address).
MetaClientOptions MetaClientOptionsFromConfig(const ClusterConfig& cfg);

struct MetaClientStats {
  std::atomic<uint64_t> map_refreshes{0};
  std::atomic<uint64_t> resends{0};  // operations resent after kStaleMap/kUnavailable
};

class MetaClient {
 public:
  // Fetches the cluster map from mgmtd (kUnavailable naming mgmtd's address
  // if it does not answer) and prepares a handle per meta shard.
  static Result<std::unique_ptr<MetaClient>> Open(const MetaClientOptions& options);
  ~MetaClient();
  MetaClient(const MetaClient&) = delete;
  MetaClient& operator=(const MetaClient&) = delete;

  uint32_t num_shards() const;
  // The cluster-map version requests are built against.
  uint64_t map_version() const;
  const MetaClientStats& stats() const { return stats_; }
  // Lookups asked of the current map's shards and the RPCs that carried
  // them (their ratio shows how much lookups were batched).
  void LookupCounts(uint64_t* lookups, uint64_t* rpcs) const;
  // Refetches the map from mgmtd now.
  Status RefreshMap();

  // ---- POSIX-like namespace. Errors are Status codes that map to errno
  // (Status::to_errno()) with messages naming the inode and entry.
  Result<InodeAttr> Lookup(const Caller& c, uint64_t parent, std::string_view name);
  // Many lookups with all of them in flight at once, up to `max_batch` per
  // call to a shard (see ShardRouter::LookupMany; 1 = one RPC per lookup);
  // results in order. An item that met a stale map or an unavailable shard
  // is redone alone through Lookup.
  std::vector<Result<InodeAttr>> LookupMany(const Caller& c, const std::vector<LookupItem>& items,
                                            size_t max_batch = kMaxLookupBatch);
  Result<InodeAttr> GetAttr(uint64_t ino);
  Result<InodeAttr> SetAttr(const SetAttrRequest& req);
  // exclusive = O_EXCL; without it an existing file is returned, created=false.
  Result<CreateResult> Create(const Caller& c, uint64_t parent, std::string_view name,
                              uint32_t mode, bool exclusive);
  Result<InodeAttr> Mkdir(const Caller& c, uint64_t parent, std::string_view name, uint32_t mode);
  Result<InodeAttr> Symlink(const Caller& c, uint64_t parent, std::string_view name,
                            std::string_view target);
  Result<std::string> Readlink(uint64_t ino);
  Result<InodeAttr> Link(const Caller& c, uint64_t ino, uint64_t new_parent,
                         std::string_view new_name);
  // *victim (if given): the inode after the unlink (nlink 0: its last name went).
  Status Unlink(const Caller& c, uint64_t parent, std::string_view name, InodeAttr* victim = nullptr);
  Status Rmdir(const Caller& c, uint64_t parent, std::string_view name);
  // flags: 0, kRenameNoReplace or kRenameExchange.
  Status Rename(const Caller& c, uint64_t old_parent, std::string_view old_name,
                uint64_t new_parent, std::string_view new_name, uint32_t flags = 0);
  // Every entry of a directory, the shards read concurrently (opendir).
  Result<std::vector<DirEntry>> ReadDirAll(const Caller& c, uint64_t dir);
  // Up to max_entries (at most kMaxWireDirEntries per shard call) entries
  // after `cookie` (empty: from the start); pass page.cookie back until
  // page.eof. Each entry is returned once across pages. No "." / "..".
  Result<DirPage> ReadDir(const Caller& c, uint64_t dir, std::string_view cookie,
                          uint32_t max_entries);
  Result<StatFsResult> StatFs();
  Result<std::string> GetXattr(const Caller& c, uint64_t ino, std::string_view name);
  Status SetXattr(const Caller& c, uint64_t ino, std::string_view name, std::string_view value,
                  uint32_t flags);
  Result<std::vector<std::string>> ListXattr(const Caller& c, uint64_t ino);
  Status RemoveXattr(const Caller& c, uint64_t ino, std::string_view name);
  // A writer's new file length; the shard keeps the maximum. Returns the size.
  Result<uint64_t> ReportLength(uint64_t ino, uint64_t length);
  Status SetDirLayout(const Caller& c, uint64_t dir, const FileLayout& layout);
  // "/a/b/c" from the root, one Lookup per component (symlinks not followed).
  Result<InodeAttr> Resolve(const Caller& c, std::string_view path);

 private:
  struct View;
  explicit MetaClient(const MetaClientOptions& options);
  std::shared_ptr<View> CurrentView() const;
  Status Refresh(uint64_t seen_version);
  Result<std::shared_ptr<View>> BuildView(const mgmt::ClusterMap& map);
  // Runs fn against the current view, resending after map refreshes on
  // kStaleMap / kUnavailable.
  template <typename Fn>
  Status Run(Fn&& fn);

  MetaClientOptions options_;
  std::unique_ptr<rpc::RpcClient> rpc_;
  std::unique_ptr<MapClient> maps_;
  mutable std::mutex mu_;
  std::shared_ptr<View> view_;
  std::mutex refresh_mu_;
  MetaClientStats stats_;
};

}  // namespace sluice::meta
