#include "server/meta/meta_store.h"

#include <algorithm>
#include <chrono>
#include <cstring>

#include <rocksdb/db.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/merge_operator.h>
#include <rocksdb/statistics.h>
#include <rocksdb/table.h>
#include <rocksdb/write_batch.h>

#include "common/clock.h"
#include "common/log.h"

namespace sluice::meta {

namespace {

constexpr uint64_t kAllocBlock = 4096;
constexpr uint64_t kFirstLocalIno = 16;  // below: reserved (root is 1 on shard 0)

// ------------------------------------------------------------------ keys

void PutBE64(std::string* out, uint64_t v) {
  for (int i = 7; i >= 0; --i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
uint64_t GetBE64(const char* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}

std::string InodeKey(uint64_t ino) {
  std::string k("I");
  PutBE64(&k, ino);
  return k;
}
std::string DentryPrefix(uint64_t parent) {
  std::string k("D");
  PutBE64(&k, parent);
  return k;
}
std::string DentryKey(uint64_t parent, std::string_view name) {
  std::string k = DentryPrefix(parent);
  k.append(name);
  return k;
}
std::string XattrPrefix(uint64_t ino) {
  std::string k("X");
  PutBE64(&k, ino);
  return k;
}
std::string XattrKey(uint64_t ino, std::string_view name) {
  std::string k = XattrPrefix(ino);
  k.append(name);
  return k;
}
std::string FenceKey(uint64_t dir) {
  std::string k("F");
  PutBE64(&k, dir);
  return k;
}
std::string PrepareKey(uint64_t txid) {
  std::string k("P");
  PutBE64(&k, txid);
  return k;
}
std::string IntentKey(uint64_t txid) {
  std::string k("T");
  PutBE64(&k, txid);
  return k;
}
std::string GcKey(uint64_t ino) {
  std::string k("G");
  PutBE64(&k, ino);
  return k;
}
std::string StatsKey(uint64_t dir) {
  std::string k("S");
  PutBE64(&k, dir);
  return k;
}
std::string MetaKey(const char* name) { return std::string("M") + name; }

// The exclusive upper bound of every key starting with `prefix`.
std::string PrefixEnd(std::string prefix) {
  while (!prefix.empty()) {
    unsigned char c = static_cast<unsigned char>(prefix.back());
    if (c != 0xff) {
      prefix.back() = static_cast<char>(c + 1);
      return prefix;
    }
    prefix.pop_back();
  }
  return prefix;
}

std::string DentryValue(uint64_t ino, FileType type) {
  std::string v;
  PutBE64(&v, ino);
  v.push_back(static_cast<char>(type));
  return v;
}

std::string EncodeI64(int64_t v) {
  std::string s(8, '\0');
  std::memcpy(s.data(), &v, 8);
  return s;
}
int64_t DecodeI64(const rocksdb::Slice& s) {
  int64_t v = 0;
  if (s.size() == 8) std::memcpy(&v, s.data(), 8);
  return v;
}

// A directory's share on this shard ('S' records): four 8-byte signed
// integers — subdirectory entries (summed), mtime event time and value (the
// later event wins), ctime (maximum). Written as merge operands inside the
// WriteBatch of each change of the directory's entries, so no lock or read
// is needed and concurrent changes share group commits.
struct DirShare {
  int64_t subdirs = 0;
  int64_t mtime_event = 0;
  int64_t mtime = 0;
  int64_t ctime = 0;
};
std::string EncodeShare(const DirShare& d) {
  std::string s(32, '\0');
  std::memcpy(s.data(), &d.subdirs, 8);
  std::memcpy(s.data() + 8, &d.mtime_event, 8);
  std::memcpy(s.data() + 16, &d.mtime, 8);
  std::memcpy(s.data() + 24, &d.ctime, 8);
  return s;
}
DirShare DecodeShare(const rocksdb::Slice& s) {
  DirShare d;
  if (s.size() != 32) return d;
  std::memcpy(&d.subdirs, s.data(), 8);
  std::memcpy(&d.mtime_event, s.data() + 8, 8);
  std::memcpy(&d.mtime, s.data() + 16, 8);
  std::memcpy(&d.ctime, s.data() + 24, 8);
  return d;
}
DirShare MergeShare(DirShare a, const DirShare& b) {
  a.subdirs += b.subdirs;
  if (b.mtime_event > a.mtime_event || (b.mtime_event == a.mtime_event && b.mtime > a.mtime)) {
    a.mtime_event = b.mtime_event;
    a.mtime = b.mtime;
  }
  a.ctime = std::max(a.ctime, b.ctime);
  return a;
}

// The shard's merge operator: 'S' keys merge directory shares; every other
// key ('M' statfs counters) adds 8-byte signed counters, so that each
// change adjusts them inside its own WriteBatch.
class MetaMergeOperator : public rocksdb::AssociativeMergeOperator {
 public:
  bool Merge(const rocksdb::Slice& key, const rocksdb::Slice* existing,
             const rocksdb::Slice& value, std::string* new_value,
             rocksdb::Logger*) const override {
    if (!key.empty() && key[0] == 'S') {
      DirShare base = existing ? DecodeShare(*existing) : DirShare();
      *new_value = EncodeShare(MergeShare(base, DecodeShare(value)));
      return true;
    }
    int64_t base = existing ? DecodeI64(*existing) : 0;
    *new_value = EncodeI64(base + DecodeI64(value));
    return true;
  }
  // The name of the first version (counters only); 'S' keys came later and
  // older databases have none.
  const char* Name() const override { return "sluice.meta.CounterAdd"; }
};

const char* kCounterInodes = "inodes";
const char* kCounterBytes = "bytes";
const char* kCounterDentries = "dentries";

void AddCounter(rocksdb::WriteBatch* b, const char* name, int64_t delta) {
  if (delta != 0) b->Merge(MetaKey(name), EncodeI64(delta));
}

// Records a change of directory `dir`'s entries on this shard at `now`:
// subdirectory count + subdirs_delta, mtime and ctime = now.
void AddDirChange(rocksdb::WriteBatch* b, uint64_t dir, int64_t subdirs_delta, int64_t now) {
  DirShare d;
  d.subdirs = subdirs_delta;
  d.mtime_event = now;
  d.mtime = now;
  d.ctime = now;
  b->Merge(StatsKey(dir), EncodeShare(d));
}

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

Status FromRocks(const rocksdb::Status& s, const std::string& what) {
  if (s.ok()) return Status::Ok();
  if (s.IsNoSpace()) return Status(Code::kNoSpace, what + ": " + s.ToString());
  if (s.IsCorruption()) return Status(Code::kCorrupt, what + ": " + s.ToString());
  return Status(Code::kIo, what + ": " + s.ToString());
}

const char* TypeName(FileType t) {
  switch (t) {
    case FILE_TYPE_REGULAR: return "file";
    case FILE_TYPE_DIRECTORY: return "directory";
    case FILE_TYPE_SYMLINK: return "symlink";
    default: return "unknown";
  }
}

Status Busy(const std::string& what) {
  return Status(Code::kBusy, what + ": held by a cross-shard transaction in progress; retry");
}

}  // namespace

// ------------------------------------------------------------------ locks

namespace {

constexpr size_t kDirStripes = 512;
constexpr size_t kKeyStripes = 4096;
size_t DirStripe(uint64_t dir) { return Mix64(dir) % kDirStripes; }
size_t KeyStripe(const std::string& key) { return std::hash<std::string>()(key) % kKeyStripes; }

}  // namespace

// Striped in-memory locks. Directory stripes are shared by operations that
// add or remove one entry of the directory and taken exclusively by a fence
// (rmdir's emptiness check); key stripes serialise read-modify-write of one
// dentry or inode. Order: directory stripes, then key stripes, each sorted.
class MetaStore::KeyLocks {
 public:
  std::shared_mutex dirs[kDirStripes];
  std::mutex keys[kKeyStripes];
};

namespace {

// Acquires a set of stripes in the global order; releases on destruction.
class LockSet {
 public:
  LockSet(std::shared_mutex* dirs, std::mutex* keys) : dirs_(dirs), keys_(keys) {}
  ~LockSet() { Release(); }
  LockSet(const LockSet&) = delete;
  LockSet& operator=(const LockSet&) = delete;

  void AddDir(uint64_t dir, bool exclusive) { dir_plan_.emplace_back(DirStripe(dir), exclusive); }
  void AddKey(const std::string& key) { key_plan_.push_back(KeyStripe(key)); }
  void Acquire() {
    std::sort(dir_plan_.begin(), dir_plan_.end());
    std::vector<std::pair<size_t, bool>> dirs;
    for (auto& d : dir_plan_) {
      if (!dirs.empty() && dirs.back().first == d.first) {
        dirs.back().second = dirs.back().second || d.second;  // exclusive wins
      } else {
        dirs.push_back(d);
      }
    }
    dir_plan_ = std::move(dirs);
    std::sort(key_plan_.begin(), key_plan_.end());
    key_plan_.erase(std::unique(key_plan_.begin(), key_plan_.end()), key_plan_.end());
    for (auto& [i, excl] : dir_plan_) {
      if (excl) {
        dirs_[i].lock();
      } else {
        dirs_[i].lock_shared();
      }
    }
    for (size_t i : key_plan_) keys_[i].lock();
    held_ = true;
  }
  void Release() {
    if (!held_) return;
    for (auto it = key_plan_.rbegin(); it != key_plan_.rend(); ++it) keys_[*it].unlock();
    for (auto it = dir_plan_.rbegin(); it != dir_plan_.rend(); ++it) {
      if (it->second) {
        dirs_[it->first].unlock();
      } else {
        dirs_[it->first].unlock_shared();
      }
    }
    held_ = false;
  }

 private:
  std::shared_mutex* dirs_;
  std::mutex* keys_;
  std::vector<std::pair<size_t, bool>> dir_plan_;
  std::vector<size_t> key_plan_;
  bool held_ = false;
};

}  // namespace

// Keys held by prepared transactions. Guarded by mu; read and changed only
// while the caller holds the stripe locks of the keys concerned.
struct MetaStore::PendingState {
  std::mutex mu;
  std::unordered_map<std::string, uint64_t> keys;  // dentry/inode key -> txid
  std::unordered_map<uint64_t, uint64_t> fences;   // dir -> txid fencing it
  std::unordered_map<uint64_t, int> inserts;       // dir -> prepared new entries
  std::unordered_map<uint64_t, TxnPrepareRecord> prepared;
};

// ------------------------------------------------------------ open/setup

MetaStore::MetaStore(const MetaStoreOptions& options, rocksdb::DB* db)
    : options_(options),
      db_(db),
      locks_(std::make_unique<KeyLocks>()),
      pending_(std::make_unique<PendingState>()) {}

MetaStore::~MetaStore() = default;

Result<std::unique_ptr<MetaStore>> MetaStore::Open(const std::string& path,
                                                   const MetaStoreOptions& options) {
  if (options.num_shards == 0 || options.num_shards > kMaxShards ||
      options.shard_id >= options.num_shards) {
    return Status(Code::kInvalid, "meta store " + path + ": shard id " +
                                      std::to_string(options.shard_id) + " of " +
                                      std::to_string(options.num_shards) + " shards is invalid");
  }
  rocksdb::Options ro;
  ro.create_if_missing = options.create_if_missing;
  ro.merge_operator = std::make_shared<MetaMergeOperator>();
  ro.IncreaseParallelism(2);
  // Not pipelined: measured, the plain write path groups more synced writes per
  // WAL fsync (8 writes/sync at 16 writers vs 5 pipelined).
  ro.enable_pipelined_write = false;
  rocksdb::BlockBasedTableOptions table;
  table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  table.block_cache = rocksdb::NewLRUCache(options.block_cache_bytes);
  ro.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  if (options.rocksdb_statistics) ro.statistics = rocksdb::CreateDBStatistics();
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(ro, path, &raw);
  if (!s.ok()) {
    return Status(s.IsInvalidArgument() ? Code::kNotFound : Code::kIo,
                  "meta store: cannot open RocksDB at " + path + ": " + s.ToString());
  }
  std::unique_ptr<MetaStore> store(new MetaStore(options, raw));
  store->rocks_stats_ = ro.statistics;
  Status st = store->Init();
  if (!st.ok()) return st.Prefix("meta store " + path);
  return store;
}

Status MetaStore::Init() {
  auto load_mark = [&](const char* name, std::atomic<uint64_t>* next,
                       std::atomic<uint64_t>* limit) -> Status {
    std::string v;
    rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), MetaKey(name), &v);
    uint64_t start = kFirstLocalIno;
    if (s.ok() && v.size() == 8) {
      start = GetBE64(v.data());
    } else if (!s.IsNotFound()) {
      return FromRocks(s, std::string("read allocator mark ") + name);
    }
    // Everything below the stored mark may have been handed out before a
    // crash: continue above it, so numbers are never reused.
    next->store(start);
    limit->store(start);
    return Status::Ok();
  };
  // The shard's identity is fixed at format: opening it as another shard or
  // in a cluster of another size would misplace every dentry.
  {
    std::string want;
    PutBE64(&want, (uint64_t{options_.shard_id} << 32) | options_.num_shards);
    std::string have;
    rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), MetaKey("identity"), &have);
    if (s.IsNotFound()) {
      rocksdb::WriteBatch b;
      b.Put(MetaKey("identity"), want);
      SLUICE_RETURN_IF_ERROR(Write(&b, "record shard identity"));
    } else if (!s.ok()) {
      return FromRocks(s, "read shard identity");
    } else if (have != want) {
      if (have.size() != 8) return Status(Code::kCorrupt, "shard identity record is malformed");
      uint64_t v = GetBE64(have.data());
      return Status(Code::kInvalid,
                    "this database is shard " + std::to_string(v >> 32) + " of " +
                        std::to_string(v & 0xffffffffu) + ", not shard " +
                        std::to_string(options_.shard_id) + " of " +
                        std::to_string(options_.num_shards) +
                        " (changing the shard count needs a migration)");
    }
  }
  SLUICE_RETURN_IF_ERROR(load_mark("ino_hwm", &next_ino_, &ino_limit_));
  SLUICE_RETURN_IF_ERROR(load_mark("txid_hwm", &next_txid_, &txid_limit_));

  if (options_.shard_id == 0) {
    std::string v;
    rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), InodeKey(kRootIno), &v);
    if (s.IsNotFound()) {
      InodeAttr root;
      root.set_ino(kRootIno);
      root.set_type(FILE_TYPE_DIRECTORY);
      root.set_mode(options_.root_mode & 07777);
      root.set_uid(options_.root_uid);
      root.set_gid(options_.root_gid);
      root.set_nlink(2);
      int64_t now = NowNs();
      root.set_atime_ns(now);
      root.set_mtime_ns(now);
      root.set_ctime_ns(now);
      *root.mutable_layout() = options_.root_layout;
      root.set_parent(kRootIno);
      rocksdb::WriteBatch b;
      b.Put(InodeKey(kRootIno), root.SerializeAsString());
      AddCounter(&b, kCounterInodes, 1);
      SLUICE_RETURN_IF_ERROR(Write(&b, "format root directory"));
      LOG_INFO("meta shard 0: formatted a new namespace");
    } else if (!s.ok()) {
      return FromRocks(s, "read root inode");
    }
  }

  // Prepared transactions survive restarts: their keys stay held until the
  // coordinator decides them.
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
  for (it->Seek("P"); it->Valid() && it->key().starts_with("P"); it->Next()) {
    TxnPrepareRecord rec;
    if (!rec.ParseFromArray(it->value().data(), static_cast<int>(it->value().size()))) {
      return Status(Code::kCorrupt, "prepare record " + it->key().ToString(true) +
                                        " does not parse");
    }
    MarkPending({rec.ops().begin(), rec.ops().end()}, rec.txid());
    pending_->prepared[rec.txid()] = rec;
    LOG_INFO("meta shard " + std::to_string(shard_id()) + ": txn " +
             std::to_string(rec.txid()) + " is prepared, awaiting coordinator shard " +
             std::to_string(rec.coordinator_shard()));
  }
  if (!it->status().ok()) return FromRocks(it->status(), "scan prepare records");
  return Status::Ok();
}

