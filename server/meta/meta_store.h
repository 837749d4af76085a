// MetaStore: one shard of the Sluice namespace in one RocksDB database.
//
// The shard owns the dentries (parent, name) with DentryShard(parent, name,
// N) == shard_id and the inodes whose number carries shard_id in its high
// bits (an inode is created on the shard of the dentry that created it).
// Every change is one atomic RocksDB WriteBatch written with a synced WAL
// (options.sync); concurrent writers share syncs through RocksDB's group
// commit. Single-shard operations are methods here; operations that touch
// several shards (rename, link, rmdir, unlink of a remote inode) run through
// TxnCoordinator, for which this class is a two-phase-commit participant and
// keeps the coordinator's intent log.
//
// Storage layout (one column family, first byte is the record kind):
//   'I' ino          -> InodeAttr            an inode of this shard
//   'D' parent name  -> ino(8) type(1)       a dentry of this shard
//   'X' ino name     -> value                an extended attribute
//   'F' dir          -> ""                   dir removed: no entry may be added here
//   'P' txid         -> TxnPrepareRecord     a prepared, undecided participant txn
//   'T' txid         -> TxnIntentRecord      a coordinator intent
//   'G' ino          -> InodeAttr            a removed file whose chunks await collection
//   'S' dir          -> DirStats (merged)    this shard's share of dir's nlink/mtime/ctime
//   'M' name         -> counters and allocator high-water marks
// Integers in keys are big-endian so that keys sort by number.
//
// Thread-safe. Not copyable.
#pragma once

#include <atomic>
#include <functional>
#include <cstdint>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "common/status.h"
#include "common/meta/meta_types.h"
#include "common/meta/shard_handle.h"

namespace rocksdb {
class DB;
class Statistics;
class WriteBatch;
}

namespace sluice::meta {

struct MetaStoreOptions {
  uint32_t shard_id = 0;
  uint32_t num_shards = 1;
  // Sync the WAL before a change is acknowledged. Turn off only in tests and
  // benchmarks that say so.
  bool sync = true;
  // Create the database (and, on shard 0, the root directory) when missing.
  bool create_if_missing = true;
  // The root directory's mode, owner and default layout (shard 0, at format).
  uint32_t root_mode = 0755;
  uint32_t root_uid = 0;
  uint32_t root_gid = 0;
  FileLayout root_layout = DefaultLayout();
  // RocksDB block cache in bytes.
  size_t block_cache_bytes = 64 << 20;
  // Collect RocksDB statistics (for WalSyncs(); costs a little per write).
  bool rocksdb_statistics = false;
  // How long a parent directory read from another shard (for the permission
  // check and default layout of lookup/create/mkdir/symlink/unlink) may be
  // reused, in milliseconds; 0 reads it every time. Saves a shard-to-shard
  // round trip per operation. A chmod/chown or layout change of a directory
  // tells every other shard to drop its copy (ForgetDir) before it is
  // acknowledged; only a shard unreachable at that moment may use its copy
  // up to this long. Removal is never missed: a removed directory is fenced
  // on every shard.
  uint32_t remote_dir_cache_ms = 1000;
};

// Counters a caller can read (like rocksdb::Statistics, but tiny).
struct MetaStoreStats {
  std::atomic<uint64_t> writes{0};         // WriteBatches committed
  std::atomic<uint64_t> busy{0};           // operations refused with kBusy (txn held a key)
  std::atomic<uint64_t> txn_prepared{0};
  std::atomic<uint64_t> txn_committed{0};
  std::atomic<uint64_t> txn_aborted{0};
};

class MetaStore {
 public:
  // While one lives on a thread, reads there that would ask another shard
  // fail at once (kBusy) and needed_peer() turns true: the RPC progress
  // thread answers what this shard can answer alone and hands the rest on.
  class LocalOnlyScope {
   public:
    LocalOnlyScope();
    ~LocalOnlyScope();
    LocalOnlyScope(const LocalOnlyScope&) = delete;
    LocalOnlyScope& operator=(const LocalOnlyScope&) = delete;
    bool needed_peer() const;
  };

