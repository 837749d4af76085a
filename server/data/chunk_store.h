// ChunkStore: the chunks of one storage target on a local file system.
//
// Layout under Options::dir:
//   records/           RocksDB: one ChunkRecord per chunk (chunk_record.h)
//   data/class-<N>.dat one preallocated data file per size class, fixed slots
//
// Every update is copy-on-write: the new content of the chunk (old bytes
// merged with the written ones) goes to a fresh slot, then the record is
// switched in one RocksDB write, then the old slot is freed. A crash leaves
// either the old or the new version, never a torn one.
//
// Versions: each chunk has a committed version that only grows, and at most
// one pending version (committed + 1) for chain replication. A write with
// UpdateOptions{version: 0, commit: true} is the single-replica case: it
// installs committed + 1 directly. A chain's head stores with commit=false and
// the chain's version, forwards, and calls Commit() when the tail answers;
// the tail writes with commit=true. Reads return the committed version.
//
// Integrity: the client's CRC32C of written bytes is checked before anything
// is stored; every read verifies the CRC32C of each 4 KiB block it touches and
// fails with kCorrupt (logged, naming target and chunk) on a mismatch.
//
// Thread-safe: updates of one chunk are serialized, reads run concurrently
// with everything (a read that races an update retries on the new record).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "common/status.h"
#include "server/data/chunk_record.h"
#include "server/data/io_buffer_pool.h"

namespace rocksdb {
class DB;
}

