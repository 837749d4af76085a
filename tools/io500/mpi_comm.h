// Ranks are MPI processes (Debian's Open MPI), possibly on many client nodes.
// Built only when CMake finds MPI (SLUICE_IO500_HAVE_MPI).
#pragma once

#include <memory>

#include "tools/io500/comm.h"

namespace sluice::io500 {

class MpiComm final : public Comm {
 public:
  // Calls MPI_Init; the destructor calls MPI_Finalize.
  static Result<std::unique_ptr<MpiComm>> Init(int* argc, char*** argv);
  ~MpiComm() override;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  bool node_leader() const override { return node_leader_; }
  int ranks_per_node() const override { return ranks_per_node_; }
  std::string Describe() const override;
  Status Barrier() override;
  Result<std::vector<uint64_t>> AllGather(uint64_t value) override;
  Result<std::vector<std::string>> GatherStrings(const std::string& s) override;

 private:
  MpiComm() = default;
  int rank_ = 0;
  int size_ = 1;
  int nodes_ = 1;
  bool node_leader_ = true;
  int ranks_per_node_ = 1;
};

}  // namespace sluice::io500
