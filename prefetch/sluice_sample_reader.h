// A SampleReader over libsluice: the loader reads sample bytes straight from
// the data servers with Client::BatchRead (one call per ReadBatch, the
// client groups the ranges by chain and issues them in parallel), no FUSE.
//
// The data set is opened as usual from its paths on a FUSE mount (or any
// directory that mirrors Sluice); `mount_prefix` is stripped from each file
// path to get its Sluice path ("/mnt/sluice/ds/a.bin" with prefix
// "/mnt/sluice" -> "/ds/a.bin"). Each file is opened once through libsluice,
// at its first read, and the handle shared by every reader of one factory.
//
// Built into its own library (sluice_prefetch_sluice) so sluice_prefetch and
// the Python module need not link libfabric.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "prefetch/sample_reader.h"

namespace sluice::client {
class Client;
class File;
}  // namespace sluice::client

namespace sluice::prefetch {

struct SluiceReaderOptions {
  // Removed from the front of every file path; empty: paths are Sluice paths.
  std::string mount_prefix;
  // Opens a file of the table by its name there, instead of stripping
  // mount_prefix and opening the path (SluiceFs::OpenForRead: sluice:// URLs,
  // attributes already known from listing the data set).
  std::function<Result<std::unique_ptr<client::File>>(const std::string& name)> open;
};

// One reader over `files`; opens them lazily through `client`.
Result<std::unique_ptr<SampleReader>> NewSluiceSampleReader(std::shared_ptr<client::Client> client,
                                                            const std::vector<std::string>& files,
                                                            const SluiceReaderOptions& options = {});

// For LoaderOptions::reader_factory: every reader the loader makes (one per
// I/O thread) shares one table of open files, so each file is opened once.
SampleReaderFactory SluiceSampleReaderFactory(std::shared_ptr<client::Client> client,
                                              SluiceReaderOptions options = {});

// The Sluice path of `path` under `mount_prefix` (kInvalid naming the path
// when it is not under the prefix).
Result<std::string> SluicePathOf(const std::string& path, const std::string& mount_prefix);

}  // namespace sluice::prefetch
