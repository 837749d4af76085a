#include "tools/io500/comm.h"

#include <algorithm>
#include <bit>

namespace sluice::io500 {

Result<uint64_t> Comm::AllMax(uint64_t value) {
  SLUICE_ASSIGN_OR_RETURN(auto all, AllGather(value));
  return *std::max_element(all.begin(), all.end());
}

Result<uint64_t> Comm::AllMin(uint64_t value) {
  SLUICE_ASSIGN_OR_RETURN(auto all, AllGather(value));
  return *std::min_element(all.begin(), all.end());
}

Result<uint64_t> Comm::AllSum(uint64_t value) {
  SLUICE_ASSIGN_OR_RETURN(auto all, AllGather(value));
  uint64_t sum = 0;
  for (uint64_t v : all) sum += v;
  return sum;
}

Result<double> Comm::AllMaxDouble(double value) {
  SLUICE_ASSIGN_OR_RETURN(auto all, AllGather(std::bit_cast<uint64_t>(value)));
  double m = std::bit_cast<double>(all[0]);
  for (uint64_t v : all) m = std::max(m, std::bit_cast<double>(v));
  return m;
}

Result<double> Comm::AllSumDouble(double value) {
  SLUICE_ASSIGN_OR_RETURN(auto all, AllGather(std::bit_cast<uint64_t>(value)));
  double s = 0;
  for (uint64_t v : all) s += std::bit_cast<double>(v);
  return s;
}

}  // namespace sluice::io500
