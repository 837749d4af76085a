// One io_uring with the chunk store's data files registered as fixed files
// and its buffer arena registered as fixed buffer 0.
//
// Run() takes a batch of reads/writes/fdatasyncs, submits as many as the ring
// holds in one io_uring_enter, blocks in the kernel for completions (never
// spins), resubmits short transfers, and returns when every op is finished.
// One thread at a time per ring (the store keeps a pool of rings).
#pragma once

#include <liburing.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <vector>

#include "common/status.h"

namespace sluice::data {

struct IoOp {
  enum Kind : uint8_t { kRead, kWrite, kFdatasync };
  Kind kind = kRead;
  int file = 0;        // index into the fds given to IoRing::Create
  uint8_t* buf = nullptr;
  uint32_t len = 0;
  uint64_t offset = 0;
  bool fixed = false;  // buf lies in the registered arena
  // Out: bytes transferred (== len on success) or -errno.
  int32_t result = 0;
};

class IoRing {
 public:
  // `fds` become fixed files; `arena` (if iov_len > 0) becomes fixed buffer 0.
  // When buffer registration is refused, ops marked fixed run as plain IO
  // (logged once); fixed_buffers() says which.
  static Result<std::unique_ptr<IoRing>> Create(unsigned depth, std::span<const int> fds,
                                                const iovec& arena);
  ~IoRing();
  IoRing(const IoRing&) = delete;
  IoRing& operator=(const IoRing&) = delete;

  // Runs every op to completion; sets each op's result. Never fails as a
  // whole: errors are per op. `meanwhile`, if given, runs once the first ops
  // are submitted, before waiting for them (work to overlap with the IO).
  void Run(std::span<IoOp> ops, const std::function<void()>& meanwhile = nullptr);
  bool fixed_buffers() const { return fixed_buffers_; }

 private:
  IoRing() = default;
  void Prep(IoOp& op, uint32_t done, uint64_t user_data);

  io_uring ring_{};
  bool ring_ok_ = false;
  bool fixed_buffers_ = false;
  unsigned depth_ = 0;
  std::vector<uint32_t> done_;  // bytes finished per op in the current Run
};

}  // namespace sluice::data
