#include "tools/io500/mpi_comm.h"

#include <mpi.h>

#include <string>

namespace sluice::io500 {
namespace {

Status MpiStatus(int rc, const char* what) {
  if (rc == MPI_SUCCESS) return Status::Ok();
  char msg[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, msg, &len);
  return Status(Code::kUnavailable, std::string(what) + ": " + std::string(msg, len));
}

}  // namespace

Result<std::unique_ptr<MpiComm>> MpiComm::Init(int* argc, char*** argv) {
  SLUICE_RETURN_IF_ERROR(MpiStatus(MPI_Init(argc, argv), "MPI_Init"));
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  std::unique_ptr<MpiComm> c(new MpiComm());
  MPI_Comm_rank(MPI_COMM_WORLD, &c->rank_);
  MPI_Comm_size(MPI_COMM_WORLD, &c->size_);
  MPI_Comm node;
  SLUICE_RETURN_IF_ERROR(MpiStatus(
      MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node),
      "MPI_Comm_split_type"));
  int node_rank = 0;
  MPI_Comm_rank(node, &node_rank);
  MPI_Comm_size(node, &c->ranks_per_node_);
  MPI_Comm_free(&node);
  c->node_leader_ = node_rank == 0;
  int leader = c->node_leader_ ? 1 : 0;
  MPI_Allreduce(&leader, &c->nodes_, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
  return c;
}

MpiComm::~MpiComm() { MPI_Finalize(); }

std::string MpiComm::Describe() const {
  return std::to_string(size_) + " MPI ranks on " + std::to_string(nodes_) + " node(s)";
}

Status MpiComm::Barrier() { return MpiStatus(MPI_Barrier(MPI_COMM_WORLD), "MPI_Barrier"); }

Result<std::vector<uint64_t>> MpiComm::AllGather(uint64_t value) {
  std::vector<uint64_t> out(size_);
  SLUICE_RETURN_IF_ERROR(MpiStatus(MPI_Allgather(&value, 1, MPI_UINT64_T, out.data(), 1,
                                                 MPI_UINT64_T, MPI_COMM_WORLD),
                                   "MPI_Allgather"));
  return out;
}

Result<std::vector<std::string>> MpiComm::GatherStrings(const std::string& s) {
  std::string mine = s.substr(0, kMaxGatherString);
  int len = static_cast<int>(mine.size());
  std::vector<int> lens(rank_ == 0 ? size_ : 0);
  SLUICE_RETURN_IF_ERROR(MpiStatus(
      MPI_Gather(&len, 1, MPI_INT, lens.data(), 1, MPI_INT, 0, MPI_COMM_WORLD), "MPI_Gather"));
  std::vector<int> displs(lens.size());
  int total = 0;
  for (size_t i = 0; i < lens.size(); ++i) {
    displs[i] = total;
    total += lens[i];
  }
  std::string all(static_cast<size_t>(total), '\0');
  SLUICE_RETURN_IF_ERROR(MpiStatus(MPI_Gatherv(mine.data(), len, MPI_CHAR, all.data(),
                                               lens.data(), displs.data(), MPI_CHAR, 0,
                                               MPI_COMM_WORLD),
                                   "MPI_Gatherv"));
  std::vector<std::string> out;
  for (size_t i = 0; i < lens.size(); ++i) out.push_back(all.substr(displs[i], lens[i]));
  return out;
}

}  // namespace sluice::io500
