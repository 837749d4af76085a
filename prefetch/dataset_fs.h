// DatasetFs: where a data set's structure is read from when it opens — its
// folders, file sizes, packed indexes, tar and TFRecord headers.
//
// PosixFs() serves local paths (or a FUSE mount). sluice_dataset_fs.h serves
// paths inside a Sluice cluster through libsluice (no FUSE); it lives in
// sluice_prefetch_sluice so this library needs no client. Sample bytes are
// never read here: the loader reads them through a SampleReader.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "common/status.h"

namespace sluice::prefetch {

struct FsEntry {
  std::string name;    // file name (List) or the path given (Stat)
  bool is_dir = false;
  bool is_file = false;  // regular file (symlinks followed on POSIX)
  uint64_t size = 0;     // regular files only
};

// A file opened to scan its headers (tar, TFRecord): exact reads at offsets.
class ScanFile {
 public:
  virtual ~ScanFile() = default;
  virtual uint64_t size() const = 0;
  virtual const std::string& path() const = 0;
  // Reads exactly n bytes at offset; kCorrupt ("truncated") if the file ends first.
  virtual Status ReadAt(uint64_t offset, void* buf, size_t n) const = 0;
};

// A whole small file (a packed index) in memory or mapped; `owner` keeps the
// bytes alive.
struct FileBytes {
  std::string path;
  std::span<const uint8_t> bytes;
  std::shared_ptr<const void> owner;
};

class DatasetFs {
 public:
  virtual ~DatasetFs() = default;
  // "posix" or "sluice" (for messages).
  virtual const char* name() const = 0;
  // What `path` is; kNotFound when it does not exist.
  virtual Result<FsEntry> Stat(const std::string& path) = 0;
  // The directories and regular files in `dir` (others left out), any order,
  // with file sizes.
  virtual Result<std::vector<FsEntry>> List(const std::string& dir) = 0;
  virtual Result<std::unique_ptr<ScanFile>> Open(const std::string& path) = 0;
  // The whole file (meant for small files: packed indexes).
  virtual Result<FileBytes> ReadAll(const std::string& path) = 0;
};

// Local paths: stat, directory iteration, pread, mmap for ReadAll.
DatasetFs& PosixFs();

// "dir/name" ("dir" may end in '/').
std::string JoinPath(const std::string& dir, const std::string& name);
// The folder part of a path ("a/b/c" -> "a/b", "/c" -> "/", "c" -> ""); of a
// URL, never shorter than its root ("sluice:///c" -> "sluice:///").
std::string ParentPath(const std::string& path);

}  // namespace sluice::prefetch