uint64_t MetaStore::WalSyncs() const {
  return rocks_stats_ ? rocks_stats_->getTickerCount(rocksdb::WAL_FILE_SYNCED) : 0;
}

void MetaStore::SetPeers(std::vector<ShardHandle*> peers) { peers_ = std::move(peers); }

Status MetaStore::Write(rocksdb::WriteBatch* batch, const char* what) {
  rocksdb::WriteOptions wo;
  wo.sync = options_.sync;
  rocksdb::Status s = db_->Write(wo, batch);
  if (!s.ok()) {
    return FromRocks(s, std::string(what) + ": write to shard " + std::to_string(shard_id()));
  }
  stats_.writes.fetch_add(1, std::memory_order_relaxed);
  return Status::Ok();
}

Result<uint64_t> MetaStore::AllocateFromBlock(std::atomic<uint64_t>* next,
                                              std::atomic<uint64_t>* limit, const char* key) {
  uint64_t v = next->fetch_add(1);
  if (v < limit->load()) return v;
  std::lock_guard<std::mutex> g(alloc_mu_);
  if (v < limit->load()) return v;
  // Durably reserve a block before handing out numbers from it.
  uint64_t new_limit = std::max(limit->load(), v + 1) + kAllocBlock;
  std::string val;
  PutBE64(&val, new_limit);
  rocksdb::WriteOptions wo;
  wo.sync = options_.sync;
  rocksdb::Status s = db_->Put(wo, MetaKey(key), val);
  if (!s.ok()) return FromRocks(s, std::string("reserve numbers (") + key + ")");
  limit->store(new_limit);
  return v;
}

