#include "server/data/crc32c_block.h"

#include <cstring>

#include "common/crc32c.h"

#if defined(__x86_64__)
#include <nmmintrin.h>
#endif

namespace sluice::data {
namespace {

constexpr uint32_t kStream = 1360;                       // bytes per stream, multiple of 8
constexpr uint32_t kTail = kCrcBlockBytes - 3 * kStream;  // 16

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) uint32_t Block4KHardware(const uint8_t* p) {
  static const Crc32cShift kShift(kStream);
  uint64_t a = 0xffffffffu, b = 0xffffffffu, c = 0xffffffffu;
  const uint8_t* pa = p;
  const uint8_t* pb = p + kStream;
  const uint8_t* pc = p + 2 * kStream;
  for (uint32_t i = 0; i < kStream; i += 8) {
    uint64_t wa, wb, wc;
    std::memcpy(&wa, pa + i, 8);
    std::memcpy(&wb, pb + i, 8);
    std::memcpy(&wc, pc + i, 8);
    a = _mm_crc32_u64(a, wa);
    b = _mm_crc32_u64(b, wb);
    c = _mm_crc32_u64(c, wc);
  }
  // Each stream finalized is the CRC32C of its bytes alone; join them.
  uint32_t crc = kShift.Combine(static_cast<uint32_t>(~a), static_cast<uint32_t>(~b));
  crc = kShift.Combine(crc, static_cast<uint32_t>(~c));
  return Crc32cExtend(crc, p + 3 * kStream, kTail);
}
#endif

}  // namespace

uint32_t Crc32cBlock4K(const uint8_t* p) {
#if defined(__x86_64__)
  static const bool hw = __builtin_cpu_supports("sse4.2");
  if (hw) return Block4KHardware(p);
#endif
  return Crc32c(p, kCrcBlockBytes);
}

}  // namespace sluice::data
