// libsluice against a real local cluster: started once for the suite by
// `sluice cluster start --config` in a mkdtemp directory on free ports, and
// stopped (then any leftover pid killed) when the suite ends, even on failure.
#include <fcntl.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "client/sluice.h"
#include "client/sluice_client.h"
#include "common/data_client.h"
#include "tests/common/test_util.h"

namespace sluice::client {
namespace {

using test::FreePort;

// One cluster for the suite (test::LocalClusterSuite), stopped even when a test fails.
class ClientTest : public test::LocalClusterSuite<ClientTest> {
 public:
  static test::LocalCluster::Options ClusterOptions() {
    test::LocalCluster::Options o;
    o.name = "clienttest";
    return o;
  }

 protected:
  static const std::string& Cfg() { return cluster().config(); }
  void SetUpWithCluster() override {
    ClientOptions o;
    o.cluster = Cfg();
    auto c = Client::Connect(o);
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    c_ = std::move(c.value());
  }
  std::unique_ptr<Client> Second() {
    ClientOptions o;
    o.cluster = Cfg();
    auto c = Client::Connect(o);
    EXPECT_TRUE(c.ok()) << c.status().ToString();
    return c.ok() ? std::move(c.value()) : nullptr;
  }
  std::unique_ptr<Client> c_;
};

std::vector<char> Random(size_t n, uint64_t seed) {
  std::vector<char> v(n);
  std::mt19937_64 r(seed);
  for (auto& b : v) b = static_cast<char>(r());
  return v;
}

TEST_F(ClientTest, StripedWriteReadBackAcrossChains) {
  auto data = Random(10 * (1 << 20) + 12345, 1);
  auto f = c_->Open("/striped", O_CREAT | O_WRONLY | O_TRUNC, 0644);
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  // Odd-sized writes: exercise the write-behind buffer and chunk boundaries.
  for (size_t off = 0; off < data.size(); off += 100000) {
    size_t n = std::min<size_t>(100000, data.size() - off);
    auto w = (*f)->Write(data.data() + off, n);
    ASSERT_TRUE(w.ok()) << w.status().ToString();
  }
  InodeAttr attr = (*f)->attr();
  ASSERT_TRUE((*f)->Close().ok());
  std::set<uint32_t> chains;
  for (uint64_t i = 0; i < 10; ++i) chains.insert(c_->ChainOf(attr, i));
  EXPECT_GE(chains.size(), 2u) << "chunks of one file should rotate over several chains";

  auto st = c_->Stat("/striped");
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->size(), data.size());
  auto r = c_->Open("/striped", O_RDONLY);
  ASSERT_TRUE(r.ok());
  std::vector<char> back(data.size() + 100);
  size_t got = 0;
  // Pieces that straddle the read-ahead windows: every read is full until EOF.
  const size_t piece = 777777;
  for (;;) {
    auto n = (*r)->Read(back.data() + got, piece);
    ASSERT_TRUE(n.ok()) << n.status().ToString();
    if (*n == 0) break;
    if (got + piece <= data.size()) {
      ASSERT_EQ(*n, piece) << "short read at " << got << " before end of file";
    }
    got += *n;
  }
  ASSERT_EQ(got, data.size());
  EXPECT_TRUE(std::equal(data.begin(), data.end(), back.begin()));
  // A random pread in the middle (not sequential: bypasses read-ahead).
  std::vector<char> mid(3000);
  auto n = (*r)->Pread(mid.data(), mid.size(), 5 * (1 << 20) - 1000);
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(0, std::memcmp(mid.data(), data.data() + 5 * (1 << 20) - 1000, mid.size()));
  EXPECT_GT(c_->stats().read_ahead_hits.load(), 0u);
}

// IOR-hard-style strided reads (every other 47008-byte block) are served by
// read-ahead windows and return the right bytes; sparser strides are not.
TEST_F(ClientTest, StridedReadsUseReadAhead) {
  const size_t block = 47008, blocks = 200;
  auto data = Random(block * blocks, 7);
  {
    auto f = c_->Open("/strided", O_CREAT | O_WRONLY | O_TRUNC, 0644);
    ASSERT_TRUE(f.ok()) << f.status().ToString();
    ASSERT_TRUE((*f)->Write(data.data(), data.size()).ok());
    ASSERT_TRUE((*f)->Close().ok());
  }
  auto read_every = [&](size_t stride) -> uint64_t {
    auto r = c_->Open("/strided", O_RDONLY);
    EXPECT_TRUE(r.ok());
    uint64_t hits0 = c_->stats().read_ahead_hits.load();
    std::vector<char> got(block);
    for (size_t b = 1; b < blocks; b += stride) {
      auto n = (*r)->Pread(got.data(), block, b * block);
      EXPECT_TRUE(n.ok() && *n == block) << "block " << b;
      EXPECT_EQ(0, std::memcmp(got.data(), data.data() + b * block, block)) << "block " << b;
    }
    return c_->stats().read_ahead_hits.load() - hits0;
  };
  EXPECT_GT(read_every(2), 50u) << "every other block: read-ahead should serve most reads";
  EXPECT_EQ(read_every(5), 0u) << "one block in five: no read-ahead (it would fetch 5x the data)";
}

TEST_F(ClientTest, HolesReadZerosAndOffsetsPast4GiB) {
  auto f = c_->Open("/holes", O_CREAT | O_RDWR | O_TRUNC, 0644);
  ASSERT_TRUE(f.ok());
  uint64_t far = (5ull << 30) + 17;
  ASSERT_TRUE((*f)->Pwrite("end", 3, far).ok());
  ASSERT_TRUE((*f)->Pwrite("start", 5, 0).ok());
  ASSERT_TRUE((*f)->Fsync().ok());
  EXPECT_EQ((*f)->Size(), far + 3);
  std::vector<char> buf(1 << 20, 'x');
  auto n = (*f)->Pread(buf.data(), buf.size(), 3ull << 30);
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  EXPECT_EQ(*n, buf.size());
  EXPECT_TRUE(std::all_of(buf.begin(), buf.end(), [](char c) { return c == 0; }));
  char tail[8] = {};
  n = (*f)->Pread(tail, 8, far - 2);
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 5u);
  EXPECT_EQ(std::string(tail, 5), std::string("\0\0end", 5));
  ASSERT_TRUE((*f)->Close().ok());
  auto other = Second();
  ASSERT_TRUE(other);
  auto st = other->Stat("/holes");
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->size(), far + 3) << "length reported on close, seen by another client";
}

