// Applies the crash workload (crash_workload.h) to a ChunkStore forever,
// appending "chunk version\n" to an ack file after each update returns.
// The crash test SIGKILLs it at random moments.
//
// Usage: chunk_store_crash_driver <dir> <seed> <round> <ackfile>
#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>

#include "common/crc32c.h"
#include "server/data/chunk_store.h"
#include "tests/server/data/crash_workload.h"

using namespace sluice;
using namespace sluice::data;
using namespace sluice::data::testing;

int main(int argc, char** argv) {
  if (argc != 5) {
    std::fprintf(stderr, "usage: %s <dir> <seed> <round> <ackfile>\n", argv[0]);
    return 2;
  }
  const uint64_t seed = std::strtoull(argv[2], nullptr, 10);
  const uint64_t round = std::strtoull(argv[3], nullptr, 10);
  int ack = open(argv[4], O_WRONLY | O_CREAT | O_APPEND, 0644);
  if (ack < 0) {
    std::perror("open ack file");
    return 2;
  }
  std::mt19937_64 rng(Mix(seed ^ (round << 20)));
  ChunkStoreOptions o;
  o.dir = argv[1];
  o.target_id = 1;
  o.sync_writes = rng() % 2;  // either way a kill -9 must not tear a chunk
  o.grow_bytes = 8u << 20;
  o.buffer_arena_bytes = 32u << 20;
  o.io_rings = 1;
  auto s = ChunkStore::Open(o);
  if (!s.ok()) {
    std::fprintf(stderr, "driver: open: %s\n", s.status().ToString().c_str());
    return 1;
  }
  ChunkStore& store = **s;
  std::vector<uint64_t> version(kCrashChunks, 0);
  for (uint32_t c = 0; c < kCrashChunks; c++) {
    auto m = store.Stat({1, c});
    if (m.ok()) version[c] = m->version;
  }
  std::vector<uint8_t> buf;
  for (;;) {
    // A batch of 1-3 distinct chunks' writes, or a single truncate.
    std::vector<uint32_t> chunks;
    size_t want = 1 + rng() % 3;
    while (chunks.size() < want) {
      uint32_t c = rng() % kCrashChunks;
      if (std::find(chunks.begin(), chunks.end(), c) == chunks.end()) chunks.push_back(c);
    }
    std::vector<std::vector<uint8_t>> datas;
    std::vector<IoBuffer> aligned;
    std::vector<WriteRequest> writes;
    std::vector<uint32_t> written;
    for (uint32_t c : chunks) {
      uint64_t v = version[c] + 1;
      CrashUpdate u = CrashUpdateFor(seed, c, v);
      UpdateOptions opt{.version = v, .commit = !u.pending};
      if (u.truncate) {
        auto r = store.Truncate({1, c}, u.length, opt, kCrashChunkSize);
        if (!r.ok()) {
          std::fprintf(stderr, "driver: truncate: %s\n", r.status().ToString().c_str());
          return 1;
        }
        if (u.pending) {
          auto cm = store.Commit({1, c}, v);
          if (!cm.ok()) {
            std::fprintf(stderr, "driver: commit: %s\n", cm.status().ToString().c_str());
            return 1;
          }
        }
        version[c] = v;
        std::string line = std::to_string(c) + " " + std::to_string(v) + "\n";
        if (write(ack, line.data(), line.size()) < 0) return 1;
        continue;
      }
      WriteRequest w;
      if (u.offset == 0 && u.length % 4096 == 0) {
        // Aligned whole-chunk rewrite: from the registered arena, no copy.
        aligned.push_back(store.AllocateBuffer(u.length));
        CrashFill(seed, c, v, 0, aligned.back().data(), u.length);
        w.data = std::span<const uint8_t>(aligned.back().data(), u.length);
      } else {
        datas.emplace_back(u.length);
        CrashFill(seed, c, v, u.offset, datas.back().data(), u.length);
        w.data = datas.back();
      }
      w.chunk = {1, c};
      w.offset = u.offset;
      w.crc = Crc32c(w.data.data(), w.data.size());
      w.chunk_size = kCrashChunkSize;
      w.update = opt;
      writes.push_back(w);
      written.push_back(c);
    }
    auto res = store.BatchWrite(writes);
    for (size_t i = 0; i < res.size(); i++) {
      if (!res[i].ok()) {
        std::fprintf(stderr, "driver: write: %s\n", res[i].status().ToString().c_str());
        return 1;
      }
      uint32_t c = written[i];
      uint64_t v = version[c] + 1;
      if (!writes[i].update.commit) {
        auto cm = store.Commit({1, c}, v);
        if (!cm.ok()) {
          std::fprintf(stderr, "driver: commit: %s\n", cm.status().ToString().c_str());
          return 1;
        }
      }
      version[c] = v;
      std::string line = std::to_string(c) + " " + std::to_string(v) + "\n";
      if (write(ack, line.data(), line.size()) < 0) return 1;
    }
  }
}
