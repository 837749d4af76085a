// The bytes every write phase stores and every read phase checks.
//
// The expected content of a byte depends on the run's seed, the rank that
// wrote it, the object (a file index for mdtest-hard, 0 for IOR files) and its
// absolute offset in the file: a byte from another rank, another file or
// another offset does not match. Layout: a per-(seed, writer) base block of
// kPeriod bytes repeated over the file, with an 8-byte stamp of
// (seed, writer, object, offset) at every 4 KiB boundary. Writers fill a
// buffer once and only restamp it per transfer when the transfer offset is a
// multiple of kPeriod (ior-easy), so generating data costs little.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

namespace sluice::io500 {

class DataPattern {
 public:
  static constexpr size_t kPeriod = 2u << 20;  // 2 MiB, = the ior-easy transfer
  static constexpr size_t kStampEvery = 4096;

  DataPattern(uint64_t seed, int writer_rank);

  // Writes the expected content of [offset, offset+len) of `object` into buf.
  void Fill(uint8_t* buf, size_t len, uint64_t offset, uint64_t object) const;
  // Rewrites only the stamps of buf, which must already hold Fill() output
  // for an offset congruent to `offset` modulo kPeriod.
  void Restamp(uint8_t* buf, size_t len, uint64_t offset, uint64_t object) const;
  // Offset (absolute, in the file) of the first byte of buf that differs from
  // the expected content, or nullopt if all len bytes match.
  std::optional<uint64_t> FirstMismatch(const uint8_t* buf, size_t len, uint64_t offset,
                                        uint64_t object) const;
  // The expected byte at `offset` of `object` (for error messages).
  uint8_t ExpectedByte(uint64_t offset, uint64_t object) const;

 private:
  uint64_t Stamp(uint64_t offset, uint64_t object) const;
  uint64_t seed_;
  uint64_t writer_;
  std::vector<uint8_t> base_;
};

}  // namespace sluice::io500
