// Chain replication through real sluice-data processes: kill -9 a replica
// while a client writes a stream (replication 2 and 3), check that every
// acknowledged byte reads back, restart it, check that it resyncs (SYNCING ->
// SERVING) and then holds identical chunks; a byte flipped on disk is found by
// a read through the RPC path and by scrub. Seed: SLUICE_CHAIN_SEED.
#include <gtest/gtest.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cstdlib>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <chrono>
#include <thread>
#include <tuple>

#include "common/crc32c.h"
#include "proto/data_chain.pb.h"
#include "server/data/chunk_store.h"
#include "tests/server/data/data_cluster.h"

namespace sluice::data::testing {
namespace {

constexpr uint64_t kInode = 7;
constexpr uint32_t kChunk = 256 * 1024;

uint64_t Seed() {
  const char* e = std::getenv("SLUICE_CHAIN_SEED");
  uint64_t s = e ? std::strtoull(e, nullptr, 10) : std::random_device{}();
  std::printf("SLUICE_CHAIN_SEED=%llu\n", static_cast<unsigned long long>(s));
  return s;
}

std::string Bytes(uint64_t seed, size_t n) {
  std::mt19937_64 g(seed);
  std::string s(n, '\0');
  for (size_t i = 0; i + 8 <= n; i += 8) {
    uint64_t v = g();
    std::memcpy(&s[i], &v, 8);
  }
  return s;
}

// A write of `data` at `offset` of chunk (inode, index) of a chain.
ChunkWrite WriteOf(uint32_t chain, uint64_t inode, uint64_t index, const std::string& data, uint32_t offset = 0) {
  ChunkWrite w;
  w.chain_id = chain;
  w.inode = inode;
  w.index = index;
  w.offset = offset;
  w.data = data.data();
  w.length = static_cast<uint32_t>(data.size());
  return w;
}

// A read of all of `buf` from the start of chunk (inode, index), from `target` (0: any replica).
ReadOp ReadOf(uint32_t chain, uint64_t inode, uint64_t index, std::string& buf, uint32_t target = 0) {
  ReadOp op;
  op.chain_id = chain;
  op.inode = inode;
  op.index = index;
  op.length = static_cast<uint32_t>(buf.size());
  op.dest = buf.data();
  op.target_id = target;
  return op;
}

// The writer's view: what every acknowledged chunk must hold.
class Stream {
 public:
  Stream(DataClient* c, std::vector<uint32_t> chains, uint64_t seed) : c_(c), chains_(std::move(chains)), rng_(seed) {}

  uint32_t ChainOf(uint64_t index) const { return chains_[index % chains_.size()]; }

  // One step: a new whole chunk, or (every third step) a partial overwrite of
  // an acknowledged one, half of those as one write of 2-4 ranges. Only
  // acknowledged writes change the expectation.
  Status Step() {
    uint64_t index;
    std::vector<ChunkExtent> extents;
    std::string data;
    {
      std::lock_guard<std::mutex> l(mu_);
      bool partial = !expected_.empty() && rng_() % 3 == 0;
      if (partial) {
        auto it = expected_.begin();
        std::advance(it, rng_() % expected_.size());
        index = it->first;
        int ranges = rng_() % 2 ? 1 : 2 + rng_() % 3;
        uint32_t pos = 0;
        for (int k = 0; k < ranges; k++) {
          uint32_t off = pos + static_cast<uint32_t>(rng_() % 3000);
          uint32_t len = 1 + static_cast<uint32_t>(rng_() % 12288);
          if (off + len > kChunk) break;
          extents.push_back({off, len});
          data += Bytes(rng_(), len);
          pos = off + len + static_cast<uint32_t>(rng_() % (kChunk / 4));
        }
      } else {
        index = next_++;
        extents.push_back({0, kChunk});
        data = Bytes(rng_(), kChunk);
      }
    }
    ChunkWrite w;
    w.chain_id = ChainOf(index);
    w.inode = kInode;
    w.index = index;
    if (extents.size() == 1) {
      w.offset = extents[0].offset;
    } else {
      w.extents = extents;
    }
    w.data = data.data();
    w.length = static_cast<uint32_t>(data.size());
    w.chunk_size = 1u << 20;
    auto r = c_->Write(w);
    if (!r.ok()) return r.status();
    std::lock_guard<std::mutex> l(mu_);
    std::string& e = expected_[index];
    size_t used = 0;
    for (const ChunkExtent& x : extents) {
      if (e.size() < x.offset + x.length) e.resize(x.offset + x.length);
      std::memcpy(&e[x.offset], data.data() + used, x.length);
      used += x.length;
    }
    acked_++;
    return Status::Ok();
  }
  uint64_t acked() const { return acked_.load(); }
  std::map<uint64_t, std::string> expected() {
    std::lock_guard<std::mutex> l(mu_);
    return expected_;
  }

