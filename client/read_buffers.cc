#include "client/read_buffers.h"

#include <sys/mman.h>

#include "common/log.h"

namespace sluice::client {

ReadBuffers::ReadBuffers(size_t bytes, size_t max_registered, std::function<Status(void*, size_t)> register_memory)
    : bytes_(bytes), max_registered_(max_registered), register_memory_(std::move(register_memory)) {}

ReadBuffers::~ReadBuffers() {
  for (char* p : all_) munmap(p, bytes_);
}

size_t ReadBuffers::registered_count() const {
  std::lock_guard<std::mutex> l(mu_);
  return all_.size();
}

ReadBuffers::Lease ReadBuffers::Get(size_t len) {
  Lease lease;
  if (len <= bytes_) {
    std::lock_guard<std::mutex> l(mu_);
    if (free_.empty() && all_.size() < max_registered_ && !registration_failed_) {
      void* p = mmap(nullptr, bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (p != MAP_FAILED) {
        Status st = register_memory_(p, bytes_);
        if (st.ok()) {
          all_.push_back(static_cast<char*>(p));
          free_.push_back(static_cast<char*>(p));
        } else {
          munmap(p, bytes_);
          registration_failed_ = true;  // say it once; reads still work, bounced
          LOG_WARN("read-ahead buffers cannot be registered (" + st.ToString() + "): reads are copied");
        }
      }
    }
    if (!free_.empty()) {
      lease.data_ = free_.back();
      free_.pop_back();
      lease.size_ = bytes_;
      lease.owner_ = shared_from_this();
      return lease;
    }
  }
  lease.heap_.reset(new char[len]);  // not zeroed: every byte is read into
  lease.data_ = lease.heap_.get();
  lease.size_ = len;
  return lease;
}

void ReadBuffers::Put(char* p) {
  std::lock_guard<std::mutex> l(mu_);
  free_.push_back(p);
}

ReadBuffers::Lease& ReadBuffers::Lease::operator=(Lease&& o) noexcept {
  if (this != &o) {
    Release();
    owner_ = std::move(o.owner_);
    heap_ = std::move(o.heap_);
    data_ = o.data_;
    size_ = o.size_;
    o.data_ = nullptr;
    o.size_ = 0;
  }
  return *this;
}

void ReadBuffers::Lease::Release() {
  if (owner_) owner_->Put(data_);
  owner_.reset();
  heap_.reset();
  data_ = nullptr;
  size_ = 0;
}

}  // namespace sluice::client
