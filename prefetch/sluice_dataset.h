// Data sets stored in Sluice, opened natively (no FUSE).
//
//   auto client = client::Client::Connect({.cluster = "cluster.toml"});
//   auto ds = OpenSluiceDataset(client, "sluice:///imagenet/packed", "auto", {});
//   LoaderOptions o;  o.reader_factory = ds->reader_factory;
//   auto loader = Loader::Create(ds->dataset, o);
//
// The data set's structure is read through libsluice (SluiceFs): folders are
// listed with ReadDir (+ one GetAttr per sample file for its size), a packed
// shard's index (*.sidx, small) is read whole into memory and verified as on
// POSIX, tar and TFRecord headers are scanned with Pread. Sample bytes are
// then read by the libsluice SampleReader (Client::BatchRead: one call per
// batch, ranges grouped by chain and issued in parallel).
//
// Addresses: "sluice:///a/b" is /a/b on the cluster the client is connected
// to; "sluice://host:port/a/b" names sluice-mgmtd (ParseSluiceUrl). A plain
// absolute path is a path in Sluice. Dataset::files() are sluice:// URLs, so
// errors name "sluice:///a/b/shard-00000.data' sample 17".
#pragma once

#include <memory>
#include <string>

#include "prefetch/dataset.h"
#include "prefetch/dataset_fs.h"
#include "prefetch/sample_reader.h"

namespace sluice::client {
class Client;
class File;
}  // namespace sluice::client

namespace sluice::prefetch {

inline constexpr char kSluiceScheme[] = "sluice://";

struct SluiceUrl {
  std::string cluster;  // "host:port" of sluice-mgmtd, or empty (the client's cluster)
  std::string path;     // absolute path in Sluice
};

bool IsSluiceUrl(const std::string& s);
// "sluice:///a/b" -> {"", "/a/b"}; "sluice://h:7000/a" -> {"h:7000", "/a"};
// a plain absolute path -> {"", path}. kInvalid for "sluice://a/b" (the part
// after // must be host:port; write sluice:///a/b for the path /a/b).
Result<SluiceUrl> ParseSluiceUrl(const std::string& url);

// DatasetFs over libsluice. Paths are sluice:// URLs or absolute Sluice paths.
// Attributes seen while listing are kept so that the sample reader opens
// each file without looking its path up again (OpenForRead).
class SluiceFs final : public DatasetFs {
 public:
  explicit SluiceFs(std::shared_ptr<client::Client> client);
  ~SluiceFs() override;
  const char* name() const override { return "sluice"; }
  Result<FsEntry> Stat(const std::string& path) override;
  Result<std::vector<FsEntry>> List(const std::string& dir) override;
  Result<std::unique_ptr<ScanFile>> Open(const std::string& path) override;
  Result<FileBytes> ReadAll(const std::string& path) override;

  // Opens a file for reading, from the attributes seen by List/Stat when
  // there are any (no lookup), else by path.
  Result<std::unique_ptr<client::File>> OpenForRead(const std::string& path);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

struct SluiceDataset {
  std::shared_ptr<const Dataset> dataset;  // files() are sluice:// URLs
  SampleReaderFactory reader_factory;      // for LoaderOptions::reader_factory
};

// Opens the data set at `url` (sluice:// URL or absolute Sluice path) as
// `format` ("auto", "folder", "packed", "tar", "tfrecord"; see OpenDataset).
// The url's host:port, if any, is the caller's to connect to: `client` is used
// as given.
Result<SluiceDataset> OpenSluiceDataset(std::shared_ptr<client::Client> client, const std::string& url,
                                        const std::string& format, const DatasetOptions& options);

// Copies a local file, or a folder tree (regular files and folders), to
// `url` in Sluice (parents must exist; folders are created, files replaced),
// with `threads` files in flight. Returns the bytes copied. For putting data
// sets into Sluice without a FUSE mount.
Result<uint64_t> CopyIntoSluice(client::Client& client, const std::string& local, const std::string& url,
                                unsigned threads = 4);

}  // namespace sluice::prefetch
