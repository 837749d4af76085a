// TFRecord files, read in place. Each record is
//   uint64 length | uint32 masked_crc32c(length) | data[length] | uint32 masked_crc32c(data)
// (little-endian; mask(c) = ((c >> 15) | (c << 17)) + 0xa282ead8). The length
// CRC is checked when the file is opened, the data CRC whenever a record is
// read. The payload is the record's bytes (usually a tf.train.Example; decoding
// it is a transform's job); labels are -1.
#pragma once

#include "prefetch/dataset.h"
#include "prefetch/dataset_fs.h"

namespace sluice::prefetch {

Result<std::unique_ptr<Dataset>> OpenTfRecordDataset(const std::vector<std::string>& paths,
                                                     const DatasetOptions& options,
    DatasetFs& fs = PosixFs());

// The TFRecord CRC mask.
inline uint32_t MaskCrc(uint32_t crc) { return ((crc >> 15) | (crc << 17)) + 0xa282ead8u; }

}  // namespace sluice::prefetch
