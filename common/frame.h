// The frame every RPC message travels in:
//
//   FrameHeader (24 bytes, little-endian)
//     magic u32 'SLCE' | version u8 | kind u8 | flags u16
//     header_len u32 | body_len u32 | payload_len u32 | reserved u32
//   RequestHeader / ResponseHeader (protobuf, header_len bytes)
//   body    (the method's protobuf message, body_len bytes)
//   payload (inline bytes, payload_len; larger payloads travel by RMA)
//
// DecodeFrame treats its input as hostile: every length is checked against
// the bytes actually received before anything is parsed.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"

namespace sluice::rpc {

constexpr uint32_t kFrameMagic = 0x45434c53;  // "SLCE"
constexpr uint8_t kFrameVersion = 1;
constexpr size_t kFrameHeaderSize = 24;
// The largest frame a peer may send; receive buffers are this size.
constexpr size_t kMaxFrameSize = 256 * 1024;

enum class FrameKind : uint8_t {
  kRequest = 1,
  kResponse = 2,
  kPing = 3,  // liveness probe; header is a RequestHeader with reply_to
  kPong = 4,
};

struct FrameView {
  FrameKind kind;
  std::string_view header;
  std::string_view body;
  std::string_view payload;
};

// Parses and bounds-checks a frame of exactly `n` bytes.
Result<FrameView> DecodeFrame(const void* data, size_t n);

// Writes the 24-byte frame header into `out` (which must have room).
void EncodeFrameHeader(FrameKind kind, uint32_t header_len, uint32_t body_len,
                       uint32_t payload_len, void* out);

// Method ids are CRC32C of the full name "package.Service/Method".
uint32_t MethodId(std::string_view full_name);

}  // namespace sluice::rpc