Result<uint64_t> MetaStore::AllocateIno() {
  SLUICE_ASSIGN_OR_RETURN(uint64_t local, AllocateFromBlock(&next_ino_, &ino_limit_, "ino_hwm"));
  if (local > kInoLocalMask) {
    return Status(Code::kNoSpace, "shard " + std::to_string(shard_id()) + " ran out of inode numbers");
  }
  return MakeIno(shard_id(), local);
}

uint64_t MetaStore::NewTxid() {
  auto r = AllocateFromBlock(&next_txid_, &txid_limit_, "txid_hwm");
  if (!r.ok()) {
    // Fall back to a number that cannot collide with stored ones in this run.
    LOG_ERROR("txid allocation: " + r.status().ToString());
    return MakeIno(shard_id(), next_txid_.fetch_add(1) + (kInoLocalMask >> 1));
  }
  return MakeIno(shard_id(), r.value());
}

// ------------------------------------------------------------ helpers

Result<InodeAttr> MetaStore::ReadLocalInode(uint64_t ino) {
  std::string v;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), InodeKey(ino), &v);
  if (s.IsNotFound()) {
    return Status(Code::kNotFound, "inode " + InoString(ino) + " does not exist");
  }
  if (!s.ok()) return FromRocks(s, "read inode " + InoString(ino));
  InodeAttr attr;
  if (!attr.ParseFromString(v)) {
    return Status(Code::kCorrupt, "inode " + InoString(ino) + " record does not parse");
  }
  return attr;
}

namespace {
thread_local bool tls_local_only = false;
thread_local bool tls_needed_peer = false;
}  // namespace

MetaStore::LocalOnlyScope::LocalOnlyScope() {
  tls_local_only = true;
  tls_needed_peer = false;
}
MetaStore::LocalOnlyScope::~LocalOnlyScope() { tls_local_only = false; }
bool MetaStore::LocalOnlyScope::needed_peer() const { return tls_needed_peer; }

Result<InodeAttr> MetaStore::ReadInode(uint64_t ino) {
  uint32_t s = InodeShard(ino);
  if (s == shard_id()) return ReadLocalInode(ino);
  if (tls_local_only) {
    tls_needed_peer = true;
    return Status(Code::kBusy, "inode " + InoString(ino) + " is on shard " + std::to_string(s));
  }
  if (s >= num_shards()) {
    return Status(Code::kNotFound, "inode " + InoString(ino) + " names shard " +
                                       std::to_string(s) + " but the cluster has " +
                                       std::to_string(num_shards()));
  }
  if (s >= peers_.size() || peers_[s] == nullptr) {
    return Status(Code::kUnavailable, "shard " + std::to_string(shard_id()) +
                                          " has no handle to shard " + std::to_string(s) +
                                          " to read inode " + InoString(ino));
  }
  return peers_[s]->GetAttr(ino);
}

Result<InodeAttr> MetaStore::ReadParentDir(uint64_t ino) {
  if (InodeShard(ino) == shard_id() || options_.remote_dir_cache_ms == 0) return ReadInode(ino);
  const uint64_t now = NowMillis();
  uint64_t epoch;
  {
    std::lock_guard<std::mutex> g(dir_cache_mu_);
    auto it = dir_cache_.find(ino);
    if (it != dir_cache_.end() && it->second.expires_ms > now) return it->second.attr;
    epoch = dir_cache_epoch_;
  }
  auto r = ReadInode(ino);
  if (r.ok() && r->type() == FILE_TYPE_DIRECTORY) {
    std::lock_guard<std::mutex> g(dir_cache_mu_);
    // A ForgetDir since the read began may concern what was read: keep it uncached.
    if (dir_cache_epoch_ == epoch) {
      if (dir_cache_.size() >= 65536) dir_cache_.clear();
      dir_cache_[ino] = DirCacheEntry{r.value(), now + options_.remote_dir_cache_ms};
    }
  }
  return r;
}

void MetaStore::ForgetDir(uint64_t dir) {
  std::lock_guard<std::mutex> g(dir_cache_mu_);
  dir_cache_.erase(dir);
  ++dir_cache_epoch_;
}

void MetaStore::BroadcastForgetDir(uint64_t dir) {
  if (options_.remote_dir_cache_ms == 0) return;
  for (uint32_t s = 0; s < peers_.size(); ++s) {
    if (s == shard_id() || peers_[s] == nullptr) continue;
    Status st = peers_[s]->ForgetDir(dir);
    if (!st.ok()) {
      LOG_WARN("shard " + std::to_string(shard_id()) + ": shard " + std::to_string(s) +
               " may use its cached copy of directory " + InoString(dir) + " for up to " +
               std::to_string(options_.remote_dir_cache_ms) + " ms: " + st.ToString());
    }
  }
}

Result<bool> MetaStore::GetDentry(uint64_t parent, std::string_view name, uint64_t* ino,
                                  FileType* type) {
  std::string v;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), DentryKey(parent, name), &v);
  if (s.IsNotFound()) return false;
  if (!s.ok()) return FromRocks(s, "read dentry");
  if (v.size() != 9) {
    return Status(Code::kCorrupt, "dentry '" + PrintableName(name) + "' in " + InoString(parent) +
                                      " has a " + std::to_string(v.size()) + "-byte value");
  }
  *ino = GetBE64(v.data());
  *type = static_cast<FileType>(static_cast<unsigned char>(v[8]));
  return true;
}

Result<bool> MetaStore::DirIsDead(uint64_t dir) {
  std::string v;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), FenceKey(dir), &v);
  if (s.IsNotFound()) return false;
  if (!s.ok()) return FromRocks(s, "read fence of " + InoString(dir));
  return true;
}

bool MetaStore::KeyPending(const std::string& key) {
  std::lock_guard<std::mutex> g(pending_->mu);
  return pending_->keys.count(key) > 0;
}

bool MetaStore::FencePending(uint64_t dir) {
  std::lock_guard<std::mutex> g(pending_->mu);
  return pending_->fences.count(dir) > 0;
}

Result<InodeAttr> MetaStore::ParentForChange(const Caller& caller, uint64_t parent,
                                             const char* what) {
  auto p = ReadParentDir(parent);
  if (!p.ok()) {
    if (p.status().code() == Code::kNotFound) {
      return Status(Code::kNotFound, std::string(what) + ": parent directory " +
                                         InoString(parent) + " does not exist");
    }
    return p.status().Prefix(what);
  }
  if (p->type() != FILE_TYPE_DIRECTORY) {
    return Status(Code::kNotDir, std::string(what) + ": parent " + InoString(parent) +
                                     " is a " + TypeName(p->type()) + ", not a directory");
  }
  if (!CheckAccess(*p, caller, kMayWrite | kMayExec)) {
    return AccessDenied(*p, caller, kMayWrite | kMayExec, what);
  }
  return p;
}

static Status WrongShard(const char* what, uint64_t parent, std::string_view name, uint32_t owner,
                         uint32_t self) {
  return Status(Code::kInvalid, std::string(what) + ": entry '" + PrintableName(name) + "' of " +
                                    InoString(parent) + " belongs to shard " +
                                    std::to_string(owner) + ", not shard " + std::to_string(self));
}

// ------------------------------------------------------------ reads

Result<InodeAttr> MetaStore::Lookup(const Caller& caller, uint64_t parent, std::string_view name) {
  return LookupIn(caller, parent, ReadParentDir(parent), name);
}

std::vector<Result<InodeAttr>> MetaStore::LookupMany(const Caller& caller,
                                                     const std::vector<LookupItem>& items) {
  std::vector<Result<InodeAttr>> out;
  out.reserve(items.size());
  uint64_t cur = 0;
  Result<InodeAttr> p(Status(Code::kInternal, "no parent read"));
  for (const LookupItem& it : items) {
    if (cur == 0 || it.parent != cur) {
      cur = it.parent;
      p = ReadParentDir(cur);
    }
    out.push_back(LookupIn(caller, it.parent, p, it.name));
  }
  return out;
}