namespace sluice::data {

class IoRing;
class DataFile;

struct ChunkStoreOptions {
  // Directory of the target; created if missing.
  std::string dir;
  // Target id, printed in every log line and error message.
  uint32_t target_id = 0;
  // Open data files with O_DIRECT. When the file system refuses it (tmpfs),
  // the store logs a warning and uses buffered IO.
  bool direct_io = true;
  // fdatasync new slots and sync the RocksDB WAL before an update returns
  // (survives power loss). Without it an update survives a process crash
  // (kill -9) but not a machine crash.
  bool sync_writes = true;
  // Bytes a data file grows by when it runs out of free slots (rounded to
  // whole slots, at least one). Space is reserved with fallocate.
  uint64_t grow_bytes = 256ull << 20;
  // Registered IO buffer arena shared by all rings (bytes).
  size_t buffer_arena_bytes = 256u << 20;
  // io_uring instances (max concurrent batches) and entries per ring. A
  // caller holds a ring while its data write runs, so this caps the updates
  // at the disk at once: one per RPC handler thread of sluice-data (16).
  unsigned io_rings = 16;
  unsigned ring_depth = 128;
  // RocksDB block cache for chunk records.
  size_t record_cache_bytes = 64u << 20;
};

// What a chunk looks like on this target (for QueryChunks, ListChunks, resync).
struct ChunkMeta {
  ChunkId chunk;
  uint64_t version = 0;  // committed; 0 = nothing committed yet
  uint32_t length = 0;
  uint32_t crc = 0;      // CRC32C of the whole committed content
  uint64_t pending_version = 0;  // 0 = none
  uint32_t pending_length = 0;
  uint32_t pending_crc = 0;
  // Where the committed bytes are: data file of slot_class_bytes, at
  // slot * slot_class_bytes. 0 when length is 0. For tools and fault tests.
  uint32_t slot_class_bytes = 0;
  uint64_t slot = 0;
  uint32_t pending_slot_class_bytes = 0;  // same for the pending version
  uint64_t pending_slot = 0;
};

// How an update relates to chain replication (see the file comment).
struct UpdateOptions {
  // 0: next version (committed + 1); fails kBusy if a pending version exists.
  // Otherwise the chain's version: <= committed is an already-applied
  // duplicate (success, nothing changes); == committed + 1 is stored (a
  // pending version of the same number is replaced); anything else is kInvalid
  // (this target missed updates and must resync).
  uint64_t version = 0;
  // true: the new version becomes committed at once; false: it is pending.
  bool commit = true;
};

// One range of a write that changes several ranges of a chunk in one update.
struct WriteExtent {
  uint32_t offset = 0;  // within the chunk
  uint32_t length = 0;  // bytes, following the previous extent's in WriteRequest::data
  uint32_t crc = 0;     // sender's CRC32C of these bytes
};

struct WriteRequest {
  ChunkId chunk;
  uint32_t offset = 0;             // within the chunk
  std::span<const uint8_t> data;   // must stay valid during the call
  uint32_t crc = 0;                // client's CRC32C of `data`
  uint32_t chunk_size = kMaxChunkSize;  // the file layout's chunk size
  UpdateOptions update;
  // When not empty, the write changes these ranges (ascending, not
  // overlapping, not empty) as one version: their bytes follow each other
  // in `data`, which they must cover exactly; `offset` and `crc` are unused.
  // One copy-on-write of the chunk instead of one per range (IOR-hard's
  // strided blocks, a client's scattered write-behind).
  std::vector<WriteExtent> extents;
};

struct UpdateResult {
  ChunkMeta meta;               // the chunk after the update
  bool already_applied = false; // duplicate of an update already committed here
};

struct ReadRequest {
  ChunkId chunk;
  uint32_t offset = 0;
  uint32_t length = 0;  // clamped to the chunk's length
  // Optional: where the bytes should land. When `dest` is 4 KiB aligned,
  // `offset` is a multiple of 4 KiB and the whole blocks read fit in
  // `dest_capacity`, they are read from disk straight into `dest` (no copy;
  // ReadResult::data == dest, and bytes past the returned length up to the
  // block end are overwritten). Otherwise the result owns a buffer as usual.
  // On failure `dest` holds unspecified bytes. Destinations must not overlap.
  uint8_t* dest = nullptr;
  uint32_t dest_capacity = 0;
};

struct ReadResult {
  Status status;            // kNotFound, kCorrupt (CRC mismatch), kIo, ...
  const uint8_t* data = nullptr;  // `length` bytes inside `buffer` (or ReadRequest::dest)
  uint32_t length = 0;
  uint32_t crc = 0;          // CRC32C of exactly these bytes
  uint64_t version = 0;      // committed version they belong to
  uint32_t chunk_length = 0;
  uint32_t chunk_crc = 0;    // CRC32C of the whole version
  uint64_t pending_version = 0;
  IoBuffer buffer;           // owns the bytes (registered arena when possible)
};

// Space of one size class's data file.
struct SizeClassUsage {
  uint32_t slot_bytes = 0;
  uint64_t slots = 0;       // preallocated (file size / slot_bytes)
  uint64_t used_slots = 0;  // holding a committed or pending version
};

struct BadChunk {
  ChunkId chunk;
  uint64_t version = 0;
  bool pending = false;
  Status status;
};

struct ScrubReport {
  uint64_t chunks_checked = 0;  // versions, committed and pending
  uint64_t bytes_checked = 0;
  std::vector<BadChunk> bad;
};

// Counters a server can export; monotonically increasing.
struct ChunkStoreStats {
  std::atomic<uint64_t> reads{0}, read_bytes{0};
  std::atomic<uint64_t> updates{0}, written_bytes{0};
  std::atomic<uint64_t> cow_read_bytes{0};     // old bytes read to merge partial writes
  std::atomic<uint64_t> corrupt_reads{0};      // CRC mismatches of stored bytes
  std::atomic<uint64_t> rejected_writes{0};    // client CRC mismatches
  std::atomic<uint64_t> read_retries{0};       // reads that raced an update
  // Group commit: RocksDB writes, the records they carried, data-file fdatasyncs.
  std::atomic<uint64_t> commit_groups{0}, committed_records{0}, data_syncs{0};
};

class ChunkStore {
 public:
  // Opens (creating if needed) the target at options.dir, rebuilds the slot
  // allocators from the records. kCorrupt if two records share a slot or a
  // record points beyond its data file.
  static Result<std::unique_ptr<ChunkStore>> Open(const ChunkStoreOptions& options);
  ~ChunkStore();
  ChunkStore(const ChunkStore&) = delete;
  ChunkStore& operator=(const ChunkStore&) = delete;