// Rewrites of the same bytes land in the order they were written, though
// write-behind sends its buffers on a pool of threads: a later write that
// overlaps an earlier one still in flight must wait for it (else the older
// bytes could land last and the newest write would be lost). A client with
// a 64 KiB write-behind buffer, so that buffers really go out while the
// test keeps writing.
TEST_F(ClientTest, OverlappingRewritesLandInOrder) {
  ClientOptions o;
  o.cluster = Cfg();
  o.write_behind_bytes = 64u << 10;
  auto small = Client::Connect(o);
  ASSERT_TRUE(small.ok()) << small.status().ToString();
  auto f = (*small)->Open("/rewrites", O_CREAT | O_RDWR | O_TRUNC, 0644);
  ASSERT_TRUE(f.ok());
  const size_t kBlock = 4096;
  std::string far(64u << 10, 'z');
  for (int round = 0; round < 40; round++) {
    std::string v(kBlock, static_cast<char>('a' + round % 26));
    v[0] = static_cast<char>(round);
    ASSERT_TRUE((*f)->Pwrite(v.data(), v.size(), 0).ok());  // buffered
    // A write of the buffer's size elsewhere sends the buffered rewrite off
    // in the background, then goes out itself.
    ASSERT_TRUE((*f)->Pwrite(far.data(), far.size(), (3u << 20) + static_cast<uint64_t>(round) * far.size()).ok());
  }
  ASSERT_TRUE((*f)->Close().ok());
  auto other = Second();
  ASSERT_TRUE(other);
  auto g = other->Open("/rewrites", O_RDONLY);
  ASSERT_TRUE(g.ok());
  std::vector<char> back(kBlock);
  auto n = (*g)->Pread(back.data(), back.size(), 0);
  ASSERT_TRUE(n.ok());
  ASSERT_EQ(*n, kBlock);
  EXPECT_EQ(static_cast<int>(back[0]), 39) << "an older rewrite landed after the newest one";
  EXPECT_EQ(back[1], static_cast<char>('a' + 39 % 26));

  // A newer rewrite written by truncate (synchronously, not on the pool)
  // while an older, larger write of the same bytes (its payload moved by
  // RMA) is still in flight: a 2 MiB buffer is filled by 1 MiB at 0 and
  // 1 MiB far away, which sends both off; then 4 KiB at 0 and a truncate.
  o.write_behind_bytes = 2u << 20;
  auto mid = Client::Connect(o);
  ASSERT_TRUE(mid.ok()) << mid.status().ToString();
  auto h = (*mid)->Open("/rewrites2", O_CREAT | O_RDWR | O_TRUNC, 0644);
  ASSERT_TRUE(h.ok());
  for (int round = 0; round < 20; round++) {
    std::string v(1u << 20, static_cast<char>(round));
    ASSERT_TRUE((*h)->Pwrite(v.data(), v.size(), 0).ok());
    ASSERT_TRUE((*h)->Pwrite(v.data(), v.size(), 8u << 20).ok());
    std::string w(kBlock, static_cast<char>(100 + round));
    ASSERT_TRUE((*h)->Pwrite(w.data(), w.size(), 0).ok());
    ASSERT_TRUE((*h)->Truncate((10u << 20) + static_cast<uint64_t>(round)).ok());
    auto k = other->Open("/rewrites2", O_RDONLY);
    ASSERT_TRUE(k.ok());
    char first = 0;
    ASSERT_TRUE((*k)->Pread(&first, 1, 0).ok());
    ASSERT_EQ(static_cast<int>(first), 100 + round) << "round " << round << ": an older write landed last";
  }
  ASSERT_TRUE((*h)->Close().ok());
}

