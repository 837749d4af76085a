// CRC32C: the fast path (three interleaved hardware streams joined by
// Crc32cShift) against a bit-at-a-time reference, for every length class the
// fast path splits on (tails, 256-byte and 8 KiB spans), unaligned starts and
// running seeds; and Crc32cCombine / Crc32cShift against the CRC of the join.
#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "common/crc32c.h"

namespace sluice {
namespace {

uint32_t Reference(uint32_t crc, const uint8_t* p, size_t n) {
  uint32_t c = ~crc;
  while (n--) {
    c ^= *p++;
    for (int k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
  }
  return ~c;
}

std::vector<uint8_t> RandomBytes(size_t n, uint32_t seed) {
  std::mt19937 r(seed);
  std::vector<uint8_t> v(n);
  for (auto& b : v) b = static_cast<uint8_t>(r());
  return v;
}

TEST(Crc32c, CheckValue) {
  EXPECT_EQ(Crc32c("123456789", 9), 0xE3069283u);
  EXPECT_EQ(Crc32c("", 0), 0u);
}

TEST(Crc32c, MatchesReferenceAcrossSpansOffsetsAndSeeds) {
  const auto data = RandomBytes(3 * 8192 * 2 + 3 * 256 * 3 + 64, 7);
  std::mt19937 r(11);
  std::vector<size_t> lengths = {0, 1, 7, 8, 9, 255, 767, 768, 769, 3 * 8192 - 1, 3 * 8192, 3 * 8192 + 1,
                                 3 * 8192 + 3 * 256 + 5, 2 * 3 * 8192 + 2 * 768 + 7};
  for (int i = 0; i < 200; i++) lengths.push_back(r() % (data.size() - 16));
  for (size_t n : lengths) {
    for (size_t off : {0, 1, 3, 8, 13}) {
      if (off + n > data.size()) continue;
      uint32_t seed = r();
      ASSERT_EQ(Crc32cExtend(seed, data.data() + off, n), Reference(seed, data.data() + off, n))
          << "length " << n << " offset " << off;
    }
  }
}

TEST(Crc32c, ExtendInPiecesEqualsWhole) {
  const auto data = RandomBytes(100000, 3);
  uint32_t crc = 0;
  for (size_t at = 0, step = 1; at < data.size(); at += step, step = step * 3 % 40000 + 1) {
    crc = Crc32cExtend(crc, data.data() + at, std::min(step, data.size() - at));
  }
  EXPECT_EQ(crc, Reference(0, data.data(), data.size()));
}

TEST(Crc32c, CombineEqualsCrcOfJoin) {
  const auto data = RandomBytes(70000, 5);
  std::mt19937 r(13);
  for (int i = 0; i < 100; i++) {
    size_t a = r() % 30000, b = r() % 40000;
    uint32_t whole = Reference(0, data.data(), a + b);
    uint32_t ca = Crc32c(data.data(), a), cb = Crc32c(data.data() + a, b);
    ASSERT_EQ(Crc32cCombine(ca, cb, b), whole) << a << " + " << b;
    ASSERT_EQ(Crc32cShift(b).Combine(ca, cb), whole) << a << " + " << b;
  }
}

}  // namespace
}  // namespace sluice
