// Pools of registered memory. Every buffer handed out lies in a region
// registered with the endpoint (FI_MR_LOCAL), so it can be sent from,
// received into, and exposed to peers for RMA without another registration.
#pragma once

#include <cstddef>
#include <memory>
#include <mutex>
#include <vector>

#include "common/fabric.h"

namespace sluice::net {

class BufferPool;

// A buffer on loan from a pool; returns itself on destruction. Move-only.
class PooledBuffer {
 public:
  PooledBuffer() = default;
  ~PooledBuffer() { Release(); }
  PooledBuffer(PooledBuffer&& o) noexcept { *this = std::move(o); }
  PooledBuffer& operator=(PooledBuffer&& o) noexcept;
  PooledBuffer(const PooledBuffer&) = delete;
  PooledBuffer& operator=(const PooledBuffer&) = delete;

  char* data() const { return data_; }
  size_t capacity() const { return cap_; }
  void* desc() const { return mr_ ? mr_->desc() : nullptr; }
  uint64_t key() const { return mr_ ? mr_->key() : 0; }
  uint64_t RemoteAddr(const void* p) const { return mr_->RemoteAddr(p); }
  const MemoryRegion* region() const { return mr_; }
  explicit operator bool() const { return data_ != nullptr; }
  void Release();

 private:
  friend class BufferPool;
  BufferPool* pool_ = nullptr;
  int cls_ = 0;
  char* data_ = nullptr;
  size_t cap_ = 0;
  const MemoryRegion* mr_ = nullptr;
};

// Size classes are powers of two from 4 KiB to 64 MiB. Each class grows by
// registering slabs on demand and keeps at most `max_cached_bytes_per_class`
// of idle buffers.
class BufferPool {
 public:
  static constexpr size_t kMinBuffer = 4096;
  static constexpr size_t kMaxBuffer = 64u << 20;

  explicit BufferPool(Endpoint* ep, size_t max_cached_bytes_per_class = 256u << 20);
  ~BufferPool();
  BufferPool(const BufferPool&) = delete;
  BufferPool& operator=(const BufferPool&) = delete;

  // A registered buffer of at least `size` bytes (<= kMaxBuffer).
  Result<PooledBuffer> Get(size_t size);

 private:
  friend class PooledBuffer;
  struct Slab {
    void* mem = nullptr;
    size_t len = 0;
    MemoryRegion mr;
  };
  struct Free {
    char* data;
    const MemoryRegion* mr;
  };
  void Put(int cls, char* data, const MemoryRegion* mr);

  Endpoint* ep_;
  size_t max_cached_;
  std::mutex mu_;
  std::vector<std::unique_ptr<Slab>> slabs_;
  std::vector<std::vector<Free>> free_;  // per class
};

}  // namespace sluice::net
