// CRC32C (Castagnoli), the checksum Sluice computes where data is born and
// checks where it is read. Hardware (SSE4.2, three interleaved streams joined
// by Crc32cShift) when the CPU has it, a table otherwise; identical results.
#pragma once

#include <cstddef>
#include <cstdint>

namespace sluice {

// Extends a running CRC32C `crc` (start with 0) over `data[0..n)`.
uint32_t Crc32cExtend(uint32_t crc, const void* data, size_t n);
inline uint32_t Crc32c(const void* data, size_t n) { return Crc32cExtend(0, data, n); }

// Joins the CRCs of adjacent ranges without reading their bytes:
// Crc32cCombine(Crc32c(A), Crc32c(B), |B|) == Crc32c(A || B).
uint32_t Crc32cCombine(uint32_t crc_a, uint32_t crc_b, size_t len_b);

// Crc32cCombine for one fixed |B|, by four table lookups; build once, use often.
class Crc32cShift {
 public:
  explicit Crc32cShift(size_t len_b);
  uint32_t Combine(uint32_t crc_a, uint32_t crc_b) const {
    return t_[0][crc_a & 0xff] ^ t_[1][(crc_a >> 8) & 0xff] ^ t_[2][(crc_a >> 16) & 0xff] ^
           t_[3][crc_a >> 24] ^ crc_b;
  }

 private:
  uint32_t t_[4][256];
};

}  // namespace sluice
