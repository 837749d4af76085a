#include "common/buffer_pool.h"

#include <sys/mman.h>

#include <bit>

namespace sluice::net {
namespace {

int ClassOf(size_t size) {
  size_t s = std::max(size, BufferPool::kMinBuffer);
  return std::bit_width(s - 1) - std::bit_width(BufferPool::kMinBuffer - 1);
}
size_t ClassSize(int cls) { return BufferPool::kMinBuffer << cls; }

}  // namespace

PooledBuffer& PooledBuffer::operator=(PooledBuffer&& o) noexcept {
  if (this != &o) {
    Release();
    pool_ = o.pool_;
    cls_ = o.cls_;
    data_ = o.data_;
    cap_ = o.cap_;
    mr_ = o.mr_;
    o.pool_ = nullptr;
    o.data_ = nullptr;
  }
  return *this;
}

void PooledBuffer::Release() {
  if (pool_ && data_) pool_->Put(cls_, data_, mr_);
  pool_ = nullptr;
  data_ = nullptr;
}

BufferPool::BufferPool(Endpoint* ep, size_t max_cached_bytes_per_class)
    : ep_(ep), max_cached_(max_cached_bytes_per_class), free_(ClassOf(kMaxBuffer) + 1) {}

BufferPool::~BufferPool() {
  for (auto& s : slabs_) {
    s->mr = MemoryRegion();
    munmap(s->mem, s->len);
  }
}

Result<PooledBuffer> BufferPool::Get(size_t size) {
  if (size > kMaxBuffer) {
    return Status(Code::kTooBig, "registered buffer of " + std::to_string(size) +
                                     " bytes requested; the largest is " +
                                     std::to_string(kMaxBuffer));
  }
  int cls = ClassOf(size);
  size_t csize = ClassSize(cls);
  std::lock_guard<std::mutex> l(mu_);
  auto& fl = free_[cls];
  if (fl.empty()) {
    // One slab of >= 1 MiB (or one buffer, for big classes), registered once.
    size_t count = std::max<size_t>(1, (1u << 20) / csize);
    auto slab = std::make_unique<Slab>();
    slab->len = count * csize;
    slab->mem = mmap(nullptr, slab->len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (slab->mem == MAP_FAILED) return Status::FromErrno(errno, "mmap registered buffer slab");
    auto mr = ep_->Register(slab->mem, slab->len);
    if (!mr.ok()) {
      munmap(slab->mem, slab->len);
      return mr.status();
    }
    slab->mr = std::move(mr.value());
    for (size_t i = 0; i < count; i++) {
      fl.push_back(Free{static_cast<char*>(slab->mem) + i * csize, &slab->mr});
    }
    slabs_.push_back(std::move(slab));
  }
  Free f = fl.back();
  fl.pop_back();
  PooledBuffer b;
  b.pool_ = this;
  b.cls_ = cls;
  b.data_ = f.data;
  b.cap_ = csize;
  b.mr_ = f.mr;
  return b;
}

void BufferPool::Put(int cls, char* data, const MemoryRegion* mr) {
  std::lock_guard<std::mutex> l(mu_);
  free_[cls].push_back(Free{data, mr});
  // Idle memory above the cap stays registered but is advised away.
  if (free_[cls].size() * ClassSize(cls) > max_cached_ && ClassSize(cls) >= (1u << 20)) {
    madvise(data, ClassSize(cls), MADV_DONTNEED);
  }
}

}  // namespace sluice::net