// Random writes, reads and truncates of one file, each checked against an
// in-memory copy: write-behind, read-ahead, striping over chunks and chains
// and truncation must together behave like a plain file. After close,
// another client reads exactly the same bytes.
TEST_F(ClientTest, RandomOpsMatchAModelFile) {
  // SLUICE_MODEL_SEED=N reruns another sequence.
  const char* env_seed = std::getenv("SLUICE_MODEL_SEED");
  const uint64_t seed = env_seed ? std::strtoull(env_seed, nullptr, 10) : 20261125;
  SCOPED_TRACE("SLUICE_MODEL_SEED=" + std::to_string(seed));
  std::mt19937_64 rng(seed);
  auto f = c_->Open("/model", O_CREAT | O_RDWR | O_TRUNC, 0644);
  ASSERT_TRUE(f.ok());
  std::string model;
  const uint64_t kSpan = (7u << 20) / 2;  // 3.5 MiB: chunks on every chain
  auto pick_len = [&]() -> size_t {
    switch (rng() % 4) {
      case 0: return 1 + rng() % 100;
      case 1: return 1 + rng() % 8192;
      case 2: return 60000 + rng() % 10000;
      default: return 1 + rng() % (1536u << 10);
    }
  };
  const int kOps = std::getenv("SLUICE_MODEL_OPS") ? std::atoi(std::getenv("SLUICE_MODEL_OPS")) : 250;
  for (int op = 0; op < kOps; op++) {
    uint64_t kind = rng() % 10;
    if (kind < 5) {  // write
      uint64_t off = rng() % kSpan;
      size_t len = pick_len();
      if (rng() % 3 == 0 && !model.empty()) off = model.size();  // sequential runs too
      std::string data(len, '\0');
      for (auto& ch : data) ch = static_cast<char>(rng());
      auto w = (*f)->Pwrite(data.data(), len, off);
      ASSERT_TRUE(w.ok()) << "op " << op << ": " << w.status().ToString();
      if (model.size() < off + len) model.resize(off + len, '\0');
      model.replace(off, len, data);
    } else if (kind < 8) {  // read
      uint64_t off = rng() % (kSpan + 4096);
      size_t len = pick_len();
      std::string back(len, '\x55');
      auto r = (*f)->Pread(back.data(), len, off);
      ASSERT_TRUE(r.ok()) << "op " << op << ": " << r.status().ToString();
      size_t want = off >= model.size() ? 0 : std::min<size_t>(len, model.size() - off);
      ASSERT_EQ(*r, want) << "op " << op << ": read " << len << " at " << off << " of a "
                          << model.size() << "-byte file";
      ASSERT_TRUE(want == 0 || back.compare(0, want, model, off, want) == 0)
          << "op " << op << ": bytes differ reading " << len << " at " << off;
    } else if (kind == 8) {  // truncate
      uint64_t to = rng() % kSpan;
      ASSERT_TRUE((*f)->Truncate(to).ok()) << "op " << op;
      model.resize(to, '\0');
    } else {
      ASSERT_TRUE((*f)->Fsync().ok()) << "op " << op;
    }
  }
  ASSERT_TRUE((*f)->Close().ok());
  auto other = Second();
  ASSERT_TRUE(other);
  auto g = other->Open("/model", O_RDONLY);
  ASSERT_TRUE(g.ok());
  EXPECT_EQ((*g)->Size(), model.size());
  std::string back(model.size() + 10, '\x55');
  auto r = (*g)->Pread(back.data(), back.size(), 0);
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(*r, model.size());
  EXPECT_TRUE(back.compare(0, model.size(), model) == 0) << "another client reads other bytes after close";
}

