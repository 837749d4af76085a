#include "tools/io500/posix_backend.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace sluice::io500 {
namespace {

class PosixFile final : public File {
 public:
  PosixFile(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  ~PosixFile() override {
    if (fd_ >= 0) ::close(fd_);
  }

  Result<size_t> Pread(void* buf, size_t len, uint64_t offset) override {
    size_t done = 0;
    auto* p = static_cast<char*>(buf);
    while (done < len) {
      ssize_t n = ::pread(fd_, p + done, len - done, static_cast<off_t>(offset + done));
      if (n < 0) {
        if (errno == EINTR) continue;
        return Status::FromErrno(errno, "pread " + path_ + " at " + std::to_string(offset + done));
      }
      if (n == 0) break;  // end of file
      done += static_cast<size_t>(n);
    }
    return done;
  }

  Status Pwrite(const void* buf, size_t len, uint64_t offset) override {
    size_t done = 0;
    const auto* p = static_cast<const char*>(buf);
    while (done < len) {
      ssize_t n = ::pwrite(fd_, p + done, len - done, static_cast<off_t>(offset + done));
      if (n < 0) {
        if (errno == EINTR) continue;
        return Status::FromErrno(errno, "pwrite " + path_ + " at " + std::to_string(offset + done));
      }
      done += static_cast<size_t>(n);
    }
    return Status::Ok();
  }

  Status Fsync() override {
    if (::fsync(fd_) != 0) return Status::FromErrno(errno, "fsync " + path_);
    return Status::Ok();
  }

  Status Close() override {
    if (fd_ < 0) return Status::Ok();
    int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0) return Status::FromErrno(errno, "close " + path_);
    return Status::Ok();
  }

 private:
  int fd_;
  std::string path_;
};

}  // namespace

PosixFileSystem::PosixFileSystem(std::string root) : root_(std::move(root)) {
  while (root_.size() > 1 && root_.back() == '/') root_.pop_back();
}

std::string PosixFileSystem::Describe() const { return "posix:" + root_; }

std::string PosixFileSystem::Full(const std::string& path) const {
  if (path.empty()) return root_;
  return root_ + "/" + path;
}

Result<std::unique_ptr<File>> PosixFileSystem::Open(const std::string& path, uint32_t flags,
                                                    uint32_t mode) {
  int oflags = O_CLOEXEC;
  bool rd = flags & kOpenRead, wr = flags & kOpenWrite;
  oflags |= (rd && wr) ? O_RDWR : (wr ? O_WRONLY : O_RDONLY);
  if (flags & kOpenCreate) oflags |= O_CREAT;
  if (flags & kOpenTruncate) oflags |= O_TRUNC;
  if (flags & kOpenExclusive) oflags |= O_EXCL;
  std::string full = Full(path);
  int fd = ::open(full.c_str(), oflags, mode);
  if (fd < 0) return Status::FromErrno(errno, "open " + full);
  return std::unique_ptr<File>(new PosixFile(fd, full));
}

Result<FileStat> PosixFileSystem::Stat(const std::string& path) {
  std::string full = Full(path);
  struct stat st;
  if (::stat(full.c_str(), &st) != 0) return Status::FromErrno(errno, "stat " + full);
  FileStat out;
  out.size = static_cast<uint64_t>(st.st_size);
  out.is_dir = S_ISDIR(st.st_mode);
  out.is_regular = S_ISREG(st.st_mode);
  out.mtime = st.st_mtim;
  return out;
}

Status PosixFileSystem::Mkdir(const std::string& path, uint32_t mode) {
  std::string full = Full(path);
  if (::mkdir(full.c_str(), mode) != 0) return Status::FromErrno(errno, "mkdir " + full);
  return Status::Ok();
}

Status PosixFileSystem::SetLayout(const std::string& dir, const std::string& layout) {
  std::string full = Full(dir);
  // A Sluice mount's virtual attribute (client::kLayoutXattr): every
  // directory there has it; elsewhere it is missing (or unsupported).
  if (::getxattr(full.c_str(), "user.sluice.layout", nullptr, 0) < 0) {
    return Status(Code::kUnsupported, "layout of " + full + ": not a Sluice mount (no user.sluice.layout: " +
                                          std::strerror(errno) + ")");
  }
  if (::setxattr(full.c_str(), "user.sluice.layout", layout.data(), layout.size(), 0) != 0) {
    int e = errno;
    return Status::FromErrno(e, "set layout '" + layout + "' on " + full);
  }
  return Status::Ok();
}

Status PosixFileSystem::Unlink(const std::string& path) {
  std::string full = Full(path);
  if (::unlink(full.c_str()) != 0) return Status::FromErrno(errno, "unlink " + full);
  return Status::Ok();
}

Status PosixFileSystem::Rmdir(const std::string& path) {
  std::string full = Full(path);
  if (::rmdir(full.c_str()) != 0) return Status::FromErrno(errno, "rmdir " + full);
  return Status::Ok();
}

Result<std::vector<DirEntry>> PosixFileSystem::ReadDir(const std::string& path) {
  std::string full = Full(path);
  DIR* dir = ::opendir(full.c_str());
  if (dir == nullptr) return Status::FromErrno(errno, "opendir " + full);
  std::vector<DirEntry> out;
  errno = 0;
  while (struct dirent* de = ::readdir(dir)) {
    if (std::strcmp(de->d_name, ".") == 0 || std::strcmp(de->d_name, "..") == 0) continue;
    DirEntry e;
    e.name = de->d_name;
    switch (de->d_type) {
      case DT_REG: e.type = DirEntry::Type::kFile; break;
      case DT_DIR: e.type = DirEntry::Type::kDir; break;
      case DT_UNKNOWN: e.type = DirEntry::Type::kUnknown; break;
      default: e.type = DirEntry::Type::kOther; break;
    }
    out.push_back(std::move(e));
    errno = 0;
  }
  int err = errno;
  ::closedir(dir);
  if (err != 0) return Status::FromErrno(err, "readdir " + full);
  return out;
}

}  // namespace sluice::io500
