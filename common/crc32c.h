// CRC32C (Castagnoli), the checksum Sluice computes where data is born and
// checks where it is read. Hardware (SSE4.2) when the CPU has it, a table
// otherwise; both give identical results.
#pragma once

#include <cstddef>
#include <cstdint>

namespace sluice {

// Extends a running CRC32C `crc` (start with 0) over `data[0..n)`.
uint32_t Crc32cExtend(uint32_t crc, const void* data, size_t n);
inline uint32_t Crc32c(const void* data, size_t n) { return Crc32cExtend(0, data, n); }

}  // namespace sluice
