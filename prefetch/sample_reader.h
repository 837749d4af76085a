// SampleReader: the loader's only way to read sample bytes.
//
// A reader is bound to a file table (Dataset::files()) and reads many byte
// ranges in one call. The io_uring reader below serves POSIX paths; a
// libsluice reader (client/) implements the same call by grouping the ranges
// by data server and issuing them as batched chunk reads.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "common/status.h"

namespace sluice::prefetch {

// One range to read: `length` bytes at `offset` of file `file` into `dest`.
struct ReadRequest {
  uint32_t file = 0;
  uint64_t offset = 0;
  uint64_t length = 0;
  uint8_t* dest = nullptr;  // caller-owned, at least `length` bytes, live until ReadBatch returns
  Status status;            // set by ReadBatch: OK, or why this range could not be read
};

class SampleReader {
 public:
  virtual ~SampleReader() = default;

  // Reads every request, in any order and in parallel, and returns once all
  // have completed. Each request's `status` says how it went (a short file is
  // kCorrupt naming the file; a missing one kNotFound); the return value is an
  // error only when the reader itself failed, in which case statuses are
  // meaningless. Not thread-safe: one ReadBatch at a time per reader.
  virtual Status ReadBatch(std::span<ReadRequest> requests) = 0;
};

// Makes one reader per loader I/O thread, for the given file table.
using SampleReaderFactory =
    std::function<Result<std::unique_ptr<SampleReader>>(const std::vector<std::string>& files)>;

struct UringReaderOptions {
  unsigned queue_depth = 256;  // io_uring entries; reads in flight at once
  // Up to this many files the reader keeps descriptors open (shards); with
  // more (one file per sample) it opens and closes per batch, the opens also
  // issued through io_uring.
  size_t max_cached_files = 1024;
};

// The POSIX reader: batched io_uring submission, waits on completions (no
// polling thread, no spinning), finishes short reads.
Result<std::unique_ptr<SampleReader>> NewUringSampleReader(const std::vector<std::string>& files,
                                                           const UringReaderOptions& options = {});

}  // namespace sluice::prefetch
