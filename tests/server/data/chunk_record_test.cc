#include "server/data/chunk_record.h"

#include <gtest/gtest.h>

#include <random>

#include "common/crc32c.h"
#include "server/data/crc32c_block.h"

namespace sluice::data {
namespace {

ChunkVersion MakeVersion(uint64_t version, uint32_t length, uint64_t slot) {
  ChunkVersion v;
  v.version = version;
  v.length = length;
  v.size_class = SizeClassFor(length);
  v.slot = slot;
  for (uint32_t b = 0; b < BlockCount(length); b++) v.block_crcs.push_back(0x1000 + b);
  v.crc = 0xabcdef;
  return v;
}

TEST(ChunkRecord, RoundTripsCommittedAndPending) {
  ChunkRecord r;
  r.committed = MakeVersion(7, 1 << 20, 3);
  r.pending = MakeVersion(8, 5000, 9);
  auto d = DecodeChunkRecord(EncodeChunkRecord(r), {1, 2});
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(d.value(), r);

  ChunkRecord empty_chunk;
  empty_chunk.committed = MakeVersion(1, 0, 0);
  auto e = DecodeChunkRecord(EncodeChunkRecord(empty_chunk), {1, 2});
  ASSERT_TRUE(e.ok()) << e.status().ToString();
  EXPECT_EQ(e.value(), empty_chunk);
}

TEST(ChunkRecord, HostileInputIsRejectedNamingTheChunk) {
  ChunkRecord r;
  r.committed = MakeVersion(7, 70000, 3);
  std::string good = EncodeChunkRecord(r);
  // Every truncation fails cleanly.
  for (size_t n = 0; n < good.size(); n++) {
    auto d = DecodeChunkRecord(std::string_view(good).substr(0, n), {42, 7});
    ASSERT_FALSE(d.ok()) << "prefix of " << n << " bytes accepted";
    EXPECT_EQ(d.status().code(), Code::kCorrupt);
    EXPECT_NE(d.status().message().find("chunk 42:7"), std::string::npos);
  }
  std::string bad_format = good;
  bad_format[0] = 9;
  auto f = DecodeChunkRecord(bad_format, {1, 1});
  EXPECT_NE(f.status().message().find("unknown format 9"), std::string::npos);
  EXPECT_FALSE(DecodeChunkRecord(good + "x", {1, 1}).ok());
  // A length that does not fit its size class.
  ChunkRecord wrong = r;
  wrong.committed->size_class = 0;
  EXPECT_FALSE(DecodeChunkRecord(EncodeChunkRecord(wrong), {1, 1}).ok());
  // Random garbage never crashes.
  std::mt19937 rng(1);
  for (int i = 0; i < 2000; i++) {
    std::string junk(rng() % 200, '\0');
    for (char& c : junk) c = static_cast<char>(rng());
    (void)DecodeChunkRecord(junk, {1, 1});
  }
}

TEST(ChunkRecord, KeysSortByInodeThenIndex) {
  EXPECT_LT(ChunkKey({1, 5}), ChunkKey({1, 6}));
  EXPECT_LT(ChunkKey({1, 0xffffffffffull}), ChunkKey({2, 0}));
  EXPECT_TRUE(ChunkKey({3, 9}).starts_with(FileKeyPrefix(3)));
  EXPECT_FALSE(ChunkKey({4, 9}).starts_with(FileKeyPrefix(3)));
  auto id = DecodeChunkKey(ChunkKey({0x0102030405060708ull, 99}));
  ASSERT_TRUE(id.ok());
  EXPECT_EQ(id->inode, 0x0102030405060708ull);
  EXPECT_EQ(id->index, 99u);
  EXPECT_FALSE(DecodeChunkKey("c123").ok());
}

TEST(ChunkRecord, SizeClasses) {
  EXPECT_EQ(SizeClassFor(0), kNoSlot);
  EXPECT_EQ(SizeClassFor(1), 0);
  EXPECT_EQ(SizeClassFor(64 << 10), 0);
  EXPECT_EQ(SizeClassFor((64 << 10) + 1), 1);
  EXPECT_EQ(SizeClassFor(1 << 20), 2);
  EXPECT_EQ(SizeClassFor(64u << 20), 5);
}

TEST(Crc32cCombine, MatchesCrcOfConcatenation) {
  std::mt19937 rng(7);
  std::vector<uint8_t> buf(3 * kBlockSize + 123);
  for (auto& b : buf) b = static_cast<uint8_t>(rng());
  for (size_t split : {size_t{0}, size_t{1}, size_t{4096}, size_t{5000}, buf.size()}) {
    uint32_t a = Crc32c(buf.data(), split);
    uint32_t b = Crc32c(buf.data() + split, buf.size() - split);
    EXPECT_EQ(Crc32cCombine(a, b, buf.size() - split), Crc32c(buf.data(), buf.size())) << split;
  }
  Crc32cShift fixed(100);
  for (size_t split : {size_t{0}, size_t{77}, size_t{1000}}) {
    uint32_t a = Crc32c(buf.data(), split);
    uint32_t b = Crc32c(buf.data() + split, 100);
    EXPECT_EQ(fixed.Combine(a, b), Crc32c(buf.data(), split + 100)) << split;
  }
  std::vector<uint32_t> blocks;
  for (size_t off = 0; off < buf.size(); off += kBlockSize) {
    blocks.push_back(Crc32c(buf.data() + off, std::min<size_t>(kBlockSize, buf.size() - off)));
  }
  EXPECT_EQ(CombineBlockCrcs(blocks, static_cast<uint32_t>(buf.size())),
            Crc32c(buf.data(), buf.size()));
}

TEST(Crc32cBlock4K, MatchesCrc32c) {
  std::mt19937 rng(11);
  std::vector<uint8_t> buf(1 << 20);
  for (auto& b : buf) b = static_cast<uint8_t>(rng());
  for (size_t off = 0; off + 4096 <= buf.size(); off += 4096 + 8) {
    ASSERT_EQ(Crc32cBlock4K(buf.data() + off), Crc32c(buf.data() + off, 4096)) << off;
  }
  std::vector<uint8_t> zeros(4096, 0), ones(4096, 0xff);
  EXPECT_EQ(Crc32cBlock4K(zeros.data()), Crc32c(zeros.data(), 4096));
  EXPECT_EQ(Crc32cBlock4K(ones.data()), Crc32c(ones.data(), 4096));
}

}  // namespace
}  // namespace sluice::data
