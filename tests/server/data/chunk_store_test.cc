#include "server/data/chunk_store.h"

#include <fcntl.h>
#include <sys/mount.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <random>
#include <thread>

#include "common/crc32c.h"
#include "tests/server/data/test_dir.h"

namespace sluice::data {
namespace {

using testing::TestDir;

std::vector<uint8_t> Bytes(size_t n, uint32_t seed) {
  std::vector<uint8_t> v(n);
  std::mt19937 rng(seed);
  for (auto& b : v) b = static_cast<uint8_t>(rng());
  return v;
}

ChunkStoreOptions SmallOptions(const std::string& dir) {
  ChunkStoreOptions o;
  o.dir = dir;
  o.target_id = 7;
  o.sync_writes = false;
  o.grow_bytes = 4u << 20;
  o.buffer_arena_bytes = 16u << 20;
  o.io_rings = 2;
  o.ring_depth = 32;
  return o;
}

class ChunkStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(dir_.path().empty());
    Reopen();
  }
  void Reopen() {
    store_.reset();
    auto s = ChunkStore::Open(SmallOptions(dir_.path()));
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store_ = std::move(s.value());
  }
  Result<UpdateResult> Put(ChunkId c, uint32_t off, const std::vector<uint8_t>& data,
                           UpdateOptions u = {}) {
    WriteRequest w;
    w.chunk = c;
    w.offset = off;
    w.data = data;
    w.crc = Crc32c(data.data(), data.size());
    w.update = u;
    return store_->Write(w);
  }
  ReadResult Get(ChunkId c, uint32_t off = 0, uint32_t len = kMaxChunkSize) {
    ReadRequest r{c, off, len};
    auto v = store_->BatchRead(std::span<const ReadRequest>(&r, 1));
    return std::move(v[0]);
  }
  std::vector<uint8_t> GetBytes(ChunkId c) {
    ReadResult r = Get(c);
    EXPECT_TRUE(r.status.ok()) << r.status.ToString();
    if (!r.status.ok()) return {};
    EXPECT_EQ(r.crc, Crc32c(r.data, r.length));
    return std::vector<uint8_t>(r.data, r.data + r.length);
  }

  TestDir dir_;
  std::unique_ptr<ChunkStore> store_;
};

TEST_F(ChunkStoreTest, WriteThenReadWholeAndRanges) {
  auto data = Bytes(1 << 20, 1);
  auto w = Put({1, 0}, 0, data);
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  EXPECT_EQ(w->meta.version, 1u);
  EXPECT_EQ(w->meta.length, 1u << 20);
  EXPECT_EQ(w->meta.crc, Crc32c(data.data(), data.size()));
  EXPECT_EQ(GetBytes({1, 0}), data);
  // Aligned, unaligned and past-the-end ranges, each with the CRC of its bytes.
  for (auto [off, len] : std::vector<std::pair<uint32_t, uint32_t>>{
           {0, 4096}, {4096, 8192}, {1, 1}, {4095, 2}, {12345, 67890}, {(1 << 20) - 10, 100}}) {
    ReadResult r = Get({1, 0}, off, len);
    ASSERT_TRUE(r.status.ok()) << r.status.ToString();
    uint32_t want = std::min<uint32_t>(len, (1 << 20) - off);
    ASSERT_EQ(r.length, want);
    EXPECT_EQ(0, memcmp(r.data, data.data() + off, want)) << off;
    EXPECT_EQ(r.crc, Crc32c(data.data() + off, want)) << off << "+" << len;
    EXPECT_EQ(r.version, 1u);
    EXPECT_EQ(r.chunk_crc, w->meta.crc);
  }
  ReadResult beyond = Get({1, 0}, 2 << 20, 10);
  EXPECT_TRUE(beyond.status.ok());
  EXPECT_EQ(beyond.length, 0u);
  ReadResult missing = Get({1, 1});
  EXPECT_EQ(missing.status.code(), Code::kNotFound);
  EXPECT_NE(missing.status.message().find("target 7 chunk 1:1"), std::string::npos);
}

TEST_F(ChunkStoreTest, PartialOverwriteIsCopyOnWrite) {
  auto data = Bytes(100000, 2);
  auto w1 = Put({2, 3}, 0, data);
  ASSERT_TRUE(w1.ok());
  auto patch = Bytes(10, 3);
  auto w2 = Put({2, 3}, 5000, patch);
  ASSERT_TRUE(w2.ok()) << w2.status().ToString();
  EXPECT_EQ(w2->meta.version, 2u);
  EXPECT_NE(w2->meta.slot, w1->meta.slot) << "overwrite must go to a fresh slot";
  std::copy(patch.begin(), patch.end(), data.begin() + 5000);
  EXPECT_EQ(GetBytes({2, 3}), data);
  EXPECT_EQ(w2->meta.crc, Crc32c(data.data(), data.size()));
  // Appending past the end leaves a zero-filled gap and may move size class.
  auto tail = Bytes(4096, 4);
  auto w3 = Put({2, 3}, 300000, tail);
  ASSERT_TRUE(w3.ok()) << w3.status().ToString();
  EXPECT_EQ(w3->meta.length, 304096u);
  EXPECT_EQ(w3->meta.slot_class_bytes, 1u << 20);
  data.resize(300000, 0);
  data.insert(data.end(), tail.begin(), tail.end());
  EXPECT_EQ(GetBytes({2, 3}), data);
  EXPECT_GT(store_->stats().cow_read_bytes.load(), 0u);
}

