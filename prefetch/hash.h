// Fixed integer hashes for the loader's shuffles. They are written out here,
// never taken from <random> or std::hash, so an order is the same on every
// machine, compiler and standard library.
#pragma once

#include <cstdint>

namespace sluice::prefetch {

// SplitMix64 finalizer (Steele, Lea, Flood 2014): a bijective 64-bit mixer
// whose every output bit depends on every input bit.
inline uint64_t Mix64(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

// Hash of an ordered pair; used to derive per-epoch and per-round keys.
inline uint64_t HashPair(uint64_t a, uint64_t b) {
  return Mix64(Mix64(a + 0x9e3779b97f4a7c15ULL) ^ (b + 0x6a09e667f3bcc909ULL));
}

}  // namespace sluice::prefetch
