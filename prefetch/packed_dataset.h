// Packed shards: per shard a data file (samples back to back) and a
// FlatBuffers index (proto/sample_index.fbs) that is memory-mapped and read in
// place. Written by PackWriter (`sluice pack`).
#pragma once

#include "prefetch/dataset.h"
#include "prefetch/dataset_fs.h"

namespace sluice::prefetch {

// Opens the shards named by `index_paths` (*.sidx), concatenating their
// samples in the given order. Each index is verified (FlatBuffers verifier,
// identifier, format version, data file size); an entry that points outside
// its data file is reported when that sample is located.
Result<std::unique_ptr<Dataset>> OpenPackedDataset(const std::vector<std::string>& index_paths,
                                                   const DatasetOptions& options,
                                                   DatasetFs& fs = PosixFs());

}  // namespace sluice::prefetch