TEST_F(ChunkStoreTest, ClientCrcMismatchStoresNothing) {
  auto data = Bytes(8192, 5);
  ASSERT_TRUE(Put({3, 0}, 0, data).ok());
  WriteRequest w;
  w.chunk = {3, 0};
  w.offset = 100;
  auto patch = Bytes(50, 6);
  w.data = patch;
  w.crc = Crc32c(patch.data(), patch.size()) ^ 1;
  auto r = store_->Write(w);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kCorrupt);
  EXPECT_NE(r.status().message().find("target 7 chunk 3:0"), std::string::npos)
      << r.status().message();
  EXPECT_EQ(GetBytes({3, 0}), data);
  EXPECT_EQ(store_->Stat({3, 0})->version, 1u);
  // Aligned whole-block writes take the combined-CRC path; check it rejects too.
  w.offset = 4096;
  auto block = Bytes(4096, 7);
  w.data = block;
  w.crc = Crc32c(block.data(), block.size()) + 1;
  EXPECT_EQ(store_->Write(w).status().code(), Code::kCorrupt);
  w.crc -= 1;
  EXPECT_TRUE(store_->Write(w).ok());
  EXPECT_EQ(store_->stats().rejected_writes.load(), 2u);
}

TEST_F(ChunkStoreTest, BoundsAreChecked) {
  WriteRequest w;
  w.chunk = {4, 0};
  auto data = Bytes(100, 1);
  w.data = data;
  w.crc = Crc32c(data.data(), data.size());
  w.chunk_size = 1 << 20;
  w.offset = (1 << 20) - 50;
  EXPECT_EQ(store_->Write(w).status().code(), Code::kInvalid);
  w.chunk_size = kMaxChunkSize + 1;
  w.offset = 0;
  EXPECT_EQ(store_->Write(w).status().code(), Code::kInvalid);
  w.data = {};
  w.chunk_size = 1 << 20;
  EXPECT_EQ(store_->Write(w).status().code(), Code::kInvalid);
  EXPECT_EQ(store_->Truncate({4, 0}, 2 << 20, {}, 1 << 20).status().code(), Code::kInvalid);
}

// Several ranges of a chunk in one update (WriteRequest::extents): one new
// version whose bytes match applying each range in turn.
TEST_F(ChunkStoreTest, MultiExtentWriteIsOneVersion) {
  std::mt19937 rng(11);
  ChunkId c{40, 0};
  std::vector<uint8_t> model = Bytes(300000, 12);
  ASSERT_TRUE(Put(c, 0, model).ok());
  uint64_t version = 1;
  for (int round = 0; round < 30; round++) {
    WriteRequest w;
    w.chunk = c;
    w.chunk_size = 1 << 20;
    std::vector<uint8_t> bytes;
    uint32_t pos = rng() % 5000;
    int n = 1 + rng() % 12;
    for (int k = 0; k < n && pos < (1u << 20); k++) {
      uint32_t len = std::min<uint32_t>(1 + rng() % 50000, (1u << 20) - pos);
      auto piece = Bytes(len, rng());
      w.extents.push_back({pos, len, Crc32c(piece.data(), len)});
      bytes.insert(bytes.end(), piece.begin(), piece.end());
      if (model.size() < pos + len) model.resize(pos + len, 0);
      std::copy(piece.begin(), piece.end(), model.begin() + pos);
      pos += len + (rng() % 3 == 0 ? 0 : rng() % 60000);  // sometimes touching, often a gap
    }
    w.data = bytes;
    auto r = store_->Write(w);
    ASSERT_TRUE(r.ok()) << "round " << round << ": " << r.status().ToString();
    EXPECT_EQ(r->meta.version, ++version) << "one version per multi-extent write";
    EXPECT_EQ(r->meta.length, model.size());
    EXPECT_EQ(r->meta.crc, Crc32c(model.data(), model.size())) << "round " << round;
    ASSERT_EQ(GetBytes(c), model) << "round " << round;
  }
  // A multi-range write may create its chunk: the gaps read as zeros.
  {
    ChunkId fresh{43, 0};
    auto a = Bytes(100, 18), b = Bytes(5000, 19);
    WriteRequest w;
    w.chunk = fresh;
    w.extents = {{10, 100, Crc32c(a.data(), a.size())}, {9000, 5000, Crc32c(b.data(), b.size())}};
    std::vector<uint8_t> bytes = a;
    bytes.insert(bytes.end(), b.begin(), b.end());
    w.data = bytes;
    auto r = store_->Write(w);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->meta.version, 1u);
    std::vector<uint8_t> want(14000, 0);
    std::copy(a.begin(), a.end(), want.begin() + 10);
    std::copy(b.begin(), b.end(), want.begin() + 9000);
    EXPECT_EQ(GetBytes(fresh), want);
  }
  // Only base blocks no extent covers entirely are read for the merge.
  ChunkId d{41, 0};
  std::vector<uint8_t> base = Bytes(16 * 4096, 13);
  ASSERT_TRUE(Put(d, 0, base).ok());
  auto a = Bytes(8192, 14), b = Bytes(16 * 4096 - 12288 - 100, 15);
  WriteRequest w;
  w.chunk = d;
  w.extents = {{0, 8192, Crc32c(a.data(), a.size())},
               {12288 + 100, static_cast<uint32_t>(b.size()), Crc32c(b.data(), b.size())}};
  std::vector<uint8_t> bytes = a;
  bytes.insert(bytes.end(), b.begin(), b.end());
  w.data = bytes;
  uint64_t before = store_->stats().cow_read_bytes.load();
  ASSERT_TRUE(store_->Write(w).ok());
  EXPECT_EQ(store_->stats().cow_read_bytes.load() - before, 2u * 4096) << "blocks 2 and 3 only";
  std::copy(a.begin(), a.end(), base.begin());
  std::copy(b.begin(), b.end(), base.begin() + 12288 + 100);
  EXPECT_EQ(GetBytes(d), base);
}

