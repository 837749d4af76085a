#include "server/data/io_buffer_pool.h"

#include <sys/mman.h>

#include <bit>
#include <cstdlib>

namespace sluice::data {
namespace {

constexpr size_t kMinBuffer = 4096;
constexpr size_t kArenaAlign = 2u << 20;

int ClassOf(size_t bytes) {
  size_t cap = std::bit_ceil(bytes < kMinBuffer ? kMinBuffer : bytes);
  return std::countr_zero(cap) - std::countr_zero(kMinBuffer);
}

}  // namespace

IoBuffer& IoBuffer::operator=(IoBuffer&& o) noexcept {
  if (this != &o) {
    Release();
    pool_ = std::move(o.pool_);
    p_ = o.p_;
    cap_ = o.cap_;
    registered_ = o.registered_;
    o.pool_.reset();
    o.p_ = nullptr;
    o.cap_ = 0;
  }
  return *this;
}

void IoBuffer::Release() {
  if (p_ && pool_) pool_->Return(p_, cap_, registered_);
  p_ = nullptr;
  pool_.reset();
}

std::shared_ptr<IoBufferPool> IoBufferPool::Create(size_t arena_bytes) {
  return std::shared_ptr<IoBufferPool>(new IoBufferPool(arena_bytes));
}

IoBufferPool::IoBufferPool(size_t arena_bytes) {
  if (arena_bytes == 0) return;
  size_t len = (arena_bytes + kArenaAlign - 1) / kArenaAlign * kArenaAlign;
  void* p = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE,
                 -1, 0);
  if (p == MAP_FAILED) return;  // callers see arena().iov_len == 0 and use the heap
  madvise(p, len, MADV_HUGEPAGE);
  arena_.iov_base = p;
  arena_.iov_len = len;
}

IoBufferPool::~IoBufferPool() {
  for (auto& list : heap_free_) {
    for (uint8_t* p : list) std::free(p);
  }
  if (arena_.iov_base) munmap(arena_.iov_base, arena_.iov_len);
}

IoBuffer IoBufferPool::Allocate(size_t bytes) {
  int cls = ClassOf(bytes);
  size_t cap = kMinBuffer << cls;
  IoBuffer b;
  b.pool_ = shared_from_this();
  b.cap_ = cap;
  {
    std::lock_guard<std::mutex> l(mu_);
    if (cls < kClasses && !free_[cls].empty()) {
      b.p_ = free_[cls].back();
      free_[cls].pop_back();
      b.registered_ = InArena(b.p_, cap);
      return b;
    }
    if (carved_ + cap <= arena_.iov_len) {
      b.p_ = static_cast<uint8_t*>(arena_.iov_base) + carved_;
      carved_ += cap;
      b.registered_ = true;
      return b;
    }
    // Heap buffers are kept apart, so a free arena buffer is always preferred.
    if (cls < kClasses && !heap_free_[cls].empty()) {
      b.p_ = heap_free_[cls].back();
      heap_free_[cls].pop_back();
      b.registered_ = false;
      return b;
    }
    heap_allocations_++;
  }
  b.p_ = static_cast<uint8_t*>(std::aligned_alloc(kMinBuffer, cap));
  b.registered_ = false;
  return b;
}

void IoBufferPool::Return(uint8_t* p, size_t cap, bool registered) {
  int cls = ClassOf(cap);
  std::lock_guard<std::mutex> l(mu_);
  (registered ? free_ : heap_free_)[cls].push_back(p);
}

}  // namespace sluice::data