Result<InodeAttr> MetaStore::LookupIn(const Caller& caller, uint64_t parent,
                                      const Result<InodeAttr>& p, std::string_view name) {
  if (!p.ok()) return p.status().Prefix("lookup '" + PrintableName(name) + "'");
  if (p->type() != FILE_TYPE_DIRECTORY) {
    return Status(Code::kNotDir, "lookup '" + PrintableName(name) + "': " + InoString(parent) +
                                     " is not a directory");
  }
  if (!CheckAccess(p.value(), caller, kMayExec)) return AccessDenied(p.value(), caller, kMayExec, "lookup");
  if (name == ".") return p;
  if (name == "..") return ReadInode(p->parent() == 0 ? parent : p->parent());
  SLUICE_RETURN_IF_ERROR(ValidateName(name, "lookup"));
  uint32_t owner = DentryShard(parent, name, num_shards());
  if (owner != shard_id()) return WrongShard("lookup", parent, name, owner, shard_id());
  uint64_t ino = 0;
  FileType type;
  SLUICE_ASSIGN_OR_RETURN(bool found, GetDentry(parent, name, &ino, &type));
  if (!found) {
    return Status(Code::kNotFound, "lookup: no entry '" + PrintableName(name) + "' in directory " +
                                       InoString(parent));
  }
  return ReadInode(ino);
}

Result<InodeAttr> MetaStore::GetAttr(uint64_t ino) {
  if (InodeShard(ino) != shard_id()) {
    return Status(Code::kInvalid, "getattr: inode " + InoString(ino) + " is not on shard " +
                                      std::to_string(shard_id()));
  }
  return ReadLocalInode(ino);
}

Result<std::string> MetaStore::Readlink(uint64_t ino) {
  SLUICE_ASSIGN_OR_RETURN(InodeAttr attr, GetAttr(ino));
  if (attr.type() != FILE_TYPE_SYMLINK) {
    return Status(Code::kInvalid, "readlink: inode " + InoString(ino) + " is a " +
                                      TypeName(attr.type()) + ", not a symlink");
  }
  return attr.symlink_target();
}

Result<ShardDirPage> MetaStore::ReadDirShard(uint64_t dir, std::string_view after,
                                             uint32_t max_entries) {
  ShardDirPage page;
  if (max_entries == 0) max_entries = 1;
  std::string prefix = DentryPrefix(dir);
  std::string end = PrefixEnd(prefix);
  rocksdb::Slice upper(end);
  rocksdb::ReadOptions ro;
  ro.iterate_upper_bound = &upper;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro));
  std::string start = prefix;
  start.append(after);
  it->Seek(start);
  if (!after.empty() && it->Valid() && it->key() == rocksdb::Slice(start)) it->Next();
  for (; it->Valid(); it->Next()) {
    if (page.entries.size() >= max_entries) {
      page.more = true;
      break;
    }
    rocksdb::Slice v = it->value();
    if (v.size() != 9) return Status(Code::kCorrupt, "readdir: bad dentry value in " + InoString(dir));
    DirEntry e;
    e.set_name(it->key().data() + prefix.size(), it->key().size() - prefix.size());
    e.set_ino(GetBE64(v.data()));
    e.set_type(static_cast<FileType>(static_cast<unsigned char>(v[8])));
    page.entries.push_back(std::move(e));
  }
  if (!it->status().ok()) return FromRocks(it->status(), "readdir " + InoString(dir));
  return page;
}

Result<StatFsResult> MetaStore::StatFs() {
  StatFsResult r;
  auto get = [&](const char* name, uint64_t* out) -> Status {
    std::string v;
    rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), MetaKey(name), &v);
    if (s.IsNotFound()) {
      *out = 0;
      return Status::Ok();
    }
    if (!s.ok()) return FromRocks(s, std::string("statfs counter ") + name);
    int64_t x = DecodeI64(v);
    *out = x < 0 ? 0 : static_cast<uint64_t>(x);
    return Status::Ok();
  };
  SLUICE_RETURN_IF_ERROR(get(kCounterInodes, &r.inodes));
  SLUICE_RETURN_IF_ERROR(get(kCounterBytes, &r.bytes));
  SLUICE_RETURN_IF_ERROR(get(kCounterDentries, &r.dentries));
  return r;
}

// ------------------------------------------------------------ create family

Result<CreateResult> MetaStore::MakeNode(const Caller& caller, uint64_t parent,
                                         std::string_view name, FileType type, uint32_t mode,
                                         std::string_view target, bool exclusive,
                                         const char* what) {
  if (name == "." || name == "..") {
    return Status(Code::kExists, std::string(what) + ": '" + std::string(name) + "' exists");
  }
  SLUICE_RETURN_IF_ERROR(ValidateName(name, what));
  uint32_t owner = DentryShard(parent, name, num_shards());
  if (owner != shard_id()) return WrongShard(what, parent, name, owner, shard_id());
  // The parent may live on another shard; it is read outside the locks. A
  // concurrent rmdir of it is caught below by the fence (pending or durable).
  SLUICE_ASSIGN_OR_RETURN(InodeAttr p, ParentForChange(caller, parent, what));

  std::string dkey = DentryKey(parent, name);
  LockSet locks(locks_->dirs, locks_->keys);
  locks.AddDir(parent, /*exclusive=*/false);
  locks.AddKey(dkey);
  locks.Acquire();
  if (FencePending(parent)) {
    stats_.busy.fetch_add(1, std::memory_order_relaxed);
    return Busy(std::string(what) + " in " + InoString(parent) + " (directory being removed)");
  }
  SLUICE_ASSIGN_OR_RETURN(bool dead, DirIsDead(parent));
  if (dead) {
    return Status(Code::kNotFound, std::string(what) + ": directory " + InoString(parent) +
                                       " has been removed");
  }
  if (KeyPending(dkey)) {
    stats_.busy.fetch_add(1, std::memory_order_relaxed);
    return Busy(std::string(what) + " '" + PrintableName(name) + "'");
  }
  uint64_t old_ino = 0;
  FileType old_type;
  SLUICE_ASSIGN_OR_RETURN(bool exists, GetDentry(parent, name, &old_ino, &old_type));
  if (exists) {
    if (exclusive || type != FILE_TYPE_REGULAR) {
      return Status(Code::kExists, std::string(what) + ": '" + PrintableName(name) +
                                       "' already exists in " + InoString(parent));
    }
    if (old_type == FILE_TYPE_DIRECTORY) {
      return Status(Code::kIsDir, std::string(what) + ": '" + PrintableName(name) +
                                      "' is a directory");
    }
    CreateResult r;
    SLUICE_ASSIGN_OR_RETURN(r.attr, ReadInode(old_ino));
    r.created = false;
    return r;
  }

  SLUICE_ASSIGN_OR_RETURN(uint64_t ino, AllocateIno());
  InodeAttr a;
  a.set_ino(ino);
  a.set_type(type);
  a.set_uid(caller.uid());
  uint32_t gid = caller.gids_size() > 0 ? caller.gids(0) : 0;
  uint32_t m = mode & 07777;
  if (p.mode() & 02000) {  // setgid directory: group inherited, and by subdirectories the bit
    gid = p.gid();
    if (type == FILE_TYPE_DIRECTORY) m |= 02000;
  }
  a.set_gid(gid);
  int64_t now = NowNs();
  a.set_atime_ns(now);
  a.set_mtime_ns(now);
  a.set_ctime_ns(now);
  const FileLayout& pl = p.layout().chunk_size() ? p.layout() : options_.root_layout;
  switch (type) {
    case FILE_TYPE_DIRECTORY:
      a.set_mode(m);
      a.set_nlink(2);
      a.set_parent(parent);
      *a.mutable_layout() = pl;
      break;
    case FILE_TYPE_SYMLINK:
      a.set_mode(0777);
      a.set_nlink(1);
      a.set_size(target.size());
      a.set_symlink_target(std::string(target));
      break;
    default: {
      a.set_mode(m);
      a.set_nlink(1);
      // A file gets stripe_width chains from the directory's pool, starting
      // at a position derived from its inode number so files spread evenly.
      FileLayout* fl = a.mutable_layout();
      fl->set_chunk_size(pl.chunk_size());
      uint32_t width = std::max<uint32_t>(1, pl.stripe_width());
      int pool = pl.chain_ids_size();
      if (pool > 0) {
        width = std::min<uint32_t>(width, static_cast<uint32_t>(pool));
        uint64_t start = Mix64(ino) % static_cast<uint64_t>(pool);
        for (uint32_t i = 0; i < width; ++i) {
          fl->add_chain_ids(pl.chain_ids(static_cast<int>((start + i) % pool)));
        }
      }
      fl->set_stripe_width(width);
      break;
    }
  }
  rocksdb::WriteBatch b;
  b.Put(InodeKey(ino), a.SerializeAsString());
  b.Put(dkey, DentryValue(ino, type));
  AddCounter(&b, kCounterInodes, 1);
  AddCounter(&b, kCounterDentries, 1);
  if (type == FILE_TYPE_SYMLINK) AddCounter(&b, kCounterBytes, static_cast<int64_t>(target.size()));
  AddDirChange(&b, parent, type == FILE_TYPE_DIRECTORY ? 1 : 0, now);
  SLUICE_RETURN_IF_ERROR(Write(&b, what));
  CreateResult r;
  r.attr = std::move(a);
  r.created = true;
  return r;
}