TEST_F(ChunkStoreTest, MalformedMultiExtentWritesStoreNothing) {
  ChunkId c{42, 0};
  std::vector<uint8_t> base = Bytes(50000, 16);
  ASSERT_TRUE(Put(c, 0, base).ok());
  auto p = Bytes(3000, 17);
  const uint32_t crc = Crc32c(p.data(), 1000);
  auto attempt = [&](std::vector<WriteExtent> extents, size_t bytes) {
    WriteRequest w;
    w.chunk = c;
    w.chunk_size = 1 << 20;
    w.extents = std::move(extents);
    w.data = std::span<const uint8_t>(p.data(), bytes);
    return store_->Write(w).status();
  };
  struct Case {
    const char* what;
    std::vector<WriteExtent> extents;
    size_t bytes;
    Code code;
    const char* says;
  };
  std::vector<Case> cases = {
      {"overlap", {{0, 1000, crc}, {999, 1000, crc}}, 2000, Code::kInvalid, "overlap or are not in order"},
      {"out of order", {{5000, 1000, crc}, {0, 1000, crc}}, 2000, Code::kInvalid, "not in order"},
      {"too few bytes", {{0, 1000, crc}, {2000, 1000, crc}}, 1500, Code::kInvalid, "do not add up"},
      {"too many bytes", {{0, 1000, crc}, {2000, 1000, crc}}, 3000, Code::kInvalid, "do not add up"},
      {"empty extent", {{0, 1000, crc}, {2000, 0, 0}}, 1000, Code::kInvalid, "empty write (extent 2 of 2)"},
      {"beyond chunk", {{0, 1000, crc}, {(1u << 20) - 10, 1000, crc}}, 2000, Code::kInvalid, "beyond chunk size"},
      {"bad crc", {{0, 1000, crc}, {4096, 1000, crc ^ 1}, {9000, 1000, crc}}, 3000, Code::kCorrupt,
       "(extent 2 of 3)"},
      {"offset near 2^32", {{0, 1000, crc}, {0xFFFFFF00u, 1000, crc}}, 2000, Code::kInvalid, "beyond chunk size"},
  };
  for (const Case& k : cases) {
    Status st = attempt(k.extents, k.bytes);
    EXPECT_EQ(st.code(), k.code) << k.what << ": " << st.ToString();
    EXPECT_NE(st.message().find(k.says), std::string::npos) << k.what << ": " << st.message();
    EXPECT_NE(st.message().find("target 7 chunk 42:0"), std::string::npos) << st.message();
  }
  EXPECT_EQ(store_->Stat(c)->version, 1u);
  EXPECT_EQ(GetBytes(c), base);
}

