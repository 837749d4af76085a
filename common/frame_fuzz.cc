// libFuzzer target for the decoders a peer's bytes reach first: the frame,
// the request/response headers and a method body. Any crash, leak or
// sanitizer report is a bug. Built with clang when SLUICE_FUZZ=ON; the test
// command runs it for a bounded time.
#include <cstddef>
#include <cstdint>

#include "common/frame.h"
#include "proto/rpc.pb.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto frame = sluice::rpc::DecodeFrame(data, size);
  if (!frame.ok()) return 0;
  // Every view must lie inside the input.
  const char* begin = reinterpret_cast<const char*>(data);
  const char* end = begin + size;
  for (auto v : {frame->header, frame->body, frame->payload}) {
    if (v.data() < begin || v.data() + v.size() > end) __builtin_trap();
  }
  if (frame->kind == sluice::rpc::FrameKind::kRequest || frame->kind == sluice::rpc::FrameKind::kPing) {
    sluice::rpc::RequestHeader h;
    if (h.ParseFromArray(frame->header.data(), static_cast<int>(frame->header.size()))) {
      sluice::rpc::EchoRequest req;
      (void)req.ParseFromArray(frame->body.data(), static_cast<int>(frame->body.size()));
    }
  } else {
    sluice::rpc::ResponseHeader h;
    (void)h.ParseFromArray(frame->header.data(), static_cast<int>(frame->header.size()));
  }
  return 0;
}
