// ShardHandle: one metadata shard as seen by its callers — another shard, the
// cross-shard coordinator, the client router. In-process it wraps a MetaStore
// (LocalShardHandle, local_shard_handle.h); over the network an RPC client
// implements the same interface with the MetaService messages of
// proto/meta.proto, one virtual call per RPC.
//
// Every method is thread-safe and returns a Status naming what failed.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "common/meta/meta_types.h"

namespace sluice::meta {

struct CreateResult {
  InodeAttr attr;
  bool created = false;  // false: the name existed and O_EXCL was not asked
};

struct ShardDirPage {
  std::vector<DirEntry> entries;  // in name order (byte-wise)
  bool more = false;              // this shard has entries after the last one
};

// One name to look up: entry `name` of directory `parent`.
struct LookupItem {
  uint64_t parent = 0;
  std::string name;
};
// Items per LookupBatch call (a symlink's attributes carry up to 4 KiB of
// target; 32 of them fit one RPC frame).
constexpr size_t kMaxLookupBatch = 32;

struct StatFsResult {
  uint64_t inodes = 0;
  uint64_t bytes = 0;     // sum of regular file sizes
  uint64_t dentries = 0;
};

class ShardHandle {
 public:
  virtual ~ShardHandle() = default;
  virtual uint32_t shard_id() const = 0;

  // ---- namespace operations served by the shard that owns the key.
  // (parent, name) must be routed to DentryShard(parent, name, N); an inode
  // number to InodeShard(ino).
  virtual Result<InodeAttr> Lookup(const Caller& caller, uint64_t parent, std::string_view name) = 0;
  // Asynchronous Lookup: `done` runs exactly once, possibly on another
  // thread, so one caller can keep many lookups in flight. Default: Lookup.
  virtual void LookupAsync(const Caller& caller, uint64_t parent, std::string_view name,
                           std::function<void(Result<InodeAttr>)> done) {
    done(Lookup(caller, parent, name));
  }
  // Up to kMaxLookupBatch lookups of this shard in one call, asynchronously:
  // `done` runs exactly once with one result per item, in order (each as
  // Lookup would return it). Default: Lookup for each item.
  virtual void LookupBatchAsync(const Caller& caller, std::vector<LookupItem> items,
                                std::function<void(std::vector<Result<InodeAttr>>)> done) {
    std::vector<Result<InodeAttr>> out;
    out.reserve(items.size());
    for (const LookupItem& it : items) out.push_back(Lookup(caller, it.parent, it.name));
    done(std::move(out));
  }
  virtual Result<InodeAttr> GetAttr(uint64_t ino) = 0;
  virtual Result<InodeAttr> SetAttr(const SetAttrRequest& req) = 0;
  virtual Result<CreateResult> Create(const Caller& caller, uint64_t parent, std::string_view name,
                                      uint32_t mode, bool exclusive) = 0;
  virtual Result<InodeAttr> Mkdir(const Caller& caller, uint64_t parent, std::string_view name,
                                  uint32_t mode) = 0;
  virtual Result<InodeAttr> Symlink(const Caller& caller, uint64_t parent, std::string_view name,
                                    std::string_view target) = 0;
  virtual Result<std::string> Readlink(uint64_t ino) = 0;
  // Single-shard unlink. kCrossDevice when the inode lives on another shard:
  // the caller then sends the unlink to the coordinator.
  // *victim (if given): the inode after the unlink (nlink 0 when that was its
  // last name), so callers need not look it up first.
  virtual Status Unlink(const Caller& caller, uint64_t parent, std::string_view name,
                        InodeAttr* victim = nullptr) = 0;
  virtual Result<ShardDirPage> ReadDirShard(uint64_t dir, std::string_view after,
                                            uint32_t max_entries) = 0;
  virtual Result<StatFsResult> StatFs() = 0;
  virtual Result<std::string> GetXattr(const Caller& caller, uint64_t ino, std::string_view name) = 0;
  virtual Status SetXattr(const Caller& caller, uint64_t ino, std::string_view name,
                          std::string_view value, uint32_t flags) = 0;
  virtual Result<std::vector<std::string>> ListXattr(const Caller& caller, uint64_t ino) = 0;
  virtual Status RemoveXattr(const Caller& caller, uint64_t ino, std::string_view name) = 0;
  virtual Result<uint64_t> ReportLength(uint64_t ino, uint64_t length) = 0;
  virtual Status SetDirLayout(const Caller& caller, uint64_t dir, const FileLayout& layout) = 0;
  // This shard's share of directory `dir`'s nlink and mtime/ctime (zeros
  // when it holds no entry of it). Every shard is asked; ApplyDirStats
  // folds the shares into the inode. Served by any shard, no permission check.
  virtual Result<DirStats> GetDirStats(uint64_t dir) = 0;
  // Asynchronous form: `done` runs exactly once, possibly on another thread,
  // so a caller can ask every shard at once. Default: calls GetDirStats.
  virtual void GetDirStatsAsync(uint64_t dir, std::function<void(Result<DirStats>)> done) {
    done(GetDirStats(dir));
  }

  // ---- shard to shard.
  // Directory `dir` (on the caller's shard) changed its mode, owner or
  // layout: drop any cached copy of it.
  virtual Status ForgetDir(uint64_t dir) = 0;

  // ---- two-phase commit participant (shard to shard).
  // Checks every op against this shard's state, locks their keys and records
  // the prepare durably; kBusy when a key is held by another transaction.
  virtual Status TxnPrepare(const TxnPrepareRecord& record) = 0;
  // Applies (commit) or drops (abort) a prepared transaction; idempotent, OK
  // when the transaction is unknown (already decided).
  virtual Status TxnDecide(uint64_t txid, bool commit) = 0;
  // One-phase: check and apply ops atomically when they all live on this shard.
  virtual Status TxnApply(const std::vector<TxnOp>& ops) = 0;
  // The txids prepared here and not yet decided (the coordinator aborts
  // those it has no intent for: prepares that arrived after an abort).
  virtual Result<std::vector<uint64_t>> TxnListPrepared() = 0;

  // ---- served by the coordinator shard only (kUnsupported elsewhere).
  virtual Status Rename(const RenameRequest& req) = 0;
  virtual Result<InodeAttr> Link(const Caller& caller, uint64_t ino, uint64_t new_parent,
                                 std::string_view new_name) = 0;
  virtual Status Rmdir(const Caller& caller, uint64_t parent, std::string_view name) = 0;
  // Unlink whatever shards the dentry and the inode live on.
  virtual Status UnlinkAny(const Caller& caller, uint64_t parent, std::string_view name,
                           InodeAttr* victim = nullptr) = 0;
};

}  // namespace sluice::meta