TEST_F(ChunkStoreTest, TruncateCutsAndZeroExtends) {
  auto data = Bytes(70000, 8);
  ASSERT_TRUE(Put({5, 0}, 0, data).ok());
  auto t = store_->Truncate({5, 0}, 5000);
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_EQ(t->meta.version, 2u);
  data.resize(5000);
  EXPECT_EQ(GetBytes({5, 0}), data);
  ASSERT_TRUE(store_->Truncate({5, 0}, 9000).ok());
  data.resize(9000, 0);
  EXPECT_EQ(GetBytes({5, 0}), data);
  auto z = store_->Truncate({5, 0}, 0);
  ASSERT_TRUE(z.ok());
  EXPECT_EQ(z->meta.length, 0u);
  EXPECT_EQ(GetBytes({5, 0}).size(), 0u);
  // A write into an empty chunk after that.
  auto again = Bytes(10, 9);
  ASSERT_TRUE(Put({5, 0}, 10, again).ok());
  std::vector<uint8_t> want(10, 0);
  want.insert(want.end(), again.begin(), again.end());
  EXPECT_EQ(GetBytes({5, 0}), want);
  EXPECT_EQ(store_->Stat({5, 0})->version, 5u);
}

TEST_F(ChunkStoreTest, PendingVersionsForChainReplication) {
  auto v1 = Bytes(4096, 10);
  ASSERT_TRUE(Put({6, 0}, 0, v1).ok());
  auto v2 = Bytes(4096, 11);
  // Head: store v2 pending; reads still see v1 and learn v2 is in flight.
  auto p = Put({6, 0}, 0, v2, {.version = 0, .commit = false});
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ(p->meta.version, 1u);
  EXPECT_EQ(p->meta.pending_version, 2u);
  ReadResult r = Get({6, 0});
  ASSERT_TRUE(r.status.ok());
  EXPECT_EQ(r.version, 1u);
  EXPECT_EQ(r.pending_version, 2u);
  EXPECT_EQ(std::vector<uint8_t>(r.data, r.data + r.length), v1);
  // A second "next version" write must wait for the commit.
  EXPECT_EQ(Put({6, 0}, 0, v2).status().code(), Code::kBusy);
  // A retry of the same chain version replaces the pending one.
  ASSERT_TRUE(Put({6, 0}, 0, v2, {.version = 2, .commit = false}).ok());
  // Versions that skip ahead mean this replica missed updates.
  EXPECT_EQ(Put({6, 0}, 0, v2, {.version = 4, .commit = false}).status().code(), Code::kInvalid);
  EXPECT_EQ(store_->Commit({6, 0}, 3).status().code(), Code::kNotFound);
  auto c = store_->Commit({6, 0}, 2);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->version, 2u);
  EXPECT_EQ(c->pending_version, 0u);
  EXPECT_EQ(GetBytes({6, 0}), v2);
  EXPECT_TRUE(store_->Commit({6, 0}, 2).ok()) << "commit is idempotent";
  // A duplicate of an already committed update changes nothing.
  auto dup = Put({6, 0}, 0, v1, {.version = 2, .commit = true});
  ASSERT_TRUE(dup.ok());
  EXPECT_TRUE(dup->already_applied);
  EXPECT_EQ(GetBytes({6, 0}), v2);
  // The tail writes committed directly.
  auto v3 = Bytes(100, 12);
  auto tail = Put({6, 0}, 0, v3, {.version = 3, .commit = true});
  ASSERT_TRUE(tail.ok());
  EXPECT_EQ(tail->meta.version, 3u);
  // Dropping an abandoned pending version.
  ASSERT_TRUE(Put({6, 0}, 0, v1, {.version = 4, .commit = false}).ok());
  ASSERT_TRUE(store_->DropPending({6, 0}, 4).ok());
  EXPECT_EQ(store_->Stat({6, 0})->pending_version, 0u);
  // Pending versions survive a restart.
  ASSERT_TRUE(Put({6, 0}, 0, v1, {.version = 4, .commit = false}).ok());
  Reopen();  // `r` still holds a buffer of the closed store: that is allowed
  EXPECT_EQ(store_->Stat({6, 0})->pending_version, 4u);
  ASSERT_TRUE(store_->Commit({6, 0}, 4).ok());
  auto bytes = GetBytes({6, 0});
  std::vector<uint8_t> want = v1;
  EXPECT_EQ(bytes, want);
}

