// FileSystem over libsluice (client/sluice_client.h): the IO500 phases talk
// to the cluster's meta and data servers directly, without FUSE.
//
// Target spec: "native:<cluster>:<dir>" where <cluster> is what
// ClientOptions::cluster takes (a cluster.toml path, or mgmtd "host:port")
// and <dir> an existing absolute directory inside Sluice. The last ':' splits
// the two, so "native:127.0.0.1:7000:/io500" works too. Each rank (process)
// connects its own Client.
#pragma once

#include <memory>
#include <string>

#include "tools/io500/backend.h"

namespace sluice::client {
class Client;
}

namespace sluice::io500 {

class SluiceFileSystem final : public FileSystem {
 public:
  SluiceFileSystem(std::unique_ptr<client::Client> client, std::string cluster, std::string root);
  ~SluiceFileSystem() override;

  std::string Describe() const override;
  Result<std::unique_ptr<File>> Open(const std::string& path, uint32_t flags,
                                     uint32_t mode = 0644) override;
  Result<FileStat> Stat(const std::string& path) override;
  Status Mkdir(const std::string& path, uint32_t mode = 0755) override;
  Status SetLayout(const std::string& dir, const std::string& layout) override;
  Status Unlink(const std::string& path) override;
  Status Rmdir(const std::string& path) override;
  Result<std::vector<DirEntry>> ReadDir(const std::string& path) override;

 private:
  std::string Full(const std::string& path) const;
  std::unique_ptr<client::Client> client_;
  std::string cluster_;
  std::string root_;
};

// Parses "native:<cluster>:<dir>", connects, checks <dir> is a directory.
Result<std::unique_ptr<FileSystem>> MakeSluiceFileSystem(const std::string& spec);

}  // namespace sluice::io500
