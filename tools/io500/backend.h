// The file-system back end every IO500 phase goes through.
//
// A phase never calls the OS directly: it asks a FileSystem for files and
// directories named by paths relative to the back end's root. The POSIX back
// end (posix_backend.h) maps them onto a directory; a native libsluice back
// end implements the same two classes in one file and registers itself in
// MakeFileSystem() (backend.cc). All errors are Status values whose message
// names the path.
#pragma once

#include <cstdint>
#include <ctime>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"

namespace sluice::io500 {

// Flags for FileSystem::Open; combine with |.
enum OpenFlag : uint32_t {
  kOpenRead = 1u << 0,
  kOpenWrite = 1u << 1,
  kOpenCreate = 1u << 2,     // create if missing
  kOpenTruncate = 1u << 3,   // truncate to 0 on open
  kOpenExclusive = 1u << 4,  // with kOpenCreate: fail with kExists if present
};

struct FileStat {
  uint64_t size = 0;
  bool is_dir = false;
  bool is_regular = false;
  timespec mtime{};  // nanosecond resolution where the file system has it
};

struct DirEntry {
  enum class Type { kUnknown, kFile, kDir, kOther };
  std::string name;  // never "." or ".."
  Type type = Type::kUnknown;
};

// An open file. Not thread-safe; one owner. The destructor closes without
// reporting errors: call Close() to see them.
class File {
 public:
  virtual ~File() = default;
  File() = default;
  File(const File&) = delete;
  File& operator=(const File&) = delete;

  // Reads up to `len` bytes at `offset`; fewer only at end of file.
  virtual Result<size_t> Pread(void* buf, size_t len, uint64_t offset) = 0;
  // Writes all `len` bytes at `offset` (loops over short writes) or fails.
  virtual Status Pwrite(const void* buf, size_t len, uint64_t offset) = 0;
  // Makes written data durable (IOR's -e "fsync on close" calls this first).
  virtual Status Fsync() = 0;
  // Releases the file; later calls return Ok. Reports deferred write errors.
  virtual Status Close() = 0;
};

// A name space of files and directories. Paths are relative to the back
// end's root, '/'-separated, without a leading '/'. Safe to use from one
// thread at a time per instance (each rank owns one instance).
class FileSystem {
 public:
  virtual ~FileSystem() = default;
  FileSystem() = default;
  FileSystem(const FileSystem&) = delete;
  FileSystem& operator=(const FileSystem&) = delete;

  // "posix:/mnt/x" — printed in results so a run says what it measured.
  virtual std::string Describe() const = 0;

  virtual Result<std::unique_ptr<File>> Open(const std::string& path, uint32_t flags,
                                             uint32_t mode = 0644) = 0;
  virtual Result<FileStat> Stat(const std::string& path) = 0;
  // Fails with kExists if `path` exists.
  virtual Status Mkdir(const std::string& path, uint32_t mode = 0755) = 0;
  virtual Status Unlink(const std::string& path) = 0;
  virtual Status Rmdir(const std::string& path) = 0;
  // All entries of a directory except "." and "..", in the back end's order.
  virtual Result<std::vector<DirEntry>> ReadDir(const std::string& path) = 0;
  // Sets a directory's Sluice layout ("chunk_size=64KiB stripe_width=4"),
  // as IO500 runs set striping on their directories. kUnsupported where the
  // back end is not Sluice.
  virtual Status SetLayout(const std::string& dir, const std::string& layout) = 0;

  // Convenience: Mkdir that treats kExists as success.
  Status MkdirIfMissing(const std::string& path, uint32_t mode = 0755);
  // Deletes `path` and everything below it (used for cleanup, never timed).
  Status RemoveTree(const std::string& path);
};

// Builds a back end from a target spec:
//   "/some/dir" or "posix:/some/dir"  -> POSIX back end rooted at the directory
//   "native:<cluster-config>:<dir>"    -> libsluice (kUnsupported until client/ lands)
Result<std::unique_ptr<FileSystem>> MakeFileSystem(const std::string& spec);

}  // namespace sluice::io500