Result<CreateResult> MetaStore::Create(const Caller& caller, uint64_t parent, std::string_view name,
                                       uint32_t mode, bool exclusive) {
  return MakeNode(caller, parent, name, FILE_TYPE_REGULAR, mode, {}, exclusive, "create");
}

Result<InodeAttr> MetaStore::Mkdir(const Caller& caller, uint64_t parent, std::string_view name,
                                   uint32_t mode) {
  SLUICE_ASSIGN_OR_RETURN(CreateResult r,
                          MakeNode(caller, parent, name, FILE_TYPE_DIRECTORY, mode, {}, true, "mkdir"));
  return r.attr;
}

Result<InodeAttr> MetaStore::Symlink(const Caller& caller, uint64_t parent, std::string_view name,
                                     std::string_view target) {
  if (target.empty()) return Status(Code::kNotFound, "symlink: empty target");
  if (target.size() > kMaxSymlinkLen) {
    return Status(Code::kNameTooLong, "symlink: target of " + std::to_string(target.size()) +
                                          " bytes exceeds " + std::to_string(kMaxSymlinkLen));
  }
  if (target.find('\0') != std::string_view::npos) {
    return Status(Code::kInvalid, "symlink: target contains NUL");
  }
  SLUICE_ASSIGN_OR_RETURN(CreateResult r, MakeNode(caller, parent, name, FILE_TYPE_SYMLINK, 0777,
                                                   target, true, "symlink"));
  return r.attr;
}

Status MetaStore::DeleteInode(const InodeAttr& attr, rocksdb::WriteBatch* b) {
  b->Delete(InodeKey(attr.ino()));
  std::string prefix = XattrPrefix(attr.ino());
  std::string end = PrefixEnd(prefix);
  rocksdb::Slice upper(end);
  rocksdb::ReadOptions ro;
  ro.iterate_upper_bound = &upper;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro));
  for (it->Seek(prefix); it->Valid(); it->Next()) b->Delete(it->key());
  if (!it->status().ok()) return FromRocks(it->status(), "scan xattrs of " + InoString(attr.ino()));
  // Chunks of a removed file are collected from the data servers later.
  if (attr.type() == FILE_TYPE_REGULAR && attr.size() > 0) {
    b->Put(GcKey(attr.ino()), attr.SerializeAsString());
  }
  AddCounter(b, kCounterInodes, -1);
  if (attr.type() != FILE_TYPE_DIRECTORY) AddCounter(b, kCounterBytes, -static_cast<int64_t>(attr.size()));
  return Status::Ok();
}

Status MetaStore::Unlink(const Caller& caller, uint64_t parent, std::string_view name, InodeAttr* victim) {
  SLUICE_RETURN_IF_ERROR(ValidateName(name, "unlink"));
  uint32_t owner = DentryShard(parent, name, num_shards());
  if (owner != shard_id()) return WrongShard("unlink", parent, name, owner, shard_id());
  SLUICE_ASSIGN_OR_RETURN(InodeAttr p, ParentForChange(caller, parent, "unlink"));
  std::string dkey = DentryKey(parent, name);
  for (int attempt = 0;; ++attempt) {
    // Read the entry unlocked to learn which inode to lock, then verify it
    // under the locks (lock order: dir, then sorted keys).
    uint64_t ino = 0;
    FileType type;
    SLUICE_ASSIGN_OR_RETURN(bool found, GetDentry(parent, name, &ino, &type));
    if (!found) {
      return Status(Code::kNotFound, "unlink: no entry '" + PrintableName(name) + "' in " +
                                         InoString(parent));
    }
    if (type == FILE_TYPE_DIRECTORY) {
      return Status(Code::kIsDir, "unlink: '" + PrintableName(name) + "' is a directory");
    }
    if (InodeShard(ino) != shard_id()) {
      return Status(Code::kCrossDevice, "unlink: inode " + InoString(ino) + " of '" +
                                            PrintableName(name) + "' lives on shard " +
                                            std::to_string(InodeShard(ino)) +
                                            "; the coordinator must remove it");
    }
    std::string ikey = InodeKey(ino);
    LockSet locks(locks_->dirs, locks_->keys);
    locks.AddDir(parent, false);
    locks.AddKey(dkey);
    locks.AddKey(ikey);
    locks.Acquire();
    if (KeyPending(dkey) || KeyPending(ikey)) {
      stats_.busy.fetch_add(1, std::memory_order_relaxed);
      return Busy("unlink '" + PrintableName(name) + "'");
    }
    uint64_t ino2 = 0;
    FileType type2;
    SLUICE_ASSIGN_OR_RETURN(bool found2, GetDentry(parent, name, &ino2, &type2));
    if (!found2 || ino2 != ino) {
      if (attempt < 8) continue;  // changed under us; look again
      return Busy("unlink '" + PrintableName(name) + "' (entry keeps changing)");
    }
    SLUICE_ASSIGN_OR_RETURN(InodeAttr a, ReadLocalInode(ino));
    if ((p.mode() & 01000) && caller.uid() != 0 && caller.uid() != p.uid() &&
        caller.uid() != a.uid()) {
      return Status(Code::kNotPermitted, "unlink: '" + PrintableName(name) +
                                             "' is in a sticky directory and uid " +
                                             std::to_string(caller.uid()) + " owns neither");
    }
    const int64_t now = NowNs();
    rocksdb::WriteBatch b;
    b.Delete(dkey);
    AddCounter(&b, kCounterDentries, -1);
    AddDirChange(&b, parent, 0, now);
    if (a.nlink() <= 1) {
      SLUICE_RETURN_IF_ERROR(DeleteInode(a, &b));
      a.set_nlink(0);
    } else {
      a.set_nlink(a.nlink() - 1);
      a.set_ctime_ns(now);
      b.Put(ikey, a.SerializeAsString());
    }
    SLUICE_RETURN_IF_ERROR(Write(&b, "unlink"));
    if (victim) *victim = std::move(a);
    return Status::Ok();
  }
}

// ------------------------------------------------------------ inode updates

Result<InodeAttr> MetaStore::SetAttr(const SetAttrRequest& req) {
  const Caller& caller = req.caller();
  uint64_t ino = req.ino();
  if (InodeShard(ino) != shard_id()) {
    return Status(Code::kInvalid, "setattr: inode " + InoString(ino) + " is not on shard " +
                                      std::to_string(shard_id()));
  }
  std::string ikey = InodeKey(ino);
  LockSet locks(locks_->dirs, locks_->keys);
  locks.AddKey(ikey);
  locks.Acquire();
  if (KeyPending(ikey)) return Busy("setattr " + InoString(ino));
  SLUICE_ASSIGN_OR_RETURN(InodeAttr a, ReadLocalInode(ino));
  const bool owner = caller.uid() == 0 || caller.uid() == a.uid();
  const std::string where = "setattr " + InoString(ino);
  uint32_t valid = req.valid();
  if ((valid & kSetMode) && !owner) {
    return Status(Code::kNotPermitted, where + ": chmod by uid " + std::to_string(caller.uid()) +
                                           " who does not own it");
  }
  if ((valid & kSetUid) && req.uid() != a.uid() && caller.uid() != 0) {
    return Status(Code::kNotPermitted, where + ": only uid 0 may change the owner");
  }
  if ((valid & kSetGid) && req.gid() != a.gid() && caller.uid() != 0 &&
      !(caller.uid() == a.uid() && CallerInGroup(caller, req.gid()))) {
    return Status(Code::kNotPermitted, where + ": uid " + std::to_string(caller.uid()) +
                                           " may not change the group to " +
                                           std::to_string(req.gid()));
  }
  if (valid & kSetSize) {
    if (a.type() == FILE_TYPE_DIRECTORY) return Status(Code::kIsDir, where + ": truncate of a directory");
    if (a.type() != FILE_TYPE_REGULAR) return Status(Code::kInvalid, where + ": truncate of a non-file");
    if (!CheckAccess(a, caller, kMayWrite)) return AccessDenied(a, caller, kMayWrite, "truncate");
  }
  for (uint32_t bit : {kSetAtime, kSetMtime}) {
    if (!(valid & bit)) continue;
    int64_t t = bit == kSetAtime ? req.atime_ns() : req.mtime_ns();
    if (t == kTimeNow) {
      if (!owner && !CheckAccess(a, caller, kMayWrite)) return AccessDenied(a, caller, kMayWrite, "utimens");
    } else if (!owner) {
      return Status(Code::kNotPermitted, where + ": explicit times need ownership");
    }
  }
  int64_t now = NowNs();
  int64_t bytes_delta = 0;
  if (valid & kSetMode) a.set_mode(req.mode() & 07777);
  if (valid & kSetUid) a.set_uid(req.uid());
  if (valid & kSetGid) a.set_gid(req.gid());
  if ((valid & (kSetUid | kSetGid)) && caller.uid() != 0 && a.type() == FILE_TYPE_REGULAR) {
    a.set_mode(a.mode() & ~06000u);  // chown clears set-id bits
  }
  if (valid & kSetSize) {
    bytes_delta = static_cast<int64_t>(req.size()) - static_cast<int64_t>(a.size());
    a.set_size(req.size());
    a.set_mtime_ns(now);
  }
  if (valid & kSetAtime) a.set_atime_ns(req.atime_ns() == kTimeNow ? now : req.atime_ns());
  if (valid & kSetMtime) a.set_mtime_ns(req.mtime_ns() == kTimeNow ? now : req.mtime_ns());
  a.set_ctime_ns(now);
  rocksdb::WriteBatch b;
  b.Put(ikey, a.SerializeAsString());
  AddCounter(&b, kCounterBytes, bytes_delta);
  if (a.type() == FILE_TYPE_DIRECTORY && (valid & kSetMtime)) {
    // A directory's mtime is the latest event over every shard's share
    // (ApplyDirStats): an explicit mtime is such an event, here, now.
    DirShare d;
    d.mtime_event = now;
    d.mtime = a.mtime_ns();
    d.ctime = now;
    b.Merge(StatsKey(ino), EncodeShare(d));
  }
  SLUICE_RETURN_IF_ERROR(Write(&b, "setattr"));
  if (a.type() == FILE_TYPE_DIRECTORY && (valid & (kSetMode | kSetUid | kSetGid))) {
    locks.Release();
    BroadcastForgetDir(ino);
  }
  return a;
}

