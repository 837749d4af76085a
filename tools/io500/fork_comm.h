// N ranks on one node: the calling process forks N-1 children.
//
// Barrier: every child writes one byte into its own "arrive" pipe to rank 0;
// rank 0 reads one byte from each, then writes one byte into each child's
// "release" pipe. Everyone sleeps in read(2): nothing spins, no futex. A peer
// that exits closes its pipe ends, so the others see EOF and fail the barrier
// with a message naming the rank instead of hanging.
// AllGather: each rank stores its value in its slot of a shared anonymous
// mapping, then barrier, read all slots, barrier (so no slot is overwritten
// before every rank has read it).
#pragma once

#include <sys/types.h>

#include <atomic>
#include <memory>
#include <vector>

#include "tools/io500/comm.h"

namespace sluice::io500 {

class ForkComm final : public Comm {
 public:
  // Forks `n` - 1 children (n >= 1). Returns in every process: rank 0 is the
  // caller, ranks 1..n-1 are the children. Every process must end with
  // Finish(). stdout/stderr are flushed before forking.
  static Result<std::unique_ptr<ForkComm>> Spawn(int n);
  ~ForkComm() override;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  bool node_leader() const override { return rank_ == 0; }
  int ranks_per_node() const override { return size_; }
  std::string Describe() const override;
  Status Barrier() override;
  Result<std::vector<uint64_t>> AllGather(uint64_t value) override;
  // Children write "length, bytes" into their arrive pipe, then wait for
  // the release byte, as in a barrier.
  Result<std::vector<std::string>> GatherStrings(const std::string& s) override;

  // In a child: flushes output and _exit()s with `exit_code`, never returns.
  // In rank 0: waits for every child and returns an error naming any child
  // that exited with a non-zero code or a signal.
  Status Finish(int exit_code);

 private:
  ForkComm() = default;
  int rank_ = 0;
  int size_ = 1;
  // Rank 0: arrive_rd_[i], release_wr_[i] for child i. Child: index 0 only.
  std::vector<int> arrive_;
  std::vector<int> release_;
  std::vector<pid_t> children_;
  std::atomic<uint64_t>* slots_ = nullptr;
  size_t slots_bytes_ = 0;
};

}  // namespace sluice::io500
