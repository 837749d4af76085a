// A folder of sample files, ImageNet style: root/<class>/<sample>. Classes
// are the sub-folders in name order (label = position); samples are their
// regular files in name order. Files directly in root are unlabeled (-1).
#pragma once

#include "prefetch/dataset.h"
#include "prefetch/dataset_fs.h"

namespace sluice::prefetch {

// Scans `root` once (names and sizes); a file missing at read time is an
// error (or a skip) in the loader.
Result<std::unique_ptr<Dataset>> OpenFolderDataset(const std::string& root,
                                                   const DatasetOptions& options,
                                                   DatasetFs& fs = PosixFs());

// Same, from explicit (path, label) pairs (label -1 when unknown).
Result<std::unique_ptr<Dataset>> OpenFileListDataset(
    std::vector<std::pair<std::string, int64_t>> samples, const DatasetOptions& options,
    DatasetFs& fs = PosixFs());

// Reads a list file: one sample per line, "path" or "path<TAB>label".
Result<std::vector<std::pair<std::string, int64_t>>> ReadSampleList(const std::string& list_path);

// Class names of a folder data set (sub-folder names in label order).
Result<std::vector<std::string>> FolderClassNames(const std::string& root, DatasetFs& fs = PosixFs());

}  // namespace sluice::prefetch
