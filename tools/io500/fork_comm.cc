#include "tools/io500/fork_comm.h"

#include <signal.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <new>
#include <string>

namespace sluice::io500 {
namespace {

Status WriteByte(int fd, const std::string& what) {
  char c = 1;
  for (;;) {
    ssize_t n = ::write(fd, &c, 1);
    if (n == 1) return Status::Ok();
    if (n < 0 && errno == EINTR) continue;
    return Status::FromErrno(n < 0 ? errno : EPIPE, what);
  }
}

Status ReadByte(int fd, const std::string& what) {
  char c;
  for (;;) {
    ssize_t n = ::read(fd, &c, 1);
    if (n == 1) return Status::Ok();
    if (n < 0 && errno == EINTR) continue;
    if (n == 0) return Status(Code::kUnavailable, what + ": peer process exited");
    return Status::FromErrno(errno, what);
  }
}

Status WriteAll(int fd, const void* buf, size_t len, const std::string& what) {
  const char* p = static_cast<const char*>(buf);
  while (len > 0) {
    ssize_t n = ::write(fd, p, len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return Status::FromErrno(n < 0 ? errno : EPIPE, what);
    p += n;
    len -= static_cast<size_t>(n);
  }
  return Status::Ok();
}

Status ReadAll(int fd, void* buf, size_t len, const std::string& what) {
  char* p = static_cast<char*>(buf);
  while (len > 0) {
    ssize_t n = ::read(fd, p, len);
    if (n < 0 && errno == EINTR) continue;
    if (n == 0) return Status(Code::kUnavailable, what + ": peer process exited");
    if (n < 0) return Status::FromErrno(errno, what);
    p += n;
    len -= static_cast<size_t>(n);
  }
  return Status::Ok();
}

}  // namespace

Result<std::unique_ptr<ForkComm>> ForkComm::Spawn(int n) {
  if (n < 1) return Status(Code::kInvalid, "rank count must be >= 1, got " + std::to_string(n));
  std::unique_ptr<ForkComm> c(new ForkComm());
  c->size_ = n;
  c->slots_bytes_ = sizeof(std::atomic<uint64_t>) * static_cast<size_t>(n);
  void* mem = ::mmap(nullptr, c->slots_bytes_, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                     -1, 0);
  if (mem == MAP_FAILED) return Status::FromErrno(errno, "mmap shared rank slots");
  c->slots_ = static_cast<std::atomic<uint64_t>*>(mem);
  for (int i = 0; i < n; ++i) new (&c->slots_[i]) std::atomic<uint64_t>(0);

  // Pipes for children 1..n-1: arrive (child -> 0), release (0 -> child).
  std::vector<int> arr_rd(n, -1), arr_wr(n, -1), rel_rd(n, -1), rel_wr(n, -1);
  for (int i = 1; i < n; ++i) {
    int a[2], r[2];
    if (::pipe2(a, O_CLOEXEC) != 0 || ::pipe2(r, O_CLOEXEC) != 0) {
      return Status::FromErrno(errno, "pipe for rank " + std::to_string(i));
    }
    arr_rd[i] = a[0];
    arr_wr[i] = a[1];
    rel_rd[i] = r[0];
    rel_wr[i] = r[1];
  }
  // A peer that dies while we write to its pipe must give EPIPE, not kill us.
  ::signal(SIGPIPE, SIG_IGN);
  std::fflush(stdout);
  std::fflush(stderr);
  for (int i = 1; i < n; ++i) {
    pid_t pid = ::fork();
    if (pid < 0) return Status::FromErrno(errno, "fork rank " + std::to_string(i));
    if (pid == 0) {
      // Child i keeps only its own two ends.
      for (int j = 1; j < n; ++j) {
        ::close(arr_rd[j]);
        ::close(rel_wr[j]);
        if (j != i) {
          ::close(arr_wr[j]);
          ::close(rel_rd[j]);
        }
      }
      c->rank_ = i;
      c->children_.clear();
      c->arrive_ = {arr_wr[i]};
      c->release_ = {rel_rd[i]};
      return c;
    }
    c->children_.push_back(pid);
  }
  // Rank 0 keeps the other ends.
  c->arrive_.assign(n, -1);
  c->release_.assign(n, -1);
  for (int i = 1; i < n; ++i) {
    ::close(arr_wr[i]);
    ::close(rel_rd[i]);
    c->arrive_[i] = arr_rd[i];
    c->release_[i] = rel_wr[i];
  }
  return c;
}

ForkComm::~ForkComm() {
  for (int fd : arrive_)
    if (fd >= 0) ::close(fd);
  for (int fd : release_)
    if (fd >= 0) ::close(fd);
  if (slots_ != nullptr) ::munmap(slots_, slots_bytes_);
}

std::string ForkComm::Describe() const {
  return std::to_string(size_) + " processes on one node (fork)";
}

Status ForkComm::Barrier() {
  if (size_ == 1) return Status::Ok();
  if (rank_ != 0) {
    SLUICE_RETURN_IF_ERROR(WriteByte(arrive_[0], "barrier: rank " + std::to_string(rank_) +
                                                     " signalling rank 0"));
    return ReadByte(release_[0],
                    "barrier: rank " + std::to_string(rank_) + " waiting for rank 0");
  }
  for (int i = 1; i < size_; ++i) {
    SLUICE_RETURN_IF_ERROR(ReadByte(arrive_[i], "barrier: rank 0 waiting for rank " +
                                                    std::to_string(i)));
  }
  for (int i = 1; i < size_; ++i) {
    SLUICE_RETURN_IF_ERROR(
        WriteByte(release_[i], "barrier: rank 0 releasing rank " + std::to_string(i)));
  }
  return Status::Ok();
}

Result<std::vector<uint64_t>> ForkComm::AllGather(uint64_t value) {
  slots_[rank_].store(value, std::memory_order_release);
  SLUICE_RETURN_IF_ERROR(Barrier());
  std::vector<uint64_t> out(size_);
  for (int i = 0; i < size_; ++i) out[i] = slots_[i].load(std::memory_order_acquire);
  SLUICE_RETURN_IF_ERROR(Barrier());
  return out;
}

Result<std::vector<std::string>> ForkComm::GatherStrings(const std::string& s) {
  std::string mine = s.substr(0, kMaxGatherString);
  if (rank_ != 0) {
    uint32_t len = static_cast<uint32_t>(mine.size());
    std::string what = "gather: rank " + std::to_string(rank_) + " sending to rank 0";
    SLUICE_RETURN_IF_ERROR(WriteAll(arrive_[0], &len, sizeof(len), what));
    SLUICE_RETURN_IF_ERROR(WriteAll(arrive_[0], mine.data(), mine.size(), what));
    SLUICE_RETURN_IF_ERROR(
        ReadByte(release_[0], "gather: rank " + std::to_string(rank_) + " waiting for rank 0"));
    return std::vector<std::string>();
  }
  std::vector<std::string> out(size_);
  out[0] = mine;
  for (int i = 1; i < size_; ++i) {
    std::string what = "gather: rank 0 reading from rank " + std::to_string(i);
    uint32_t len = 0;
    SLUICE_RETURN_IF_ERROR(ReadAll(arrive_[i], &len, sizeof(len), what));
    if (len > kMaxGatherString) return Status(Code::kProtocol, what + ": bad length");
    out[i].resize(len);
    SLUICE_RETURN_IF_ERROR(ReadAll(arrive_[i], out[i].data(), len, what));
  }
  for (int i = 1; i < size_; ++i) {
    SLUICE_RETURN_IF_ERROR(
        WriteByte(release_[i], "gather: rank 0 releasing rank " + std::to_string(i)));
  }
  return out;
}

Status ForkComm::Finish(int exit_code) {
  if (rank_ != 0) {
    std::fflush(stdout);
    std::fflush(stderr);
    ::_exit(exit_code);
  }
  // Closing our ends wakes any child still blocked in a barrier (EOF).
  for (int& fd : arrive_)
    if (fd >= 0) ::close(fd), fd = -1;
  for (int& fd : release_)
    if (fd >= 0) ::close(fd), fd = -1;
  std::string failed;
  for (size_t i = 0; i < children_.size(); ++i) {
    int wst = 0;
    while (::waitpid(children_[i], &wst, 0) < 0 && errno == EINTR) {
    }
    if (WIFEXITED(wst) && WEXITSTATUS(wst) == 0) continue;
    failed += " rank " + std::to_string(i + 1) +
              (WIFSIGNALED(wst) ? " (signal " + std::to_string(WTERMSIG(wst)) + ")"
                                : " (exit " + std::to_string(WEXITSTATUS(wst)) + ")");
  }
  children_.clear();
  if (!failed.empty()) return Status(Code::kInternal, "ranks failed:" + failed);
  return Status::Ok();
}

}  // namespace sluice::io500