  // Opens (or creates) the shard at `path`. Refuses (kInvalid) a database
  // formatted as another shard id or for another shard count. Prepared
  // transactions found on disk keep their keys held until the coordinator
  // decides them.
  static Result<std::unique_ptr<MetaStore>> Open(const std::string& path,
                                                 const MetaStoreOptions& options);
  ~MetaStore();
  MetaStore(const MetaStore&) = delete;
  MetaStore& operator=(const MetaStore&) = delete;

  uint32_t shard_id() const { return options_.shard_id; }
  uint32_t num_shards() const { return options_.num_shards; }
  const MetaStoreStats& stats() const { return stats_; }
  // WAL fsyncs RocksDB performed (needs options.rocksdb_statistics; else 0).
  // stats().writes / WalSyncs() is the group-commit factor.
  uint64_t WalSyncs() const;

  // Handles to every shard, indexed by shard id (this shard's entry may be a
  // handle to itself). Used to read a parent directory that lives elsewhere.
  // Must be set before namespace operations when num_shards > 1; the
  // pointers must outlive this store.
  void SetPeers(std::vector<ShardHandle*> peers);

  // ---- namespace operations (see ShardHandle for routing).
  // Lookup needs search permission on parent; "." and ".." are resolved.
  Result<InodeAttr> Lookup(const Caller& caller, uint64_t parent, std::string_view name);
  // Lookup of each item, in order; consecutive items of one directory read
  // it (and check search permission) once.
  std::vector<Result<InodeAttr>> LookupMany(const Caller& caller, const std::vector<LookupItem>& items);
  Result<InodeAttr> GetAttr(uint64_t ino);
  // POSIX chmod/chown/truncate/utimens rules: mode and explicit times need
  // ownership (EPERM), uid changes need uid 0, size needs write access.
  Result<InodeAttr> SetAttr(const SetAttrRequest& req);
  // Creates a regular file; with exclusive=false an existing file is
  // returned with created=false. The layout comes from the parent directory.
  Result<CreateResult> Create(const Caller& caller, uint64_t parent, std::string_view name,
                              uint32_t mode, bool exclusive);
  Result<InodeAttr> Mkdir(const Caller& caller, uint64_t parent, std::string_view name,
                          uint32_t mode);
  Result<InodeAttr> Symlink(const Caller& caller, uint64_t parent, std::string_view name,
                            std::string_view target);
  Result<std::string> Readlink(uint64_t ino);
  // Removes a non-directory entry whose inode is on this shard; kCrossDevice
  // if the inode lives elsewhere (then TxnCoordinator::Unlink does it).
  // *victim (if given): the inode after the unlink (nlink 0: it was deleted).
  Status Unlink(const Caller& caller, uint64_t parent, std::string_view name, InodeAttr* victim = nullptr);
  // Up to max_entries of this shard's entries of `dir` whose names sort after
  // `after` (all entries when empty). No permission check: the caller (the
  // fan-out in dir_reader.h) checked read access on the directory.
  Result<ShardDirPage> ReadDirShard(uint64_t dir, std::string_view after, uint32_t max_entries);
  Result<StatFsResult> StatFs();
  Result<std::string> GetXattr(const Caller& caller, uint64_t ino, std::string_view name);
  Status SetXattr(const Caller& caller, uint64_t ino, std::string_view name,
                  std::string_view value, uint32_t flags);
  Result<std::vector<std::string>> ListXattr(const Caller& caller, uint64_t ino);
  Status RemoveXattr(const Caller& caller, uint64_t ino, std::string_view name);
  // A client's report of a file's length: size = max(size, length). Returns the new size.
  Result<uint64_t> ReportLength(uint64_t ino, uint64_t length);
  // Sets the default layout new files in `dir` get (owner or uid 0).
  Status SetDirLayout(const Caller& caller, uint64_t dir, const FileLayout& layout);
  // This shard's share of directory `dir`'s nlink and times: its
  // subdirectory entries and the latest change of its entries here (or, on
  // the directory's own shard, an explicit mtime set). Zeros when none.
  Result<DirStats> GetDirStats(uint64_t dir);

  // ---- two-phase commit participant (see ShardHandle).
  Status TxnPrepare(const TxnPrepareRecord& record);
  Status TxnDecide(uint64_t txid, bool commit);
  Status TxnApply(const std::vector<TxnOp>& ops);
  // Transactions prepared here and not yet decided.
  std::vector<uint64_t> PreparedTxns();