 private:
  DataClient* c_;
  std::vector<uint32_t> chains_;
  std::mutex mu_;
  std::mt19937_64 rng_;
  uint64_t next_ = 0;
  std::map<uint64_t, std::string> expected_;
  std::atomic<uint64_t> acked_{0};
};

// Reads every expected chunk (from `target`, or any replica if 0) and compares.
void ExpectReadsBack(DataClient* c, Stream& s, uint32_t target, const std::string& when) {
  auto expected = s.expected();
  std::vector<std::string> bufs;
  std::vector<ReadOp> ops;
  bufs.reserve(expected.size());
  for (auto& [index, bytes] : expected) {
    bufs.emplace_back(kChunk, '\xee');
    ReadOp op;
    op.chain_id = s.ChainOf(index);
    op.inode = kInode;
    op.index = index;
    op.length = kChunk;
    op.dest = bufs.back().data();
    op.target_id = target;
    ops.push_back(op);
  }
  std::atomic<size_t> callbacks{0};
  ASSERT_TRUE(c->BatchRead(ops, [&](size_t) { callbacks++; }).ok());
  EXPECT_EQ(callbacks.load(), ops.size());
  size_t i = 0, bad = 0;
  for (auto& [index, bytes] : expected) {
    const ReadOp& op = ops[i];
    if (!op.status.ok() || op.bytes != bytes.size() || std::memcmp(bufs[i].data(), bytes.data(), bytes.size()) != 0) {
      if (bad++ < 5) {
        ADD_FAILURE() << when << ": chunk " << index << " from target " << target << ": "
                      << op.status.ToString() << " bytes=" << op.bytes << " (want " << bytes.size() << ")";
      }
    }
    i++;
  }
  EXPECT_EQ(bad, 0u) << when << ": " << bad << " of " << expected.size() << " chunks wrong";
}

// (replication factor, libfabric provider)
class KillReplica : public ::testing::TestWithParam<std::tuple<int, std::string>> {};

TEST_P(KillReplica, AcknowledgedWritesSurviveAndReplicaResyncs) {
  const int r = std::get<0>(GetParam());
  uint64_t seed = Seed();
  DataCluster cluster(r, r, {}, std::get<1>(GetParam()));
  cluster.Start();
  if (HasFatalFailure()) return;
  DataClient* c = cluster.client();
  Stream stream(c, cluster.ChainIds(), seed);
  ASSERT_EQ(cluster.ChainIds().size(), static_cast<size_t>(r));

  std::atomic<bool> stop{false};
  std::atomic<int> failures{0};
  Status first_failure;
  std::mutex fmu;
  auto writer = [&] {
    while (!stop) {
      Status st = stream.Step();
      if (!st.ok()) {
        std::lock_guard<std::mutex> l(fmu);
        if (failures++ == 0) first_failure = st;
      }
    }
  };
  std::thread w(writer);
  auto wait_acked = [&](uint64_t n) {
    uint64_t end = NowMillis() + 20000;
    while (stream.acked() < n && NowMillis() < end && failures == 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return stream.acked() >= n;
  };
  EXPECT_TRUE(wait_acked(30));
  const int victim = static_cast<int>(seed % r) + 1;
  const uint32_t vt = DataCluster::TargetOf(victim);
  std::printf("kill -9 data server %d (target %u) after %llu acks\n", victim, vt,
              static_cast<unsigned long long>(stream.acked()));
  cluster.Kill(victim, 9);
  EXPECT_TRUE(cluster.WaitTarget(vt, mgmt::OFFLINE_T, 10000)) << "mgmtd never marked target " << vt << " offline";
  uint64_t at_offline = stream.acked();
  EXPECT_TRUE(wait_acked(at_offline + 30)) << "writes did not continue on the remaining replicas";
  stop = true;
  w.join();
  ASSERT_EQ(failures.load(), 0) << first_failure.ToString();
  std::printf("%llu writes acknowledged, %zu chunks\n", static_cast<unsigned long long>(stream.acked()),
              stream.expected().size());

  // Every acknowledged byte from any replica and from each survivor.
  ExpectReadsBack(c, stream, 0, "after kill");
  for (int s = 1; s <= r; s++) {
    if (s != victim) ExpectReadsBack(c, stream, DataCluster::TargetOf(s), "survivor");
  }

  // Restart: it comes back SYNCING, receives new writes, resyncs, serves.
  cluster.StartData(victim);
  stop = false;
  std::thread w2(writer);
  EXPECT_TRUE(wait_acked(stream.acked() + 20));
  bool serving = cluster.WaitTarget(vt, mgmt::SERVING, 20000);
  stop = true;
  w2.join();
  ASSERT_TRUE(serving) << "target " << vt << " did not resync\n"
                       << DataCluster::Tail(cluster.LogOf(victim)) << DataCluster::Tail(cluster.dir() + "/mgmtd.log");
  // mgmtd says SERVING; the server itself learns it with its next heartbeat.
  ASSERT_TRUE(test::WaitForText(cluster.LogOf(victim), "SERVING in map")) << cluster.LogOf(victim);
  ASSERT_EQ(failures.load(), 0) << first_failure.ToString();

  // Identical chunks on every replica: versions, lengths and CRCs.
  std::map<uint64_t, datasvc::ChunkMeta> ref;
  for (int s = 1; s <= r; s++) {
    auto metas = c->QueryChunks(DataCluster::TargetOf(s), kInode);
    ASSERT_TRUE(metas.ok()) << metas.status().ToString();
    std::map<uint64_t, datasvc::ChunkMeta> mine;
    for (auto& m : *metas) mine[m.chunk().index()] = m;
    EXPECT_EQ(mine.size(), stream.expected().size()) << "target " << DataCluster::TargetOf(s);
    if (s == 1) {
      ref = mine;
      continue;
    }
    for (auto& [index, m] : ref) {
      auto it = mine.find(index);
      ASSERT_NE(it, mine.end()) << "chunk " << index << " missing on target " << DataCluster::TargetOf(s);
      EXPECT_EQ(it->second.version(), m.version()) << "chunk " << index << " target " << DataCluster::TargetOf(s);
      EXPECT_EQ(it->second.crc32c(), m.crc32c()) << "chunk " << index << " target " << DataCluster::TargetOf(s);
      EXPECT_EQ(it->second.length(), m.length()) << "chunk " << index;
      EXPECT_EQ(it->second.pending_version(), 0u) << "chunk " << index;
    }
  }
  ExpectReadsBack(c, stream, vt, "resynced replica");
}

INSTANTIATE_TEST_SUITE_P(Replication, KillReplica,
                         ::testing::Combine(::testing::Values(2, 3), ::testing::Values("tcp", "shm")),
                         [](const ::testing::TestParamInfo<std::tuple<int, std::string>>& i) {
                           std::string name = std::get<0>(i.param) == 2 ? "R2_" : "R3_";
                           name += std::get<1>(i.param);
                           return name;
                         });

TEST(DataChain, CorruptByteOnDiskIsFoundByReadAndScrub) {
  DataCluster cluster(2, 2);
  cluster.Start();
  if (HasFatalFailure()) return;
  DataClient* c = cluster.client();
  uint32_t chain = cluster.ChainIds()[0];
  std::string data = Bytes(42, 64 * 1024);
  ASSERT_TRUE(c->Write(WriteOf(chain, 9, 3, data)).ok());

  // Flip one byte of target 101's copy while its server is down.
  cluster.Kill(1, SIGTERM);
  {
    ChunkStoreOptions so;
    so.dir = cluster.TargetDir(1);
    so.target_id = DataCluster::TargetOf(1);
    so.buffer_arena_bytes = 8u << 20;
    auto store = ChunkStore::Open(so);
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    auto meta = (*store)->Stat(ChunkId{9, 3});
    ASSERT_TRUE(meta.ok()) << meta.status().ToString();
    std::string path = ChunkStore::DataFilePath(so.dir, meta->slot_class_bytes);
    int fd = ::open(path.c_str(), O_RDWR);
    ASSERT_GE(fd, 0) << path;
    off_t at = static_cast<off_t>(meta->slot * meta->slot_class_bytes + 5000);
    char b;
    ASSERT_EQ(::pread(fd, &b, 1, at), 1);
    b ^= 0x10;
    ASSERT_EQ(::pwrite(fd, &b, 1, at), 1);
    ::close(fd);
  }
  cluster.StartData(1);
  ASSERT_TRUE(cluster.WaitTarget(DataCluster::TargetOf(1), mgmt::SERVING, 15000));

  // Read from the corrupted replica: an error naming target and chunk, no bytes.
  std::string buf(data.size(), '\0');
  ReadOp op = ReadOf(chain, 9, 3, buf, DataCluster::TargetOf(1));
  ASSERT_TRUE(c->BatchRead(std::span<ReadOp>(&op, 1)).ok());
  EXPECT_EQ(op.status.code(), Code::kCorrupt) << op.status.ToString();
  EXPECT_EQ(op.status.to_errno(), EIO);  // CORRUPT surfaces as EIO (common/status.cc)
  EXPECT_NE(op.status.message().find("101"), std::string::npos) << op.status.message();
  EXPECT_NE(op.status.message().find("9:3"), std::string::npos) << op.status.message();
  EXPECT_EQ(op.bytes, 0u);

  // A read from any replica fails over to the good copy.
  for (int i = 0; i < 4; i++) {
    ReadOp any = op;
    any.target_id = 0;
    std::fill(buf.begin(), buf.end(), '\0');
    ASSERT_TRUE(c->BatchRead(std::span<ReadOp>(&any, 1)).ok());
    ASSERT_TRUE(any.status.ok()) << any.status.ToString();
    EXPECT_EQ(any.served_by, DataCluster::TargetOf(2));
    EXPECT_EQ(buf, data);
  }

  auto scrub = c->Scrub(DataCluster::TargetOf(1));
  ASSERT_TRUE(scrub.ok()) << scrub.status().ToString();
  ASSERT_EQ(scrub->bad_size(), 1);
  EXPECT_EQ(scrub->bad(0).chunk().index(), 3u);
  // The command-line tool says the same, with its exit code.
  std::string out = cluster.dir() + "/scrub.out";
  auto tool = test::Child::Spawn({test::BinDir() + "/sluice-data-scrub", "--config", cluster.config(), "--all"}, out);
  int ws = tool.Wait(30000);
  ASSERT_TRUE(WIFEXITED(ws)) << DataCluster::Tail(out);
  EXPECT_EQ(WEXITSTATUS(ws), 1) << DataCluster::Tail(out);
  EXPECT_TRUE(test::WaitForText(out, "BAD target 101 chunk 9:3", 1000)) << DataCluster::Tail(out);
  EXPECT_TRUE(test::WaitForText(out, "target 201: ", 1000)) << DataCluster::Tail(out);

  auto clean = c->Scrub(DataCluster::TargetOf(2));
  ASSERT_TRUE(clean.ok());
  EXPECT_EQ(clean->bad_size(), 0);
  EXPECT_GE(clean->chunks_checked(), 1u);
}

// A write of several ranges of a chunk goes down a chain of 3 as one
// version: every replica holds the same bytes, version and CRC. A request
// whose extents do not describe its payload, or one extent of which fails its
// CRC, changes nothing on any replica and says which chunk.
TEST(DataChain, MultiRangeWriteIsOneVersionOnEveryReplica) {
  DataCluster cluster(3, 3);
  cluster.Start();
  if (HasFatalFailure()) return;
  DataClient* c = cluster.client();
  const uint32_t chain = cluster.ChainIds()[0];
  std::string model = Bytes(1, 200000);
  ChunkWrite w = WriteOf(chain, 11, 0, model);
  ASSERT_TRUE(c->Write(w).ok());
  // IOR-hard's pattern: 47008-byte blocks every other block, past the end too.
  std::string bytes;
  std::vector<ChunkExtent> extents;
  for (uint32_t k = 0; k < 10; k += 2) {
    uint32_t off = k * 47008 + 3;
    std::string piece = Bytes(100 + k, 47008);
    extents.push_back({off, 47008});
    bytes += piece;
    if (model.size() < off + piece.size()) model.resize(off + piece.size(), '\0');
    model.replace(off, piece.size(), piece);
  }
  ChunkWrite mw = w;
  mw.extents = extents;
  mw.data = bytes.data();
  mw.length = static_cast<uint32_t>(bytes.size());
  auto v = c->Write(mw);
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  EXPECT_EQ(v->version, 2u) << "one version for the five ranges";
  EXPECT_EQ(v->length, model.size());
  EXPECT_EQ(v->crc, Crc32c(model.data(), model.size()));
  auto read_from = [&](uint32_t target, uint64_t version) {
    std::string buf(model.size(), '\xee');
    ReadOp op = ReadOf(chain, 11, 0, buf, target);
    EXPECT_TRUE(c->BatchRead(std::span<ReadOp>(&op, 1)).ok());
    EXPECT_TRUE(op.status.ok()) << "target " << target << ": " << op.status.ToString();
    EXPECT_EQ(op.version, version) << "target " << target;
    return buf;
  };
  for (int s = 1; s <= 3; s++) EXPECT_EQ(read_from(DataCluster::TargetOf(s), 2), model) << "target " << s;

  // Hostile requests straight to the head.
  auto map = c->RefreshMap();
  ASSERT_TRUE(map.ok());
  const mgmt::ChainInfo* info = nullptr;
  for (auto& ch : map->chains()) {
    if (ch.id() == chain) info = &ch;
  }
  ASSERT_NE(info, nullptr);
  const uint32_t head = info->members(0);
  const mgmt::ServerInfo* hs = nullptr;
  for (auto& sv : map->servers()) {
    if (sv.kind() == mgmt::DATA && sv.id() == head / 100) hs = &sv;
  }
  ASSERT_NE(hs, nullptr);
  auto peer = c->rpc()->Resolve(hs->host(), static_cast<uint16_t>(hs->port()));
  ASSERT_TRUE(peer.ok());
  auto send = [&](const std::vector<std::array<uint32_t, 3>>& ext, const std::string& payload) {
    datasvc::ChainWriteRequest req;
    req.set_chain_id(chain);
    datasvc::WriteRequest* r = req.mutable_write();
    r->set_target_id(head);
    r->mutable_chunk()->set_inode(11);
    r->set_length(static_cast<uint32_t>(payload.size()));
    r->set_chunk_size(1u << 20);
    r->set_inline_data(payload);
    for (auto& e : ext) {
      auto* x = r->add_extents();
      x->set_offset(e[0]);
      x->set_length(e[1]);
      x->set_crc32c(e[2]);
    }
    datasvc::UpdateResponse resp;
    rpc::CallOptions co;
    co.map_version = map->version();
    return c->rpc()->Call(*peer, "sluice.datasvc.ChainService/Write", req, &resp, co).status;
  };
  std::string p = Bytes(7, 2000);
  uint32_t c1 = Crc32c(p.data(), 1000), c2 = Crc32c(p.data() + 1000, 1000);
  Status short_payload = send({{0, 1000, c1}, {5000, 1000, c2}}, p.substr(0, 1500));
  EXPECT_EQ(short_payload.code(), Code::kInvalid) << short_payload.ToString();
  EXPECT_NE(short_payload.message().find("chunk 11:0"), std::string::npos) << short_payload.message();
  Status overlap = send({{0, 1000, c1}, {500, 1000, c2}}, p);
  EXPECT_EQ(overlap.code(), Code::kInvalid) << overlap.ToString();
  Status bad_crc = send({{0, 1000, c1}, {5000, 1000, c2 ^ 4}}, p);
  EXPECT_EQ(bad_crc.code(), Code::kCorrupt) << bad_crc.ToString();
  EXPECT_NE(bad_crc.message().find("extent 2 of 2"), std::string::npos) << bad_crc.message();
  ASSERT_TRUE(send({{0, 1000, c1}, {5000, 1000, c2}}, p).ok()) << "the same request with its own CRCs";
  model.replace(0, 1000, p.substr(0, 1000));
  model.replace(5000, 1000, p.substr(1000));
  for (int s = 1; s <= 3; s++) {
    auto metas = c->QueryChunks(DataCluster::TargetOf(s), 11);
    ASSERT_TRUE(metas.ok()) << metas.status().ToString();
    ASSERT_EQ(metas->size(), 1u);
    EXPECT_EQ((*metas)[0].version(), 3u) << "target " << s << ": the refused requests stored nothing";
    EXPECT_EQ((*metas)[0].crc32c(), Crc32c(model.data(), model.size())) << "target " << s;
    EXPECT_EQ(read_from(DataCluster::TargetOf(s), 3), model) << "target " << s;
  }
}

// A forward whose answer is lost: the successor stored and committed the
// update, the head's forward timed out, the writer got an error. A later,
// different write of that chunk must still succeed, and leave every replica
// with the same bytes (the lost write may or may not show; the new one must).
class LostForwardAnswer : public ::testing::TestWithParam<int> {};

TEST_P(LostForwardAnswer, DoesNotSplitTheChain) {
  constexpr uint64_t kIno = 77;
  const int r = GetParam();  // with 3, the middle's and the tail's first answers both come late
  DataCluster cluster(r, r, {"--forward-timeout-ms", "1000", "--test-late-forward", "77:2500"});
  cluster.Start();
  if (HasFatalFailure()) return;
  DataClient* c = cluster.client();
  const uint32_t chain = cluster.ChainIds()[0];
  DataClientOptions o;
  o.mgmtd_port = cluster.mgmtd_port();
  o.provider = DataCluster::DefaultProvider();
  o.retry_budget_ms = 0;  // one attempt: the writer sees the timeout
  auto once = DataClient::Create(o);
  ASSERT_TRUE(once.ok()) << once.status().ToString();

  std::string a = Bytes(21, 64 * 1024);
  auto first = (*once)->Write(WriteOf(chain, kIno, 0, a));
  ASSERT_FALSE(first.ok()) << "the forward's answer comes after the head's 1 s timeout";
  std::printf("first write: %s\n", first.status().ToString().c_str());
  std::this_thread::sleep_for(std::chrono::milliseconds(2000));  // the late answer is sent

  std::string b = Bytes(22, 8192);
  auto second = c->Write(WriteOf(chain, kIno, 0, b, 4096));
  ASSERT_TRUE(second.ok()) << second.status().ToString() << "\n"
                           << DataCluster::Tail(cluster.LogOf(1)) << DataCluster::Tail(cluster.LogOf(2));

  std::vector<datasvc::ChunkMeta> metas;
  for (int s = 1; s <= r; s++) {
    auto m = c->QueryChunks(DataCluster::TargetOf(s), kIno);
    ASSERT_TRUE(m.ok()) << m.status().ToString();
    ASSERT_EQ(m->size(), 1u) << "target " << DataCluster::TargetOf(s);
    metas.push_back((*m)[0]);
  }
  for (int s = 1; s < r; s++) {
    EXPECT_EQ(metas[0].version(), metas[s].version());
    EXPECT_EQ(metas[0].length(), metas[s].length());
    EXPECT_EQ(metas[0].crc32c(), metas[s].crc32c()) << "replicas hold different bytes for one version";
  }
  EXPECT_EQ(metas[0].version(), second->version);
  for (int s = 1; s <= r; s++) {
    std::string buf(a.size(), '\xee');
    ReadOp op = ReadOf(chain, kIno, 0, buf, DataCluster::TargetOf(s));
    ASSERT_TRUE(c->BatchRead(std::span<ReadOp>(&op, 1)).ok());
    ASSERT_TRUE(op.status.ok()) << op.status.ToString();
    EXPECT_EQ(buf.substr(4096, b.size()), b) << "the acknowledged write, target " << op.target_id;
    // Around it: the lost write's bytes, or (had it vanished) nothing.
    if (op.bytes == a.size()) {
      EXPECT_EQ(buf.substr(0, 4096), a.substr(0, 4096));
      EXPECT_EQ(buf.substr(4096 + b.size()), a.substr(4096 + b.size()));
    } else {
      EXPECT_EQ(op.bytes, 4096 + b.size());
    }
  }
}

// Two writers, each owning every other 4 KiB block of three chunks of one
// chain, send single- and multi-range writes while every 4th forward's answer
// (at each receiving server) arrives after the sender gave up. Every write
// must still succeed (with retries), each writer's blocks must hold exactly
// what it last wrote, and every replica must end with the same chunks.
TEST_P(LostForwardAnswer, ConcurrentWritersConverge) {
  constexpr uint64_t kIno = 78;
  constexpr uint32_t kSpan = 64 * 1024, kBlock = 4096;
  const int r = GetParam();
  DataCluster cluster(r, r, {"--forward-timeout-ms", "600", "--test-late-forward", "78:900:4"});
  cluster.Start();
  if (HasFatalFailure()) return;
  DataClient* c = cluster.client();
  const uint32_t chain = cluster.ChainIds()[0];
  const uint64_t seed = Seed();
  // models[t][chunk]: writer t's view of the chunk (only its own blocks count).
  std::vector<std::vector<std::string>> models(2, std::vector<std::string>(3, std::string(kSpan, '\0')));
  std::atomic<int> failures{0};
  std::mutex fail_mu;
  std::string first_failure;
  auto writer = [&](int t) {
    std::mt19937_64 rng(seed * 2 + t);
    for (int op = 0; op < 24; op++) {
      const uint64_t index = rng() % 3;
      std::vector<uint32_t> blocks;
      for (uint32_t b = t; b < kSpan / kBlock; b += 2) {
        if (rng() % 4 == 0) blocks.push_back(b);
      }
      if (blocks.empty()) blocks.push_back(t);
      if (blocks.size() > 3) blocks.resize(3);
      std::vector<ChunkExtent> extents;
      std::string bytes;
      for (uint32_t b : blocks) {
        uint32_t off = b * kBlock + static_cast<uint32_t>(rng() % 1000);
        uint32_t len = 1 + static_cast<uint32_t>(rng() % (b * kBlock + kBlock - off));
        extents.push_back({off, len});
        bytes += Bytes(rng(), len);
      }
      ChunkWrite w = WriteOf(chain, kIno, index, bytes, extents[0].offset);
      if (extents.size() > 1) w.extents = extents;
      auto res = c->Write(w);
      if (!res.ok()) {
        std::lock_guard<std::mutex> l(fail_mu);
        if (failures++ == 0) first_failure = res.status().ToString();
        continue;
      }
      size_t used = 0;
      for (const ChunkExtent& e : extents) {
        models[t][index].replace(e.offset, e.length, bytes, used, e.length);
        used += e.length;
      }
    }
  };
  std::thread w0(writer, 0), w1(writer, 1);
  w0.join();
  w1.join();
  ASSERT_EQ(failures.load(), 0) << first_failure;
  auto count = [&](const std::string& text) {
    size_t n = 0;
    for (int s = 1; s <= r; s++) {
      std::ifstream in(cluster.LogOf(s));
      for (std::string line; std::getline(in, line);) n += line.find(text) != std::string::npos;
    }
    return n;
  };
  const size_t late = count("test hook: answering"), adopted = count("adopted its copy");
  std::printf("%zu forward answers came late, %zu adoptions\n", late, adopted);
  EXPECT_GT(late, 0u) << "no forward answer was delayed: the test did not test anything";

  for (uint64_t index = 0; index < 3; index++) {
    std::vector<datasvc::ChunkMeta> metas;
    for (int s = 1; s <= r; s++) {
      auto m = c->QueryChunks(DataCluster::TargetOf(s), kIno, {index});
      ASSERT_TRUE(m.ok()) << m.status().ToString();
      ASSERT_EQ(m->size(), 1u) << "chunk " << index << " on target " << DataCluster::TargetOf(s);
      metas.push_back((*m)[0]);
    }
    for (int s = 1; s < r; s++) {
      EXPECT_EQ(metas[s].version(), metas[0].version()) << "chunk " << index;
      EXPECT_EQ(metas[s].crc32c(), metas[0].crc32c()) << "chunk " << index << ": replicas differ";
    }
    for (int s = 1; s <= r; s++) {
      std::string buf(kSpan, '\xee');
      ReadOp op = ReadOf(chain, kIno, index, buf, DataCluster::TargetOf(s));
      ASSERT_TRUE(c->BatchRead(std::span<ReadOp>(&op, 1)).ok());
      ASSERT_TRUE(op.status.ok()) << op.status.ToString();
      std::fill(buf.begin() + op.bytes, buf.end(), '\0');  // never written: zeros
      for (int t = 0; t < 2; t++) {
        for (uint32_t b = t; b < kSpan / kBlock; b += 2) {
          ASSERT_EQ(buf.substr(b * kBlock, kBlock), models[t][index].substr(b * kBlock, kBlock))
              << "writer " << t << ", chunk " << index << ", block " << b << ", target " << op.target_id;
        }
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Replication, LostForwardAnswer, ::testing::Values(2, 3),
                         [](const auto& info) { return "R" + std::to_string(info.param); });

TEST(DataChain, StaleMapVersionIsRefused) {
  DataCluster cluster(2, 2);
  cluster.Start();
  if (HasFatalFailure()) return;
  DataClient* c = cluster.client();
  auto map = c->RefreshMap();
  ASSERT_TRUE(map.ok());
  ASSERT_GT(map->version(), 1u);
  const mgmt::ServerInfo* s1 = nullptr;
  for (auto& s : map->servers()) {
    if (s.kind() == mgmt::DATA && s.id() == 1) s1 = &s;
  }
  ASSERT_NE(s1, nullptr);
  auto p = c->rpc()->Resolve(s1->host(), static_cast<uint16_t>(s1->port()));
  ASSERT_TRUE(p.ok());
  datasvc::QueryChunksRequest req;
  req.set_target_id(DataCluster::TargetOf(1));
  req.set_inode(1);
  datasvc::QueryChunksResponse resp;
  rpc::CallOptions co;
  co.map_version = 1;  // older than the server's, once the server has learned a newer map
  rpc::CallResult r;
  for (int i = 0; i < 100; i++) {  // the server's own version may lag mgmtd's for a moment
    r = c->rpc()->Call(*p, "sluice.datasvc.DataService/QueryChunks", req, &resp, co);
    if (r.map_version > 1) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(r.status.code(), Code::kStaleMap) << r.status.ToString();
  EXPECT_GT(r.map_version, 1u);  // the server's own version (may lag mgmtd's)
  co.map_version = 0;  // no map: not checked
  r = c->rpc()->Call(*p, "sluice.datasvc.DataService/QueryChunks", req, &resp, co);
  EXPECT_TRUE(r.status.ok()) << r.status.ToString();
}

}  // namespace
}  // namespace sluice::data::testing
