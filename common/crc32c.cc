#include "common/crc32c.h"

#include <array>
#include <cstring>

#if defined(__x86_64__)
#include <cpuid.h>
#include <nmmintrin.h>
#endif
namespace sluice {
namespace {

constexpr uint32_t kPoly = 0x82F63B78u;  // reflected Castagnoli polynomial

constexpr std::array<std::array<uint32_t, 256>, 8> MakeTables() {
  std::array<std::array<uint32_t, 256>, 8> t{};
  for (uint32_t i = 0; i < 256; i++) {
    uint32_t c = i;
    for (int k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ kPoly : c >> 1;
    t[0][i] = c;
  }
  for (uint32_t i = 0; i < 256; i++) {
    for (int s = 1; s < 8; s++) t[s][i] = (t[s - 1][i] >> 8) ^ t[0][t[s - 1][i] & 0xff];
  }
  return t;
}
constexpr auto kTables = MakeTables();

uint32_t ExtendSoftware(uint32_t crc, const uint8_t* p, size_t n) {
  uint32_t c = ~crc;
  while (n >= 8) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    w ^= c;
    c = kTables[7][w & 0xff] ^ kTables[6][(w >> 8) & 0xff] ^ kTables[5][(w >> 16) & 0xff] ^
        kTables[4][(w >> 24) & 0xff] ^ kTables[3][(w >> 32) & 0xff] ^
        kTables[2][(w >> 40) & 0xff] ^ kTables[1][(w >> 48) & 0xff] ^ kTables[0][w >> 56];
    p += 8;
    n -= 8;
  }
  while (n--) c = (c >> 8) ^ kTables[0][(c ^ *p++) & 0xff];
  return ~c;
}

// The CRC register multiplied by x^(8 * len) modulo P (bit-reflected): what
// `len` zero bytes do to it. a * b mod P, reflected (bit 31 is x^0).
uint32_t MultModP(uint32_t a, uint32_t b) {
  uint32_t product = 0;
  for (uint32_t m = 1u << 31; m != 0; m >>= 1) {
    if (a & m) product ^= b;
    b = (b & 1) ? (b >> 1) ^ kPoly : b >> 1;
  }
  return product;
}

// x^(8 * len) mod P by square-and-multiply over the bits of 8 * len.
uint32_t ShiftOperator(size_t len) {
  uint32_t result = 1u << 31;  // x^0
  uint32_t power = 1u << 30;   // x^1, squared as we go: x^(2^k)
  for (uint64_t bits = static_cast<uint64_t>(len) * 8; bits != 0; bits >>= 1) {
    if (bits & 1) result = MultModP(power, result);
    power = MultModP(power, power);
  }
  return result;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) uint64_t Stream(uint64_t c, const uint8_t* p, size_t n) {
  for (; n >= 8; p += 8, n -= 8) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    c = _mm_crc32_u64(c, w);
  }
  return c;
}

// One crc32 instruction has a latency of three cycles and a throughput of
// one: three independent streams over thirds of a span keep the unit busy,
// and their CRCs are joined by table (Crc32cShift) at the end of the span.
template <size_t kSpan>
__attribute__((target("sse4.2"))) uint32_t ThreeStreams(uint32_t crc, const uint8_t*& p, size_t& n) {
  static const Crc32cShift shift(kSpan);
  while (n >= 3 * kSpan) {
    uint64_t a = ~crc, b = 0xffffffffu, c = 0xffffffffu;
    for (size_t i = 0; i < kSpan; i += 8) {
      uint64_t wa, wb, wc;
      std::memcpy(&wa, p + i, 8);
      std::memcpy(&wb, p + kSpan + i, 8);
      std::memcpy(&wc, p + 2 * kSpan + i, 8);
      a = _mm_crc32_u64(a, wa);
      b = _mm_crc32_u64(b, wb);
      c = _mm_crc32_u64(c, wc);
    }
    crc = shift.Combine(shift.Combine(static_cast<uint32_t>(~a), static_cast<uint32_t>(~b)),
                        static_cast<uint32_t>(~c));
    p += 3 * kSpan;
    n -= 3 * kSpan;
  }
  return crc;
}

__attribute__((target("sse4.2"))) uint32_t ExtendHardware(uint32_t crc, const uint8_t* p, size_t n) {
  crc = ThreeStreams<8192>(crc, p, n);
  crc = ThreeStreams<256>(crc, p, n);
  uint64_t c = Stream(~crc, p, n);
  p += n & ~size_t{7};
  n &= 7;
  uint32_t c32 = static_cast<uint32_t>(c);
  while (n--) c32 = _mm_crc32_u8(c32, *p++);
  return ~c32;
}

bool HaveSse42() {
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return false;
  return (c & bit_SSE4_2) != 0;
}
#endif

}  // namespace

Crc32cShift::Crc32cShift(size_t len_b) {
  const uint32_t op = ShiftOperator(len_b);
  for (int k = 0; k < 4; k++) {
    for (uint32_t b = 0; b < 256; b++) t_[k][b] = MultModP(op, b << (8 * k));
  }
}

uint32_t Crc32cCombine(uint32_t crc_a, uint32_t crc_b, size_t len_b) {
  return MultModP(ShiftOperator(len_b), crc_a) ^ crc_b;
}

uint32_t Crc32cExtend(uint32_t crc, const void* data, size_t n) {
  auto* p = static_cast<const uint8_t*>(data);
#if defined(__x86_64__)
  static const bool hw = HaveSse42();
  if (hw) return ExtendHardware(crc, p, n);
#endif
  return ExtendSoftware(crc, p, n);
}

}  // namespace sluice
