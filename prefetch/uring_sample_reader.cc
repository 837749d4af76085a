#include <fcntl.h>
#include <liburing.h>
#include <unistd.h>

#include <deque>

#include "prefetch/sample_reader.h"

namespace sluice::prefetch {
namespace {

class UringSampleReader final : public SampleReader {
 public:
  UringSampleReader(const std::vector<std::string>& files, const UringReaderOptions& opt)
      : files_(files), opt_(opt), cache_(files.size() <= opt.max_cached_files) {
    if (cache_) fds_.assign(files.size(), -1);
  }
  ~UringSampleReader() override {
    if (ring_ok_) io_uring_queue_exit(&ring_);
    for (int fd : fds_) {
      if (fd >= 0) close(fd);
    }
  }

  Status Init() {
    int rc = io_uring_queue_init(opt_.queue_depth, &ring_, 0);
    if (rc < 0) return Status::FromErrno(-rc, "io_uring_queue_init");
    ring_ok_ = true;
    return Status::Ok();
  }

  Status ReadBatch(std::span<ReadRequest> reqs) override {
    if (!ring_usable_) {
      return Status(Code::kIo, "io_uring reader: an earlier batch failed mid-flight (" + broken_ +
                                   "); this reader is no longer used");
    }
    std::vector<int> fd(reqs.size(), -1);
    for (ReadRequest& r : reqs) {
      r.status = Status::Ok();
      if (r.file >= files_.size()) {
        r.status = Status(Code::kInvalid, "read: file id " + std::to_string(r.file) + " out of range");
      }
    }
    if (cache_) {
      for (size_t i = 0; i < reqs.size(); i++) {
        if (!reqs[i].status.ok()) continue;
        int& cached = fds_[reqs[i].file];
        if (cached < 0) {
          cached = open(files_[reqs[i].file].c_str(), O_RDONLY | O_CLOEXEC);
          if (cached < 0) {
            reqs[i].status = Status::FromErrno(errno, "open '" + files_[reqs[i].file] + "'");
            continue;
          }
          // Shards are read at random offsets: the kernel's readahead (often
          // megabytes) would read data no one asked for.
          posix_fadvise(cached, 0, 0, POSIX_FADV_RANDOM);
        }
        fd[i] = cached;
      }
    } else {
      // One file per request: open them all through the ring.
      SLUICE_RETURN_IF_ERROR(Run(
          reqs.size(),
          [&](size_t i, io_uring_sqe* sqe) {
            if (!reqs[i].status.ok()) return false;
            io_uring_prep_openat(sqe, AT_FDCWD, files_[reqs[i].file].c_str(), O_RDONLY | O_CLOEXEC, 0);
            return true;
          },
          [&](size_t i, int res) {
            if (res < 0) reqs[i].status = Status::FromErrno(-res, "open '" + files_[reqs[i].file] + "'");
            else fd[i] = res;
            return false;
          }));
    }
    std::vector<uint64_t> done(reqs.size(), 0);
    Status st = Run(
        reqs.size(),
        [&](size_t i, io_uring_sqe* sqe) {
          if (fd[i] < 0 || done[i] == reqs[i].length) return false;
          uint64_t left = reqs[i].length - done[i];
          unsigned n = left > (1u << 30) ? (1u << 30) : static_cast<unsigned>(left);
          io_uring_prep_read(sqe, fd[i], reqs[i].dest + done[i], n, reqs[i].offset + done[i]);
          return true;
        },
        [&](size_t i, int res) {
          if (res == -EINTR || res == -EAGAIN) return true;
          if (res < 0) {
            reqs[i].status = Status::FromErrno(-res, "read '" + files_[reqs[i].file] + "'");
            return false;
          }
          if (res == 0) {
            reqs[i].status = Status(
                Code::kCorrupt, "'" + files_[reqs[i].file] + "' ends before byte " +
                                    std::to_string(reqs[i].offset + reqs[i].length) +
                                    " (truncated: read " + std::to_string(done[i]) + " of " +
                                    std::to_string(reqs[i].length) + " bytes at offset " +
                                    std::to_string(reqs[i].offset) + ")");
            return false;
          }
          done[i] += static_cast<uint64_t>(res);
          return done[i] < reqs[i].length;  // short read: continue from where it stopped
        });
    if (!cache_) {
      for (int f : fd) {
        if (f >= 0) close(f);
      }
    }
    return st;
  }

 private:
  // Submits prep(i) for i in [0, n) (prep returns false to skip i), keeping
  // the ring full, and calls complete(i, res) for each completion; complete
  // returns true to submit prep(i) again. Blocks in io_uring_submit_and_wait.
  template <typename Prep, typename Complete>
  Status Run(size_t n, Prep prep, Complete complete) {
    size_t next = 0;
    size_t inflight = 0;
    std::deque<size_t> again;
    while (true) {
      while (inflight < opt_.queue_depth && (!again.empty() || next < n)) {
        size_t i;
        if (!again.empty()) {
          i = again.front();
          again.pop_front();
        } else {
          i = next++;
        }
        io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
        if (!sqe) {  // submission queue full: hand the pending ones to the kernel first
          again.push_front(i);
          break;
        }
        if (!prep(i, sqe)) {
          io_uring_prep_nop(sqe);
          io_uring_sqe_set_data64(sqe, kSkip);
        } else {
          io_uring_sqe_set_data64(sqe, i);
        }
        inflight++;
      }
      if (inflight == 0) return Status::Ok();
      int rc = io_uring_submit_and_wait(&ring_, 1);
      // EAGAIN/EBUSY: the kernel wants completions reaped first; they are below.
      if (rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY) {
        // Reads may still be in flight into the callers' buffers and their
        // completions would be counted by the next batch: retire the ring.
        Status st = Status::FromErrno(-rc, "io_uring_submit_and_wait");
        ring_usable_ = false;
        broken_ = st.ToString();
        return st;
      }
      io_uring_cqe* cqes[64];
      unsigned got;
      while ((got = io_uring_peek_batch_cqe(&ring_, cqes, 64)) > 0) {
        for (unsigned k = 0; k < got; k++) {
          uint64_t id = io_uring_cqe_get_data64(cqes[k]);
          int res = cqes[k]->res;
          inflight--;
          if (id != kSkip && complete(static_cast<size_t>(id), res)) again.push_back(static_cast<size_t>(id));
        }
        io_uring_cq_advance(&ring_, got);
      }
    }
  }

  static constexpr uint64_t kSkip = ~0ull;
  std::vector<std::string> files_;
  UringReaderOptions opt_;
  bool cache_;
  std::vector<int> fds_;
  io_uring ring_{};
  bool ring_ok_ = false;
  bool ring_usable_ = true;  // false once a batch returned with reads possibly in flight
  std::string broken_;
};

}  // namespace

Result<std::unique_ptr<SampleReader>> NewUringSampleReader(const std::vector<std::string>& files,
                                                           const UringReaderOptions& options) {
  auto r = std::make_unique<UringSampleReader>(files, options);
  SLUICE_RETURN_IF_ERROR(r->Init());
  return std::unique_ptr<SampleReader>(std::move(r));
}

}  // namespace sluice::prefetch
