#include "prefetch/packed_dataset.h"

#include "common/crc32c.h"
#include "prefetch/dataset_fs.h"
#include "proto/sample_index_generated.h"

namespace sluice::prefetch {
namespace {

struct Shard {
  FileBytes index;  // mapped (POSIX) or held in memory (read through libsluice)
  const fbs::SampleIndex* root = nullptr;
  uint64_t first = 0;  // global index of its first sample
  uint64_t data_size = 0;
};

class PackedDataset final : public Dataset {
 public:
  PackedDataset(std::vector<Shard> shards, std::vector<std::string> data_files, uint64_t skipped)
      : shards_(std::move(shards)), data_files_(std::move(data_files)) {
    skipped_ = skipped;
    for (const Shard& s : shards_) total_ += s.root->samples()->size();
  }
  const char* kind() const override { return "packed"; }
  uint64_t size() const override { return total_; }
  const std::vector<std::string>& files() const override { return data_files_; }

  Result<SampleLocation> Locate(uint64_t index) const override {
    if (index >= total_) {
      return Status(Code::kInvalid, "packed data set: sample " + std::to_string(index) +
                                        " out of range");
    }
    size_t s = ShardOf(index);
    const fbs::SampleEntry* e = shards_[s].root->samples()->Get(index - shards_[s].first);
    if (e->offset() > shards_[s].data_size || e->length() > shards_[s].data_size - e->offset()) {
      return Status(Code::kCorrupt, "index '" + shards_[s].index.path + "' entry for " +
                                        Describe(index) + " points at bytes [" +
                                        std::to_string(e->offset()) + ", +" +
                                        std::to_string(e->length()) + ") past the end of its " +
                                        std::to_string(shards_[s].data_size) + "-byte data file");
    }
    return SampleLocation{static_cast<uint32_t>(s), e->offset(), e->length()};
  }

  int64_t Label(uint64_t index) const override { return Entry(index)->label(); }

  Result<std::span<const uint8_t>> Payload(uint64_t index,
                                           std::span<const uint8_t> raw) const override {
    uint32_t want = Entry(index)->crc32c();
    uint32_t got = Crc32c(raw.data(), raw.size());
    if (want != got) {
      char buf[64];
      snprintf(buf, sizeof(buf), "CRC32C %08x, index says %08x", got, want);
      return Status(Code::kCorrupt, Describe(index) + ": " + buf);
    }
    return raw;
  }

  std::string Describe(uint64_t index) const override {
    size_t s = ShardOf(index);
    std::string out = "'" + data_files_[s] + "' sample " + std::to_string(index);
    auto names = shards_[s].root->sample_names();
    uint64_t local = index - shards_[s].first;
    if (names && local < names->size()) out += " ('" + names->Get(local)->str() + "')";
    return out;
  }

 private:
  size_t ShardOf(uint64_t index) const {
    size_t lo = 0, hi = shards_.size();
    while (hi - lo > 1) {
      size_t mid = (lo + hi) / 2;
      if (shards_[mid].first <= index) lo = mid; else hi = mid;
    }
    return lo;
  }
  const fbs::SampleEntry* Entry(uint64_t index) const {
    size_t s = ShardOf(index);
    return shards_[s].root->samples()->Get(index - shards_[s].first);
  }

  std::vector<Shard> shards_;
  std::vector<std::string> data_files_;
  uint64_t total_ = 0;
};

Status Corrupt(const std::string& path, const std::string& what) {
  return Status(Code::kCorrupt, "packed index '" + path + "': " + what);
}

}  // namespace

Result<std::unique_ptr<Dataset>> OpenPackedDataset(const std::vector<std::string>& index_paths,
                                                   const DatasetOptions& options, DatasetFs& fs) {
  if (index_paths.empty()) return Status(Code::kInvalid, "packed data set: no index files");
  std::vector<Shard> shards;
  std::vector<std::string> data_files;
  uint64_t skipped = 0;
  uint64_t next = 0;
  for (const std::string& path : index_paths) {
    auto shard_or = [&]() -> Result<Shard> {
      Shard sh;
      SLUICE_ASSIGN_OR_RETURN(sh.index, fs.ReadAll(path));
      auto bytes = sh.index.bytes;
      if (bytes.size() < 8 || !fbs::SampleIndexBufferHasIdentifier(bytes.data())) {
        return Corrupt(path, "not a Sluice sample index (missing 'SLSI' identifier)");
      }
      flatbuffers::Verifier verifier(bytes.data(), bytes.size());
      if (!fbs::VerifySampleIndexBuffer(verifier)) {
        return Corrupt(path, "index structure fails verification (truncated or damaged)");
      }
      sh.root = fbs::GetSampleIndex(bytes.data());
      if (sh.root->format_version() != 1) {
        return Status(Code::kUnsupported, "packed index '" + path + "': format version " +
                                              std::to_string(sh.root->format_version()) +
                                              " is not supported (this build reads 1)");
      }
      if (!sh.root->samples() || !sh.root->data_file()) {
        return Corrupt(path, "missing samples or data_file");
      }
      std::string data_name = sh.root->data_file()->str();
      if (data_name.empty() || data_name.find('/') != std::string::npos) {
        return Corrupt(path, "data_file '" + data_name + "' must be a plain file name");
      }
      std::string data_path = JoinPath(ParentPath(path), data_name);
      auto st = fs.Stat(data_path);
      if (!st.ok()) {
        return Status(st.status().code(), "packed index '" + path + "': data file '" + data_path +
                                              "': " + st.status().message());
      }
      if (!st->is_file || st->size != sh.root->data_size()) {
        return Corrupt(path, "data file '" + data_path + "' has " + std::to_string(st->size) +
                                 " bytes, index expects " +
                                 std::to_string(sh.root->data_size()) + " (truncated?)");
      }
      sh.data_size = sh.root->data_size();
      data_files.push_back(data_path);
      return sh;
    }();
    if (!shard_or.ok()) {
      if (options.skip_corrupt) {
        skipped++;  // one whole shard; its sample count is unknown when the index is bad
        continue;
      }
      return shard_or.status();
    }
    Shard sh = std::move(shard_or).value();
    sh.first = next;
    next += sh.root->samples()->size();
    if (sh.root->samples()->size() > 0) shards.push_back(std::move(sh));
    else data_files.pop_back();
  }
  if (shards.empty()) return Status(Code::kInvalid, "packed data set: no readable samples");
  return std::unique_ptr<Dataset>(
      new PackedDataset(std::move(shards), std::move(data_files), skipped));
}

}  // namespace sluice::prefetch
