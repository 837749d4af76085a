// How the ranks of one benchmark run talk to each other: barriers and small
// all-gathers. Two implementations: ForkComm (N processes on one node, pipes
// and shared memory) and MpiComm (Open MPI, many client nodes).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"

namespace sluice::io500 {

class Comm {
 public:
  virtual ~Comm() = default;
  Comm() = default;
  Comm(const Comm&) = delete;
  Comm& operator=(const Comm&) = delete;

  virtual int rank() const = 0;
  virtual int size() const = 0;
  // True on exactly one rank per node (the one that drops the page cache).
  virtual bool node_leader() const = 0;
  // Ranks on this rank's node (IOR's tasksPerNode; assumed equal on all nodes).
  virtual int ranks_per_node() const = 0;
  virtual std::string Describe() const = 0;

  // Returns when every rank has called Barrier. Fails (instead of hanging)
  // when a peer process has exited.
  virtual Status Barrier() = 0;
  // Every rank contributes `value`; every rank gets all values, by rank.
  virtual Result<std::vector<uint64_t>> AllGather(uint64_t value) = 0;
  // Rank 0 gets every rank's string (by rank; at most kMaxGatherString bytes
  // each, longer ones are cut); other ranks get an empty vector. Collective.
  virtual Result<std::vector<std::string>> GatherStrings(const std::string& s) = 0;
  static constexpr size_t kMaxGatherString = 4000;

  Result<uint64_t> AllMax(uint64_t value);
  Result<uint64_t> AllSum(uint64_t value);
  Result<uint64_t> AllMin(uint64_t value);
  Result<double> AllMaxDouble(double value);
  Result<double> AllSumDouble(double value);
};

}  // namespace sluice::io500