// Threads (of one client, and one of a second client) each write and read
// their own region of one file at random, regions sharing chunks (1.5 MiB
// regions over 1 MiB chunks), each
// checking its reads against its own copy: concurrent buffered writes,
// partial-chunk copy-on-write from several writers and reads must never
// mix up or lose bytes. Then another client reads the whole file.
TEST_F(ClientTest, ConcurrentRegionsOfOneFileMatchTheirModels) {
  constexpr int kThreads = 3;
  constexpr uint64_t kRegion = 3u << 19;  // 1.5 MiB
  {
    auto f = c_->Open("/regions", O_CREAT | O_RDWR | O_TRUNC, 0644);
    ASSERT_TRUE(f.ok());
    ASSERT_TRUE((*f)->Truncate(kThreads * kRegion).ok());
    ASSERT_TRUE((*f)->Close().ok());
  }
  std::vector<std::string> models(kThreads, std::string(kRegion, '\0'));
  std::vector<std::string> failures(kThreads);
  auto second_writer = Second();  // the middle region's writer is another client
  ASSERT_TRUE(second_writer);
  std::vector<std::thread> ts;
  for (int t = 0; t < kThreads; t++) {
    ts.emplace_back([&, t] {
      std::mt19937_64 rng(1000 + t);
      Client* client = t == 1 ? second_writer.get() : c_.get();
      auto f = client->Open("/regions", O_RDWR);
      if (!f.ok()) {
        failures[t] = f.status().ToString();
        return;
      }
      const uint64_t base = t * kRegion;
      std::string& m = models[t];
      for (int op = 0; op < 150 && failures[t].empty(); op++) {
        uint64_t off = rng() % kRegion;
        size_t len = std::min<uint64_t>(kRegion - off, 1 + rng() % (rng() % 2 ? 5000 : 300000));
        if (rng() % 2) {
          std::string data(len, '\0');
          for (auto& ch : data) ch = static_cast<char>(rng());
          auto w = (*f)->Pwrite(data.data(), len, base + off);
          if (!w.ok()) failures[t] = "write: " + w.status().ToString();
          m.replace(off, len, data);
        } else if (rng() % 5) {
          std::string back(len, '\0');
          auto r = (*f)->Pread(back.data(), len, base + off);
          if (!r.ok() || *r != len || back.compare(0, len, m, off, len) != 0) {
            failures[t] = "op " + std::to_string(op) + ": read " + std::to_string(len) + " at " +
                          std::to_string(base + off) + " differs from what this thread wrote";
          }
        } else if (!(*f)->Fsync().ok()) {
          failures[t] = "fsync";
        }
      }
      if (!(*f)->Close().ok()) failures[t] = "close";
    });
  }
  for (auto& t : ts) t.join();
  for (int t = 0; t < kThreads; t++) EXPECT_EQ(failures[t], "") << "thread " << t;
  auto other = Second();
  ASSERT_TRUE(other);
  auto g = other->Open("/regions", O_RDONLY);
  ASSERT_TRUE(g.ok());
  std::string all(kThreads * kRegion, '\0');
  auto r = (*g)->Pread(all.data(), all.size(), 0);
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(*r, all.size());
  for (int t = 0; t < kThreads; t++) {
    EXPECT_TRUE(all.compare(t * kRegion, kRegion, models[t]) == 0) << "region " << t << " read by another client";
  }
}

// IOR-hard's pattern through one client (as a FUSE mount serves several
// processes): threads with their own handles write interleaved 47008-byte
// blocks of one shared file at once; every block reads back as written.
TEST_F(ClientTest, InterleavedBlocksFromManyThreadsOfOneClient) {
  constexpr int kThreads = 4, kSegments = 24;
  constexpr size_t kBlock = 47008;
  auto block = [](int t, int s) {
    std::string b(kBlock, static_cast<char>('A' + t));
    std::memcpy(b.data(), &s, sizeof s);
    return b;
  };
  {
    auto f = c_->Open("/interleaved", O_CREAT | O_RDWR | O_TRUNC, 0644);
    ASSERT_TRUE(f.ok());
    ASSERT_TRUE((*f)->Close().ok());
  }
  std::vector<std::thread> ts;
  std::atomic<int> errors{0};
  for (int t = 0; t < kThreads; t++) {
    ts.emplace_back([&, t] {
      auto f = c_->Open("/interleaved", O_WRONLY);
      if (!f.ok()) {
        errors++;
        return;
      }
      for (int s = 0; s < kSegments; s++) {
        std::string b = block(t, s);
        if (!(*f)->Pwrite(b.data(), b.size(), (static_cast<uint64_t>(s) * kThreads + t) * kBlock).ok()) errors++;
      }
      if (!(*f)->Close().ok()) errors++;
    });
  }
  for (auto& t : ts) t.join();
  ASSERT_EQ(errors.load(), 0);
  auto other = Second();
  ASSERT_TRUE(other);
  auto g = other->Open("/interleaved", O_RDONLY);
  ASSERT_TRUE(g.ok());
  ASSERT_EQ((*g)->Size(), kThreads * kSegments * kBlock);
  std::string back(kBlock, '\0');
  for (int s = 0; s < kSegments; s++) {
    for (int t = 0; t < kThreads; t++) {
      auto r = (*g)->Pread(back.data(), kBlock, (static_cast<uint64_t>(s) * kThreads + t) * kBlock);
      ASSERT_TRUE(r.ok());
      ASSERT_EQ(*r, kBlock);
      ASSERT_TRUE(back == block(t, s)) << "block of thread " << t << ", segment " << s;
    }
  }
}