  // ---- coordinator intent log (used by the TxnCoordinator living with this shard).
  uint64_t NewTxid();
  Status PutIntent(const TxnIntentRecord& intent);
  Status DeleteIntent(uint64_t txid);
  Result<std::vector<TxnIntentRecord>> ListIntents();

  // Deletes the fences of directories removed more than `older_than_ms` ago
  // (wall clock); returns how many. Safe once every shard has committed the
  // removal and no parent-directory cache can still hold the directory, so
  // keep older_than_ms far above remote_dir_cache_ms (minutes). Meant to run
  // periodically from the shard process.
  Result<uint64_t> CollectFences(uint64_t older_than_ms);

  // Drops a cached copy of directory `dir` (another shard changed its mode,
  // owner or layout); a read in flight that began before is not cached.
  void ForgetDir(uint64_t dir);

  // Reads an inode from this shard or, through the peers, from its shard.
  Result<InodeAttr> ReadInode(uint64_t ino);
  // ReadInode for a parent directory: remote ones may come from the cache
  // (options.remote_dir_cache_ms).
  Result<InodeAttr> ReadParentDir(uint64_t ino);

 private:
  struct PendingState;
  class KeyLocks;

  MetaStore(const MetaStoreOptions& options, rocksdb::DB* db);
  Status Init();
  Result<uint64_t> AllocateIno();
  Result<uint64_t> AllocateFromBlock(std::atomic<uint64_t>* next, std::atomic<uint64_t>* limit,
                                     const char* key);
  Status Write(rocksdb::WriteBatch* batch, const char* what);
  Result<InodeAttr> ReadLocalInode(uint64_t ino);
  // Lookup once the parent directory was read (its result as `p`).
  Result<InodeAttr> LookupIn(const Caller& caller, uint64_t parent, const Result<InodeAttr>& p,
                             std::string_view name);
  Result<bool> GetDentry(uint64_t parent, std::string_view name, uint64_t* ino, FileType* type);
  Result<bool> DirIsDead(uint64_t dir);
  Result<InodeAttr> ParentForChange(const Caller& caller, uint64_t parent, const char* what);
  Result<CreateResult> MakeNode(const Caller& caller, uint64_t parent, std::string_view name,
                                FileType type, uint32_t mode, std::string_view target,
                                bool exclusive, const char* what);
  Status CheckOps(const std::vector<TxnOp>& ops, uint64_t txid);
  // Tells every other shard to drop its cached copy of local directory `dir`.
  void BroadcastForgetDir(uint64_t dir);
  Status ApplyOps(const std::vector<TxnOp>& ops, rocksdb::WriteBatch* batch);
  Status DeleteInode(const InodeAttr& attr, rocksdb::WriteBatch* batch);
  void MarkPending(const std::vector<TxnOp>& ops, uint64_t txid);
  void ClearPending(const std::vector<TxnOp>& ops);
  Status LockAndRun(const std::vector<TxnOp>& ops, const std::function<Status()>& fn);
  bool KeyPending(const std::string& key);
  bool FencePending(uint64_t dir);

  const MetaStoreOptions options_;
  std::unique_ptr<rocksdb::DB> db_;
  std::shared_ptr<rocksdb::Statistics> rocks_stats_;
  MetaStoreStats stats_;
  std::vector<ShardHandle*> peers_;

  std::mutex alloc_mu_;
  std::atomic<uint64_t> next_ino_{0};
  std::atomic<uint64_t> ino_limit_{0};
  std::atomic<uint64_t> next_txid_{0};
  std::atomic<uint64_t> txid_limit_{0};

  struct DirCacheEntry {
    InodeAttr attr;
    uint64_t expires_ms;
  };
  std::mutex dir_cache_mu_;
  std::unordered_map<uint64_t, DirCacheEntry> dir_cache_;
  uint64_t dir_cache_epoch_ = 0;  // bumped by ForgetDir; guarded by dir_cache_mu_

  std::unique_ptr<KeyLocks> locks_;
  std::unique_ptr<PendingState> pending_;
};

}  // namespace sluice::meta
