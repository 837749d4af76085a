// Combining CRC32C values of adjacent byte ranges without touching the bytes:
// Crc32cCombine(Crc32c(A), Crc32c(B), |B|) == Crc32c(A || B). The chunk engine
// keeps one CRC per 4 KiB block and derives whole-chunk and range CRCs from
// them. (Belongs in common/crc32c.h; kept here until common/ adopts it.)
#pragma once

#include <cstddef>
#include <cstdint>

namespace sluice::data {

// An operator that shifts a CRC over `len` zero-extended bytes; build it once
// for a length that repeats (e.g. the block size) and apply it many times.
uint32_t Crc32cShiftOperator(size_t len);
inline uint32_t Crc32cCombineWith(uint32_t op, uint32_t crc_a, uint32_t crc_b);
uint32_t Crc32cCombine(uint32_t crc_a, uint32_t crc_b, size_t len_b);

// Combining with a fixed length by table lookup (4 lookups instead of up to
// 32 shift-and-xor steps): the chunk engine combines 4 KiB block CRCs.
class Crc32cFixedCombiner {
 public:
  explicit Crc32cFixedCombiner(size_t len_b);
  // == Crc32cCombine(crc_a, crc_b, len_b).
  uint32_t Combine(uint32_t crc_a, uint32_t crc_b) const {
    return t_[0][crc_a & 0xff] ^ t_[1][(crc_a >> 8) & 0xff] ^ t_[2][(crc_a >> 16) & 0xff] ^
           t_[3][crc_a >> 24] ^ crc_b;
  }

 private:
  uint32_t t_[4][256];
};

// Implementation detail exposed for the inline function above.
uint32_t Crc32cMultModP(uint32_t a, uint32_t b);
inline uint32_t Crc32cCombineWith(uint32_t op, uint32_t crc_a, uint32_t crc_b) {
  return Crc32cMultModP(op, crc_a) ^ crc_b;
}

}  // namespace sluice::data
