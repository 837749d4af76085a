// Crash consistency with a real kill -9: a driver process applies the
// deterministic workload of crash_workload.h to a store; the test kills it at
// random moments, reopens the store and checks that every chunk is exactly
// some whole version (the last acknowledged one, or the one in flight), that
// its bytes match that version's content and CRC, and that scrub is clean.
//
// The seed is printed; replay with SLUICE_CRASH_SEED=<seed>.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <iterator>
#include <fstream>
#include <map>
#include <random>
#include <thread>

#include "common/crc32c.h"
#include "server/data/chunk_store.h"
#include "tests/server/data/crash_workload.h"
#include "tests/server/data/test_dir.h"

namespace sluice::data {
namespace {

using namespace testing;

uint64_t CountLines(const std::string& path) {
  std::ifstream in(path);
  return std::count(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>(), '\n');
}

// Kills the child on scope exit if still running (also when an assertion fails).
struct Child {
  pid_t pid = -1;
  ~Child() {
    if (pid > 0) {
      kill(pid, SIGKILL);
      waitpid(pid, nullptr, 0);
    }
  }
};

TEST(ChunkStoreCrash, KillNineDuringOverwritesLeavesWholeVersions) {
  uint64_t seed;
  if (const char* s = std::getenv("SLUICE_CRASH_SEED")) {
    seed = std::strtoull(s, nullptr, 10);
  } else {
    seed = std::random_device()() | (uint64_t{std::random_device()()} << 32);
  }
  std::printf("crash test seed=%llu (replay: SLUICE_CRASH_SEED=%llu)\n",
              static_cast<unsigned long long>(seed), static_cast<unsigned long long>(seed));
  RecordProperty("seed", std::to_string(seed));
  TestDir dir;
  ASSERT_FALSE(dir.path().empty());
  const std::string store_dir = dir.path() + "/store";
  const std::string ack_path = dir.path() + "/acks";
  std::mt19937_64 rng(seed);
  const int rounds = 12;
  uint64_t total_acks = 0;
  std::map<uint32_t, std::vector<uint8_t>> content_cache;  // chunk -> content at cached_v
  std::map<uint32_t, uint64_t> cached_v;
  for (int round = 0; round < rounds; round++) {
    SCOPED_TRACE("seed " + std::to_string(seed) + " round " + std::to_string(round));
    Child child;
    child.pid = fork();
    ASSERT_GE(child.pid, 0);
    if (child.pid == 0) {
      std::string s = std::to_string(seed), r = std::to_string(round);
      execl(SLUICE_CRASH_DRIVER, SLUICE_CRASH_DRIVER, store_dir.c_str(), s.c_str(), r.c_str(),
            ack_path.c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
    // Odd rounds kill at a random moment, maybe while the store is still
    // opening; even rounds first wait for the driver to acknowledge a few
    // updates (slow builds, e.g. sanitizers), then kill at a random moment.
    if (round % 2 == 0) {
      uint64_t before = CountLines(ack_path);
      for (int waited = 0; waited < 10000 && CountLines(ack_path) < before + 20; waited += 5) {
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(rng() % 100));
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(20 + rng() % 400));
    }
    int status = 0;
    ASSERT_EQ(waitpid(child.pid, &status, WNOHANG), 0)
        << "driver exited by itself (status " << status << "): it hit an error";
    ASSERT_EQ(kill(child.pid, SIGKILL), 0);
    ASSERT_EQ(waitpid(child.pid, &status, 0), child.pid);
    child.pid = -1;
    ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);

    // Acknowledged versions so far.
    std::map<uint32_t, uint64_t> acked;
    {
      std::ifstream in(ack_path);
      uint32_t c;
      uint64_t v;
      total_acks = 0;
      while (in >> c >> v) {
        acked[c] = std::max(acked[c], v);
        total_acks++;
      }
    }
    ChunkStoreOptions o;
    o.dir = store_dir;
    o.target_id = 1;
    o.sync_writes = false;
    o.io_rings = 1;
    o.buffer_arena_bytes = 16u << 20;
    auto opened = ChunkStore::Open(o);
    ASSERT_TRUE(opened.ok()) << opened.status().ToString();
    ChunkStore& store = **opened;
    for (uint32_t c = 0; c < kCrashChunks; c++) {
      SCOPED_TRACE("chunk " + std::to_string(c));
      auto meta = store.Stat({1, c});
      uint64_t a = acked.count(c) ? acked[c] : 0;
      if (!meta.ok()) {
        ASSERT_EQ(meta.status().code(), Code::kNotFound);
        ASSERT_EQ(a, 0u) << "acknowledged chunk lost";
        continue;
      }
      uint64_t v = meta->version;
      ASSERT_GE(v, a) << "acknowledged version lost";
      ASSERT_LE(v, a + 1) << "version from nowhere";
      if (meta->pending_version) {
        ASSERT_EQ(meta->pending_version, v + 1);
      }
      // Expected content of version v, built incrementally.
      auto& content = content_cache[c];
      if (cached_v[c] > v) {  // never happens for committed versions; rebuild to be safe
        content.clear();
        cached_v[c] = 0;
      }
      for (uint64_t k = cached_v[c] + 1; k <= v; k++) CrashApply(seed, c, k, &content);
      cached_v[c] = v;
      ReadRequest rq{{1, c}, 0, kCrashChunkSize};
      auto res = store.BatchRead(std::span<const ReadRequest>(&rq, 1));
      ASSERT_TRUE(res[0].status.ok()) << res[0].status.ToString();
      ASSERT_EQ(res[0].length, content.size());
      ASSERT_EQ(res[0].version, v);
      ASSERT_TRUE(std::equal(content.begin(), content.end(), res[0].data))
          << "chunk " << c << " v" << v << " holds bytes of no single version";
      ASSERT_EQ(meta->crc, Crc32c(content.data(), content.size()));
    }
    auto scrub = store.Scrub();
    ASSERT_TRUE(scrub.ok()) << scrub.status().ToString();
    ASSERT_TRUE(scrub->bad.empty()) << scrub->bad[0].status.ToString();
  }
  std::printf("crash test: %d kills, %llu acknowledged updates checked\n", rounds,
              static_cast<unsigned long long>(total_acks));
  EXPECT_GT(total_acks, 100u) << "the driver barely ran; the test proves little";
}

}  // namespace
}  // namespace sluice::data
