#include "prefetch/feistel_permutation.h"

#include "prefetch/hash.h"

namespace sluice::prefetch {

FeistelPermutation::FeistelPermutation(uint64_t n, uint64_t key) : n_(n) {
  unsigned bits = 0;
  while (bits < 64 && (uint64_t{1} << bits) < n) bits++;
  half_bits_ = (bits + 1) / 2;
  if (half_bits_ == 0) half_bits_ = 1;
  half_mask_ = (uint64_t{1} << half_bits_) - 1;
  for (int r = 0; r < kRounds; r++) keys_[r] = HashPair(key, static_cast<uint64_t>(r));
}

uint64_t FeistelPermutation::Encrypt(uint64_t x) const {
  uint64_t left = x >> half_bits_;
  uint64_t right = x & half_mask_;
  for (int r = 0; r < kRounds; r++) {
    uint64_t next = left ^ (Mix64(right ^ keys_[r]) & half_mask_);
    left = right;
    right = next;
  }
  return (left << half_bits_) | right;
}

uint64_t FeistelPermutation::Decrypt(uint64_t x) const {
  uint64_t left = x >> half_bits_;
  uint64_t right = x & half_mask_;
  for (int r = kRounds - 1; r >= 0; r--) {
    uint64_t prev = right ^ (Mix64(left ^ keys_[r]) & half_mask_);
    right = left;
    left = prev;
  }
  return (left << half_bits_) | right;
}

uint64_t FeistelPermutation::Forward(uint64_t i) const {
  if (n_ <= 1) return 0;
  uint64_t y = Encrypt(i);
  while (y >= n_) y = Encrypt(y);  // cycle-walk: the cycle through i returns below n
  return y;
}

uint64_t FeistelPermutation::Inverse(uint64_t y) const {
  if (n_ <= 1) return 0;
  uint64_t x = Decrypt(y);
  while (x >= n_) x = Decrypt(x);
  return x;
}

}  // namespace sluice::prefetch
