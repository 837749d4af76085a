// A keyed bijection over [0, n) in O(1) memory: a balanced Feistel network
// over the smallest even-bit power of two >= n, with cycle-walking to stay in
// range. Forward and inverse cost O(rounds * expected walk) with the walk
// expected < 4 steps (the domain is < 4n).
#pragma once

#include <cstdint>

namespace sluice::prefetch {

class FeistelPermutation {
 public:
  static constexpr int kRounds = 6;

  // A permutation of [0, n) chosen by `key`. n == 0 gives an empty domain.
  FeistelPermutation(uint64_t n, uint64_t key);
  FeistelPermutation() : FeistelPermutation(0, 0) {}

  uint64_t size() const { return n_; }
  // The image of i; requires i < size().
  uint64_t Forward(uint64_t i) const;
  // The x with Forward(x) == y; requires y < size().
  uint64_t Inverse(uint64_t y) const;

 private:
  uint64_t Encrypt(uint64_t x) const;
  uint64_t Decrypt(uint64_t x) const;

  uint64_t n_;
  unsigned half_bits_ = 0;
  uint64_t half_mask_ = 0;
  uint64_t keys_[kRounds] = {};
};

}  // namespace sluice::prefetch