TEST_F(ChunkStoreTest, InstallForResync) {
  auto a = Bytes(5000, 13);
  ASSERT_TRUE(Put({7, 1}, 0, a).ok());
  ASSERT_TRUE(Put({7, 1}, 0, a).ok());  // v2
  auto b = Bytes(6000, 14);
  uint32_t bcrc = Crc32c(b.data(), b.size());
  EXPECT_EQ(store_->Install({7, 1}, 1, b, bcrc).status().code(), Code::kInvalid);
  EXPECT_EQ(store_->Install({7, 1}, 9, b, bcrc ^ 5).status().code(), Code::kCorrupt);
  auto i = store_->Install({7, 1}, 9, b, bcrc);
  ASSERT_TRUE(i.ok()) << i.status().ToString();
  EXPECT_EQ(i->meta.version, 9u);
  EXPECT_EQ(GetBytes({7, 1}), b);
  auto again = store_->Install({7, 1}, 9, b, bcrc);  // same version: rewritten
  ASSERT_TRUE(again.ok());
  EXPECT_NE(again->meta.slot, i->meta.slot);
  EXPECT_EQ(again->meta.version, 9u);
  EXPECT_EQ(GetBytes({7, 1}), b);
}

TEST_F(ChunkStoreTest, ListRemoveAndReopenKeepChunksAndSlots) {
  std::map<std::pair<uint64_t, uint64_t>, std::vector<uint8_t>> want;
  for (uint64_t ino = 10; ino < 13; ino++) {
    for (uint64_t idx = 0; idx < 5; idx++) {
      auto d = Bytes(1000 + ino * 7000 + idx * 100, static_cast<uint32_t>(ino * 100 + idx));
      ASSERT_TRUE(Put({ino, idx}, 0, d).ok());
      want[{ino, idx}] = d;
    }
  }
  auto f = store_->ListFile(11);
  ASSERT_TRUE(f.ok());
  ASSERT_EQ(f->size(), 5u);
  for (uint64_t i = 0; i < 5; i++) EXPECT_EQ((*f)[i].chunk.index, i);
  // Paging through everything.
  std::vector<ChunkMeta> all;
  const ChunkId* after = nullptr;
  ChunkId last;
  for (;;) {
    auto page = store_->ListChunks(after, 4);
    ASSERT_TRUE(page.ok());
    all.insert(all.end(), page->begin(), page->end());
    if (page->size() < 4) break;
    last = page->back().chunk;
    after = &last;
  }
  ASSERT_EQ(all.size(), 15u);
  for (size_t i = 1; i < all.size(); i++) EXPECT_LT(all[i - 1].chunk, all[i].chunk);

  ASSERT_TRUE(store_->HasFile(11).ok());
  EXPECT_TRUE(*store_->HasFile(11));
  auto removed = store_->RemoveFile(11);
  ASSERT_TRUE(removed.ok());
  EXPECT_EQ(*removed, 5u);
  // Gone, while its neighbours' chunks (10 and 12) stay.
  EXPECT_FALSE(*store_->HasFile(11));
  EXPECT_TRUE(*store_->HasFile(12));
  EXPECT_FALSE(*store_->HasFile(999));
  for (uint64_t i = 0; i < 5; i++) want.erase({11, i});
  std::vector<ChunkId> two = {{12, 0}, {12, 99}};
  EXPECT_EQ(*store_->Remove(two), 1u);
  want.erase({12, 0});
  EXPECT_EQ(Get({11, 2}).status.code(), Code::kNotFound);

  // After a restart the allocator knows which slots are taken: new chunks
  // must not land on live ones.
  Reopen();
  for (uint64_t idx = 0; idx < 20; idx++) {
    auto d = Bytes(3000, static_cast<uint32_t>(idx + 5000));
    ASSERT_TRUE(Put({20, idx}, 0, d).ok());
    want[{20, idx}] = d;
  }
  for (auto& [id, bytes] : want) EXPECT_EQ(GetBytes({id.first, id.second}), bytes);
  // Every live chunk holds exactly one slot; removed ones gave theirs back.
  uint64_t used = 0;
  for (const SizeClassUsage& u : store_->SpaceUsage()) {
    EXPECT_LE(u.used_slots, u.slots);
    used += u.used_slots;
  }
  EXPECT_EQ(used, want.size());
}

TEST_F(ChunkStoreTest, BatchReadMixesHitsMissesAndSizes) {
  std::vector<std::vector<uint8_t>> data;
  for (uint32_t i = 0; i < 8; i++) {
    data.push_back(Bytes(1 + i * 150000, i));
    ASSERT_TRUE(Put({30, i}, 0, data.back()).ok());
  }
  std::vector<ReadRequest> reqs;
  for (uint32_t i = 0; i < 8; i++) reqs.push_back({{30, i}, i * 10, 70000});
  reqs.push_back({{30, 99}, 0, 10});
  auto res = store_->BatchRead(reqs);
  ASSERT_EQ(res.size(), 9u);
  for (uint32_t i = 0; i < 8; i++) {
    ASSERT_TRUE(res[i].status.ok()) << res[i].status.ToString();
    uint32_t len = data[i].size() > i * 10 ? std::min<uint32_t>(70000, data[i].size() - i * 10) : 0;
    ASSERT_EQ(res[i].length, len) << i;
    if (len) {
      EXPECT_EQ(0, memcmp(res[i].data, data[i].data() + i * 10, len));
    }
    EXPECT_EQ(res[i].crc, Crc32c(res[i].data, res[i].length));
  }
  EXPECT_EQ(res[8].status.code(), Code::kNotFound);
}

