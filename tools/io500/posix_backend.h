// FileSystem over a POSIX directory: local ext4, the Sluice FUSE mount, or any
// other mounted file system. Plain open/pread/pwrite/fsync/close/stat/mkdir/
// readdir/unlink/rmdir, no caching of our own.
#pragma once

#include <string>

#include "tools/io500/backend.h"

namespace sluice::io500 {

class PosixFileSystem final : public FileSystem {
 public:
  // `root` must be an existing directory; paths given to the methods are
  // joined onto it.
  explicit PosixFileSystem(std::string root);

  std::string Describe() const override;
  Result<std::unique_ptr<File>> Open(const std::string& path, uint32_t flags,
                                     uint32_t mode = 0644) override;
  Result<FileStat> Stat(const std::string& path) override;
  Status Mkdir(const std::string& path, uint32_t mode = 0755) override;
  Status SetLayout(const std::string& dir, const std::string& layout) override;
  Status Unlink(const std::string& path) override;
  Status Rmdir(const std::string& path) override;
  Result<std::vector<DirEntry>> ReadDir(const std::string& path) override;

  const std::string& root() const { return root_; }

 private:
  std::string Full(const std::string& path) const;
  std::string root_;
};

}  // namespace sluice::io500
