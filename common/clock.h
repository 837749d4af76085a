// Monotonic time helpers for deadlines (milliseconds/nanoseconds since an
// arbitrary epoch; never compare with wall-clock time).
#pragma once

#include <chrono>
#include <cstdint>

namespace sluice {

inline uint64_t NowNanos() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}
inline uint64_t NowMillis() { return NowNanos() / 1000000; }

// Wall-clock milliseconds since the Unix epoch (for deadlines on the wire,
// which must mean the same thing on both hosts).
inline uint64_t WallMillis() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace sluice