Result<uint64_t> MetaStore::ReportLength(uint64_t ino, uint64_t length) {
  if (InodeShard(ino) != shard_id()) {
    return Status(Code::kInvalid, "report length: inode " + InoString(ino) + " is not on shard " +
                                      std::to_string(shard_id()));
  }
  std::string ikey = InodeKey(ino);
  LockSet locks(locks_->dirs, locks_->keys);
  locks.AddKey(ikey);
  locks.Acquire();
  if (KeyPending(ikey)) return Busy("report length " + InoString(ino));
  SLUICE_ASSIGN_OR_RETURN(InodeAttr a, ReadLocalInode(ino));
  if (a.type() != FILE_TYPE_REGULAR) {
    return Status(a.type() == FILE_TYPE_DIRECTORY ? Code::kIsDir : Code::kInvalid,
                  "report length: inode " + InoString(ino) + " is not a regular file");
  }
  if (length <= a.size()) return a.size();
  int64_t delta = static_cast<int64_t>(length - a.size());
  a.set_size(length);
  a.set_mtime_ns(NowNs());
  rocksdb::WriteBatch b;
  b.Put(ikey, a.SerializeAsString());
  AddCounter(&b, kCounterBytes, delta);
  SLUICE_RETURN_IF_ERROR(Write(&b, "report length"));
  return length;
}

Result<DirStats> MetaStore::GetDirStats(uint64_t dir) {
  std::string v;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), StatsKey(dir), &v);
  DirStats out;
  if (s.IsNotFound()) return out;
  if (!s.ok()) return FromRocks(s, "read directory share of " + InoString(dir));
  if (v.size() != 32) {
    return Status(Code::kCorrupt, "directory share of " + InoString(dir) + " has " +
                                      std::to_string(v.size()) + " bytes");
  }
  DirShare d = DecodeShare(v);
  out.set_subdirs(d.subdirs > 0 ? static_cast<uint64_t>(d.subdirs) : 0);
  out.set_mtime_event_ns(d.mtime_event);
  out.set_mtime_ns(d.mtime);
  out.set_ctime_ns(d.ctime);
  return out;
}

Status MetaStore::SetDirLayout(const Caller& caller, uint64_t dir, const FileLayout& layout) {
  SLUICE_RETURN_IF_ERROR(ValidateLayout(layout));
  if (InodeShard(dir) != shard_id()) {
    return Status(Code::kInvalid, "set layout: inode " + InoString(dir) + " is not on shard " +
                                      std::to_string(shard_id()));
  }
  std::string ikey = InodeKey(dir);
  LockSet locks(locks_->dirs, locks_->keys);
  locks.AddKey(ikey);
  locks.Acquire();
  if (KeyPending(ikey)) return Busy("set layout " + InoString(dir));
  SLUICE_ASSIGN_OR_RETURN(InodeAttr a, ReadLocalInode(dir));
  if (a.type() != FILE_TYPE_DIRECTORY) {
    return Status(Code::kNotDir, "set layout: inode " + InoString(dir) + " is not a directory");
  }
  if (caller.uid() != 0 && caller.uid() != a.uid()) {
    return Status(Code::kNotPermitted, "set layout on " + InoString(dir) + ": uid " +
                                           std::to_string(caller.uid()) + " does not own it");
  }
  *a.mutable_layout() = layout;
  a.set_ctime_ns(NowNs());
  rocksdb::WriteBatch b;
  b.Put(ikey, a.SerializeAsString());
  SLUICE_RETURN_IF_ERROR(Write(&b, "set layout"));
  locks.Release();
  BroadcastForgetDir(dir);
  return Status::Ok();
}

// ------------------------------------------------------------ xattrs

static Status CheckXattrName(std::string_view name, const char* what) {
  if (name.empty()) return Status(Code::kInvalid, std::string(what) + ": empty attribute name");
  if (name.size() > kMaxXattrNameLen) {
    return Status(Code::kRange, std::string(what) + ": attribute name of " +
                                    std::to_string(name.size()) + " bytes exceeds 255");
  }
  if (name.find('\0') != std::string_view::npos) {
    return Status(Code::kInvalid, std::string(what) + ": attribute name contains NUL");
  }
  return Status::Ok();
}

Result<std::string> MetaStore::GetXattr(const Caller& caller, uint64_t ino, std::string_view name) {
  SLUICE_RETURN_IF_ERROR(CheckXattrName(name, "getxattr"));
  SLUICE_ASSIGN_OR_RETURN(InodeAttr a, GetAttr(ino));
  if (!CheckAccess(a, caller, kMayRead)) return AccessDenied(a, caller, kMayRead, "getxattr");
  std::string v;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), XattrKey(ino, name), &v);
  if (s.IsNotFound()) {
    return Status(Code::kNoData, "getxattr: inode " + InoString(ino) + " has no attribute '" +
                                     PrintableName(name) + "'");
  }
  if (!s.ok()) return FromRocks(s, "getxattr");
  return v;
}

Status MetaStore::SetXattr(const Caller& caller, uint64_t ino, std::string_view name,
                           std::string_view value, uint32_t flags) {
  SLUICE_RETURN_IF_ERROR(CheckXattrName(name, "setxattr"));
  if (value.size() > kMaxXattrValueLen) {
    return Status(Code::kTooBig, "setxattr: value of " + std::to_string(value.size()) +
                                     " bytes exceeds 65536");
  }
  if ((flags & kXattrCreate) && (flags & kXattrReplace)) {
    return Status(Code::kInvalid, "setxattr: CREATE and REPLACE together");
  }
  if (InodeShard(ino) != shard_id()) return Status(Code::kInvalid, "setxattr: inode not on this shard");
  std::string ikey = InodeKey(ino);
  LockSet locks(locks_->dirs, locks_->keys);
  locks.AddKey(ikey);
  locks.Acquire();
  if (KeyPending(ikey)) return Busy("setxattr " + InoString(ino));
  SLUICE_ASSIGN_OR_RETURN(InodeAttr a, ReadLocalInode(ino));
  if (!CheckAccess(a, caller, kMayWrite)) return AccessDenied(a, caller, kMayWrite, "setxattr");
  std::string xkey = XattrKey(ino, name);
  std::string old;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), xkey, &old);
  if (!s.ok() && !s.IsNotFound()) return FromRocks(s, "setxattr");
  if ((flags & kXattrCreate) && s.ok()) {
    return Status(Code::kExists, "setxattr: attribute '" + PrintableName(name) + "' exists");
  }
  if ((flags & kXattrReplace) && s.IsNotFound()) {
    return Status(Code::kNoData, "setxattr: attribute '" + PrintableName(name) + "' does not exist");
  }
  a.set_ctime_ns(NowNs());
  rocksdb::WriteBatch b;
  b.Put(xkey, rocksdb::Slice(value.data(), value.size()));
  b.Put(ikey, a.SerializeAsString());
  return Write(&b, "setxattr");
}