// One writer's strided blocks (IOR-hard with two ranks, seen from one of
// them) wait in write-behind as separate extents; those that share a chunk go
// out as one multi-range chunk write, not one write per block.
TEST_F(ClientTest, StridedBlocksOfOneChunkGoOutAsOneWrite) {
  constexpr size_t kBlock = 47008;
  constexpr int kBlocks = 40;  // every other block of 80: about 3.6 MiB, 4 chunks
  auto block = [](int i) {
    std::string b(kBlock, static_cast<char>('a' + i % 26));
    std::memcpy(b.data(), &i, sizeof i);
    return b;
  };
  uint64_t before = c_->stats().chunk_writes.load();
  {
    auto f = c_->Open("/strided", O_CREAT | O_RDWR | O_TRUNC, 0644);
    ASSERT_TRUE(f.ok());
    for (int i = 0; i < kBlocks; i++) {
      std::string b = block(i);
      ASSERT_TRUE((*f)->Pwrite(b.data(), b.size(), uint64_t{2} * i * kBlock).ok());
    }
    ASSERT_TRUE((*f)->Close().ok());
  }
  const uint64_t end = (uint64_t{2} * (kBlocks - 1) + 1) * kBlock;
  const uint64_t chunks = (end + (1u << 20) - 1) >> 20;
  uint64_t writes = c_->stats().chunk_writes.load() - before;
  EXPECT_LE(writes, chunks + 2) << "40 blocks in " << chunks << " chunks took " << writes << " chunk writes";
  auto other = Second();
  ASSERT_TRUE(other);
  auto g = other->Open("/strided", O_RDONLY);
  ASSERT_TRUE(g.ok());
  ASSERT_EQ((*g)->Size(), end);
  std::string back(2 * kBlock, '\x55');
  const std::string zeros(kBlock, '\0');
  for (int i = 0; i < kBlocks; i++) {
    size_t want = i + 1 < kBlocks ? 2 * kBlock : kBlock;
    auto r = (*g)->Pread(back.data(), want, uint64_t{2} * i * kBlock);
    ASSERT_TRUE(r.ok());
    ASSERT_EQ(*r, want);
    ASSERT_TRUE(back.compare(0, kBlock, block(i)) == 0) << "block " << i;
    if (want > kBlock) {
      ASSERT_TRUE(back.compare(kBlock, kBlock, zeros) == 0) << "the hole after block " << i;
    }
  }
}

TEST_F(ClientTest, TruncateDownAndUpDropsOldBytes) {
  auto data = Random(3 << 20, 2);
  auto f = c_->Open("/trunc", O_CREAT | O_RDWR | O_TRUNC, 0644);
  ASSERT_TRUE(f.ok());
  ASSERT_TRUE((*f)->Pwrite(data.data(), data.size(), 0).ok());
  ASSERT_TRUE((*f)->Truncate(1000).ok());
  ASSERT_TRUE((*f)->Truncate(2 << 20).ok());
  std::vector<char> back(2 << 20);
  auto n = (*f)->Pread(back.data(), back.size(), 0);
  ASSERT_TRUE(n.ok());
  ASSERT_EQ(*n, back.size());
  EXPECT_EQ(0, std::memcmp(back.data(), data.data(), 1000));
  EXPECT_TRUE(std::all_of(back.begin() + 1000, back.end(), [](char c) { return c == 0; }));
  ASSERT_TRUE((*f)->Close().ok());
}