TEST_F(ChunkStoreTest, LargeChunksAndHeapBuffers) {
  // 5 MiB lands in the 16 MiB class; with a 16 MiB arena some buffers come
  // from the heap (unregistered) and IO must still work.
  auto big = Bytes(5u << 20, 77);
  auto w = Put({40, 0}, 0, big);
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  EXPECT_EQ(w->meta.slot_class_bytes, 16u << 20);
  std::vector<ReadRequest> reqs(4, ReadRequest{{40, 0}, 0, 5u << 20});
  auto res = store_->BatchRead(reqs);
  for (auto& r : res) {
    ASSERT_TRUE(r.status.ok()) << r.status.ToString();
    EXPECT_EQ(0, memcmp(r.data, big.data(), big.size()));
  }
  auto patch = Bytes(3, 78);
  ASSERT_TRUE(Put({40, 0}, (5u << 20) - 1, patch).ok());
  big.resize((5u << 20) + 2);
  std::copy(patch.begin(), patch.end(), big.begin() + (5u << 20) - 1);
  EXPECT_EQ(GetBytes({40, 0}), big);
}

// Reads racing overwrites of the same chunk must never report corruption:
// a read that saw the old record while its slot was reused retries.
TEST_F(ChunkStoreTest, ConcurrentReadersSeeWholeVersions) {
  constexpr uint32_t kLen = 64 << 10;
  auto make = [](uint32_t v) { return std::vector<uint8_t>(kLen, static_cast<uint8_t>(v)); };
  ASSERT_TRUE(Put({50, 0}, 0, make(1)).ok());
  std::atomic<bool> stop{false}, reading{false};
  std::atomic<int> failures{0};
  std::thread writer([&] {
    while (!reading) std::this_thread::yield();  // overlap even on a loaded machine
    for (uint32_t v = 2; v < 400 && !stop; v++) {
      if (!Put({50, 0}, 0, make(v)).ok()) failures++;
    }
    stop = true;
  });
  uint64_t reads = 0;
  while (!stop) {
    ReadResult r = Get({50, 0});
    if (!r.status.ok()) {
      failures++;
      ADD_FAILURE() << r.status.ToString();
      break;
    }
    reads++;
    reading = true;
    // Every byte belongs to the one version the read reports.
    for (uint32_t i = 0; i < r.length; i += 997) {
      if (r.data[i] != static_cast<uint8_t>(r.version)) {
        failures++;
        break;
      }
    }
  }
  stop = true;
  writer.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_GT(reads, 0u);
}

// ramfs refuses O_DIRECT (tmpfs accepts it since Linux 6.6) and fallocate:
// the store must say so in its log and keep working on buffered IO.
TEST(ChunkStoreFallback, BufferedIoWhereODirectIsRefused) {
  TestDir dir;
  ASSERT_FALSE(dir.path().empty());
  if (mount("ramfs", dir.path().c_str(), "ramfs", 0, nullptr) != 0) {
    GTEST_SKIP() << "cannot mount ramfs here (" << strerror(errno)
                 << "): needs CAP_SYS_ADMIN to test the O_DIRECT fallback";
  }
  struct Unmount {
    std::string p;
    ~Unmount() { umount2(p.c_str(), MNT_DETACH); }
  } unmount{dir.path()};
  int fd = open((dir.path() + "/probe").c_str(), O_CREAT | O_RDWR | O_DIRECT, 0644);
  ASSERT_LT(fd, 0) << "ramfs accepted O_DIRECT: this test needs another file system";
  ::testing::internal::CaptureStderr();
  auto s = ChunkStore::Open(SmallOptions(dir.path()));
  std::string log = ::testing::internal::GetCapturedStderr();
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_FALSE((*s)->direct_io());
  EXPECT_NE(log.find("refuses O_DIRECT"), std::string::npos) << log;
  EXPECT_NE(log.find("target 7"), std::string::npos) << log;
  std::vector<std::vector<uint8_t>> datas;
  for (uint64_t i = 0; i < 20; i++) {
    datas.push_back(Bytes(10000 + i * 5000, static_cast<uint32_t>(i)));
    WriteRequest w;
    w.chunk = {1, i};
    w.data = datas.back();
    w.crc = Crc32c(w.data.data(), w.data.size());
    ASSERT_TRUE((*s)->Write(w).ok());
  }
  for (uint64_t i = 0; i < 20; i++) {
    ReadRequest r{{1, i}, 0, 1 << 20};
    auto res = (*s)->BatchRead(std::span<const ReadRequest>(&r, 1));
    ASSERT_TRUE(res[0].status.ok()) << res[0].status.ToString();
    ASSERT_EQ(res[0].length, datas[i].size());
    EXPECT_EQ(0, memcmp(res[0].data, datas[i].data(), datas[i].size()));
  }
  s = Status(Code::kCancelled, "closed");  // close before unmounting
}

}  // namespace
}  // namespace sluice::data

