// Read-ahead buffers for the Files of one Client, registered with the fabric
// once and reused: data servers write sequential reads straight into them by
// RMA, with no bounce copy. At most `max_registered` buffers of `bytes` each
// are ever registered (the memory is kept until the Client goes); when all
// are in use, a plain heap buffer is handed out and reads into it are
// bounced as before, so a burst of readers costs copies, never failures.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include "common/status.h"

namespace sluice::client {

class ReadBuffers : public std::enable_shared_from_this<ReadBuffers> {
 public:
  // `register_memory` registers [addr, addr+len) with the fabric.
  ReadBuffers(size_t bytes, size_t max_registered, std::function<Status(void*, size_t)> register_memory);
  ~ReadBuffers();
  ReadBuffers(const ReadBuffers&) = delete;
  ReadBuffers& operator=(const ReadBuffers&) = delete;

  // A buffer of at least `len` bytes, returned to the pool when the lease ends.
  class Lease {
   public:
    Lease() = default;
    Lease(Lease&& o) noexcept { *this = std::move(o); }
    Lease& operator=(Lease&& o) noexcept;
    ~Lease() { Release(); }
    char* data() const { return data_; }
    size_t size() const { return size_; }
    bool registered() const { return owner_ != nullptr; }

   private:
    friend class ReadBuffers;
    void Release();
    std::shared_ptr<ReadBuffers> owner_;  // set for pooled (registered) buffers
    std::unique_ptr<char[]> heap_;        // set otherwise
    char* data_ = nullptr;
    size_t size_ = 0;
  };
  Lease Get(size_t len);

  size_t registered_count() const;

 private:
  void Put(char* p);

  const size_t bytes_;
  const size_t max_registered_;
  std::function<Status(void*, size_t)> register_memory_;
  mutable std::mutex mu_;
  std::vector<char*> all_;   // every registered buffer (freed on destruction)
  std::vector<char*> free_;  // not leased
  bool registration_failed_ = false;
};

}  // namespace sluice::client
