// PackWriter: turns sample files into packed shards (see packed_dataset.h).
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "common/status.h"

namespace sluice::prefetch {

struct PackOptions {
  // A shard is closed once its data file reaches this many bytes.
  uint64_t shard_bytes = 256ull << 20;
  // Shard files are <out_dir>/<prefix>-NNNNN.{data,sidx}.
  std::string prefix = "shard";
};

struct PackSource {
  std::string path;    // file to read
  int64_t label = -1;  // class id
};

struct PackSummary {
  uint64_t samples = 0;
  uint64_t bytes = 0;
  std::vector<std::string> index_files;
};

// Packs `sources` in order into shards under `out_dir` (created if missing).
// A source that cannot be read is an error naming it and its position.
Result<PackSummary> PackSamples(const std::vector<PackSource>& sources,
                                const std::vector<std::string>& class_names,
                                const std::string& out_dir, const PackOptions& options);

}  // namespace sluice::prefetch