Result<std::vector<std::string>> MetaStore::ListXattr(const Caller& caller, uint64_t ino) {
  SLUICE_ASSIGN_OR_RETURN(InodeAttr a, GetAttr(ino));
  if (!CheckAccess(a, caller, kMayRead)) return AccessDenied(a, caller, kMayRead, "listxattr");
  std::vector<std::string> names;
  std::string prefix = XattrPrefix(ino);
  std::string end = PrefixEnd(prefix);
  rocksdb::Slice upper(end);
  rocksdb::ReadOptions ro;
  ro.iterate_upper_bound = &upper;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro));
  for (it->Seek(prefix); it->Valid(); it->Next()) {
    names.emplace_back(it->key().data() + prefix.size(), it->key().size() - prefix.size());
  }
  if (!it->status().ok()) return FromRocks(it->status(), "listxattr");
  return names;
}

Status MetaStore::RemoveXattr(const Caller& caller, uint64_t ino, std::string_view name) {
  SLUICE_RETURN_IF_ERROR(CheckXattrName(name, "removexattr"));
  if (InodeShard(ino) != shard_id()) return Status(Code::kInvalid, "removexattr: inode not on this shard");
  std::string ikey = InodeKey(ino);
  LockSet locks(locks_->dirs, locks_->keys);
  locks.AddKey(ikey);
  locks.Acquire();
  if (KeyPending(ikey)) return Busy("removexattr " + InoString(ino));
  SLUICE_ASSIGN_OR_RETURN(InodeAttr a, ReadLocalInode(ino));
  if (!CheckAccess(a, caller, kMayWrite)) return AccessDenied(a, caller, kMayWrite, "removexattr");
  std::string xkey = XattrKey(ino, name);
  std::string old;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), xkey, &old);
  if (s.IsNotFound()) {
    return Status(Code::kNoData, "removexattr: inode " + InoString(ino) + " has no attribute '" +
                                     PrintableName(name) + "'");
  }
  if (!s.ok()) return FromRocks(s, "removexattr");
  a.set_ctime_ns(NowNs());
  rocksdb::WriteBatch b;
  b.Delete(xkey);
  b.Put(ikey, a.SerializeAsString());
  return Write(&b, "removexattr");
}

// ------------------------------------------------------------ transactions

Status MetaStore::LockAndRun(const std::vector<TxnOp>& ops, const std::function<Status()>& fn) {
  LockSet locks(locks_->dirs, locks_->keys);
  for (const TxnOp& op : ops) {
    switch (op.kind()) {
      case TxnOp::PUT_DENTRY:
      case TxnOp::DELETE_DENTRY:
        locks.AddDir(op.parent(), false);
        locks.AddKey(DentryKey(op.parent(), op.name()));
        break;
      case TxnOp::ADJUST_INODE:
        locks.AddKey(InodeKey(op.ino()));
        break;
      case TxnOp::FENCE_EMPTY_DIR:
        locks.AddDir(op.ino(), true);
        break;
      default:
        break;
    }
  }
  locks.Acquire();
  return fn();
}

Status MetaStore::CheckOps(const std::vector<TxnOp>& ops, uint64_t txid) {
  const std::string tx = "txn " + std::to_string(txid);
  std::unordered_set<std::string> seen;
  auto held = [&](const std::string& key) {
    std::lock_guard<std::mutex> g(pending_->mu);
    auto it = pending_->keys.find(key);
    return it != pending_->keys.end() && it->second != txid;
  };
  for (const TxnOp& op : ops) {
    switch (op.kind()) {
      case TxnOp::PUT_DENTRY:
      case TxnOp::DELETE_DENTRY: {
        const bool put = op.kind() == TxnOp::PUT_DENTRY;
        const char* what = put ? "add entry" : "remove entry";
        SLUICE_RETURN_IF_ERROR(ValidateName(op.name(), what));
        uint32_t owner = DentryShard(op.parent(), op.name(), num_shards());
        if (owner != shard_id()) return WrongShard(what, op.parent(), op.name(), owner, shard_id());
        std::string dkey = DentryKey(op.parent(), op.name());
        if (!seen.insert(dkey).second) return Status(Code::kInternal, tx + ": entry twice in one txn");
        if (held(dkey)) return Busy(std::string(what) + " '" + PrintableName(op.name()) + "'");
        if (put && op.type() != FILE_TYPE_REGULAR && op.type() != FILE_TYPE_DIRECTORY &&
            op.type() != FILE_TYPE_SYMLINK) {
          return Status(Code::kProtocol, tx + ": entry type " + std::to_string(op.type()) + " is invalid");
        }
        if (put && (op.ino() == 0 || InodeShard(op.ino()) >= num_shards())) {
          return Status(Code::kProtocol, tx + ": entry names invalid inode " + InoString(op.ino()));
        }
        if (put) {
          {
            std::lock_guard<std::mutex> g(pending_->mu);
            auto f = pending_->fences.find(op.parent());
            if (f != pending_->fences.end() && f->second != txid) {
              return Busy(std::string(what) + " in " + InoString(op.parent()) + " (being removed)");
            }
          }
          SLUICE_ASSIGN_OR_RETURN(bool dead, DirIsDead(op.parent()));
          if (dead) {
            return Status(Code::kNotFound, std::string(what) + ": directory " +
                                               InoString(op.parent()) + " has been removed");
          }
        }
        uint64_t cur = 0;
        FileType type;
        SLUICE_ASSIGN_OR_RETURN(bool found, GetDentry(op.parent(), op.name(), &cur, &type));
        if (put && op.expect_ino() == 0 && found) {
          return Status(Code::kExists, std::string(what) + ": '" + PrintableName(op.name()) +
                                           "' already exists in " + InoString(op.parent()));
        }
        if ((!put || op.expect_ino() != 0) && (!found || cur != op.expect_ino())) {
          return Busy(std::string(what) + " '" + PrintableName(op.name()) +
                      "' (entry changed since it was looked up)");
        }
        break;
      }
      case TxnOp::ADJUST_INODE: {
        if (InodeShard(op.ino()) != shard_id()) {
          return Status(Code::kInvalid, tx + ": inode " + InoString(op.ino()) + " not on shard " +
                                            std::to_string(shard_id()));
        }
        std::string ikey = InodeKey(op.ino());
        if (!seen.insert(ikey).second) return Status(Code::kInternal, tx + ": inode twice in one txn");
        if (held(ikey)) return Busy("update inode " + InoString(op.ino()));
        auto a = ReadLocalInode(op.ino());
        if (!a.ok()) {
          if (a.status().code() == Code::kNotFound) {
            return Busy("update inode " + InoString(op.ino()) + " (removed since looked up)");
          }
          return a.status();
        }
        if (op.must_be_dir() && a->type() != FILE_TYPE_DIRECTORY) {
          return Status(Code::kNotDir, tx + ": inode " + InoString(op.ino()) + " is not a directory");
        }
        break;
      }
      case TxnOp::FENCE_EMPTY_DIR: {
        {
          std::lock_guard<std::mutex> g(pending_->mu);
          auto f = pending_->fences.find(op.ino());
          if (f != pending_->fences.end() && f->second != txid) return Busy("fence " + InoString(op.ino()));
          auto in = pending_->inserts.find(op.ino());
          if (in != pending_->inserts.end() && in->second > 0) {
            return Busy("fence " + InoString(op.ino()) + " (an entry is being added)");
          }
        }
        SLUICE_ASSIGN_OR_RETURN(ShardDirPage page, ReadDirShard(op.ino(), {}, 1));
        if (!page.entries.empty()) {
          return Status(Code::kNotEmpty, "directory " + InoString(op.ino()) + " is not empty (has '" +
                                             PrintableName(page.entries[0].name()) + "')");
        }
        break;
      }
      default:
        return Status(Code::kProtocol, tx + ": unknown op kind " + std::to_string(op.kind()));
    }
  }
  return Status::Ok();
}

void MetaStore::MarkPending(const std::vector<TxnOp>& ops, uint64_t txid) {
  std::lock_guard<std::mutex> g(pending_->mu);
  for (const TxnOp& op : ops) {
    switch (op.kind()) {
      case TxnOp::PUT_DENTRY:
        pending_->keys[DentryKey(op.parent(), op.name())] = txid;
        if (op.expect_ino() == 0) pending_->inserts[op.parent()]++;
        break;
      case TxnOp::DELETE_DENTRY:
        pending_->keys[DentryKey(op.parent(), op.name())] = txid;
        break;
      case TxnOp::ADJUST_INODE:
        pending_->keys[InodeKey(op.ino())] = txid;
        break;
      case TxnOp::FENCE_EMPTY_DIR:
        pending_->fences[op.ino()] = txid;
        break;
      default:
        break;
    }
  }
}

