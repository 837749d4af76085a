// Aligned IO buffers carved from one arena that every io_uring of a chunk
// store registers as fixed buffer 0 (and that the RPC layer may register with
// libfabric for RMA, so read bytes go from disk to the wire without a copy).
//
// Buffers are 4 KiB aligned, sized in powers of two from 4 KiB, and recycled
// per size. When the arena is exhausted, buffers come from the heap (still
// aligned for O_DIRECT, but not registered: IO on them is not "fixed").
#pragma once

#include <sys/uio.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

namespace sluice::data {

class IoBufferPool;

// A move-only handle to one buffer; returns it to its pool on destruction.
// It keeps the pool (and its arena) alive, so it may outlive the chunk store.
class IoBuffer {
 public:
  IoBuffer() = default;
  IoBuffer(IoBuffer&& o) noexcept { *this = std::move(o); }
  IoBuffer& operator=(IoBuffer&& o) noexcept;
  IoBuffer(const IoBuffer&) = delete;
  IoBuffer& operator=(const IoBuffer&) = delete;
  ~IoBuffer() { Release(); }

  uint8_t* data() const { return p_; }
  size_t capacity() const { return cap_; }
  // True when the buffer lies inside the registered arena.
  bool registered() const { return registered_; }
  explicit operator bool() const { return p_ != nullptr; }

 private:
  friend class IoBufferPool;
  void Release();
  std::shared_ptr<IoBufferPool> pool_;
  uint8_t* p_ = nullptr;
  size_t cap_ = 0;
  bool registered_ = false;
};

class IoBufferPool : public std::enable_shared_from_this<IoBufferPool> {
 public:
  // Maps an arena of `arena_bytes` (rounded up to 2 MiB; 0 = no arena).
  static std::shared_ptr<IoBufferPool> Create(size_t arena_bytes);
  ~IoBufferPool();
  IoBufferPool(const IoBufferPool&) = delete;
  IoBufferPool& operator=(const IoBufferPool&) = delete;

  // A buffer of at least `bytes` (>= 1, <= 64 MiB) bytes. Thread-safe.
  IoBuffer Allocate(size_t bytes);
  // The arena, for io_uring_register_buffers / fi_mr_reg. iov_len 0 if none.
  const iovec& arena() const { return arena_; }
  bool InArena(const void* p, size_t n) const {
    auto* b = static_cast<const uint8_t*>(arena_.iov_base);
    auto* q = static_cast<const uint8_t*>(p);
    return n <= arena_.iov_len && q >= b && q + n <= b + arena_.iov_len;
  }
  size_t heap_allocations() const { return heap_allocations_; }

 private:
  friend class IoBuffer;
  explicit IoBufferPool(size_t arena_bytes);
  static constexpr int kClasses = 15;  // 4 KiB .. 64 MiB
  void Return(uint8_t* p, size_t cap, bool registered);

  iovec arena_{nullptr, 0};
  std::mutex mu_;
  size_t carved_ = 0;  // arena bytes handed out at least once
  std::array<std::vector<uint8_t*>, kClasses> free_;       // arena buffers
  std::array<std::vector<uint8_t*>, kClasses> heap_free_;  // heap buffers
  size_t heap_allocations_ = 0;
};

}  // namespace sluice::data
