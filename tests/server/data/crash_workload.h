// The deterministic workload of the crash-consistency test, shared by the
// driver (which applies it until it is killed) and the checker (which
// recomputes what any version of any chunk must contain).
//
// Update v of chunk c depends only on (seed, c, v); its bytes are derived
// from (seed, c, v, position), so every stored byte says which update wrote
// it and a torn chunk cannot pass for a whole version.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

namespace sluice::data::testing {

inline constexpr uint32_t kCrashChunks = 16;
inline constexpr uint32_t kCrashChunkSize = 512u << 10;

inline uint64_t Mix(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

struct CrashUpdate {
  bool truncate = false;
  uint32_t offset = 0;  // write
  uint32_t length = 0;  // write: bytes; truncate: new length
  bool pending = false; // store pending, then Commit (chain-replication path)
};

inline CrashUpdate CrashUpdateFor(uint64_t seed, uint32_t chunk, uint64_t version) {
  uint64_t h = Mix(seed ^ Mix(chunk * 0x100000001B3ull ^ Mix(version)));
  CrashUpdate u;
  u.pending = (h >> 60) & 1;
  uint32_t kind = h % 100;
  uint64_t r = Mix(h);
  if (kind < 8) {
    u.truncate = true;
    u.length = r % kCrashChunkSize;
  } else if (kind < 20) {  // whole rewrite from 0, half of them block-aligned
    u.length = 1 + r % kCrashChunkSize;
    if ((r >> 40) & 1) u.length = std::max<uint32_t>(4096, u.length / 4096 * 4096);
  } else {  // partial overwrite anywhere, often unaligned
    u.offset = r % kCrashChunkSize;
    u.length = 1 + Mix(r) % std::min<uint32_t>(kCrashChunkSize - u.offset, 128u << 10);
  }
  return u;
}

// Bytes of update `version` of `chunk` at chunk positions [offset, offset+n).
inline void CrashFill(uint64_t seed, uint32_t chunk, uint64_t version, uint32_t offset,
                      uint8_t* out, uint32_t n) {
  uint64_t base = Mix(seed ^ (uint64_t{chunk} << 40) ^ version);
  for (uint32_t i = 0; i < n; i++) {
    uint64_t pos = offset + i;
    uint64_t w = Mix(base ^ (pos >> 3));
    out[i] = static_cast<uint8_t>(w >> ((pos & 7) * 8));
  }
}

// Applies update `version` of `chunk` to `content` (the previous version).
inline void CrashApply(uint64_t seed, uint32_t chunk, uint64_t version,
                       std::vector<uint8_t>* content) {
  CrashUpdate u = CrashUpdateFor(seed, chunk, version);
  if (u.truncate) {
    content->resize(u.length, 0);
    return;
  }
  if (content->size() < u.offset + u.length) content->resize(u.offset + u.length, 0);
  CrashFill(seed, chunk, version, u.offset, content->data() + u.offset, u.length);
}

}  // namespace sluice::data::testing