void MetaStore::ClearPending(const std::vector<TxnOp>& ops) {
  std::lock_guard<std::mutex> g(pending_->mu);
  for (const TxnOp& op : ops) {
    switch (op.kind()) {
      case TxnOp::PUT_DENTRY:
        pending_->keys.erase(DentryKey(op.parent(), op.name()));
        if (op.expect_ino() == 0 && --pending_->inserts[op.parent()] <= 0) {
          pending_->inserts.erase(op.parent());
        }
        break;
      case TxnOp::DELETE_DENTRY:
        pending_->keys.erase(DentryKey(op.parent(), op.name()));
        break;
      case TxnOp::ADJUST_INODE:
        pending_->keys.erase(InodeKey(op.ino()));
        break;
      case TxnOp::FENCE_EMPTY_DIR:
        pending_->fences.erase(op.ino());
        break;
      default:
        break;
    }
  }
}

Status MetaStore::ApplyOps(const std::vector<TxnOp>& ops, rocksdb::WriteBatch* b) {
  int64_t now = NowNs();
  for (const TxnOp& op : ops) {
    switch (op.kind()) {
      case TxnOp::PUT_DENTRY:
      case TxnOp::DELETE_DENTRY: {
        // The parent's subdirectory count follows the types of the entry
        // before and after (CheckOps verified the entry under these locks).
        uint64_t old_ino = 0;
        FileType old_type = FILE_TYPE_UNSPECIFIED;
        SLUICE_ASSIGN_OR_RETURN(bool found, GetDentry(op.parent(), op.name(), &old_ino, &old_type));
        int64_t subdirs = (found && old_type == FILE_TYPE_DIRECTORY) ? -1 : 0;
        if (op.kind() == TxnOp::PUT_DENTRY) {
          b->Put(DentryKey(op.parent(), op.name()), DentryValue(op.ino(), op.type()));
          if (!found) AddCounter(b, kCounterDentries, 1);
          if (op.type() == FILE_TYPE_DIRECTORY) subdirs += 1;
        } else {
          b->Delete(DentryKey(op.parent(), op.name()));
          if (found) AddCounter(b, kCounterDentries, -1);
        }
        AddDirChange(b, op.parent(), subdirs, now);
        break;
      }
      case TxnOp::ADJUST_INODE: {
        SLUICE_ASSIGN_OR_RETURN(InodeAttr a, ReadLocalInode(op.ino()));
        int64_t nlink = static_cast<int64_t>(a.nlink()) + op.nlink_delta();
        if (op.remove_inode() || nlink <= 0) {
          SLUICE_RETURN_IF_ERROR(DeleteInode(a, b));
        } else {
          a.set_nlink(static_cast<uint32_t>(nlink));
          if (op.set_parent()) a.set_parent(op.new_parent());
          a.set_ctime_ns(now);
          b->Put(InodeKey(op.ino()), a.SerializeAsString());
        }
        break;
      }
      case TxnOp::FENCE_EMPTY_DIR: {
        std::string when;  // wall-clock ms of the removal, for CollectFences
        PutBE64(&when, static_cast<uint64_t>(now / 1000000));
        b->Put(FenceKey(op.ino()), when);
        b->Delete(StatsKey(op.ino()));  // the directory is gone: so is its share
        break;
      }
      default:
        return Status(Code::kProtocol, "apply: unknown op kind " + std::to_string(op.kind()));
    }
  }
  return Status::Ok();
}

Status MetaStore::TxnPrepare(const TxnPrepareRecord& record) {
  const uint64_t txid = record.txid();
  {
    std::lock_guard<std::mutex> g(pending_->mu);
    if (pending_->prepared.count(txid)) return Status::Ok();  // retried prepare
  }
  std::vector<TxnOp> ops(record.ops().begin(), record.ops().end());
  Status st = LockAndRun(ops, [&]() -> Status {
    SLUICE_RETURN_IF_ERROR(CheckOps(ops, txid));
    rocksdb::WriteBatch b;
    b.Put(PrepareKey(txid), record.SerializeAsString());
    SLUICE_RETURN_IF_ERROR(Write(&b, "txn prepare"));
    MarkPending(ops, txid);
    std::lock_guard<std::mutex> g(pending_->mu);
    pending_->prepared[txid] = record;
    return Status::Ok();
  });
  if (st.ok()) {
    stats_.txn_prepared.fetch_add(1, std::memory_order_relaxed);
  } else if (st.code() == Code::kBusy) {
    stats_.busy.fetch_add(1, std::memory_order_relaxed);
  }
  return st;
}

Status MetaStore::TxnDecide(uint64_t txid, bool commit) {
  TxnPrepareRecord record;
  {
    std::lock_guard<std::mutex> g(pending_->mu);
    auto it = pending_->prepared.find(txid);
    if (it == pending_->prepared.end()) return Status::Ok();  // decided before
    record = it->second;
  }
  std::vector<TxnOp> ops(record.ops().begin(), record.ops().end());
  return LockAndRun(ops, [&]() -> Status {
    {
      std::lock_guard<std::mutex> g(pending_->mu);
      if (!pending_->prepared.count(txid)) return Status::Ok();  // raced with another decide
    }
    rocksdb::WriteBatch b;
    if (commit) SLUICE_RETURN_IF_ERROR(ApplyOps(ops, &b));
    b.Delete(PrepareKey(txid));
    SLUICE_RETURN_IF_ERROR(Write(&b, commit ? "txn commit" : "txn abort"));
    ClearPending(ops);
    {
      std::lock_guard<std::mutex> g(pending_->mu);
      pending_->prepared.erase(txid);
    }
    (commit ? stats_.txn_committed : stats_.txn_aborted).fetch_add(1, std::memory_order_relaxed);
    return Status::Ok();
  });
}

Status MetaStore::TxnApply(const std::vector<TxnOp>& ops) {
  Status st = LockAndRun(ops, [&]() -> Status {
    SLUICE_RETURN_IF_ERROR(CheckOps(ops, 0));
    rocksdb::WriteBatch b;
    SLUICE_RETURN_IF_ERROR(ApplyOps(ops, &b));
    return Write(&b, "txn apply");
  });
  if (st.code() == Code::kBusy) stats_.busy.fetch_add(1, std::memory_order_relaxed);
  return st;
}

std::vector<uint64_t> MetaStore::PreparedTxns() {
  std::lock_guard<std::mutex> g(pending_->mu);
  std::vector<uint64_t> out;
  for (auto& [txid, rec] : pending_->prepared) out.push_back(txid);
  std::sort(out.begin(), out.end());
  return out;
}

Result<uint64_t> MetaStore::CollectFences(uint64_t older_than_ms) {
  const uint64_t now_ms = static_cast<uint64_t>(NowNs() / 1000000);
  const uint64_t cutoff = now_ms > older_than_ms ? now_ms - older_than_ms : 0;
  std::string end = PrefixEnd("F");
  rocksdb::Slice upper(end);
  rocksdb::ReadOptions ro;
  ro.iterate_upper_bound = &upper;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro));
  rocksdb::WriteBatch b;
  uint64_t removed = 0;
  for (it->Seek("F"); it->Valid(); it->Next()) {
    uint64_t when = it->value().size() == 8 ? GetBE64(it->value().data()) : 0;
    if (when <= cutoff) {
      b.Delete(it->key());
      ++removed;
    }
  }
  if (!it->status().ok()) return FromRocks(it->status(), "scan fences");
  if (removed > 0) SLUICE_RETURN_IF_ERROR(Write(&b, "collect fences"));
  return removed;
}

Status MetaStore::PutIntent(const TxnIntentRecord& intent) {
  rocksdb::WriteBatch b;
  b.Put(IntentKey(intent.txid()), intent.SerializeAsString());
  return Write(&b, "txn intent");
}

Status MetaStore::DeleteIntent(uint64_t txid) {
  rocksdb::WriteBatch b;
  b.Delete(IntentKey(txid));
  return Write(&b, "txn intent delete");
}

Result<std::vector<TxnIntentRecord>> MetaStore::ListIntents() {
  std::vector<TxnIntentRecord> out;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
  for (it->Seek("T"); it->Valid() && it->key().starts_with("T"); it->Next()) {
    TxnIntentRecord rec;
    if (!rec.ParseFromArray(it->value().data(), static_cast<int>(it->value().size()))) {
      return Status(Code::kCorrupt, "intent record " + it->key().ToString(true) + " does not parse");
    }
    out.push_back(std::move(rec));
  }
  if (!it->status().ok()) return FromRocks(it->status(), "scan intents");
  return out;
}

}  // namespace sluice::meta