TEST_F(ClientTest, BatchReadCompletesEveryItemOnce) {
  auto a = Random(4 << 20, 3), b = Random(3 << 20, 4);
  for (auto& [name, d] : {std::pair{"/ba", &a}, std::pair{"/bb", &b}}) {
    auto f = c_->Open(name, O_CREAT | O_WRONLY | O_TRUNC, 0644);
    ASSERT_TRUE(f.ok());
    ASSERT_TRUE((*f)->Pwrite(d->data(), d->size(), 0).ok());
    ASSERT_TRUE((*f)->Close().ok());
  }
  auto fa = c_->Open("/ba", O_RDONLY), fb = c_->Open("/bb", O_RDONLY);
  ASSERT_TRUE(fa.ok() && fb.ok());
  std::mt19937_64 r(5);
  std::vector<BatchReadItem> items(64);
  std::vector<std::vector<char>> bufs(items.size());
  for (size_t i = 0; i < items.size(); ++i) {
    bool first = i % 2 == 0;
    auto& d = first ? a : b;
    items[i].file = first ? fa->get() : fb->get();
    items[i].length = 1 + r() % 300000;
    items[i].offset = r() % d.size();
    bufs[i].resize(items[i].length);
    items[i].dest = bufs[i].data();
  }
  items[7].offset = b.size() + 10;  // past the end of /bb: 0 bytes
  std::vector<std::atomic<int>> done(items.size());
  ASSERT_TRUE(c_->BatchRead(items, [&](size_t i) { done[i]++; }).ok());
  for (size_t i = 0; i < items.size(); ++i) {
    EXPECT_EQ(done[i].load(), 1) << "item " << i;
    ASSERT_TRUE(items[i].status.ok()) << items[i].status.ToString();
    auto& d = i % 2 == 0 ? a : b;
    size_t want = items[i].offset >= d.size() ? 0 : std::min<size_t>(items[i].length, d.size() - items[i].offset);
    ASSERT_EQ(items[i].bytes, want) << "item " << i;
    EXPECT_EQ(0, std::memcmp(bufs[i].data(), d.data() + std::min(items[i].offset, d.size()), want)) << "item " << i;
  }
}

// A batch read sees what this client wrote just before, still buffered.
TEST_F(ClientTest, BatchReadSeesThisClientsBufferedWrites) {
  auto f = c_->Open("/bbuf", O_CREAT | O_RDWR | O_TRUNC, 0644);
  ASSERT_TRUE(f.ok());
  std::string old(100000, 'o');
  ASSERT_TRUE((*f)->Pwrite(old.data(), old.size(), 0).ok());
  ASSERT_TRUE((*f)->Fsync().ok());
  std::string fresh(5000, 'n');
  ASSERT_TRUE((*f)->Pwrite(fresh.data(), fresh.size(), 1000).ok());  // buffered, not sent
  std::vector<char> buf(8000);
  std::vector<BatchReadItem> items(1);
  items[0].file = f->get();
  items[0].offset = 0;
  items[0].length = buf.size();
  items[0].dest = buf.data();
  ASSERT_TRUE(c_->BatchRead(items).ok());
  ASSERT_TRUE(items[0].status.ok()) << items[0].status.ToString();
  EXPECT_EQ(std::string(buf.data() + 1000, 5000), fresh) << "the buffered write was not read back";
  EXPECT_EQ(std::string(buf.data(), 1000), std::string(1000, 'o'));
  ASSERT_TRUE((*f)->Close().ok());
}

TEST_F(ClientTest, UnlinkRemovesChunksFromEveryReplica) {
  auto data = Random(4 << 20, 6);
  auto f = c_->Open("/doomed", O_CREAT | O_WRONLY | O_TRUNC, 0644);
  ASSERT_TRUE(f.ok());
  ASSERT_TRUE((*f)->Pwrite(data.data(), data.size(), 0).ok());
  InodeAttr attr = (*f)->attr();
  ASSERT_TRUE((*f)->Close().ok());
  auto map = c_->data()->Map();
  ASSERT_TRUE(map.ok());
  auto chunks_on_replicas = [&] {
    size_t n = 0;
    for (uint64_t i = 0; i < 4; ++i) {
      uint32_t chain = c_->ChainOf(attr, i);
      for (auto& ch : map->chains()) {
        if (ch.id() != chain) continue;
        for (uint32_t t : ch.members()) {
          auto q = c_->data()->QueryChunks(t, attr.ino(), {i});
          EXPECT_TRUE(q.ok()) << q.status().ToString();
          if (q.ok()) n += q->size();
        }
      }
    }
    return n;
  };
  EXPECT_EQ(chunks_on_replicas(), 8u) << "4 chunks x 2 replicas before unlink";
  ASSERT_TRUE(c_->Unlink("/doomed").ok());
  EXPECT_EQ(c_->Stat("/doomed").status().code(), Code::kNotFound);
  c_->WaitRemovals();  // the data goes in the background
  EXPECT_EQ(chunks_on_replicas(), 0u) << "chunks left behind after unlink";
}

