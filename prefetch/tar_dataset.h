// WebDataset-style tar shards, read in place. Consecutive members sharing a
// key (the path up to the first '.' of the file name) form one sample; the
// payload is one member (DatasetOptions::tar_data_ext, or the first member
// that is not a label), the label is the integer in a ".cls"/".label" member.
// Headers are checked (checksum, numeric fields, sizes against the file) when
// the shard is opened: a lying header is an error naming the shard and
// member, or with skip_corrupt ends that shard there and counts the sample.
#pragma once

#include "prefetch/dataset.h"
#include "prefetch/dataset_fs.h"

namespace sluice::prefetch {

Result<std::unique_ptr<Dataset>> OpenTarDataset(const std::vector<std::string>& tar_paths,
                                                const DatasetOptions& options,
    DatasetFs& fs = PosixFs());

}  // namespace sluice::prefetch
