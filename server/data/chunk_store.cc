#include "server/data/chunk_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <functional>

#include <rocksdb/cache.h>
#include <rocksdb/db.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/table.h>
#include <rocksdb/write_batch.h>

#include "common/crc32c.h"
#include "common/log.h"
#include "server/data/crc32c_block.h"
#include "server/data/io_ring.h"
#include "server/data/slot_allocator.h"

// Invariants that must hold in production too: a violation means the store
// would corrupt data if it went on, so it stops the process.
#define SLUICE_DATA_INVARIANT(cond, msg)                                   \
  do {                                                                     \
    if (!(cond)) {                                                         \
      LOG_ERROR(std::string("invariant violated: ") + #cond + ": " + (msg)); \
      std::abort();                                                        \
    }                                                                      \
  } while (0)

namespace sluice::data {

namespace fs = std::filesystem;

namespace {

constexpr char kFormatKey[] = "m:format";
constexpr char kFormatValue[] = "sluice-chunk-store-1";
// Reads are optimistic (no lock) and retry when an update raced them; the
// last attempt holds the chunks' update locks so a busy chunk cannot starve it.
constexpr int kReadAttempts = 4;
constexpr size_t kMaxUpdateGroup = 32;
constexpr uint64_t kMaxUpdateGroupBytes = 512ull << 20;

std::string ClassLabel(uint32_t class_bytes) {
  if (class_bytes >= (1u << 20)) return std::to_string(class_bytes >> 20) + "M";
  return std::to_string(class_bytes >> 10) + "K";
}

Status IoError(int neg_errno, const std::string& what) {
  return Status(ErrnoToCode(-neg_errno), what + ": " + std::strerror(-neg_errno));
}

ChunkMeta MetaOf(const ChunkId& id, const ChunkRecord& rec) {
  ChunkMeta m;
  m.chunk = id;
  if (rec.committed) {
    m.version = rec.committed->version;
    m.length = rec.committed->length;
    m.crc = rec.committed->crc;
    if (rec.committed->size_class != kNoSlot) {
      m.slot_class_bytes = kSizeClasses[rec.committed->size_class];
      m.slot = rec.committed->slot;
    }
  }
  if (rec.pending) {
    m.pending_version = rec.pending->version;
    m.pending_length = rec.pending->length;
    m.pending_crc = rec.pending->crc;
    if (rec.pending->size_class != kNoSlot) {
      m.pending_slot_class_bytes = kSizeClasses[rec.pending->size_class];
      m.pending_slot = rec.pending->slot;
    }
  }
  return m;
}

static_assert(kCrcBlockBytes == kBlockSize);

// CRC32C of one block (`len` <= 4 KiB; full blocks take the fast path).
inline uint32_t BlockCrc(const uint8_t* p, uint64_t len) {
  return len == kCrcBlockBytes ? Crc32cBlock4K(p) : Crc32c(p, len);
}

// CRC of `len` bytes made of blocks [first, last] whose CRCs are in `crcs`
// (indexed from block 0), the last one possibly short.
uint32_t CombineRange(const std::vector<uint32_t>& crcs, size_t first, size_t end_block,
                      uint64_t end_byte) {
  static const Crc32cShift kBlock(kBlockSize);
  uint32_t crc = 0;
  for (size_t b = first; b < end_block; b++) {
    uint64_t blen = std::min<uint64_t>((b + 1) * uint64_t{kBlockSize}, end_byte) - b * kBlockSize;
    crc = blen == kBlockSize ? kBlock.Combine(crc, crcs[b])
                             : Crc32cCombine(crc, crcs[b], blen);
  }
  return crc;
}

}  // namespace

// One preallocated data file of fixed-size slots.
class DataFile {
 public:
  DataFile(std::string path, int fd, uint32_t class_bytes, uint64_t slots, std::string name)
      : path(std::move(path)), fd(fd), class_bytes(class_bytes), alloc(std::move(name), slots) {}
  ~DataFile() {
    if (fd >= 0) close(fd);
  }
  std::string path;
  int fd;
  uint32_t class_bytes;
  SlotAllocator alloc;
};

struct ChunkStore::Update {
  enum Kind { kWrite, kTruncate, kInstall };
  Kind kind = kWrite;
  ChunkId chunk;
  // The bytes written (write: ascending, not overlapping; install: one at 0).
  struct Piece {
    uint32_t offset = 0;
    std::span<const uint8_t> data;
    uint32_t crc = 0;
    uint64_t end() const { return uint64_t{offset} + data.size(); }
  };
  std::vector<Piece> pieces;
  Status malformed;     // the request's extents do not describe its bytes
  uint32_t length = 0;  // truncate: the new length
  uint32_t chunk_size = kMaxChunkSize;
  uint64_t version = 0;
  bool commit = true;
};

// ---------------------------------------------------------------- open

ChunkStore::ChunkStore(const ChunkStoreOptions& options)
    : options_(options),
      pool_(IoBufferPool::Create(options.buffer_arena_bytes)),
      chunk_locks_(new std::mutex[kLockStripes]) {}

ChunkStore::~ChunkStore() {
  if (stats_.updates > 0) {
    LOG_INFO("target " + std::to_string(options_.target_id) + ": closing after " +
             std::to_string(stats_.updates.load()) + " updates; " + std::to_string(stats_.commit_groups.load()) +
             " record commits (group commit) for " + std::to_string(stats_.committed_records.load()) +
             " records, " + std::to_string(stats_.data_syncs.load()) + " data fdatasyncs");
  }
}

std::string ChunkStore::DataFilePath(const std::string& dir, uint32_t class_bytes) {
  return dir + "/data/class-" + ClassLabel(class_bytes) + ".dat";
}

std::string ChunkStore::Where(const ChunkId& chunk) const {
  return "target " + std::to_string(options_.target_id) + " " + chunk.ToString();
}

Result<std::unique_ptr<ChunkStore>> ChunkStore::Open(const ChunkStoreOptions& options) {
  if (options.dir.empty()) return Status(Code::kInvalid, "chunk store: empty dir");
  if (options.io_rings == 0 || options.ring_depth == 0) {
    return Status(Code::kInvalid, "chunk store: io_rings and ring_depth must be positive");
  }
  std::error_code ec;
  fs::create_directories(options.dir + "/data", ec);
  if (ec) {
    return Status(Code::kIo, "target " + std::to_string(options.target_id) + ": create " +
                                 options.dir + "/data: " + ec.message());
  }
  std::unique_ptr<ChunkStore> s(new ChunkStore(options));
  std::string tgt = "target " + std::to_string(options.target_id);

  rocksdb::Options dbo;
  dbo.create_if_missing = true;
  dbo.max_background_jobs = 2;
  rocksdb::BlockBasedTableOptions t;
  t.block_cache = rocksdb::NewLRUCache(options.record_cache_bytes);
  t.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  dbo.table_factory.reset(rocksdb::NewBlockBasedTableFactory(t));
  rocksdb::DB* db = nullptr;
  rocksdb::Status rs = rocksdb::DB::Open(dbo, options.dir + "/records", &db);
  if (!rs.ok()) return Status(Code::kIo, tgt + ": open chunk records: " + rs.ToString());
  s->db_.reset(db);
  std::string format;
  rs = db->Get(rocksdb::ReadOptions(), kFormatKey, &format);
  if (rs.IsNotFound()) {
    rocksdb::WriteOptions wo;
    wo.sync = true;
    rs = db->Put(wo, kFormatKey, kFormatValue);
    if (!rs.ok()) return Status(Code::kIo, tgt + ": write format key: " + rs.ToString());
  } else if (!rs.ok()) {
    return Status(Code::kIo, tgt + ": read format key: " + rs.ToString());
  } else if (format != kFormatValue) {
    return Status(Code::kCorrupt, tgt + ": " + options.dir + " holds format '" + format +
                                      "', this build reads '" + kFormatValue + "'");
  }

  SLUICE_RETURN_IF_ERROR(s->OpenFiles());
  SLUICE_RETURN_IF_ERROR(s->RebuildAllocators());

  for (unsigned i = 0; i < options.io_rings; i++) {
    SLUICE_ASSIGN_OR_RETURN(auto ring, IoRing::Create(options.ring_depth, s->fds_, s->pool_->arena()));
    s->fixed_buffers_ = ring->fixed_buffers();
    s->idle_rings_.push_back(ring.get());
    s->rings_.push_back(std::move(ring));
  }
  uint64_t used = 0;
  for (auto& f : s->files_) used += f->alloc.used_count();
  LOG_INFO(tgt + ": opened " + options.dir + " (" + std::to_string(used) + " slots in use, " +
           (s->direct_io_ ? "O_DIRECT" : "buffered IO") + ", " +
           (s->fixed_buffers_ ? "registered buffers" : "unregistered buffers") + ")");
  return s;
}

Status ChunkStore::OpenFiles() {
  std::string tgt = "target " + std::to_string(options_.target_id);
  direct_io_ = options_.direct_io;
  for (uint32_t class_bytes : kSizeClasses) {
    std::string path = DataFilePath(options_.dir, class_bytes);
    int fd = -1;
    if (direct_io_) {
      fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_DIRECT, 0644);
      if (fd < 0 && errno == EINVAL) {
        LOG_WARN(tgt + ": the file system of " + options_.dir +
                 " refuses O_DIRECT (EINVAL); falling back to buffered IO through the page "
                 "cache: throughput figures are not disk figures");
        direct_io_ = false;
      }
    }
    if (fd < 0) fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return Status::FromErrno(errno, tgt + ": open " + path);
    struct stat st;
    if (fstat(fd, &st) != 0) {
      int err = errno;
      close(fd);
      return Status::FromErrno(err, tgt + ": stat " + path);
    }
    uint64_t slots = static_cast<uint64_t>(st.st_size) / class_bytes;
    files_.push_back(std::make_unique<DataFile>(path, fd, class_bytes, slots,
                                                tgt + " class " + ClassLabel(class_bytes)));
    fds_.push_back(fd);
  }
  return Status::Ok();
}

Status ChunkStore::RebuildAllocators() {
  // Updates a crash interrupted between their synced tentative record and the
  // visible one (ChunkRecord::unconfirmed): applied if the new version's bytes
  // are on disk, else dropped (the old version never stopped being there).
  rocksdb::WriteBatch fixes;
  uint64_t applied = 0, dropped = 0;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
  for (it->Seek("c"); it->Valid() && it->key().starts_with("c"); it->Next()) {
    SLUICE_ASSIGN_OR_RETURN(ChunkId id, DecodeChunkKey(it->key().ToStringView()));
    SLUICE_ASSIGN_OR_RETURN(ChunkRecord rec, DecodeChunkRecord(it->value().ToStringView(), id));
    if (rec.unconfirmed) {
      SLUICE_ASSIGN_OR_RETURN(bool on_disk, ConfirmOnDisk(id, *rec.unconfirmed));
      ChunkVersion nv = std::move(*rec.unconfirmed);
      rec.unconfirmed.reset();
      if (on_disk) {
        if (rec.unconfirmed_commits) {
          rec.committed = std::move(nv);
          rec.pending.reset();
        } else {
          rec.pending = std::move(nv);
        }
        applied++;
      } else {
        dropped++;
      }
      rec.unconfirmed_commits = false;
      if (rec.committed || rec.pending) {
        fixes.Put(it->key(), EncodeChunkRecord(rec));
      } else {
        fixes.Delete(it->key());
      }
    }
    for (const auto* v : {rec.committed ? &*rec.committed : nullptr,
                          rec.pending ? &*rec.pending : nullptr}) {
      if (!v || v->size_class == kNoSlot) continue;
      Status st = files_[v->size_class]->alloc.MarkUsed(v->slot);
      if (!st.ok()) return st.Prefix("rebuild from record of " + Where(id));
    }
  }
  if (!it->status().ok()) {
    return Status(Code::kIo, "target " + std::to_string(options_.target_id) +
                                 ": scan chunk records: " + it->status().ToString());
  }
  if (fixes.Count() > 0) {
    rocksdb::WriteOptions wo;
    wo.sync = true;
    rocksdb::Status rs = db_->Write(wo, &fixes);
    if (!rs.ok()) {
      return Status(Code::kIo, "target " + std::to_string(options_.target_id) +
                                   ": write records of interrupted updates: " + rs.ToString());
    }
    LOG_INFO("target " + std::to_string(options_.target_id) + ": " + std::to_string(applied + dropped) +
             " update(s) interrupted by a crash: " + std::to_string(applied) + " found complete on disk and applied, " +
             std::to_string(dropped) + " dropped (their old versions stay)");
  }
  return Status::Ok();
}

// ---------------------------------------------------------------- helpers

IoRing* ChunkStore::AcquireRing() {
  std::unique_lock<std::mutex> l(ring_mu_);
  ring_cv_.wait(l, [&] { return !idle_rings_.empty(); });
  IoRing* r = idle_rings_.back();
  idle_rings_.pop_back();
  return r;
}

void ChunkStore::ReleaseRing(IoRing* ring) {
  {
    std::lock_guard<std::mutex> l(ring_mu_);
    idle_rings_.push_back(ring);
  }
  ring_cv_.notify_one();
}

class ChunkStore::RingLease {
 public:
  explicit RingLease(ChunkStore* s) : s_(s), r_(s->AcquireRing()) {}
  ~RingLease() { s_->ReleaseRing(r_); }
  IoRing* operator->() { return r_; }

 private:
  ChunkStore* s_;
  IoRing* r_;
};

std::mutex& ChunkStore::ChunkLock(const ChunkId& chunk) {
  return chunk_locks_[std::hash<uint64_t>()(chunk.inode * 0x9E3779B97F4A7C15ull ^ chunk.index) %
                      kLockStripes];
}

Result<ChunkRecord> ChunkStore::GetRecord(const ChunkId& chunk, bool* found) {
  std::string value;
  rocksdb::Status rs = db_->Get(rocksdb::ReadOptions(), ChunkKey(chunk), &value);
  if (rs.IsNotFound()) {
    *found = false;
    return ChunkRecord{};
  }
  if (!rs.ok()) return Status(Code::kIo, Where(chunk) + ": read record: " + rs.ToString());
  *found = true;
  return DecodeChunkRecord(value, chunk);
}

Status ChunkStore::PutRecord(const ChunkId& chunk, const ChunkRecord* record) {
  CommitTicket ticket;
  std::string key = ChunkKey(chunk);
  CommitTicket::Entry e;
  e.key = key;
  if (record) e.value = EncodeChunkRecord(*record);
  e.remove = record == nullptr;
  ticket.entries.push_back(std::move(e));
  CommitRecords(ticket);
  const Status& st = ticket.entries[0].status;
  return st.ok() ? st : st.Prefix(Where(chunk));
}

void ChunkStore::CommitRecords(CommitTicket& ticket) {
  std::unique_lock<std::mutex> l(commit_mu_);
  commit_queue_.push_back(&ticket);
  // Wait until a leader has taken this ticket, or lead the next group.
  ticket.cv.wait(l, [&] { return ticket.taken || !syncing_; });
  if (ticket.taken) {
    ticket.cv.wait(l, [&] { return ticket.done; });
    return;
  }
  syncing_ = true;
  std::vector<CommitTicket*> group;
  group.swap(commit_queue_);  // holds `ticket`
  for (CommitTicket* t : group) t->taken = true;
  l.unlock();
  bool wrote_tentative = false;
  SyncGroup(group, &wrote_tentative);
  l.lock();
  syncing_ = false;
  if (!commit_queue_.empty()) commit_queue_.front()->cv.notify_one();  // the next leader
  l.unlock();
  // The next group's syncs start while this one's records become visible.
  PublishGroup(group, wrote_tentative);
  l.lock();
  // Notified under the lock: a waiter returns (destroying its ticket) only
  // after it has reacquired commit_mu_.
  for (CommitTicket* t : group) {
    t->done = true;
    if (t != &ticket) t->cv.notify_one();
  }
}

void ChunkStore::SyncGroup(std::span<CommitTicket* const> group, bool* wrote_tentative) {
  // Records to write now: the tentative one of an update with a new slot
  // (with sync_writes), else the final one.
  rocksdb::WriteBatch batch;
  std::vector<bool> touched(files_.size(), false);
  for (CommitTicket* t : group) {
    for (CommitTicket::Entry& e : t->entries) {
      if (!e.status.ok()) continue;
      if (e.size_class != kNoSlot) touched[e.size_class] = true;
      if (!e.tentative.empty()) {
        batch.Put(e.key, e.tentative);
      } else if (e.remove) {
        batch.Delete(e.key);
      } else {
        batch.Put(e.key, e.value);
      }
    }
  }
  std::vector<IoOp> syncs;
  if (options_.sync_writes) {
    for (size_t c = 0; c < touched.size(); c++) {
      if (!touched[c]) continue;
      IoOp op;
      op.kind = IoOp::kFdatasync;
      op.file = static_cast<int>(c);
      syncs.push_back(op);
    }
  }
  rocksdb::Status rs;
  auto write = [&] {
    if (batch.Count() == 0) return;
    rocksdb::WriteOptions wo;
    wo.sync = options_.sync_writes;
    rs = db_->Write(wo, &batch);
    stats_.commit_groups++;
    stats_.committed_records += batch.Count();
  };
  if (syncs.empty()) {
    write();
  } else {
    // Every data write of the group completed before its ticket was queued,
    // so one fdatasync per data file issued now covers all of them. The
    // records go to RocksDB (and its WAL is synced) meanwhile.
    RingLease ring(this);
    ring->Run(syncs, write);
    stats_.data_syncs += syncs.size();
  }
  *wrote_tentative = rs.ok();
  for (const IoOp& op : syncs) {
    if (op.result >= 0) continue;
    Status st = IoError(op.result, "fdatasync " + files_[op.file]->path);
    for (CommitTicket* t : group) {
      for (CommitTicket::Entry& e : t->entries) {
        if (e.status.ok() && e.size_class == op.file) e.status = st;
      }
    }
  }
  if (!rs.ok()) {
    Status st(Code::kIo, "write record: " + rs.ToString());
    for (CommitTicket* t : group) {
      for (CommitTicket::Entry& e : t->entries) {
        if (e.status.ok()) e.status = st;
      }
    }
  }
}

void ChunkStore::PublishGroup(std::span<CommitTicket* const> group, bool wrote_tentative) {
  if (!wrote_tentative) return;
  // Durable now (data and the record that names it): make the new versions
  // the visible ones; a failed update gets its record back as it was. Not
  // synced (unless something failed): after a crash Open finds the tentative
  // record and confirms it.
  rocksdb::WriteBatch batch;
  bool rollback = false;
  for (CommitTicket* t : group) {
    for (CommitTicket::Entry& e : t->entries) {
      if (e.tentative.empty()) continue;
      if (e.status.ok()) {
        batch.Put(e.key, e.value);
        continue;
      }
      rollback = true;
      if (e.previous.empty()) {
        batch.Delete(e.key);
      } else {
        batch.Put(e.key, e.previous);
      }
    }
  }
  if (batch.Count() == 0) return;
  // A failed update's record goes back durably: its slot is freed now, and
  // Open must not find the tentative record and apply what was refused.
  rocksdb::WriteOptions wo;
  wo.sync = rollback;
  rocksdb::Status rs = db_->Write(wo, &batch);
  if (rs.ok()) return;
  // The tentative records stay; Open resolves them (the store is failing).
  Status st(Code::kIo, "write record: " + rs.ToString());
  for (CommitTicket* t : group) {
    for (CommitTicket::Entry& e : t->entries) {
      if (!e.tentative.empty() && e.status.ok()) e.status = st;
    }
  }
}

Result<bool> ChunkStore::ConfirmOnDisk(const ChunkId& id, const ChunkVersion& v) {
  if (v.size_class == kNoSlot) return true;
  const DataFile& f = *files_[v.size_class];
  if (v.slot >= f.alloc.slot_count()) return false;  // beyond the file: never written
  const size_t len = RoundUpToBlock(v.length);
  void* mem = nullptr;
  if (posix_memalign(&mem, kBlockSize, len) != 0) return Status(Code::kNoSpace, "confirm: no memory");
  std::unique_ptr<uint8_t, decltype(&free)> buf(static_cast<uint8_t*>(mem), &free);
  size_t done = 0;
  const uint64_t off = v.slot * uint64_t{f.class_bytes};
  while (done < len) {
    ssize_t n = pread(f.fd, buf.get() + done, len - done, static_cast<off_t>(off + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status::FromErrno(errno, Where(id) + ": read " + f.path + " to confirm v" +
                                                   std::to_string(v.version));
    if (n == 0) return false;
    done += static_cast<size_t>(n);
  }
  for (uint32_t b = 0; b < v.block_crcs.size(); b++) {
    uint64_t bs = uint64_t{b} * kBlockSize;
    uint64_t blen = std::min<uint64_t>(bs + kBlockSize, v.length) - bs;
    if (BlockCrc(buf.get() + bs, blen) != v.block_crcs[b]) return false;
  }
  return CombineBlockCrcs(v.block_crcs, v.length) == v.crc;
}

Result<uint64_t> ChunkStore::AllocateSlot(uint8_t size_class) {
  std::lock_guard<std::mutex> l(alloc_mu_);
  DataFile& f = *files_[size_class];
  if (auto s = f.alloc.Allocate()) return *s;
  uint64_t grow_slots = std::max<uint64_t>(1, options_.grow_bytes / f.class_bytes);
  uint64_t old_slots = f.alloc.slot_count();
  off_t off = static_cast<off_t>(old_slots * f.class_bytes);
  off_t len = static_cast<off_t>(grow_slots * f.class_bytes);
  if (fallocate(f.fd, 0, off, len) != 0) {
    int err = errno;
    if (err != EOPNOTSUPP) {
      return Status::FromErrno(err, "target " + std::to_string(options_.target_id) +
                                        ": grow " + f.path);
    }
    if (ftruncate(f.fd, off + len) != 0) {
      return Status::FromErrno(errno, "target " + std::to_string(options_.target_id) +
                                          ": grow " + f.path);
    }
  }
  f.alloc.Grow(old_slots + grow_slots);
  return *f.alloc.Allocate();
}

void ChunkStore::FreeSlot(uint8_t size_class, uint64_t slot) {
  if (size_class == kNoSlot) return;
  std::lock_guard<std::mutex> l(alloc_mu_);
  Status st = files_[size_class]->alloc.Free(slot);
  SLUICE_DATA_INVARIANT(st.ok(), st.ToString());
}

// ---------------------------------------------------------------- reads

std::vector<ReadResult> ChunkStore::BatchRead(std::span<const ReadRequest> requests) {
  const size_t n = requests.size();
  std::vector<ReadResult> out(n);
  if (n == 0) return out;
  std::vector<std::string> keys(n);
  std::vector<rocksdb::Slice> slices(n);
  for (size_t i = 0; i < n; i++) {
    keys[i] = ChunkKey(requests[i].chunk);
    slices[i] = keys[i];
  }
  // Records are pinned in RocksDB's memtable/cache, not copied.
  std::vector<rocksdb::PinnableSlice> pinned(n);
  std::vector<rocksdb::Status> ss(n);
  db_->MultiGet(rocksdb::ReadOptions(), db_->DefaultColumnFamily(), n, slices.data(),
                pinned.data(), ss.data());
  // Records re-read after a CRC mismatch (a racing update), by request.
  std::vector<std::string> reread(n);
  std::vector<bool> use_reread(n, false);

  struct Job {
    size_t i;
    ChunkVersionView v;
    uint64_t a0 = 0, end = 0;  // aligned start, requested end (clamped)
    bool direct = false;       // read into the request's dest
  };
  std::vector<size_t> todo(n);
  for (size_t i = 0; i < n; i++) todo[i] = i;
  std::vector<IoOp> ops;
  std::vector<Job> jobs;
  std::vector<uint32_t> crcs;
  for (int attempt = 0; attempt < kReadAttempts && !todo.empty(); attempt++) {
    ops.clear();
    jobs.clear();
    std::vector<std::unique_lock<std::mutex>> held;
    if (attempt == kReadAttempts - 1) {
      std::vector<std::mutex*> locks;
      for (size_t i : todo) locks.push_back(&ChunkLock(requests[i].chunk));
      std::sort(locks.begin(), locks.end());
      locks.erase(std::unique(locks.begin(), locks.end()), locks.end());
      for (std::mutex* m : locks) held.emplace_back(*m);
      for (size_t i : todo) {  // records as they are now, stable while we hold the locks
        ss[i] = db_->Get(rocksdb::ReadOptions(), keys[i], &reread[i]);
        use_reread[i] = true;
      }
    }
    for (size_t i : todo) {
      const ReadRequest& rq = requests[i];
      ReadResult& r = out[i];
      if (ss[i].IsNotFound()) {
        r.status = Status(Code::kNotFound, Where(rq.chunk) + ": no such chunk");
        continue;
      }
      if (!ss[i].ok()) {
        r.status = Status(Code::kIo, Where(rq.chunk) + ": read record: " + ss[i].ToString());
        continue;
      }
      std::string_view raw = use_reread[i] ? std::string_view(reread[i]) : pinned[i].ToStringView();
      auto rec = DecodeChunkRecordView(raw, rq.chunk);
      if (!rec.ok()) {
        r.status = rec.status().Prefix("target " + std::to_string(options_.target_id));
        continue;
      }
      if (!rec->has_committed) {
        r.status = Status(Code::kNotFound, Where(rq.chunk) + ": no committed version (pending v" +
                                               std::to_string(rec->pending.version) + ")");
        continue;
      }
      const ChunkVersionView& v = rec->committed;
      r.status = Status::Ok();
      r.version = v.version;
      r.chunk_length = v.length;
      r.chunk_crc = v.crc;
      r.pending_version = rec->has_pending ? rec->pending.version : 0;
      r.length = 0;
      r.crc = 0;
      r.data = nullptr;
      if (rq.offset >= v.length || rq.length == 0) continue;
      Job j;
      j.i = i;
      j.v = v;
      j.end = std::min<uint64_t>(uint64_t{rq.offset} + rq.length, v.length);
      j.a0 = rq.offset / kBlockSize * kBlockSize;
      uint64_t a1 = RoundUpToBlock(j.end);
      j.direct = rq.dest && reinterpret_cast<uintptr_t>(rq.dest) % kBlockSize == 0 &&
                 j.a0 == rq.offset && a1 - j.a0 <= rq.dest_capacity;
      IoOp op;
      op.kind = IoOp::kRead;
      op.file = v.size_class;
      if (j.direct) {
        op.buf = rq.dest;
        op.fixed = pool_->InArena(rq.dest, a1 - j.a0);
      } else {
        r.buffer = pool_->Allocate(a1 - j.a0);
        op.buf = r.buffer.data();
        op.fixed = r.buffer.registered();
      }
      op.len = static_cast<uint32_t>(a1 - j.a0);
      op.offset = v.slot * kSizeClasses[v.size_class] + j.a0;
      ops.push_back(op);
      jobs.push_back(j);
    }
    todo.clear();
    if (!ops.empty()) {
      RingLease ring(this);
      ring->Run(ops);
    }
    for (size_t k = 0; k < jobs.size(); k++) {
      const Job& j = jobs[k];
      const ReadRequest& rq = requests[j.i];
      ReadResult& r = out[j.i];
      const IoOp& op = ops[k];
      if (op.result < 0) {
        r.status = IoError(op.result, Where(rq.chunk) + ": read " +
                                          files_[j.v.size_class]->path + " at " +
                                          std::to_string(op.offset));
        r.buffer = IoBuffer();
        continue;
      }
      const uint8_t* base = j.direct ? rq.dest : r.buffer.data();
      // Verify every block the range touches.
      size_t b0 = j.a0 / kBlockSize, b1 = BlockCount(static_cast<uint32_t>(j.end));
      crcs.assign(b1, 0);
      bool bad = false;
      size_t bad_block = 0;
      for (size_t b = b0; b < b1; b++) {
        uint64_t bs = b * kBlockSize;
        uint64_t blen = std::min<uint64_t>(bs + kBlockSize, j.v.length) - bs;
        crcs[b] = BlockCrc(base + (bs - j.a0), blen);
        if (crcs[b] != j.v.BlockCrc(b)) {
          bad = true;
          bad_block = b;
          break;
        }
      }
      if (bad) {
        // Either the stored bytes are corrupt, or an update replaced the
        // chunk (and reused its slot) after we read the record: look again.
        std::string now;
        rocksdb::Status rs = db_->Get(rocksdb::ReadOptions(), keys[j.i], &now);
        std::string_view was =
            use_reread[j.i] ? std::string_view(reread[j.i]) : pinned[j.i].ToStringView();
        if (attempt + 1 < kReadAttempts && (!rs.ok() || now != was)) {
          stats_.read_retries++;
          reread[j.i] = std::move(now);  // (j.v may point into the old string: not used again)
          use_reread[j.i] = true;
          ss[j.i] = rs;
          r.buffer = IoBuffer();
          todo.push_back(j.i);
          continue;
        }
        stats_.corrupt_reads++;
        uint64_t file_off = op.offset + bad_block * kBlockSize - j.a0;
        r.status = Status(Code::kCorrupt,
                          Where(rq.chunk) + " v" + std::to_string(j.v.version) +
                              ": CRC32C mismatch in block " + std::to_string(bad_block) + " (" +
                              files_[j.v.size_class]->path + " offset " +
                              std::to_string(file_off) + ")");
        LOG_ERROR(r.status.message());
        r.buffer = IoBuffer();
        continue;
      }
      r.data = base + (rq.offset - j.a0);
      r.length = static_cast<uint32_t>(j.end - rq.offset);
      bool aligned = rq.offset % kBlockSize == 0 && (j.end % kBlockSize == 0 || j.end == j.v.length);
      r.crc = aligned ? CombineRange(crcs, b0, b1, j.end) : Crc32c(r.data, r.length);
      stats_.reads++;
      stats_.read_bytes += r.length;
    }
  }
  return out;
}

// ---------------------------------------------------------------- updates

Result<UpdateResult> ChunkStore::Write(const WriteRequest& req) {
  return std::move(BatchWrite(std::span<const WriteRequest>(&req, 1))[0]);
}

std::vector<Result<UpdateResult>> ChunkStore::BatchWrite(std::span<const WriteRequest> requests) {
  std::vector<Update> ups(requests.size());
  for (size_t i = 0; i < requests.size(); i++) {
    const WriteRequest& r = requests[i];
    Update& u = ups[i];
    u.kind = Update::kWrite;
    u.chunk = r.chunk;
    if (r.extents.empty()) {
      u.pieces.push_back({r.offset, r.data, r.crc});
    } else {
      uint64_t used = 0;
      for (const WriteExtent& e : r.extents) {
        if (used + e.length > r.data.size()) break;
        u.pieces.push_back({e.offset, r.data.subspan(used, e.length), e.crc});
        used += e.length;
      }
      if (used != r.data.size() || u.pieces.size() != r.extents.size()) {
        u.malformed = Status(Code::kInvalid, Where(r.chunk) + ": write of " + std::to_string(r.data.size()) +
                                                 " bytes in " + std::to_string(r.extents.size()) +
                                                 " extents whose lengths do not add up to it");
      }
    }
    u.chunk_size = r.chunk_size;
    u.version = r.update.version;
    u.commit = r.update.commit;
  }
  return ApplyUpdates(ups);
}

Result<UpdateResult> ChunkStore::Truncate(const ChunkId& chunk, uint32_t length,
                                          const UpdateOptions& update, uint32_t chunk_size) {
  Update u;
  u.kind = Update::kTruncate;
  u.chunk = chunk;
  u.length = length;
  u.chunk_size = chunk_size;
  u.version = update.version;
  u.commit = update.commit;
  return std::move(ApplyUpdates(std::span<Update>(&u, 1))[0]);
}

Result<UpdateResult> ChunkStore::Install(const ChunkId& chunk, uint64_t version,
                                         std::span<const uint8_t> data, uint32_t crc) {
  Update u;
  u.kind = Update::kInstall;
  u.chunk = chunk;
  u.pieces.push_back({0, data, crc});
  u.version = version;
  u.commit = true;
  return std::move(ApplyUpdates(std::span<Update>(&u, 1))[0]);
}

std::vector<Result<UpdateResult>> ChunkStore::ApplyUpdates(std::span<Update> updates) {
  std::vector<Result<UpdateResult>> out(updates.size(), Status(Code::kInternal, "not run"));
  size_t start = 0;
  while (start < updates.size()) {
    // A group holds distinct chunks; a repeated chunk starts the next group.
    // Its buffers are bounded: each update may need up to its chunk size.
    size_t end = start;
    uint64_t bytes = 0;
    std::vector<ChunkId> seen;
    while (end < updates.size() && end - start < kMaxUpdateGroup &&
           std::find(seen.begin(), seen.end(), updates[end].chunk) == seen.end()) {
      const Update& u = updates[end];
      uint64_t need = u.kind == Update::kInstall ? u.pieces[0].data.size() : u.chunk_size;
      if (end > start && bytes + need > kMaxUpdateGroupBytes) break;
      bytes += need;
      seen.push_back(u.chunk);
      end++;
    }
    ApplyDistinct(updates.subspan(start, end - start), out, start);
    start = end;
  }
  return out;
}

void ChunkStore::ApplyDistinct(std::span<Update> ups, std::vector<Result<UpdateResult>>& out,
                               size_t out_base) {
  const size_t n = ups.size();
  // Serialize against other updates of these chunks (stripes in order: no deadlock).
  std::vector<std::mutex*> locks;
  for (const Update& u : ups) locks.push_back(&ChunkLock(u.chunk));
  std::sort(locks.begin(), locks.end());
  locks.erase(std::unique(locks.begin(), locks.end()), locks.end());
  for (std::mutex* m : locks) m->lock();
  struct Unlock {
    std::vector<std::mutex*>& l;
    ~Unlock() {
      for (auto it = l.rbegin(); it != l.rend(); ++it) (*it)->unlock();
    }
  } unlock{locks};

  struct Work {
    Status st;
    bool live = true;  // still to be stored
    ChunkRecord rec;
    ChunkVersion nv;
    const ChunkVersion* base = nullptr;
    uint32_t keep = 0;  // bytes of base carried into the new version
    IoBuffer buf;
    // The bytes of the new version: buf, or the caller's data itself when it
    // replaces the whole chunk from an aligned buffer (no copy).
    uint8_t* src = nullptr;
    bool src_registered = false;
    std::vector<int> read_ops;
    int write_op = -1;
    UpdateResult result;
  };
  std::vector<Work> w(n);
  auto fail = [&](size_t i, Status st) {
    w[i].st = std::move(st);
    w[i].live = false;
  };

  // 1. Validate and load records.
  auto check_pieces = [&](const Update& u) -> Status {
    if (u.pieces.empty()) return Status(Code::kInvalid, Where(u.chunk) + ": empty write");
    for (size_t k = 0; k < u.pieces.size(); k++) {
      const Update::Piece& p = u.pieces[k];
      auto which = [&] {
        return u.pieces.size() > 1
                   ? " (extent " + std::to_string(k + 1) + " of " + std::to_string(u.pieces.size()) + ")"
                   : std::string();
      };
      if (p.data.empty()) return Status(Code::kInvalid, Where(u.chunk) + ": empty write" + which());
      if (p.end() > u.chunk_size) {
        return Status(Code::kInvalid, Where(u.chunk) + ": write [" + std::to_string(p.offset) + ", +" +
                                          std::to_string(p.data.size()) + ") beyond chunk size " +
                                          std::to_string(u.chunk_size) + which());
      }
      if (k > 0 && p.offset < u.pieces[k - 1].end()) {
        return Status(Code::kInvalid, Where(u.chunk) + ": write extents overlap or are not in order at offset " +
                                          std::to_string(p.offset) + which());
      }
    }
    return Status::Ok();
  };
  std::vector<std::string> keys(n);
  std::vector<rocksdb::Slice> slices(n);
  for (size_t i = 0; i < n; i++) {
    const Update& u = ups[i];
    keys[i] = ChunkKey(u.chunk);
    slices[i] = keys[i];
    if (!u.malformed.ok()) {
      fail(i, u.malformed);
    } else if (u.chunk_size == 0 || u.chunk_size > kMaxChunkSize) {
      fail(i, Status(Code::kInvalid, Where(u.chunk) + ": chunk size " +
                                         std::to_string(u.chunk_size) + " outside (0, 64 MiB]"));
    } else if (u.kind == Update::kWrite) {
      Status bad = check_pieces(u);
      if (!bad.ok()) fail(i, bad);
    } else if (u.kind == Update::kTruncate && u.length > u.chunk_size) {
      fail(i, Status(Code::kInvalid, Where(u.chunk) + ": truncate to " +
                                         std::to_string(u.length) + " beyond chunk size " +
                                         std::to_string(u.chunk_size)));
    } else if (u.kind == Update::kInstall && (u.pieces[0].data.size() > kMaxChunkSize || u.version == 0)) {
      fail(i, Status(Code::kInvalid, Where(u.chunk) + ": install needs version > 0 and <= 64 MiB"));
    }
  }
  std::vector<std::string> values(n);
  std::vector<rocksdb::Status> ss = db_->MultiGet(rocksdb::ReadOptions(), slices, &values);

  // 2. Decide versions and what to read.
  std::vector<IoOp> ops;
  for (size_t i = 0; i < n; i++) {
    if (!w[i].live) continue;
    const Update& u = ups[i];
    Work& x = w[i];
    if (ss[i].ok()) {
      auto rec = DecodeChunkRecord(values[i], u.chunk);
      if (!rec.ok()) {
        fail(i, rec.status().Prefix("target " + std::to_string(options_.target_id)));
        continue;
      }
      x.rec = std::move(rec.value());
      if (x.rec.unconfirmed) {
        // Left by an update whose final record write failed: the store is
        // failing; reopening it resolves the record.
        fail(i, Status(Code::kIo, Where(u.chunk) + ": an earlier update of v" +
                                      std::to_string(x.rec.unconfirmed->version) +
                                      " is unresolved (a record write failed); reopen the target"));
        continue;
      }
    } else if (!ss[i].IsNotFound()) {
      fail(i, Status(Code::kIo, Where(u.chunk) + ": read record: " + ss[i].ToString()));
      continue;
    }
    const uint64_t cv = x.rec.committed ? x.rec.committed->version : 0;
    uint64_t nv;
    if (u.kind == Update::kInstall) {
      if (u.version < cv) {
        fail(i, Status(Code::kInvalid, Where(u.chunk) + ": install of v" +
                                           std::to_string(u.version) + " below committed v" +
                                           std::to_string(cv)));
        continue;
      }
      nv = u.version;  // == cv rewrites the chunk: it repairs a corrupt local copy
    } else if (u.version == 0) {
      if (x.rec.pending) {
        fail(i, Status(Code::kBusy, Where(u.chunk) + ": pending v" +
                                        std::to_string(x.rec.pending->version) +
                                        " not yet committed"));
        continue;
      }
      nv = cv + 1;
    } else {
      if (u.version <= cv) {
        x.live = false;
        x.result.already_applied = true;
        x.result.meta = MetaOf(u.chunk, x.rec);
        continue;
      }
      if (u.version != cv + 1) {
        fail(i, Status(Code::kInvalid, Where(u.chunk) + ": update v" + std::to_string(u.version) +
                                           " after committed v" + std::to_string(cv) +
                                           ": versions missed, resync needed"));
        continue;
      }
      nv = u.version;
    }
    x.nv.version = nv;
    x.base = (u.kind != Update::kInstall && x.rec.committed) ? &*x.rec.committed : nullptr;
    const uint32_t base_len = x.base ? x.base->length : 0;
    uint64_t new_len;
    switch (u.kind) {
      case Update::kWrite:
        new_len = std::max<uint64_t>(base_len, u.pieces.back().end());
        break;
      case Update::kTruncate:
        new_len = u.length;
        break;
      default:
        new_len = u.pieces[0].data.size();
    }
    x.nv.length = static_cast<uint32_t>(new_len);
    x.nv.size_class = SizeClassFor(x.nv.length);
    x.keep = std::min<uint32_t>(base_len, x.nv.length);
    const bool direct = u.pieces.size() == 1 && u.pieces[0].offset == 0 &&
                        u.pieces[0].data.size() == new_len && new_len % kBlockSize == 0 &&
                        reinterpret_cast<uintptr_t>(u.pieces[0].data.data()) % kBlockSize == 0;
    if (direct && new_len > 0) {
      x.src = const_cast<uint8_t*>(u.pieces[0].data.data());  // only ever read from
      x.src_registered = pool_->InArena(x.src, new_len);
    } else if (new_len > 0) {
      x.buf = pool_->Allocate(RoundUpToBlock(new_len));
      x.src = x.buf.data();
      x.src_registered = x.buf.registered();
    }
    // Base blocks to read: those in [0, keep) that the write does not cover
    // entirely, in runs.
    const uint32_t kb = BlockCount(x.keep);
    std::vector<bool> covered(kb, false);
    if (u.kind == Update::kWrite) {
      for (const Update::Piece& p : u.pieces) {
        const uint64_t we = p.end();
        for (uint32_t b = static_cast<uint32_t>(RoundUpToBlock(p.offset) / kBlockSize); b < kb; b++) {
          if (std::min<uint64_t>((b + 1) * uint64_t{kBlockSize}, base_len) > we) break;
          covered[b] = true;
        }
      }
    }
    auto add_read = [&](uint32_t from, uint32_t to) {
      IoOp op;
      op.kind = IoOp::kRead;
      op.file = x.base->size_class;
      op.buf = x.buf.data() + uint64_t{from} * kBlockSize;
      op.len = (to - from) * kBlockSize;
      op.offset = x.base->slot * kSizeClasses[x.base->size_class] + uint64_t{from} * kBlockSize;
      op.fixed = x.buf.registered();
      x.read_ops.push_back(static_cast<int>(ops.size()));
      ops.push_back(op);
    };
    if (x.base && kb > 0 && !direct) {
      for (uint32_t b = 0; b < kb;) {
        if (covered[b]) {
          b++;
          continue;
        }
        uint32_t e = b;
        while (e < kb && !covered[e]) e++;
        add_read(b, e);
        b = e;
      }
    }
  }

  // 3. Read the base bytes that survive.
  if (!ops.empty()) {
    RingLease ring(this);
    ring->Run(ops);
  }

  // 4. Verify what was read, merge, checksum.
  for (size_t i = 0; i < n; i++) {
    Work& x = w[i];
    if (!x.live) continue;
    const Update& u = ups[i];
    bool ok = true;
    uint64_t cow = 0;
    for (int k : x.read_ops) {
      if (!ok) break;  // the first failure is the one reported
      const IoOp& op = ops[k];
      if (op.result < 0) {
        fail(i, IoError(op.result, Where(u.chunk) + ": read v" + std::to_string(x.base->version) +
                                       " for copy-on-write"));
        ok = false;
        break;
      }
      cow += op.len;
      uint32_t from = static_cast<uint32_t>((op.buf - x.buf.data()) / kBlockSize);
      uint32_t to = from + op.len / kBlockSize;
      for (uint32_t b = from; b < to; b++) {
        uint64_t bs = uint64_t{b} * kBlockSize;
        uint64_t blen = std::min<uint64_t>(bs + kBlockSize, x.base->length) - bs;
        if (BlockCrc(x.buf.data() + bs, blen) != x.base->block_crcs[b]) {
          stats_.corrupt_reads++;
          Status st(Code::kCorrupt, Where(u.chunk) + " v" + std::to_string(x.base->version) +
                                        ": CRC32C mismatch in block " + std::to_string(b) +
                                        " while merging a partial write");
          LOG_ERROR(st.message());
          fail(i, st);
          ok = false;
          break;
        }
      }
    }
    if (!ok) continue;
    stats_.cow_read_bytes += cow;
    const uint64_t padded = RoundUpToBlock(x.nv.length);
    const bool copied = x.buf && x.src == x.buf.data();
    if (copied && padded > x.keep) std::memset(x.buf.data() + x.keep, 0, padded - x.keep);
    const uint32_t nb = BlockCount(x.nv.length);
    std::vector<bool> touched(nb, false);  // blocks holding bytes the client wrote
    for (const Update::Piece& p : u.pieces) {
      if (copied) std::memcpy(x.buf.data() + p.offset, p.data.data(), p.data.size());
      for (uint32_t b = p.offset / kBlockSize; b < BlockCount(p.end()); b++) touched[b] = true;
    }
    x.nv.block_crcs.resize(nb);
    for (uint32_t b = 0; b < nb; b++) {
      uint64_t bs = uint64_t{b} * kBlockSize;
      uint64_t be = std::min<uint64_t>(bs + kBlockSize, x.nv.length);
      bool untouched = x.base && !touched[b] &&
                       be <= x.keep && std::min<uint64_t>(bs + kBlockSize, x.base->length) == be;
      x.nv.block_crcs[b] = untouched ? x.base->block_crcs[b] : BlockCrc(x.src + bs, be - bs);
    }
    for (size_t k = 0; k < u.pieces.size() && ok; k++) {
      const Update::Piece& p = u.pieces[k];
      const uint64_t ws = p.offset, we = p.end();
      if (ws == we) continue;  // an empty install
      bool aligned = ws % kBlockSize == 0 && (we % kBlockSize == 0 || we == x.nv.length);
      uint32_t got = aligned ? CombineRange(x.nv.block_crcs, ws / kBlockSize, BlockCount(we), we)
                             : Crc32c(x.src + ws, we - ws);
      if (got != p.crc) {
        stats_.rejected_writes++;
        char buf[96];
        std::snprintf(buf, sizeof buf, ": data CRC32C 0x%08x does not match the sender's 0x%08x",
                      got, p.crc);
        std::string which = u.pieces.size() > 1 ? " (extent " + std::to_string(k + 1) + " of " +
                                                      std::to_string(u.pieces.size()) + ")"
                                                : "";
        Status st(Code::kCorrupt, Where(u.chunk) + " " +
                                      (u.kind == Update::kInstall ? "install" : "write") + " of " +
                                      std::to_string(p.data.size()) + " bytes at " +
                                      std::to_string(ws) + which + buf + "; nothing stored");
        LOG_WARN(st.message());
        fail(i, st);
        ok = false;
      }
    }
    if (!ok) continue;
    x.nv.crc = CombineBlockCrcs(x.nv.block_crcs, x.nv.length);
    // 5. A fresh slot for the new version.
    if (x.nv.size_class != kNoSlot) {
      auto slot = AllocateSlot(x.nv.size_class);
      if (!slot.ok()) {
        fail(i, slot.status().Prefix(Where(u.chunk)));
        continue;
      }
      x.nv.slot = *slot;
    }
  }

  // 6. Write the new slots.
  ops.clear();
  for (size_t i = 0; i < n; i++) {
    Work& x = w[i];
    if (!x.live || x.nv.size_class == kNoSlot) continue;
    IoOp op;
    op.kind = IoOp::kWrite;
    op.file = x.nv.size_class;
    op.buf = x.src;
    op.len = static_cast<uint32_t>(RoundUpToBlock(x.nv.length));
    op.offset = x.nv.slot * kSizeClasses[x.nv.size_class];
    op.fixed = x.src_registered;
    x.write_op = static_cast<int>(ops.size());
    ops.push_back(op);
  }
  auto drop_new_slot = [&](size_t i) {
    if (w[i].nv.size_class != kNoSlot) FreeSlot(w[i].nv.size_class, w[i].nv.slot);
  };
  if (!ops.empty()) {
    {
      RingLease ring(this);
      ring->Run(ops);
    }
    for (size_t i = 0; i < n; i++) {
      Work& x = w[i];
      if (!x.live || x.write_op < 0 || ops[x.write_op].result >= 0) continue;
      drop_new_slot(i);
      fail(i, IoError(ops[x.write_op].result,
                      Where(ups[i].chunk) + ": write v" + std::to_string(x.nv.version) + " to " +
                          files_[x.nv.size_class]->path));
    }
  }

  // 7. Make the new slots durable and switch the records, in a group commit
  // with concurrent updates (CommitRecords). This caller's records go into
  // the group's WriteBatches together, so they switch atomically.
  CommitTicket ticket;
  std::vector<size_t> entry_of(n, SIZE_MAX);
  std::vector<std::vector<std::pair<uint8_t, uint64_t>>> to_free(n);
  std::vector<ChunkRecord> new_recs(n);
  for (size_t i = 0; i < n; i++) {
    Work& x = w[i];
    if (!x.live) continue;
    const Update& u = ups[i];
    ChunkRecord rec = x.rec;
    auto release = [&](const std::optional<ChunkVersion>& v) {
      if (v && v->size_class != kNoSlot) to_free[i].emplace_back(v->size_class, v->slot);
    };
    const uint64_t old_cv = rec.committed ? rec.committed->version : 0;
    if (u.commit) {
      SLUICE_DATA_INVARIANT(
          x.nv.version > old_cv || (u.kind == Update::kInstall && x.nv.version == old_cv),
          Where(u.chunk) + ": committed version would go from v" + std::to_string(old_cv) +
              " to v" + std::to_string(x.nv.version));
      release(rec.committed);
      release(rec.pending);
      rec.committed = x.nv;
      rec.pending.reset();
    } else {
      SLUICE_DATA_INVARIANT(x.nv.version == old_cv + 1,
                            Where(u.chunk) + ": pending v" + std::to_string(x.nv.version) +
                                " is not committed v" + std::to_string(old_cv) + " + 1");
      release(rec.pending);
      rec.pending = x.nv;
    }
    // Releasing the slots of the new record would be a double owner.
    new_recs[i] = std::move(rec);
    entry_of[i] = ticket.entries.size();
    CommitTicket::Entry e;
    e.key = keys[i];
    e.value = EncodeChunkRecord(new_recs[i]);
    e.size_class = x.nv.size_class;
    if (options_.sync_writes && x.nv.size_class != kNoSlot) {
      ChunkRecord tentative = x.rec;
      tentative.unconfirmed = x.nv;
      tentative.unconfirmed_commits = u.commit;
      e.tentative = EncodeChunkRecord(tentative);
      if (x.rec.committed || x.rec.pending) e.previous = EncodeChunkRecord(x.rec);
    }
    ticket.entries.push_back(std::move(e));
  }
  if (!ticket.entries.empty()) CommitRecords(ticket);
  for (size_t i = 0; i < n; i++) {
    if (entry_of[i] == SIZE_MAX) continue;
    const Status& st = ticket.entries[entry_of[i]].status;
    if (st.ok()) {
      for (auto& [cls, slot] : to_free[i]) FreeSlot(cls, slot);
    } else {
      drop_new_slot(i);
      fail(i, st.Prefix(Where(ups[i].chunk) + " v" + std::to_string(w[i].nv.version)));
    }
  }

  // 8. Results.
  for (size_t i = 0; i < n; i++) {
    Work& x = w[i];
    if (!x.st.ok()) {
      out[out_base + i] = x.st;
      continue;
    }
    if (x.live) {
      stats_.updates++;
      for (const Update::Piece& p : ups[i].pieces) stats_.written_bytes += p.data.size();
      x.result.meta = MetaOf(ups[i].chunk, new_recs[i]);
    }
    out[out_base + i] = x.result;
  }
}

Result<ChunkMeta> ChunkStore::Commit(const ChunkId& chunk, uint64_t version) {
  std::lock_guard<std::mutex> l(ChunkLock(chunk));
  bool found;
  SLUICE_ASSIGN_OR_RETURN(ChunkRecord rec, GetRecord(chunk, &found));
  const uint64_t cv = rec.committed ? rec.committed->version : 0;
  if (found && cv >= version) return MetaOf(chunk, rec);
  if (!found || !rec.pending || rec.pending->version != version) {
    return Status(Code::kNotFound, Where(chunk) + ": no pending v" + std::to_string(version) +
                                       " to commit (committed v" + std::to_string(cv) + ")");
  }
  SLUICE_DATA_INVARIANT(version > cv, Where(chunk) + ": commit would not grow the version");
  std::optional<ChunkVersion> old = std::move(rec.committed);
  rec.committed = std::move(rec.pending);
  rec.pending.reset();
  SLUICE_RETURN_IF_ERROR(PutRecord(chunk, &rec));
  if (old) FreeSlot(old->size_class, old->slot);
  return MetaOf(chunk, rec);
}

Status ChunkStore::DropPending(const ChunkId& chunk, uint64_t version) {
  std::lock_guard<std::mutex> l(ChunkLock(chunk));
  bool found;
  SLUICE_ASSIGN_OR_RETURN(ChunkRecord rec, GetRecord(chunk, &found));
  if (!found || !rec.pending || rec.pending->version != version) return Status::Ok();
  ChunkVersion old = std::move(*rec.pending);
  rec.pending.reset();
  SLUICE_RETURN_IF_ERROR(PutRecord(chunk, rec.committed ? &rec : nullptr));
  FreeSlot(old.size_class, old.slot);
  return Status::Ok();
}

Result<uint64_t> ChunkStore::Remove(std::span<const ChunkId> chunks) {
  uint64_t removed = 0;
  for (const ChunkId& c : chunks) {
    std::lock_guard<std::mutex> l(ChunkLock(c));
    bool found;
    SLUICE_ASSIGN_OR_RETURN(ChunkRecord rec, GetRecord(c, &found));
    if (!found) continue;
    SLUICE_RETURN_IF_ERROR(PutRecord(c, nullptr));
    if (rec.committed) FreeSlot(rec.committed->size_class, rec.committed->slot);
    if (rec.pending) FreeSlot(rec.pending->size_class, rec.pending->slot);
    removed++;
  }
  return removed;
}

Result<uint64_t> ChunkStore::RemoveFile(uint64_t inode) {
  SLUICE_ASSIGN_OR_RETURN(std::vector<ChunkMeta> metas, ListFile(inode));
  std::vector<ChunkId> ids;
  for (const ChunkMeta& m : metas) ids.push_back(m.chunk);
  return Remove(ids);
}

// ---------------------------------------------------------------- metadata

Result<ChunkMeta> ChunkStore::Stat(const ChunkId& chunk) {
  bool found;
  SLUICE_ASSIGN_OR_RETURN(ChunkRecord rec, GetRecord(chunk, &found));
  if (!found) return Status(Code::kNotFound, Where(chunk) + ": no such chunk");
  return MetaOf(chunk, rec);
}

namespace {
// An iterator over one file's chunk keys, bounded: without the bound a Seek
// past the file's keys would step over every deletion tombstone up to the
// next live key (files removed earlier).
struct FileIterator {
  std::string prefix, end;
  rocksdb::Slice upper;
  rocksdb::ReadOptions ro;
  std::unique_ptr<rocksdb::Iterator> it;
  FileIterator(rocksdb::DB* db, uint64_t inode)
      : prefix(FileKeyPrefix(inode)),
        end(inode == UINT64_MAX ? std::string("d") : FileKeyPrefix(inode + 1)),
        upper(end) {
    ro.iterate_upper_bound = &upper;
    it.reset(db->NewIterator(ro));
    it->Seek(prefix);
  }
};
}  // namespace

Result<bool> ChunkStore::HasFile(uint64_t inode) {
  FileIterator f(db_.get(), inode);
  if (!f.it->status().ok()) {
    return Status(Code::kIo, "target " + std::to_string(options_.target_id) + ": seek inode " +
                                 std::to_string(inode) + ": " + f.it->status().ToString());
  }
  return f.it->Valid();
}

Result<std::vector<ChunkMeta>> ChunkStore::ListFile(uint64_t inode) {
  std::vector<ChunkMeta> out;
  FileIterator f(db_.get(), inode);
  auto& it = f.it;
  const std::string& prefix = f.prefix;
  for (; it->Valid() && it->key().starts_with(prefix); it->Next()) {
    SLUICE_ASSIGN_OR_RETURN(ChunkId id, DecodeChunkKey(it->key().ToStringView()));
    SLUICE_ASSIGN_OR_RETURN(ChunkRecord rec, DecodeChunkRecord(it->value().ToStringView(), id));
    out.push_back(MetaOf(id, rec));
  }
  if (!it->status().ok()) {
    return Status(Code::kIo, "target " + std::to_string(options_.target_id) + ": list inode " +
                                 std::to_string(inode) + ": " + it->status().ToString());
  }
  return out;
}

Result<std::vector<ChunkMeta>> ChunkStore::ListChunks(const ChunkId* after, size_t limit) {
  std::vector<ChunkMeta> out;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
  if (after) {
    std::string k = ChunkKey(*after);
    it->Seek(k);
    if (it->Valid() && it->key() == k) it->Next();
  } else {
    it->Seek("c");
  }
  for (; it->Valid() && it->key().starts_with("c") && out.size() < limit; it->Next()) {
    SLUICE_ASSIGN_OR_RETURN(ChunkId id, DecodeChunkKey(it->key().ToStringView()));
    SLUICE_ASSIGN_OR_RETURN(ChunkRecord rec, DecodeChunkRecord(it->value().ToStringView(), id));
    out.push_back(MetaOf(id, rec));
  }
  if (!it->status().ok()) {
    return Status(Code::kIo, "target " + std::to_string(options_.target_id) +
                                 ": list chunks: " + it->status().ToString());
  }
  return out;
}

std::vector<SizeClassUsage> ChunkStore::SpaceUsage() {
  std::lock_guard<std::mutex> l(alloc_mu_);
  std::vector<SizeClassUsage> out;
  for (const auto& f : files_) {
    out.push_back({f->class_bytes, f->alloc.slot_count(), f->alloc.used_count()});
  }
  return out;
}

// ---------------------------------------------------------------- scrub

Result<ScrubReport> ChunkStore::Scrub() {
  ScrubReport report;
  struct Item {
    ChunkId id;
    ChunkVersion v;
    bool pending;
    std::string raw;  // the record as read, to tell corruption from a racing update
    IoBuffer buf;
  };
  constexpr size_t kBatch = 16;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
  it->Seek("c");
  std::vector<Item> items;
  std::vector<IoOp> ops;
  auto check = [&](Item& item, const IoOp& op) -> Status {
    if (op.result < 0) return IoError(op.result, "read " + files_[item.v.size_class]->path);
    for (uint32_t b = 0; b < item.v.block_crcs.size(); b++) {
      uint64_t bs = uint64_t{b} * kBlockSize;
      uint64_t blen = std::min<uint64_t>(bs + kBlockSize, item.v.length) - bs;
      if (BlockCrc(item.buf.data() + bs, blen) != item.v.block_crcs[b]) {
        return Status(Code::kCorrupt, "CRC32C mismatch in block " + std::to_string(b) + " (" +
                                          files_[item.v.size_class]->path + " offset " +
                                          std::to_string(op.offset + bs) + ")");
      }
    }
    if (CombineBlockCrcs(item.v.block_crcs, item.v.length) != item.v.crc) {
      return Status(Code::kCorrupt, "block CRCs do not add up to the chunk CRC32C");
    }
    return Status::Ok();
  };
  auto flush = [&]() {
    ops.clear();
    for (Item& item : items) {
      item.buf = pool_->Allocate(RoundUpToBlock(item.v.length));
      IoOp op;
      op.kind = IoOp::kRead;
      op.file = item.v.size_class;
      op.buf = item.buf.data();
      op.len = static_cast<uint32_t>(RoundUpToBlock(item.v.length));
      op.offset = item.v.slot * kSizeClasses[item.v.size_class];
      op.fixed = item.buf.registered();
      ops.push_back(op);
    }
    if (!ops.empty()) {
      RingLease ring(this);
      ring->Run(ops);
    }
    for (size_t k = 0; k < items.size(); k++) {
      Item& item = items[k];
      report.chunks_checked++;
      report.bytes_checked += item.v.length;
      Status st = check(item, ops[k]);
      if (!st.ok()) {
        std::string now;
        rocksdb::Status rs = db_->Get(rocksdb::ReadOptions(), ChunkKey(item.id), &now);
        if (!rs.ok() || now != item.raw) continue;  // changed under us: not a finding
        std::string what = Where(item.id) + " v" + std::to_string(item.v.version) +
                           (item.pending ? " (pending)" : "") + ": " + st.message();
        LOG_ERROR("scrub: " + what);
        report.bad.push_back({item.id, item.v.version, item.pending, Status(st.code(), what)});
      }
      item.buf = IoBuffer();
    }
    items.clear();
  };
  for (; it->Valid() && it->key().starts_with("c"); it->Next()) {
    SLUICE_ASSIGN_OR_RETURN(ChunkId id, DecodeChunkKey(it->key().ToStringView()));
    auto rec = DecodeChunkRecord(it->value().ToStringView(), id);
    if (!rec.ok()) {
      LOG_ERROR("scrub: " + Where(id) + ": " + rec.status().message());
      report.bad.push_back({id, 0, false, rec.status()});
      continue;
    }
    for (int p = 0; p < 2; p++) {
      const auto& v = p == 0 ? rec->committed : rec->pending;
      if (!v) continue;
      if (v->size_class == kNoSlot) {
        report.chunks_checked++;
        continue;
      }
      items.push_back({id, *v, p == 1, it->value().ToString(), IoBuffer()});
    }
    if (items.size() >= kBatch) flush();
  }
  flush();
  if (!it->status().ok()) {
    return Status(Code::kIo, "target " + std::to_string(options_.target_id) +
                                 ": scrub scan: " + it->status().ToString());
  }
  LOG_INFO("target " + std::to_string(options_.target_id) + ": scrub checked " +
           std::to_string(report.chunks_checked) + " chunk versions, " +
           std::to_string(report.bytes_checked) + " bytes, " + std::to_string(report.bad.size()) +
           " bad");
  return report;
}

}  // namespace sluice::data
