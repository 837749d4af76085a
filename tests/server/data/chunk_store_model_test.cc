// Randomized model test: a seeded sequence of writes (single and batched,
// with repeated chunks), truncates, pending writes + commits/drops, installs
// and removes, checked after every step against an in-memory model and
// across reopens. The seed is printed; replay with SLUICE_MODEL_SEED=<seed>.
#include <gtest/gtest.h>

#include <map>
#include <random>

#include "common/crc32c.h"
#include "server/data/chunk_store.h"
#include "tests/server/data/test_dir.h"

namespace sluice::data {
namespace {

struct ModelChunk {
  uint64_t version = 0;
  std::vector<uint8_t> bytes;
  bool has_pending = false;
  std::vector<uint8_t> pending_bytes;
};

TEST(ChunkStoreModel, RandomOperationsMatchModelAcrossReopens) {
  uint64_t seed = std::random_device()();
  if (const char* s = std::getenv("SLUICE_MODEL_SEED")) seed = std::strtoull(s, nullptr, 10);
  std::printf("model test seed=%llu (replay: SLUICE_MODEL_SEED=%llu)\n",
              static_cast<unsigned long long>(seed), static_cast<unsigned long long>(seed));
  SCOPED_TRACE("seed " + std::to_string(seed));
  testing::TestDir dir;
  ASSERT_FALSE(dir.path().empty());
  ChunkStoreOptions o;
  o.dir = dir.path();
  o.sync_writes = false;
  o.grow_bytes = 1u << 20;
  o.buffer_arena_bytes = 8u << 20;
  o.io_rings = 1;
  auto opened = ChunkStore::Open(o);
  ASSERT_TRUE(opened.ok());
  std::unique_ptr<ChunkStore> store = std::move(opened.value());

  std::mt19937_64 rng(seed);
  constexpr uint32_t kChunkSize = 300000;  // spans the 64K, 256K and 1M classes
  std::map<uint64_t, ModelChunk> model;    // chunk index -> state (inode 9)
  auto random_bytes = [&](size_t n) {
    std::vector<uint8_t> v(n);
    for (auto& b : v) b = static_cast<uint8_t>(rng());
    return v;
  };
  auto apply_write = [](std::vector<uint8_t> base, uint32_t off, const std::vector<uint8_t>& d) {
    if (base.size() < off + d.size()) base.resize(off + d.size(), 0);
    std::copy(d.begin(), d.end(), base.begin() + off);
    return base;
  };
  auto check = [&](uint64_t idx) {
    auto it = model.find(idx);
    ReadRequest rq{{9, idx}, 0, kChunkSize};
    auto r = store->BatchRead(std::span<const ReadRequest>(&rq, 1));
    if (it == model.end() || it->second.version == 0) {
      ASSERT_EQ(r[0].status.code(), Code::kNotFound) << "chunk " << idx;
      auto m = store->Stat({9, idx});
      if (it != model.end() && it->second.has_pending) {  // pending only
        ASSERT_TRUE(m.ok()) << "chunk " << idx << ": " << m.status().ToString();
        ASSERT_EQ(m->version, 0u);
        ASSERT_EQ(m->pending_version, 1u);
      } else {
        ASSERT_EQ(m.status().code(), Code::kNotFound) << "chunk " << idx;
      }
      return;
    }
    ASSERT_TRUE(r[0].status.ok()) << r[0].status.ToString();
    ASSERT_EQ(r[0].version, it->second.version) << "chunk " << idx;
    ASSERT_EQ(std::vector<uint8_t>(r[0].data, r[0].data + r[0].length), it->second.bytes)
        << "chunk " << idx;
    auto m = store->Stat({9, idx});
    ASSERT_TRUE(m.ok());
    ASSERT_EQ(m->pending_version, it->second.has_pending ? it->second.version + 1 : 0);
  };

  for (int step = 0; step < 400; step++) {
    SCOPED_TRACE("step " + std::to_string(step));
    uint64_t idx = rng() % 12;
    ModelChunk& mc = model[idx];
    int op = rng() % 100;
    if (op < 40) {  // batch of writes, possibly repeating a chunk
      size_t n = 1 + rng() % 4;
      std::vector<std::vector<uint8_t>> datas;
      std::vector<WriteRequest> reqs;
      std::vector<uint64_t> idxs;
      for (size_t k = 0; k < n; k++) {
        uint64_t c = (k == 0 || rng() % 3 == 0) ? idx : rng() % 12;
        datas.push_back(random_bytes(1 + rng() % 70000));
        idxs.push_back(c);
      }
      for (size_t k = 0; k < n; k++) {
        WriteRequest w;
        w.chunk = {9, idxs[k]};
        // Half at 0 (often replacing the whole chunk), a quarter block-aligned.
        w.offset = static_cast<uint32_t>(rng() % 2 ? 0 : rng() % (kChunkSize - datas[k].size()));
        if (rng() % 2) w.offset = w.offset / 4096 * 4096;
        w.data = datas[k];
        w.crc = Crc32c(datas[k].data(), datas[k].size());
        w.chunk_size = kChunkSize;
        reqs.push_back(w);
      }
      auto res = store->BatchWrite(reqs);
      for (size_t k = 0; k < n; k++) {
        ModelChunk& t = model[idxs[k]];
        if (t.has_pending) {
          ASSERT_EQ(res[k].status().code(), Code::kBusy);
          continue;
        }
        ASSERT_TRUE(res[k].ok()) << res[k].status().ToString();
        t.bytes = apply_write(t.bytes, reqs[k].offset, datas[k]);
        t.version++;
        ASSERT_EQ(res[k]->meta.version, t.version);
        ASSERT_EQ(res[k]->meta.crc, Crc32c(t.bytes.data(), t.bytes.size()));
      }
    } else if (op < 50) {  // truncate
      uint32_t len = rng() % kChunkSize;
      auto r = store->Truncate({9, idx}, len, {}, kChunkSize);
      if (mc.has_pending) {
        ASSERT_EQ(r.status().code(), Code::kBusy);
      } else {
        ASSERT_TRUE(r.ok()) << r.status().ToString();
        mc.bytes.resize(len, 0);
        mc.version++;
      }
    } else if (op < 65) {  // pending write (head of a chain), maybe replacing a pending one
      auto d = random_bytes(1 + rng() % 50000);
      uint32_t off = rng() % (kChunkSize - d.size());
      WriteRequest w;
      w.chunk = {9, idx};
      w.offset = off;
      w.data = d;
      w.crc = Crc32c(d.data(), d.size());
      w.chunk_size = kChunkSize;
      w.update = {.version = mc.version + 1, .commit = false};
      auto r = store->Write(w);
      ASSERT_TRUE(r.ok()) << r.status().ToString();
      mc.has_pending = true;
      mc.pending_bytes = apply_write(mc.bytes, off, d);
    } else if (op < 78) {  // commit or drop the pending version, if any
      if (!mc.has_pending) {
        // nothing in flight (no `continue`: the checks below must still run)
      } else if (rng() % 4) {
        auto r = store->Commit({9, idx}, mc.version + 1);
        ASSERT_TRUE(r.ok()) << r.status().ToString();
        mc.bytes = mc.pending_bytes;
        mc.version++;
      } else {
        ASSERT_TRUE(store->DropPending({9, idx}, mc.version + 1).ok());
      }
      mc.has_pending = false;
    } else if (op < 85) {  // install (resync) a higher version
      auto d = random_bytes(rng() % kChunkSize);
      uint64_t v = mc.version + 1 + rng() % 3;
      auto r = store->Install({9, idx}, v, d, Crc32c(d.data(), d.size()));
      ASSERT_TRUE(r.ok()) << r.status().ToString();
      mc.bytes = d;
      mc.version = v;
      mc.has_pending = false;
    } else if (op < 92) {  // remove
      ChunkId id{9, idx};
      auto r = store->Remove(std::span<const ChunkId>(&id, 1));
      ASSERT_TRUE(r.ok());
      ASSERT_EQ(*r, (mc.version > 0 || mc.has_pending) ? 1u : 0u);
      model.erase(idx);
    } else if (op < 95) {  // reopen
      store.reset();
      auto again = ChunkStore::Open(o);
      ASSERT_TRUE(again.ok()) << again.status().ToString();
      store = std::move(again.value());
    } else {  // scrub
      auto s = store->Scrub();
      ASSERT_TRUE(s.ok());
      ASSERT_TRUE(s->bad.empty()) << s->bad[0].status.ToString();
    }
    // Drop model entries for chunks that never existed.
    for (auto it = model.begin(); it != model.end();) {
      if (it->second.version == 0 && !it->second.has_pending) {
        it = model.erase(it);
      } else {
        ++it;
      }
    }
    for (uint64_t c = 0; c < 12; c++) {
      check(c);
      if (HasFatalFailure()) return;
    }
  }
  auto all = store->ListChunks(nullptr, 100);
  ASSERT_TRUE(all.ok());
  std::string listed, modeled;
  for (const ChunkMeta& m : *all) listed += " " + std::to_string(m.chunk.index);
  for (auto& [idx, mc] : model) modeled += " " + std::to_string(idx);
  EXPECT_EQ(listed, modeled) << "ListChunks vs model";
  // No slot leaked or lost: one per non-empty version the model holds.
  uint64_t want_slots = 0, used = 0;
  for (auto& [idx, mc] : model) {
    want_slots += (mc.version > 0 && !mc.bytes.empty()) + (mc.has_pending && !mc.pending_bytes.empty());
  }
  for (const SizeClassUsage& u : store->SpaceUsage()) used += u.used_slots;
  EXPECT_EQ(used, want_slots);
}

}  // namespace
}  // namespace sluice::data