namespace sluice::data {
namespace {

void FlipByte(const std::string& path, uint64_t offset) {
  int fd = open(path.c_str(), O_RDWR);
  ASSERT_GE(fd, 0) << path;
  uint8_t b;
  ASSERT_EQ(pread(fd, &b, 1, static_cast<off_t>(offset)), 1);
  b ^= 0x20;
  ASSERT_EQ(pwrite(fd, &b, 1, static_cast<off_t>(offset)), 1);
  close(fd);
}

TEST_F(ChunkStoreTest, CorruptByteOnDiskIsDetectedByReadAndScrub) {
  auto a = Bytes(1 << 20, 90), b = Bytes(200000, 91);
  auto wa = Put({60, 0}, 0, a);
  ASSERT_TRUE(wa.ok());
  ASSERT_TRUE(Put({60, 1}, 0, b).ok());
  ASSERT_TRUE(Put({61, 0}, 0, b, {.version = 0, .commit = false}).ok());  // a pending version
  store_.reset();  // nothing cached: the flipped byte must be caught from disk
  FlipByte(ChunkStore::DataFilePath(dir_.path(), wa->meta.slot_class_bytes),
           wa->meta.slot * wa->meta.slot_class_bytes + 5000);
  Reopen();

  ::testing::internal::CaptureStderr();
  ReadResult r = Get({60, 0});
  std::string log = ::testing::internal::GetCapturedStderr();
  ASSERT_EQ(r.status.code(), Code::kCorrupt) << "corrupt bytes were returned";
  EXPECT_EQ(r.data, nullptr);
  EXPECT_EQ(r.status.to_errno(), EIO);  // a checksum mismatch surfaces as EIO
  EXPECT_NE(r.status.message().find("target 7 chunk 60:0"), std::string::npos)
      << r.status.message();
  EXPECT_NE(r.status.message().find("block 1"), std::string::npos) << r.status.message();
  EXPECT_NE(log.find("target 7 chunk 60:0"), std::string::npos) << "no log line: " << log;
  EXPECT_EQ(store_->stats().corrupt_reads.load(), 1u);
  // Blocks the damage does not touch still read; so do other chunks.
  ReadResult clean = Get({60, 0}, 8192, 4096);
  ASSERT_TRUE(clean.status.ok()) << clean.status.ToString();
  EXPECT_EQ(0, memcmp(clean.data, a.data() + 8192, 4096));
  EXPECT_EQ(GetBytes({60, 1}), b);

  // A partial write must not launder the bad block into a new version.
  auto patch = Bytes(10, 92);
  auto pw = Put({60, 0}, 100000, patch);
  EXPECT_EQ(pw.status().code(), Code::kCorrupt);

  auto scrub = store_->Scrub();
  ASSERT_TRUE(scrub.ok()) << scrub.status().ToString();
  EXPECT_EQ(scrub->chunks_checked, 3u);
  ASSERT_EQ(scrub->bad.size(), 1u);
  EXPECT_EQ(scrub->bad[0].chunk, (ChunkId{60, 0}));
  EXPECT_NE(scrub->bad[0].status.message().find("target 7 chunk 60:0"), std::string::npos);

  // Corruption of a pending version is found by scrub too, and by the read
  // once it is committed (here in the last, short block).
  auto m = store_->Stat({61, 0});
  ASSERT_TRUE(m.ok());
  ASSERT_EQ(m->pending_version, 1u);
  store_.reset();
  FlipByte(ChunkStore::DataFilePath(dir_.path(), m->pending_slot_class_bytes),
           m->pending_slot * m->pending_slot_class_bytes + 199999);
  Reopen();
  scrub = store_->Scrub();
  ASSERT_TRUE(scrub.ok());
  ASSERT_EQ(scrub->bad.size(), 2u);
  EXPECT_TRUE(scrub->bad[1].pending);
  EXPECT_EQ(scrub->bad[1].chunk, (ChunkId{61, 0}));
  ASSERT_TRUE(store_->Commit({61, 0}, 1).ok());
  EXPECT_EQ(Get({61, 0}, 199999, 1).status.code(), Code::kCorrupt);

  // A whole rewrite repairs the chunk (e.g. resync from a replica).
  ASSERT_TRUE(store_->Install({60, 0}, 5, a, Crc32c(a.data(), a.size())).ok());
  EXPECT_EQ(GetBytes({60, 0}), a);
  ASSERT_TRUE(store_->Install({61, 0}, 1, b, Crc32c(b.data(), b.size())).ok());
  scrub = store_->Scrub();
  ASSERT_TRUE(scrub.ok());
  EXPECT_TRUE(scrub->bad.empty());
}

}  // namespace
}  // namespace sluice::data

