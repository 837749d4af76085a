#include "prefetch/file_reader.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace sluice::prefetch {

Result<ScanFile> ScanFile::Open(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::FromErrno(errno, "open '" + path + "'");
  struct stat st;
  if (fstat(fd, &st) != 0) {
    int err = errno;
    close(fd);
    return Status::FromErrno(err, "stat '" + path + "'");
  }
  return ScanFile(fd, static_cast<uint64_t>(st.st_size), path);
}

ScanFile::~ScanFile() {
  if (fd_ >= 0) close(fd_);
}

Status ScanFile::ReadAt(uint64_t offset, void* buf, size_t n) const {
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

}  // namespace sluice::prefetch