// Unlinks return before the data is removed; a client that goes away right
// after still removes all of it first.
TEST_F(ClientTest, UnlinkedDataIsRemovedBeforeTheClientGoes) {
  auto other = Second();
  ASSERT_TRUE(other);
  std::vector<InodeAttr> files;
  for (int i = 0; i < 40; i++) {
    std::string name = "/gone-" + std::to_string(i);
    auto f = other->Open(name, O_CREAT | O_WRONLY | O_TRUNC, 0644);
    ASSERT_TRUE(f.ok());
    std::string data(70000 + i, static_cast<char>('a' + i % 26));
    ASSERT_TRUE((*f)->Pwrite(data.data(), data.size(), 0).ok());
    files.push_back((*f)->attr());
    ASSERT_TRUE((*f)->Close().ok());
  }
  for (int i = 0; i < 40; i++) ASSERT_TRUE(other->Unlink("/gone-" + std::to_string(i)).ok());
  other.reset();  // at once: the destructor finishes the removals
  size_t left = 0;
  for (const InodeAttr& a : files) {
    uint32_t chain = c_->ChainOf(a, 0);
    auto map = c_->data()->Map();
    ASSERT_TRUE(map.ok());
    for (auto& ch : map->chains()) {
      if (ch.id() != chain) continue;
      for (uint32_t t : ch.members()) {
        auto q = c_->data()->QueryChunks(t, a.ino(), {0});
        ASSERT_TRUE(q.ok()) << q.status().ToString();
        left += q->size();
      }
    }
  }
  EXPECT_EQ(left, 0u) << "chunks of unlinked files left after their client went away";
}

// PreadSpans: sequential reads are answered from read-ahead memory without a
// copy into the caller's buffer; the pieces hold exactly the file's bytes.
TEST_F(ClientTest, PreadSpansReferencesReadAheadMemory) {
  auto data = Random(3 * (8 << 20) + 4321, 9);
  auto w = c_->Open("/spans", O_CREAT | O_WRONLY | O_TRUNC, 0644);
  ASSERT_TRUE(w.ok());
  ASSERT_TRUE((*w)->Write(data.data(), data.size()).ok());
  ASSERT_TRUE((*w)->Close().ok());
  auto r = c_->Open("/spans", O_RDONLY);
  ASSERT_TRUE(r.ok());
  std::vector<char> buf(1 << 20), back;
  File::Spans spans;
  size_t uncopied = 0;
  for (uint64_t off = 0;;) {
    auto n = (*r)->PreadSpans(buf.data(), buf.size(), off, &spans);
    ASSERT_TRUE(n.ok()) << n.status().ToString();
    if (*n == 0) break;
    size_t sum = 0;
    for (auto& [p, len] : spans.pieces) {
      back.insert(back.end(), p, p + len);
      sum += len;
      if (p < buf.data() || p >= buf.data() + buf.size()) uncopied += len;
    }
    ASSERT_EQ(sum, *n);
    off += *n;
  }
  ASSERT_EQ(back.size(), data.size());
  EXPECT_TRUE(std::equal(data.begin(), data.end(), back.begin()));
  EXPECT_GT(uncopied, data.size() / 2) << "sequential reads should come from read-ahead memory";
}