namespace sluice::data {
namespace {

// Whole-chunk writes from aligned (registered) memory skip the copy; they
// must behave exactly like copied ones.
TEST_F(ChunkStoreTest, WholeChunkWritesFromAlignedBuffers) {
  IoBuffer buf = store_->AllocateBuffer(256 << 10);
  ASSERT_TRUE(buf.registered());
  auto data = Bytes(256 << 10, 55);
  memcpy(buf.data(), data.data(), data.size());
  WriteRequest w;
  w.chunk = {70, 0};
  w.data = std::span<const uint8_t>(buf.data(), data.size());
  w.crc = Crc32c(data.data(), data.size()) ^ 0x10;
  EXPECT_EQ(store_->Write(w).status().code(), Code::kCorrupt);
  w.crc ^= 0x10;
  auto r1 = store_->Write(w);
  ASSERT_TRUE(r1.ok()) << r1.status().ToString();
  EXPECT_EQ(GetBytes({70, 0}), data);
  // Overwrite: a longer chunk first, then the aligned whole-chunk write that
  // covers it.
  auto longer = Bytes(200 << 10, 56);
  ASSERT_TRUE(Put({70, 1}, 0, longer).ok());
  w.chunk = {70, 1};
  auto r2 = store_->Write(w);
  ASSERT_TRUE(r2.ok());
  EXPECT_EQ(r2->meta.version, 2u);
  EXPECT_EQ(GetBytes({70, 1}), data);
  // A shorter aligned write at 0 does not replace the whole chunk: it merges.
  w.data = std::span<const uint8_t>(buf.data(), 8192);
  w.crc = Crc32c(buf.data(), 8192);
  w.chunk = {70, 0};
  ASSERT_TRUE(store_->Write(w).ok());
  EXPECT_EQ(GetBytes({70, 0}), data);
}

}  // namespace
}  // namespace sluice::data

namespace sluice::data {
namespace {

// Several callers hammer overlapping chunks with batched writes, truncates,
// removes and reads. Nothing may deadlock, fail, or trip the slot-ownership
// invariants; afterwards every chunk reads back with a matching CRC and a
// reopen (which rebuilds the allocators from the records) succeeds.
TEST_F(ChunkStoreTest, ConcurrentMixedOperations) {
  std::atomic<int> errors{0};
  auto worker = [&](int t) {
    std::mt19937 rng(t);
    for (int i = 0; i < 150; i++) {
      int op = rng() % 10;
      if (op < 5) {
        std::vector<std::vector<uint8_t>> datas;
        std::vector<WriteRequest> reqs;
        for (int k = 0; k < 3; k++) {
          datas.push_back(Bytes(1 + rng() % 100000, rng()));
          WriteRequest w;
          w.chunk = {80, rng() % 6};
          w.offset = rng() % 200000;
          w.data = datas.back();
          w.crc = Crc32c(w.data.data(), w.data.size());
          reqs.push_back(w);
        }
        for (auto& r : store_->BatchWrite(reqs)) {
          if (!r.ok()) errors++;
        }
      } else if (op < 6) {
        if (!store_->Truncate({80, rng() % 6}, rng() % 300000).ok()) errors++;
      } else if (op < 7) {
        ChunkId id{80, rng() % 6};
        if (!store_->Remove(std::span<const ChunkId>(&id, 1)).ok()) errors++;
      } else {
        std::vector<ReadRequest> reqs;
        for (int k = 0; k < 4; k++) reqs.push_back({{80, rng() % 6}, 0, kMaxChunkSize});
        for (auto& r : store_->BatchRead(reqs)) {
          if (!r.status.ok() && r.status.code() != Code::kNotFound) {
            ADD_FAILURE() << r.status.ToString();
            errors++;
          } else if (r.status.ok() && r.crc != Crc32c(r.data, r.length)) {
            errors++;
          }
        }
      }
    }
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; t++) threads.emplace_back(worker, t);
  for (auto& t : threads) t.join();
  EXPECT_EQ(errors.load(), 0);
  auto scrub = store_->Scrub();
  ASSERT_TRUE(scrub.ok());
  EXPECT_TRUE(scrub->bad.empty());
  Reopen();
  auto all = store_->ListFile(80);
  ASSERT_TRUE(all.ok());
  for (const ChunkMeta& m : *all) {
    auto bytes = GetBytes(m.chunk);
    EXPECT_EQ(Crc32c(bytes.data(), bytes.size()), m.crc);
  }
}

}  // namespace
}  // namespace sluice::data
