// Chunk identity, size classes and the chunk record stored in RocksDB.
//
// A chunk record describes up to two versions of one chunk: the committed
// version (what reads return) and at most one pending version (a chain
// update stored but not yet committed). Each version names the slot that
// holds its bytes, its length, its version number, the CRC32C of its whole
// content and one CRC32C per 4 KiB block (so a 4 KiB read is verified
// without reading the whole chunk).
#pragma once

#include <array>
#include <compare>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace sluice::data {

// A chunk is the `index`-th chunk of the file with inode number `inode`.
struct ChunkId {
  uint64_t inode = 0;
  uint64_t index = 0;
  auto operator<=>(const ChunkId&) const = default;
  // "chunk 42:7" (inode:index), for messages and logs.
  std::string ToString() const;
};

// Unit of CRC verification and of O_DIRECT alignment.
inline constexpr uint32_t kBlockSize = 4096;
inline constexpr uint32_t kMaxChunkSize = 64u << 20;
// Slot sizes of the data files. A chunk version lives in the smallest class
// that holds its length (a 10 KiB chunk of a 1 MiB-chunk file takes 64 KiB).
inline constexpr std::array<uint32_t, 6> kSizeClasses = {
    64u << 10, 256u << 10, 1u << 20, 4u << 20, 16u << 20, 64u << 20};
inline constexpr uint8_t kNoSlot = 0xff;  // size class of an empty (length 0) version

// Smallest size class index whose slots hold `length` bytes, kNoSlot for 0;
// `length` must be <= kMaxChunkSize.
uint8_t SizeClassFor(uint32_t length);
inline uint32_t BlockCount(uint32_t length) { return (length + kBlockSize - 1) / kBlockSize; }
inline uint64_t RoundUpToBlock(uint64_t n) { return (n + kBlockSize - 1) / kBlockSize * kBlockSize; }

// One stored version of a chunk.
struct ChunkVersion {
  uint64_t version = 0;
  uint32_t length = 0;
  uint32_t crc = 0;              // CRC32C of bytes [0, length)
  uint8_t size_class = kNoSlot;  // kNoSlot iff length == 0
  uint64_t slot = 0;             // slot index in the data file of size_class
  std::vector<uint32_t> block_crcs;  // BlockCount(length) entries; last block may be short

  bool operator==(const ChunkVersion&) const = default;
};

struct ChunkRecord {
  std::optional<ChunkVersion> committed;
  std::optional<ChunkVersion> pending;  // version == committed version + 1 when present
  // Transient: the record an update writes (synced) while the new version's
  // bytes are being made durable, so that the two syncs run at once. The new
  // version is not visible yet; `unconfirmed_commits` says whether it will
  // replace the committed version (else it becomes the pending one). The
  // update rewrites the record without it as soon as both syncs are done. A
  // store opening after a crash applies it if its bytes check out on disk,
  // and drops it otherwise (ChunkStore::Open).
  std::optional<ChunkVersion> unconfirmed;
  bool unconfirmed_commits = false;

  bool operator==(const ChunkRecord&) const = default;
};

// A version inside an encoded record, decoded without copying its block CRCs
// (the read path touches one or two of them). Valid while the encoded bytes are.
struct ChunkVersionView {
  uint64_t version = 0;
  uint32_t length = 0;
  uint32_t crc = 0;
  uint8_t size_class = kNoSlot;
  uint64_t slot = 0;
  std::string_view block_crc_bytes;  // BlockCount(length) little-endian uint32s
  uint32_t BlockCrc(size_t i) const;
  ChunkVersion ToVersion() const;
};
struct ChunkRecordView {
  bool has_committed = false;
  bool has_pending = false;
  bool has_unconfirmed = false;  // readers ignore it (see ChunkRecord)
  bool unconfirmed_commits = false;
  ChunkVersionView committed;
  ChunkVersionView pending;
  ChunkVersionView unconfirmed;
};

// RocksDB key of a chunk: 'c' + big-endian inode + big-endian index, so the
// chunks of one file are adjacent and iterate in index order.
std::string ChunkKey(const ChunkId& id);
// Prefix of every chunk key of `inode`.
std::string FileKeyPrefix(uint64_t inode);
inline constexpr size_t kChunkKeySize = 17;
// Fails with kCorrupt unless `key` is a well-formed chunk key.
Result<ChunkId> DecodeChunkKey(std::string_view key);

// Self-contained binary encoding (format byte, little-endian fields).
std::string EncodeChunkRecord(const ChunkRecord& record);
// Treats `data` as hostile: every length and field is checked; a bad record is
// kCorrupt with a message naming `id`.
Result<ChunkRecord> DecodeChunkRecord(std::string_view data, const ChunkId& id);
// The same checks, without copying; the view points into `data`.
Result<ChunkRecordView> DecodeChunkRecordView(std::string_view data, const ChunkId& id);

// CRC32C of a whole version derived from its block CRCs.
uint32_t CombineBlockCrcs(const std::vector<uint32_t>& block_crcs, uint32_t length);

}  // namespace sluice::data
