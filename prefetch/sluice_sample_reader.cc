#include "prefetch/sluice_sample_reader.h"

#include <fcntl.h>

#include <mutex>

#include "client/sluice_client.h"

namespace sluice::prefetch {

Result<std::string> SluicePathOf(const std::string& path, const std::string& mount_prefix) {
  std::string prefix = mount_prefix;
  while (prefix.size() > 1 && prefix.back() == '/') prefix.pop_back();
  if (prefix.empty() || prefix == "/") {
    if (path.empty() || path[0] != '/') {
      return Status(Code::kInvalid, "'" + path + "' is not an absolute Sluice path");
    }
    return path;
  }
  if (path.size() <= prefix.size() + 1 || path.compare(0, prefix.size(), prefix) != 0 ||
      path[prefix.size()] != '/') {
    return Status(Code::kInvalid, "'" + path + "' is not under the mount prefix '" + mount_prefix + "'");
  }
  return path.substr(prefix.size());
}

namespace {

// The files of one data set, each opened once through libsluice.
class FileTable {
 public:
  FileTable(std::shared_ptr<client::Client> client, std::vector<std::string> files, SluiceReaderOptions opt)
      : client_(std::move(client)), files_(std::move(files)), opt_(std::move(opt)), slots_(files_.size()) {}

  const std::vector<std::string>& files() const { return files_; }

  // The open File of `id`, opening it on first use; an open error is kept
  // (a missing file stays missing for the table's life).
  Result<client::File*> Get(uint32_t id) {
    std::lock_guard<std::mutex> lk(mu_);
    Slot& s = slots_[id];
    if (s.file) return s.file.get();
    if (!s.error.ok()) return s.error;
    if (opt_.open) {
      auto f = opt_.open(files_[id]);
      if (!f.ok()) {
        s.error = Status(f.status().code(), "open '" + files_[id] + "': " + f.status().message());
        return s.error;
      }
      s.file = std::move(f.value());
      return s.file.get();
    }
    auto path = SluicePathOf(files_[id], opt_.mount_prefix);
    if (!path.ok()) {
      s.error = path.status();
      return s.error;
    }
    auto f = client_->Open(*path, O_RDONLY);
    if (!f.ok()) {
      s.error = Status(f.status().code(), "open '" + files_[id] + "' (sluice:" + *path + "): " + f.status().message());
      return s.error;
    }
    s.file = std::move(f.value());
    return s.file.get();
  }

  client::Client* client() { return client_.get(); }

 private:
  struct Slot {
    std::unique_ptr<client::File> file;
    Status error;
  };
  std::shared_ptr<client::Client> client_;
  std::vector<std::string> files_;
  SluiceReaderOptions opt_;
  std::mutex mu_;
  std::vector<Slot> slots_;
};

class SluiceSampleReader final : public SampleReader {
 public:
  explicit SluiceSampleReader(std::shared_ptr<FileTable> table) : table_(std::move(table)) {}

  Status ReadBatch(std::span<ReadRequest> reqs) override {
    const auto& files = table_->files();
    items_.clear();
    which_.clear();
    for (size_t i = 0; i < reqs.size(); ++i) {
      ReadRequest& r = reqs[i];
      r.status = Status::Ok();
      if (r.file >= files.size()) {
        r.status = Status(Code::kInvalid, "read: file id " + std::to_string(r.file) + " out of range");
        continue;
      }
      auto f = table_->Get(r.file);
      if (!f.ok()) {
        r.status = f.status();
        continue;
      }
      if (r.length == 0) continue;
      client::BatchReadItem it;
      it.file = *f;
      it.offset = r.offset;
      it.length = r.length;
      it.dest = r.dest;
      items_.push_back(std::move(it));
      which_.push_back(i);
    }
    if (items_.empty()) return Status::Ok();
    Status st = table_->client()->BatchRead(std::span<client::BatchReadItem>(items_));
    if (!st.ok()) return Status(st.code(), "libsluice BatchRead of " + std::to_string(items_.size()) +
                                               " ranges: " + st.message());
    for (size_t k = 0; k < items_.size(); ++k) {
      ReadRequest& r = reqs[which_[k]];
      const client::BatchReadItem& it = items_[k];
      const std::string& name = files[r.file];
      if (!it.status.ok()) {
        r.status = Status(it.status.code(), "read '" + name + "' at " + std::to_string(r.offset) + " (" +
                                                std::to_string(r.length) + " bytes): " + it.status.message());
      } else if (it.bytes < r.length) {
        r.status = Status(Code::kCorrupt, "'" + name + "' ends before byte " +
                                              std::to_string(r.offset + r.length) + " (truncated: read " +
                                              std::to_string(it.bytes) + " of " + std::to_string(r.length) +
                                              " bytes at offset " + std::to_string(r.offset) + ")");
      }
    }
    return Status::Ok();
  }

 private:
  std::shared_ptr<FileTable> table_;
  std::vector<client::BatchReadItem> items_;
  std::vector<size_t> which_;
};

}  // namespace

Result<std::unique_ptr<SampleReader>> NewSluiceSampleReader(std::shared_ptr<client::Client> client,
                                                            const std::vector<std::string>& files,
                                                            const SluiceReaderOptions& options) {
  if (!client) return Status(Code::kInvalid, "NewSluiceSampleReader: no client");
  return std::unique_ptr<SampleReader>(
      new SluiceSampleReader(std::make_shared<FileTable>(std::move(client), files, options)));
}

SampleReaderFactory SluiceSampleReaderFactory(std::shared_ptr<client::Client> client, SluiceReaderOptions options) {
  struct Shared {
    std::mutex mu;
    std::shared_ptr<FileTable> table;
  };
  auto shared = std::make_shared<Shared>();
  return [client = std::move(client), options = std::move(options),
          shared](const std::vector<std::string>& files) -> Result<std::unique_ptr<SampleReader>> {
    if (!client) return Status(Code::kInvalid, "SluiceSampleReaderFactory: no client");
    std::shared_ptr<FileTable> table;
    {
      std::lock_guard<std::mutex> lk(shared->mu);
      if (!shared->table || shared->table->files() != files) {
        shared->table = std::make_shared<FileTable>(client, files, options);
      }
      table = shared->table;
    }
    return std::unique_ptr<SampleReader>(new SluiceSampleReader(std::move(table)));
  };
}

}  // namespace sluice::prefetch
