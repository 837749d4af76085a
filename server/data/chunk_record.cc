#include "server/data/chunk_record.h"

#include <cstring>

#include "common/crc32c.h"

namespace sluice::data {
namespace {

constexpr uint8_t kRecordFormat = 1;
constexpr uint8_t kHasCommitted = 1;
constexpr uint8_t kHasPending = 2;
constexpr uint8_t kHasUnconfirmed = 4;
constexpr uint8_t kUnconfirmedCommits = 8;  // only with kHasUnconfirmed

void PutFixed(std::string* out, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; i++) out->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

class Reader {
 public:
  explicit Reader(std::string_view d) : d_(d) {}
  bool Get(uint64_t* v, int bytes) {
    if (d_.size() < static_cast<size_t>(bytes)) return false;
    uint64_t x = 0;
    for (int i = 0; i < bytes; i++) x |= static_cast<uint64_t>(static_cast<uint8_t>(d_[i])) << (8 * i);
    d_.remove_prefix(bytes);
    *v = x;
    return true;
  }
  bool Take(size_t n, std::string_view* out) {
    if (d_.size() < n) return false;
    *out = d_.substr(0, n);
    d_.remove_prefix(n);
    return true;
  }
  size_t left() const { return d_.size(); }

 private:
  std::string_view d_;
};

void EncodeVersion(std::string* out, const ChunkVersion& v) {
  PutFixed(out, v.version, 8);
  PutFixed(out, v.length, 4);
  PutFixed(out, v.crc, 4);
  PutFixed(out, v.size_class, 1);
  PutFixed(out, v.slot, 8);
  PutFixed(out, v.block_crcs.size(), 4);
  for (uint32_t c : v.block_crcs) PutFixed(out, c, 4);
}

Status DecodeVersion(Reader* r, ChunkVersionView* v, const ChunkId& id) {
  auto bad = [&](const char* what) {
    return Status(Code::kCorrupt, "record of " + id.ToString() + ": " + what);
  };
  uint64_t version = 0, length = 0, crc = 0, size_class = 0, slot = 0, n = 0;
  if (!r->Get(&version, 8) || !r->Get(&length, 4) || !r->Get(&crc, 4) ||
      !r->Get(&size_class, 1) || !r->Get(&slot, 8) || !r->Get(&n, 4)) {
    return bad("truncated version");
  }
  if (length > kMaxChunkSize) return bad("length above the largest chunk size");
  if (size_class != SizeClassFor(static_cast<uint32_t>(length))) return bad("size class does not fit length");
  if (n != BlockCount(static_cast<uint32_t>(length))) return bad("block CRC count does not match length");
  if (!r->Take(n * 4, &v->block_crc_bytes)) return bad("truncated block CRCs");
  v->version = version;
  v->length = static_cast<uint32_t>(length);
  v->crc = static_cast<uint32_t>(crc);
  v->size_class = static_cast<uint8_t>(size_class);
  v->slot = slot;
  return Status::Ok();
}

}  // namespace

std::string ChunkId::ToString() const {
  return "chunk " + std::to_string(inode) + ":" + std::to_string(index);
}

uint8_t SizeClassFor(uint32_t length) {
  if (length == 0) return kNoSlot;
  for (size_t i = 0; i < kSizeClasses.size(); i++) {
    if (length <= kSizeClasses[i]) return static_cast<uint8_t>(i);
  }
  return kNoSlot;
}

std::string ChunkKey(const ChunkId& id) {
  std::string k(kChunkKeySize, '\0');
  k[0] = 'c';
  for (int i = 0; i < 8; i++) {
    k[1 + i] = static_cast<char>((id.inode >> (56 - 8 * i)) & 0xff);
    k[9 + i] = static_cast<char>((id.index >> (56 - 8 * i)) & 0xff);
  }
  return k;
}

std::string FileKeyPrefix(uint64_t inode) { return ChunkKey({inode, 0}).substr(0, 9); }

Result<ChunkId> DecodeChunkKey(std::string_view key) {
  if (key.size() != kChunkKeySize || key[0] != 'c') {
    return Status(Code::kCorrupt, "malformed chunk key of " + std::to_string(key.size()) + " bytes");
  }
  ChunkId id;
  for (int i = 0; i < 8; i++) {
    id.inode = (id.inode << 8) | static_cast<uint8_t>(key[1 + i]);
    id.index = (id.index << 8) | static_cast<uint8_t>(key[9 + i]);
  }
  return id;
}

std::string EncodeChunkRecord(const ChunkRecord& record) {
  std::string out;
  size_t blocks = (record.committed ? record.committed->block_crcs.size() : 0) +
                  (record.pending ? record.pending->block_crcs.size() : 0) +
                  (record.unconfirmed ? record.unconfirmed->block_crcs.size() : 0);
  out.reserve(2 + 3 * 40 + 4 * blocks);
  out.push_back(static_cast<char>(kRecordFormat));
  out.push_back(static_cast<char>(
      (record.committed ? kHasCommitted : 0) | (record.pending ? kHasPending : 0) |
      (record.unconfirmed ? kHasUnconfirmed : 0) |
      (record.unconfirmed && record.unconfirmed_commits ? kUnconfirmedCommits : 0)));
  if (record.committed) EncodeVersion(&out, *record.committed);
  if (record.pending) EncodeVersion(&out, *record.pending);
  if (record.unconfirmed) EncodeVersion(&out, *record.unconfirmed);
  return out;
}

uint32_t ChunkVersionView::BlockCrc(size_t i) const {
  const auto* p = reinterpret_cast<const uint8_t*>(block_crc_bytes.data()) + 4 * i;
  return uint32_t{p[0]} | uint32_t{p[1]} << 8 | uint32_t{p[2]} << 16 | uint32_t{p[3]} << 24;
}

ChunkVersion ChunkVersionView::ToVersion() const {
  ChunkVersion v;
  v.version = version;
  v.length = length;
  v.crc = crc;
  v.size_class = size_class;
  v.slot = slot;
  v.block_crcs.resize(block_crc_bytes.size() / 4);
  for (size_t i = 0; i < v.block_crcs.size(); i++) v.block_crcs[i] = BlockCrc(i);
  return v;
}

Result<ChunkRecordView> DecodeChunkRecordView(std::string_view data, const ChunkId& id) {
  Reader r(data);
  uint64_t format = 0, flags = 0;
  if (!r.Get(&format, 1) || !r.Get(&flags, 1)) {
    return Status(Code::kCorrupt, "record of " + id.ToString() + ": truncated header");
  }
  if (format != kRecordFormat) {
    return Status(Code::kCorrupt, "record of " + id.ToString() + ": unknown format " +
                                      std::to_string(format) + " (this build reads format " +
                                      std::to_string(kRecordFormat) + ")");
  }
  if ((flags & ~static_cast<uint64_t>(kHasCommitted | kHasPending | kHasUnconfirmed | kUnconfirmedCommits)) ||
      ((flags & kUnconfirmedCommits) && !(flags & kHasUnconfirmed))) {
    return Status(Code::kCorrupt, "record of " + id.ToString() + ": unknown flags");
  }
  ChunkRecordView rec;
  if (flags & kHasCommitted) {
    rec.has_committed = true;
    SLUICE_RETURN_IF_ERROR(DecodeVersion(&r, &rec.committed, id));
  }
  if (flags & kHasPending) {
    rec.has_pending = true;
    SLUICE_RETURN_IF_ERROR(DecodeVersion(&r, &rec.pending, id));
  }
  if (flags & kHasUnconfirmed) {
    rec.has_unconfirmed = true;
    rec.unconfirmed_commits = (flags & kUnconfirmedCommits) != 0;
    SLUICE_RETURN_IF_ERROR(DecodeVersion(&r, &rec.unconfirmed, id));
  }
  if (r.left() != 0) {
    return Status(Code::kCorrupt, "record of " + id.ToString() + ": trailing bytes");
  }
  if (!rec.has_committed && !rec.has_pending && !rec.has_unconfirmed) {
    return Status(Code::kCorrupt, "record of " + id.ToString() + ": holds no version");
  }
  return rec;
}

Result<ChunkRecord> DecodeChunkRecord(std::string_view data, const ChunkId& id) {
  SLUICE_ASSIGN_OR_RETURN(ChunkRecordView view, DecodeChunkRecordView(data, id));
  ChunkRecord rec;
  if (view.has_committed) rec.committed = view.committed.ToVersion();
  if (view.has_pending) rec.pending = view.pending.ToVersion();
  if (view.has_unconfirmed) {
    rec.unconfirmed = view.unconfirmed.ToVersion();
    rec.unconfirmed_commits = view.unconfirmed_commits;
  }
  return rec;
}

uint32_t CombineBlockCrcs(const std::vector<uint32_t>& block_crcs, uint32_t length) {
  static const Crc32cShift kBlock(kBlockSize);
  uint32_t crc = 0;
  for (size_t i = 0; i < block_crcs.size(); i++) {
    uint32_t len = (i + 1 == block_crcs.size()) ? length - static_cast<uint32_t>(i) * kBlockSize
                                                : kBlockSize;
    crc = len == kBlockSize ? kBlock.Combine(crc, block_crcs[i])
                            : Crc32cCombine(crc, block_crcs[i], len);
  }
  return crc;
}

}  // namespace sluice::data
