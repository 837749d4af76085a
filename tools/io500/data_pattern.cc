#include "tools/io500/data_pattern.h"

#include <algorithm>
#include <cstring>

namespace sluice::io500 {
namespace {

// splitmix64 finaliser: a cheap, well-mixed 64-bit hash.
uint64_t Mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

}  // namespace

DataPattern::DataPattern(uint64_t seed, int writer_rank)
    : seed_(seed), writer_(static_cast<uint64_t>(writer_rank)), base_(kPeriod) {
  uint64_t key = Mix(seed_ ^ (writer_ << 32) ^ 0x5a17ce10ull);
  for (size_t i = 0; i < kPeriod; i += 8) {
    uint64_t w = Mix(key + i);
    std::memcpy(&base_[i], &w, 8);
  }
}

uint64_t DataPattern::Stamp(uint64_t offset, uint64_t object) const {
  return Mix(seed_ ^ Mix(writer_ * 0x100000001b3ull + object) ^ (offset * 0x9e3779b1ull));
}

uint8_t DataPattern::ExpectedByte(uint64_t offset, uint64_t object) const {
  uint64_t block = offset - offset % kStampEvery;
  if (offset - block < 8) {
    uint64_t s = Stamp(block, object);
    uint8_t b[8];
    std::memcpy(b, &s, 8);
    return b[offset - block];
  }
  return base_[offset % kPeriod];
}

void DataPattern::Fill(uint8_t* buf, size_t len, uint64_t offset, uint64_t object) const {
  size_t done = 0;
  while (done < len) {
    size_t pos = static_cast<size_t>((offset + done) % kPeriod);
    size_t n = std::min(len - done, kPeriod - pos);
    std::memcpy(buf + done, &base_[pos], n);
    done += n;
  }
  Restamp(buf, len, offset, object);
}

void DataPattern::Restamp(uint8_t* buf, size_t len, uint64_t offset, uint64_t object) const {
  uint64_t first = (offset + kStampEvery - 1) / kStampEvery * kStampEvery;
  // A stamp that starts before `offset` may still cover its first bytes.
  uint64_t prev = offset - offset % kStampEvery;
  if (prev < offset && offset - prev < 8) first = prev;
  for (uint64_t s = first; s < offset + len; s += kStampEvery) {
    uint64_t v = Stamp(s, object);
    uint8_t b[8];
    std::memcpy(b, &v, 8);
    for (int k = 0; k < 8; ++k) {
      uint64_t at = s + k;
      if (at >= offset && at < offset + len) buf[at - offset] = b[k];
    }
  }
}

std::optional<uint64_t> DataPattern::FirstMismatch(const uint8_t* buf, size_t len, uint64_t offset,
                                                   uint64_t object) const {
  size_t i = 0;
  while (i < len) {
    uint64_t at = offset + i;
    uint64_t block = at - at % kStampEvery;
    uint64_t in_block = at - block;
    if (in_block < 8) {
      // Inside a stamp: compare byte by byte (at most 8 bytes).
      uint64_t v = Stamp(block, object);
      uint8_t b[8];
      std::memcpy(b, &v, 8);
      for (; i < len && offset + i < block + 8; ++i) {
        if (buf[i] != b[offset + i - block]) return offset + i;
      }
      continue;
    }
    // From here to the next stamp (or period end, which is also a stamp).
    size_t n = std::min<uint64_t>(len - i, block + kStampEvery - at);
    size_t pos = static_cast<size_t>(at % kPeriod);
    if (std::memcmp(buf + i, &base_[pos], n) != 0) {
      for (size_t k = 0; k < n; ++k) {
        if (buf[i + k] != base_[pos + k]) return at + k;
      }
    }
    i += n;
  }
  return std::nullopt;
}

}  // namespace sluice::io500
