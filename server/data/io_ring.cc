#include "server/data/io_ring.h"

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "common/log.h"

namespace sluice::data {

Result<std::unique_ptr<IoRing>> IoRing::Create(unsigned depth, std::span<const int> fds,
                                               const iovec& arena) {
  std::unique_ptr<IoRing> r(new IoRing());
  r->depth_ = depth;
  io_uring_params p{};
  p.flags = IORING_SETUP_COOP_TASKRUN | IORING_SETUP_SUBMIT_ALL;
  int rc = io_uring_queue_init_params(depth, &r->ring_, &p);
  if (rc == -EINVAL) {  // older kernel without those flags
    p = io_uring_params{};
    rc = io_uring_queue_init_params(depth, &r->ring_, &p);
  }
  if (rc < 0) return Status::FromErrno(-rc, "io_uring_queue_init(" + std::to_string(depth) + ")");
  r->ring_ok_ = true;
  rc = io_uring_register_files(&r->ring_, fds.data(), static_cast<unsigned>(fds.size()));
  if (rc < 0) return Status::FromErrno(-rc, "io_uring_register_files");
  if (arena.iov_len > 0) {
    rc = io_uring_register_buffers(&r->ring_, &arena, 1);
    if (rc == 0) {
      r->fixed_buffers_ = true;
    } else {
      static bool logged = false;
      if (!logged) {
        logged = true;
        LOG_WARN(std::string("io_uring_register_buffers refused (") + std::strerror(-rc) +
                 "; RLIMIT_MEMLOCK too low?): IO uses unregistered buffers");
      }
    }
  }
  return r;
}

IoRing::~IoRing() {
  if (ring_ok_) io_uring_queue_exit(&ring_);
}

void IoRing::Prep(IoOp& op, uint32_t done, uint64_t user_data) {
  io_uring_sqe* sqe = io_uring_get_sqe(&ring_);  // caller checked space
  uint8_t* buf = op.buf + done;
  unsigned len = op.len - done;
  uint64_t off = op.offset + done;
  bool fixed = op.fixed && fixed_buffers_;
  switch (op.kind) {
    case IoOp::kRead:
      if (fixed) io_uring_prep_read_fixed(sqe, op.file, buf, len, off, 0);
      else io_uring_prep_read(sqe, op.file, buf, len, off);
      break;
    case IoOp::kWrite:
      if (fixed) io_uring_prep_write_fixed(sqe, op.file, buf, len, off, 0);
      else io_uring_prep_write(sqe, op.file, buf, len, off);
      break;
    case IoOp::kFdatasync:
      io_uring_prep_fsync(sqe, op.file, IORING_FSYNC_DATASYNC);
      break;
  }
  sqe->flags |= IOSQE_FIXED_FILE;
  io_uring_sqe_set_data64(sqe, user_data);
}

void IoRing::Run(std::span<IoOp> ops, const std::function<void()>& meanwhile) {
  done_.assign(ops.size(), 0);
  std::vector<size_t> retry;  // ops to (re)submit before new ones
  size_t next = 0, finished = 0, inflight = 0;
  int hard_failures = 0;
  bool meanwhile_done = !meanwhile;
  if (ops.empty() && meanwhile) meanwhile();
  while (finished < ops.size()) {
    // Queue as much as the ring holds: retries first, then new ops.
    while (io_uring_sq_space_left(&ring_) > 0 && inflight < depth_ &&
           (!retry.empty() || next < ops.size())) {
      size_t i;
      if (!retry.empty()) {
        i = retry.back();
        retry.pop_back();
      } else {
        i = next++;
      }
      Prep(ops[i], done_[i], i);
      inflight++;
    }
    if (!meanwhile_done) {
      meanwhile_done = true;
      io_uring_submit(&ring_);  // an error resurfaces in submit_and_wait below
      meanwhile();
    }
    int rc = io_uring_submit_and_wait(&ring_, 1);  // blocks until >= 1 completion
    if (rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY) {
      // io_uring_enter itself failing is a bug or a broken kernel. Returning
      // would leave the kernel writing into buffers we hand back; retrying
      // forever would spin. Stop loudly instead.
      if (++hard_failures >= 3) {
        LOG_ERROR(std::string("io_uring_submit_and_wait keeps failing: ") + std::strerror(-rc));
        std::abort();
      }
    } else {
      hard_failures = 0;
    }
    io_uring_cqe* cqe;
    unsigned head, seen = 0;
    io_uring_for_each_cqe(&ring_, head, cqe) {
      seen++;
      inflight--;
      size_t i = static_cast<size_t>(io_uring_cqe_get_data64(cqe));
      IoOp& op = ops[i];
      int res = cqe->res;
      if (op.kind == IoOp::kFdatasync) {
        op.result = res;
        finished++;
        continue;
      }
      if (res == -EAGAIN || res == -EINTR) {
        retry.push_back(i);
        continue;
      }
      if (res < 0) {
        op.result = res;
        finished++;
        continue;
      }
      if (res == 0) {  // end of file: we never read past the data file's end
        op.result = -EIO;
        finished++;
        continue;
      }
      done_[i] += static_cast<uint32_t>(res);
      if (done_[i] < op.len) {
        retry.push_back(i);
      } else {
        op.result = static_cast<int32_t>(done_[i]);
        finished++;
      }
    }
    io_uring_cq_advance(&ring_, seen);
  }
}

}  // namespace sluice::data
