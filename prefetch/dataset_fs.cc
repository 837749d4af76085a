#include "prefetch/dataset_fs.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

#include "prefetch/mapped_file.h"

namespace sluice::prefetch {

std::string JoinPath(const std::string& dir, const std::string& name) {
  if (dir.empty()) return name;
  if (dir.back() == '/') return dir + name;
  return dir + "/" + name;
}

std::string ParentPath(const std::string& path) {
  // The root: "/" of a path, or the "/" after scheme://authority of a URL.
  size_t root = 0;
  size_t scheme = path.find("://");
  if (scheme != std::string::npos && path.find('/') > scheme) {
    root = path.find('/', scheme + 3);
    if (root == std::string::npos) return path + "/";
  }
  std::string p = path;
  while (p.size() > root + 1 && p.back() == '/') p.pop_back();
  size_t slash = p.rfind('/');
  if (slash == std::string::npos) return "";
  if (slash <= root) return p.substr(0, root + 1);
  return p.substr(0, slash);
}

namespace {

class PosixScanFile final : public ScanFile {
 public:
  PosixScanFile(int fd, uint64_t size, std::string path) : fd_(fd), size_(size), path_(std::move(path)) {}
  ~PosixScanFile() override { close(fd_); }
  uint64_t size() const override { return size_; }
  const std::string& path() const override { return path_; }
  Status ReadAt(uint64_t offset, void* buf, size_t n) const override {
    char* p = static_cast<char*>(buf);
    while (n > 0) {
      ssize_t r = pread(fd_, p, n, static_cast<off_t>(offset));
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) return Status::FromErrno(errno, "read '" + path_ + "'");
      if (r == 0) {
        return Status(Code::kCorrupt, "'" + path_ + "' is truncated at byte " + std::to_string(offset));
      }
      p += r;
      n -= static_cast<size_t>(r);
      offset += static_cast<uint64_t>(r);
    }
    return Status::Ok();
  }

 private:
  int fd_;
  uint64_t size_;
  std::string path_;
};

class Posix final : public DatasetFs {
 public:
  const char* name() const override { return "posix"; }

  Result<FsEntry> Stat(const std::string& path) override {
    struct stat st;
    if (stat(path.c_str(), &st) != 0) return Status::FromErrno(errno, "stat '" + path + "'");
    FsEntry e;
    e.name = path;
    e.is_dir = S_ISDIR(st.st_mode);
    e.is_file = S_ISREG(st.st_mode);
    e.size = e.is_file ? static_cast<uint64_t>(st.st_size) : 0;
    return e;
  }

  Result<std::vector<FsEntry>> List(const std::string& dir) override {
    std::error_code ec;
    std::vector<FsEntry> out;
    std::filesystem::directory_iterator it(dir, ec);
    if (ec) return Status(ErrnoToCode(ec.value()), "list '" + dir + "': " + ec.message());
    for (const auto& d : it) {
      std::error_code ec2;
      FsEntry e;
      e.name = d.path().filename();
      e.is_dir = d.is_directory(ec2);
      e.is_file = d.is_regular_file(ec2);
      if (!e.is_dir && !e.is_file) continue;
      if (e.is_file) {
        uint64_t size = d.file_size(ec2);
        if (ec2) continue;  // vanished while listing
        e.size = size;
      }
      out.push_back(std::move(e));
    }
    return out;
  }

  Result<std::unique_ptr<ScanFile>> Open(const std::string& path) override {
    int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return Status::FromErrno(errno, "open '" + path + "'");
    struct stat st;
    if (fstat(fd, &st) != 0) {
      int err = errno;
      close(fd);
      return Status::FromErrno(err, "stat '" + path + "'");
    }
    return std::unique_ptr<ScanFile>(new PosixScanFile(fd, static_cast<uint64_t>(st.st_size), path));
  }

  Result<FileBytes> ReadAll(const std::string& path) override {
    SLUICE_ASSIGN_OR_RETURN(std::unique_ptr<MappedFile> m, MappedFile::Open(path));
    std::shared_ptr<MappedFile> owner(std::move(m));
    return FileBytes{path, owner->bytes(), owner};
  }
};

}  // namespace

DatasetFs& PosixFs() {
  static Posix fs;
  return fs;
}

}  // namespace sluice::prefetch
