#include "common/frame.h"

#include <cstring>

#include "common/crc32c.h"

namespace sluice::rpc {
namespace {

uint32_t Load32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | static_cast<uint32_t>(p[1]) << 8 |
         static_cast<uint32_t>(p[2]) << 16 | static_cast<uint32_t>(p[3]) << 24;
}
void Store32(uint8_t* p, uint32_t v) {
  p[0] = static_cast<uint8_t>(v);
  p[1] = static_cast<uint8_t>(v >> 8);
  p[2] = static_cast<uint8_t>(v >> 16);
  p[3] = static_cast<uint8_t>(v >> 24);
}

}  // namespace

Result<FrameView> DecodeFrame(const void* data, size_t n) {
  auto* p = static_cast<const uint8_t*>(data);
  if (n < kFrameHeaderSize) {
    return Status(Code::kProtocol, "truncated frame: " + std::to_string(n) +
                                       " bytes, header needs " + std::to_string(kFrameHeaderSize));
  }
  uint32_t magic = Load32(p);
  if (magic != kFrameMagic) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "bad frame magic 0x%08x (expected 0x%08x)", magic, kFrameMagic);
    return Status(Code::kProtocol, buf);
  }
  if (p[4] != kFrameVersion) {
    return Status(Code::kProtocol, "unsupported frame version " + std::to_string(p[4]) +
                                       " (this build speaks " + std::to_string(kFrameVersion) + ")");
  }
  uint8_t kind = p[5];
  if (kind < static_cast<uint8_t>(FrameKind::kRequest) || kind > static_cast<uint8_t>(FrameKind::kPong)) {
    return Status(Code::kProtocol, "unknown frame kind " + std::to_string(kind));
  }
  uint64_t header_len = Load32(p + 8), body_len = Load32(p + 12), payload_len = Load32(p + 16);
  uint64_t total = kFrameHeaderSize + header_len + body_len + payload_len;
  if (total != n) {
    return Status(Code::kProtocol, "frame lengths (header " + std::to_string(header_len) +
                                       ", body " + std::to_string(body_len) + ", payload " +
                                       std::to_string(payload_len) + ") do not match the " +
                                       std::to_string(n) + " bytes received");
  }
  const char* c = reinterpret_cast<const char*>(p) + kFrameHeaderSize;
  FrameView v;
  v.kind = static_cast<FrameKind>(kind);
  v.header = std::string_view(c, header_len);
  v.body = std::string_view(c + header_len, body_len);
  v.payload = std::string_view(c + header_len + body_len, payload_len);
  return v;
}

void EncodeFrameHeader(FrameKind kind, uint32_t header_len, uint32_t body_len,
                       uint32_t payload_len, void* out) {
  auto* p = static_cast<uint8_t*>(out);
  Store32(p, kFrameMagic);
  p[4] = kFrameVersion;
  p[5] = static_cast<uint8_t>(kind);
  p[6] = p[7] = 0;
  Store32(p + 8, header_len);
  Store32(p + 12, body_len);
  Store32(p + 16, payload_len);
  Store32(p + 20, 0);
}

uint32_t MethodId(std::string_view full_name) { return Crc32c(full_name.data(), full_name.size()); }

}  // namespace sluice::rpc
