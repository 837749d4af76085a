// Dataset: a numbered set of samples and where each one's bytes live.
//
// Every format (sample folders, packed shards, WebDataset tar, TFRecord)
// answers the same three questions for sample i: which byte range of which
// file to read (Locate), how to check those bytes and find the payload in
// them (Payload), and its label. The loader reads the ranges in batches
// through a SampleReader; a Dataset never reads sample bytes itself.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "common/status.h"
#include "prefetch/dataset_fs.h"

namespace sluice::prefetch {

// The byte range holding sample i: `length` bytes at `offset` of file `file`
// (an index into Dataset::files()).
struct SampleLocation {
  uint32_t file = 0;
  uint64_t offset = 0;
  uint64_t length = 0;
};

struct DatasetOptions {
  // false: corrupt or missing input is an error naming the file and sample.
  // true: such samples are left out and counted (Dataset::skipped() for
  // problems found while opening, the loader's counters for those found while reading).
  bool skip_corrupt = false;
  // WebDataset tar: the member extension that holds the payload ("jpg",
  // "npy", ...). Empty: the first member that is not a label.
  std::string tar_data_ext;
};

class Dataset {
 public:
  virtual ~Dataset() = default;

  // "folder", "packed", "tar" or "tfrecord".
  virtual const char* kind() const = 0;
  virtual uint64_t size() const = 0;
  // Paths of the files sample bytes are read from; SampleLocation::file indexes this.
  virtual const std::vector<std::string>& files() const = 0;
  virtual Result<SampleLocation> Locate(uint64_t index) const = 0;
  // Class id of sample `index`, -1 when the format has none.
  virtual int64_t Label(uint64_t index) const = 0;
  // Checks `raw` (the bytes of Locate(index)) and returns the payload inside it.
  // kCorrupt, naming the file and sample, on a checksum mismatch.
  virtual Result<std::span<const uint8_t>> Payload(uint64_t index,
                                                   std::span<const uint8_t> raw) const = 0;
  // For messages: "'<file>' sample <i> (<name>)".
  virtual std::string Describe(uint64_t index) const = 0;
  // Samples left out while opening (only with skip_corrupt).
  uint64_t skipped() const { return skipped_; }

 protected:
  uint64_t skipped_ = 0;
};

// Opens `path` as `format` ("auto", "folder", "packed", "tar", "tfrecord").
// auto: a *.sidx file or a folder holding *.sidx is packed; a *.tar file or a
// folder of *.tar is tar; *.tfrecord / *.tfrec likewise; other folders are
// sample folders.
// `fs` is where the data set's folders and headers are read (PosixFs(), or
// libsluice: sluice_dataset_fs.h); Dataset::files() are paths in that fs.
Result<std::unique_ptr<Dataset>> OpenDataset(const std::string& path, const std::string& format,
                                             const DatasetOptions& options, DatasetFs& fs = PosixFs());

// Files in `dir` whose names end in `suffix`, sorted by name.
Result<std::vector<std::string>> ListFiles(const std::string& dir, const std::string& suffix,
                                          DatasetFs& fs = PosixFs());

}  // namespace sluice::prefetch