  // Reads many ranges with one batched submission. Results are in request
  // order, each with its own status. A range past the chunk's end returns
  // fewer (maybe 0) bytes; a missing chunk is kNotFound.
  std::vector<ReadResult> BatchRead(std::span<const ReadRequest> requests);

  // Writes `data` at `offset` of a chunk (creating it; a gap reads as zeros).
  // The chunk is rewritten copy-on-write. A write that replaces the whole
  // chunk from offset 0 with a multiple of 4 KiB from a 4 KiB-aligned buffer
  // goes to disk straight from `data` (no copy; registered IO when `data`
  // lies in buffer_arena()); `data` must not change during the call.
  // kCorrupt if req.crc does not match the bytes; kInvalid if offset + size
  // exceeds chunk_size; kBusy / kInvalid / already_applied: see UpdateOptions.
  Result<UpdateResult> Write(const WriteRequest& req);
  // Many writes, batched: one IO submission, one RocksDB write. Results in
  // request order. The same chunk may appear more than once (applied in order).
  std::vector<Result<UpdateResult>> BatchWrite(std::span<const WriteRequest> requests);

  // Sets a chunk's length (cutting or zero-extending) as a new version.
  Result<UpdateResult> Truncate(const ChunkId& chunk, uint32_t length,
                                const UpdateOptions& update = {},
                                uint32_t chunk_size = kMaxChunkSize);

  // Makes pending `version` committed (the old committed slot is freed).
  // Success if `version` is already committed; kNotFound if no such pending.
  Result<ChunkMeta> Commit(const ChunkId& chunk, uint64_t version);
  // Drops a pending version (a chain update abandoned). Success if absent.
  Status DropPending(const ChunkId& chunk, uint64_t version);

  // Resync and repair: replaces the chunk with committed `version` holding
  // `data` (crc: CRC32C of data), dropping any pending version. kInvalid if
  // `version` is below the committed one; an equal version is rewritten (that
  // repairs a local copy that scrub or a read found corrupt).
  Result<UpdateResult> Install(const ChunkId& chunk, uint64_t version,
                               std::span<const uint8_t> data, uint32_t crc);

  // Removes chunks; returns how many existed.
  Result<uint64_t> Remove(std::span<const ChunkId> chunks);
  // Removes every chunk of a file.
  Result<uint64_t> RemoveFile(uint64_t inode);

  // Metadata of one chunk; kNotFound if absent.
  Result<ChunkMeta> Stat(const ChunkId& chunk);
  // Metadata of every chunk of a file, in index order.
  Result<std::vector<ChunkMeta>> ListFile(uint64_t inode);
  // Whether this target holds any chunk of `inode` (one bounded seek).
  Result<bool> HasFile(uint64_t inode);
  // Up to `limit` chunks in (inode, index) order, strictly after `*after`
  // (from the start when null). Fewer than `limit` means the end was reached.
  Result<std::vector<ChunkMeta>> ListChunks(const ChunkId* after, size_t limit);

  // Slots per size class (for capacity reports). Freed slots stay in the
  // data files for reuse; files never shrink.
  std::vector<SizeClassUsage> SpaceUsage();

  // Reads every stored version (committed and pending) and checks each block
  // and the whole-chunk CRC. Bad chunks are logged and reported; the scrub
  // itself fails only when it cannot iterate the records.
  Result<ScrubReport> Scrub();

  // A 4 KiB-aligned buffer, from the registered arena while it lasts: for the
  // RPC layer to receive write payloads by RMA, so whole-chunk writes go to
  // disk without a copy. May outlive the store (it keeps the arena alive).
  IoBuffer AllocateBuffer(size_t bytes) { return pool_->Allocate(bytes); }
  // The registered arena (to register it with libfabric as well).
  const iovec& buffer_arena() const { return pool_->arena(); }

  const ChunkStoreOptions& options() const { return options_; }
  const ChunkStoreStats& stats() const { return stats_; }
  // True when data files were opened with O_DIRECT.
  bool direct_io() const { return direct_io_; }
  // True when the rings use registered buffers.
  bool fixed_buffers() const { return fixed_buffers_; }
  // Path of the data file of a size class (for tools and fault tests).
  static std::string DataFilePath(const std::string& dir, uint32_t class_bytes);

