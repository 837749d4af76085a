// The data pattern: any changed, moved or foreign byte is detected.
#include <gtest/gtest.h>

#include <vector>

#include "tools/io500/data_pattern.h"

namespace sluice::io500 {
namespace {

TEST(DataPattern, FillVerifiesAtAnyOffsetAndLength) {
  DataPattern p(42, 3);
  for (uint64_t off : {0ull, 1ull, 7ull, 4095ull, 4096ull, 47008ull * 5, (2ull << 20) - 3}) {
    for (size_t len : {1ul, 8ul, 3901ul, 47008ul, (2ul << 20) + 17}) {
      std::vector<uint8_t> buf(len);
      p.Fill(buf.data(), len, off, 9);
      EXPECT_FALSE(p.FirstMismatch(buf.data(), len, off, 9).has_value()) << off << " " << len;
      for (size_t k = 0; k < len; k += 997) EXPECT_EQ(buf[k], p.ExpectedByte(off + k, 9));
    }
  }
}

TEST(DataPattern, EveryChangedByteIsFoundWithItsOffset) {
  DataPattern p(42, 0);
  const size_t len = 47008;
  const uint64_t off = 47008ull * 7;
  std::vector<uint8_t> buf(len);
  p.Fill(buf.data(), len, off, 0);
  for (size_t k : {0ul, 5ul, 8ul, 4095ul, 4096ul, 4100ul, len - 1}) {
    auto copy = buf;
    copy[k] ^= 1;
    auto bad = p.FirstMismatch(copy.data(), len, off, 0);
    ASSERT_TRUE(bad.has_value()) << k;
    EXPECT_EQ(*bad, off + k);
  }
}

TEST(DataPattern, OtherWriterObjectOffsetOrSeedDoesNotMatch) {
  const size_t len = 4096 * 3;
  DataPattern p(1, 0);
  std::vector<uint8_t> buf(len);
  p.Fill(buf.data(), len, 8192, 0);
  EXPECT_TRUE(DataPattern(1, 1).FirstMismatch(buf.data(), len, 8192, 0).has_value());
  EXPECT_TRUE(DataPattern(2, 0).FirstMismatch(buf.data(), len, 8192, 0).has_value());
  EXPECT_TRUE(p.FirstMismatch(buf.data(), len, 8192, 1).has_value());
  // Data from one block written at another block's offset (a misplaced write).
  EXPECT_TRUE(p.FirstMismatch(buf.data(), len, 8192 + 4096, 0).has_value());
  EXPECT_TRUE(p.FirstMismatch(buf.data(), len, 8192 + DataPattern::kPeriod, 0).has_value());
}

TEST(DataPattern, RestampEqualsFillForPeriodAlignedTransfers) {
  DataPattern p(7, 2);
  const size_t t = DataPattern::kPeriod;
  std::vector<uint8_t> a(t), b(t);
  p.Fill(a.data(), t, 0, 0);
  p.Restamp(a.data(), t, 5 * t, 0);
  p.Fill(b.data(), t, 5 * t, 0);
  EXPECT_EQ(a, b);
}

}  // namespace
}  // namespace sluice::io500
