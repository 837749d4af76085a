// Small synchronous helpers for scanning file headers when a data set opens.
// (Sample bytes are read by a SampleReader, not here.)
#pragma once

#include <cstdint>
#include <string>

#include "common/status.h"

namespace sluice::prefetch {

// An open read-only file descriptor, closed on destruction.
class ScanFile {
 public:
  static Result<ScanFile> Open(const std::string& path);
  ScanFile(ScanFile&& o) noexcept : fd_(o.fd_), size_(o.size_), path_(std::move(o.path_)) { o.fd_ = -1; }
  ScanFile(const ScanFile&) = delete;
  ~ScanFile();
  uint64_t size() const { return size_; }
  const std::string& path() const { return path_; }
  // Reads exactly n bytes at offset; kCorrupt ("truncated") if the file ends first.
  Status ReadAt(uint64_t offset, void* buf, size_t n) const;

 private:
  ScanFile(int fd, uint64_t size, std::string path) : fd_(fd), size_(size), path_(std::move(path)) {}
  int fd_;
  uint64_t size_;
  std::string path_;
};

}  // namespace sluice::prefetch