 private:
  struct Update;
  class RingLease;
  // One caller's records for a group commit (see CommitRecords).
  struct CommitTicket {
    struct Entry {
      std::string_view key;  // lives in the caller's frame
      std::string value;     // encoded record (unused when remove)
      uint8_t size_class = kNoSlot;  // the new slot's data file, if any
      bool remove = false;
      // With sync_writes and a new slot: the record with the new version
      // unconfirmed (ChunkRecord::unconfirmed), written while the slot is
      // synced, and the record as it was (empty: none), put back if the
      // update fails after that.
      std::string tentative;
      std::string previous;
      Status status;         // out
    };
    std::vector<Entry> entries;
    bool taken = false;  // by a group's leader (commit_mu_)
    bool done = false;   // commit_mu_
    std::condition_variable cv;
  };
  explicit ChunkStore(const ChunkStoreOptions& options);

  Status OpenFiles();
  Status RebuildAllocators();
  std::vector<Result<UpdateResult>> ApplyUpdates(std::span<Update> updates);
  void ApplyDistinct(std::span<Update> updates, std::vector<Result<UpdateResult>>& out,
                     size_t out_base);
  Result<uint64_t> AllocateSlot(uint8_t size_class);
  void FreeSlot(uint8_t size_class, uint64_t slot);
  Result<ChunkRecord> GetRecord(const ChunkId& chunk, bool* found);
  Status PutRecord(const ChunkId& chunk, const ChunkRecord* record);  // null deletes
  // Group commit. Makes durable (with sync_writes) the data files of the
  // ticket's new slots, whose writes have completed, and its records.
  // Concurrent callers queue; one of them (the leader) takes the whole queue
  // and, for all of them at once, runs one fdatasync per data file touched
  // and, at the same time, one synced RocksDB WriteBatch holding each new
  // version as unconfirmed (the old one stays visible; a crash before the
  // data is durable leaves a record that Open checks against the disk); then
  // one unsynced WriteBatch that makes the new versions the visible ones
  // (durable by then, whatever happens to that write). Each entry gets its
  // own status (a failed fdatasync fails only the entries of that file).
  void CommitRecords(CommitTicket& ticket);
  // Stage 1 (one group at a time): the syncs. Stage 2: the visible records.
  void SyncGroup(std::span<CommitTicket* const> group, bool* wrote_tentative);
  void PublishGroup(std::span<CommitTicket* const> group, bool wrote_tentative);
  // Open: applies or drops the unconfirmed version of `rec` (ChunkRecord).
  Result<bool> ConfirmOnDisk(const ChunkId& id, const ChunkVersion& v);
  std::mutex& ChunkLock(const ChunkId& chunk);
  // "target 3 chunk 42:7", the prefix of every message about a chunk.
  std::string Where(const ChunkId& chunk) const;
  IoRing* AcquireRing();
  void ReleaseRing(IoRing* ring);

  const ChunkStoreOptions options_;
  ChunkStoreStats stats_;
  std::unique_ptr<rocksdb::DB> db_;
  std::vector<std::unique_ptr<DataFile>> files_;  // by size class
  std::vector<int> fds_;
  bool direct_io_ = true;
  bool fixed_buffers_ = false;
  std::shared_ptr<IoBufferPool> pool_;  // shared with every IoBuffer handed out

  std::mutex alloc_mu_;  // guards files_[*]->allocator and file growth

  std::mutex ring_mu_;
  std::condition_variable ring_cv_;
  std::vector<std::unique_ptr<IoRing>> rings_;
  std::vector<IoRing*> idle_rings_;

  std::mutex commit_mu_;
  std::vector<CommitTicket*> commit_queue_;
  bool syncing_ = false;  // a group's leader is in SyncGroup

  static constexpr size_t kLockStripes = 256;
  std::unique_ptr<std::mutex[]> chunk_locks_;
};

}  // namespace sluice::data
