#include "server/data/crc32c_combine.h"

#include <array>

namespace sluice::data {
namespace {

constexpr uint32_t kPoly = 0x82F63B78u;  // reflected Castagnoli, as common/crc32c.cc

constexpr uint32_t MultModP(uint32_t a, uint32_t b) {
  // a * b modulo the CRC polynomial, in the reflected bit order.
  uint32_t m = 1u << 31, p = 0;
  for (;;) {
    if (a & m) {
      p ^= b;
      if ((a & (m - 1)) == 0) break;
    }
    m >>= 1;
    b = (b & 1) ? (b >> 1) ^ kPoly : b >> 1;
  }
  return p;
}

// kX2n[n] = x^(2^n) mod p(x).
constexpr std::array<uint32_t, 32> MakeX2n() {
  std::array<uint32_t, 32> t{};
  uint32_t p = 1u << 30;  // x^1
  t[0] = p;
  for (int n = 1; n < 32; n++) t[n] = p = MultModP(p, p);
  return t;
}
constexpr auto kX2n = MakeX2n();

}  // namespace

uint32_t Crc32cMultModP(uint32_t a, uint32_t b) { return MultModP(a, b); }

uint32_t Crc32cShiftOperator(size_t len) {
  // x^(8 * len) mod p(x): 2^3 bits per byte, so start at table index 3.
  uint32_t p = 1u << 31;  // x^0
  unsigned k = 3;
  while (len) {
    if (len & 1) p = MultModP(kX2n[k & 31], p);
    len >>= 1;
    k++;
  }
  return p;
}

Crc32cFixedCombiner::Crc32cFixedCombiner(size_t len_b) {
  // Shifting is linear in the CRC, so it is the XOR of the shifts of its bytes.
  uint32_t op = Crc32cShiftOperator(len_b);
  for (int k = 0; k < 4; k++) {
    for (uint32_t b = 0; b < 256; b++) t_[k][b] = MultModP(op, b << (8 * k));
  }
}

uint32_t Crc32cCombine(uint32_t crc_a, uint32_t crc_b, size_t len_b) {
  return Crc32cCombineWith(Crc32cShiftOperator(len_b), crc_a, crc_b);
}

}  // namespace sluice::data