// Path calls remember directories on the way: a second call under the same
// directory walks no further than its parent; this client's own rename and
// rmdir forget at once; another client's changes are seen after dir_cache_ms.
TEST_F(ClientTest, DirectoryCacheServesRepeatWalksAndExpires) {
  ASSERT_TRUE(c_->Mkdir("/dc", 0755).ok());
  ASSERT_TRUE(c_->Mkdir("/dc/a", 0755).ok());
  ASSERT_TRUE(c_->Mkdir("/dc/a/b", 0755).ok());
  for (const char* f : {"/dc/a/b/f1", "/dc/a/b/f2"}) {
    auto h = c_->Open(f, O_CREAT | O_WRONLY, 0644);
    ASSERT_TRUE(h.ok()) << h.status().ToString();
    ASSERT_TRUE((*h)->Close().ok());
  }
  uint64_t hits = c_->stats().dir_cache_hits;
  ASSERT_TRUE(c_->Stat("/dc/a/b/f1").ok());
  ASSERT_TRUE(c_->Stat("/dc/a/b/f2").ok());
  EXPECT_GE(c_->stats().dir_cache_hits - hits, 2u);

  // Own rename: the old path is gone and the new one works at once.
  ASSERT_TRUE(c_->Rename("/dc/a", "/dc/a2").ok());
  auto gone = c_->Stat("/dc/a/b/f1");
  EXPECT_EQ(gone.status().code(), Code::kNotFound) << gone.status().ToString();
  EXPECT_TRUE(c_->Stat("/dc/a2/b/f1").ok());

  // Another client replaces a directory this one has cached.
  ClientOptions o;
  o.cluster = Cfg();
  o.dir_cache_ms = 300;
  auto a = Client::Connect(o);
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  ASSERT_TRUE((*a)->Stat("/dc/a2/b/f1").ok());  // caches /dc/a2 and /dc/a2/b
  auto b = Second();
  ASSERT_TRUE(b);
  ASSERT_TRUE(b->Unlink("/dc/a2/b/f1").ok());
  ASSERT_TRUE(b->Unlink("/dc/a2/b/f2").ok());
  ASSERT_TRUE(b->Rmdir("/dc/a2/b").ok());
  ASSERT_TRUE(b->Mkdir("/dc/a2/b", 0755).ok());
  auto h = b->Open("/dc/a2/b/new", O_CREAT | O_WRONLY, 0644);
  ASSERT_TRUE(h.ok());
  ASSERT_TRUE((*h)->Close().ok());
  // Within dir_cache_ms the first client may still look in the removed
  // directory; after it, it must see the new one.
  std::this_thread::sleep_for(std::chrono::milliseconds(400));
  auto seen = (*a)->Stat("/dc/a2/b/new");
  EXPECT_TRUE(seen.ok()) << seen.status().ToString();
  // A removed directory's entries are never seen through the cache.
  ASSERT_TRUE((*a)->Stat("/dc/a2/b/new").ok());
  ASSERT_TRUE(b->Unlink("/dc/a2/b/new").ok());
  ASSERT_TRUE(b->Rmdir("/dc/a2/b").ok());
  auto vanished = (*a)->Stat("/dc/a2/b/new");
  EXPECT_FALSE(vanished.ok());

  // With the cache off every walk goes to the servers.
  o.dir_cache_ms = 0;
  auto u = Client::Connect(o);
  ASSERT_TRUE(u.ok());
  ASSERT_TRUE((*u)->Mkdir("/dc/a2/c", 0755).ok());
  ASSERT_TRUE((*u)->Stat("/dc/a2/c").ok());
  EXPECT_EQ((*u)->stats().dir_cache_hits.load(), 0u);
}

TEST_F(ClientTest, ConnectToNothingFailsClearlyWithinDeadline) {
  ClientOptions o;
  o.cluster = "127.0.0.1:" + std::to_string(FreePort());
  o.deadline_ms = 1500;
  auto t0 = std::chrono::steady_clock::now();
  auto c = Client::Connect(o);
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find(o.cluster), std::string::npos) << c.status().ToString();
  EXPECT_LT(ms, 15000);
}

int CountEntry(const char*, uint32_t, void* arg) {
  ++*static_cast<int*>(arg);
  return 0;
}

TEST_F(ClientTest, CApi) {
  sluice_client_t* c = nullptr;
  ASSERT_EQ(sluice_connect(Cfg().c_str(), nullptr, nullptr, &c), 0) << sluice_last_error();
  EXPECT_EQ(sluice_mkdir(c, "/capi", 0755), 0);
  EXPECT_EQ(sluice_mkdir(c, "/capi", 0755), -EEXIST);
  sluice_file_t* f = nullptr;
  EXPECT_EQ(sluice_open(c, "/capi/missing", O_RDONLY, 0, &f), -ENOENT);
  EXPECT_NE(std::string(sluice_last_error()).find("missing"), std::string::npos) << sluice_last_error();
  ASSERT_EQ(sluice_open(c, "/capi/f", O_CREAT | O_RDWR, 0600, &f), 0);
  EXPECT_EQ(sluice_pwrite(f, "hello world", 11, 0), 11);
  char buf[16] = {};
  EXPECT_EQ(sluice_pread(f, buf, sizeof buf, 6), 5);
  EXPECT_EQ(std::string(buf, 5), "world");
  EXPECT_EQ(sluice_close(f), 0);
  sluice_stat_t st;
  ASSERT_EQ(sluice_stat(c, "/capi/f", &st), 0);
  EXPECT_EQ(st.size, 11u);
  EXPECT_EQ(st.mode, 0600u);
  int n = 0;
  EXPECT_EQ(sluice_readdir(c, "/capi", CountEntry, &n), 1);
  EXPECT_EQ(n, 1);
  EXPECT_EQ(sluice_rmdir(c, "/capi"), -ENOTEMPTY);
  EXPECT_EQ(sluice_unlink(c, "/capi/f"), 0);
  EXPECT_EQ(sluice_stat(c, "/capi/f", &st), -ENOENT);
  EXPECT_EQ(sluice_rmdir(c, "/capi"), 0);
  sluice_disconnect(c);
}

}  // namespace
}  // namespace sluice::client
