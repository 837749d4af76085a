#include "prefetch/tar_dataset.h"

#include <cstring>

#include "prefetch/dataset_fs.h"

namespace sluice::prefetch {
namespace {

constexpr uint64_t kBlock = 512;
constexpr uint64_t kMaxLongName = 64 * 1024;

struct TarSample {
  uint32_t file;
  uint64_t offset;
  uint64_t length;
  int64_t label;
  std::string key;
};

class TarDataset final : public Dataset {
 public:
  TarDataset(std::vector<std::string> files, std::vector<TarSample> samples, uint64_t skipped)
      : files_(std::move(files)), samples_(std::move(samples)) {
    skipped_ = skipped;
  }
  const char* kind() const override { return "tar"; }
  uint64_t size() const override { return samples_.size(); }
  const std::vector<std::string>& files() const override { return files_; }
  Result<SampleLocation> Locate(uint64_t index) const override {
    if (index >= samples_.size()) {
      return Status(Code::kInvalid, "tar data set: sample " + std::to_string(index) + " out of range");
    }
    const TarSample& s = samples_[index];
    return SampleLocation{s.file, s.offset, s.length};
  }
  int64_t Label(uint64_t index) const override { return samples_[index].label; }
  Result<std::span<const uint8_t>> Payload(uint64_t, std::span<const uint8_t> raw) const override {
    return raw;
  }
  std::string Describe(uint64_t index) const override {
    const TarSample& s = samples_[index];
    return "'" + files_[s.file] + "' sample " + std::to_string(index) + " (key '" + s.key + "')";
  }

 private:
  std::vector<std::string> files_;
  std::vector<TarSample> samples_;
};

// Parses a tar numeric field: NUL/space-terminated octal, or base-256 when
// the high bit of the first byte is set. false on anything else.
bool ParseNumber(const uint8_t* field, size_t len, uint64_t* out) {
  if (field[0] & 0x80) {
    if (field[0] != 0x80) return false;  // negative or too large
    uint64_t v = 0;
    for (size_t i = 1; i < len; i++) {
      if (v >> 56) return false;
      v = (v << 8) | field[i];
    }
    *out = v;
    return true;
  }
  size_t i = 0;
  while (i < len && field[i] == ' ') i++;
  uint64_t v = 0;
  bool any = false;
  for (; i < len && field[i] >= '0' && field[i] <= '7'; i++) {
    if (v >> 60) return false;
    v = v * 8 + (field[i] - '0');
    any = true;
  }
  for (; i < len; i++) {
    if (field[i] != ' ' && field[i] != '\0') return false;
  }
  *out = v;
  return any;
}

std::string CString(const uint8_t* p, size_t max) {
  size_t n = 0;
  while (n < max && p[n]) n++;
  return std::string(reinterpret_cast<const char*>(p), n);
}

bool IsLabelExt(const std::string& ext) { return ext == "cls" || ext == "label"; }

// Scans one shard, appending its samples. On a corrupt header, returns the
// error; `*partial` then says whether a sample was under construction.
class ShardScanner {
 public:
  ShardScanner(const ScanFile& f, uint32_t file_id, const DatasetOptions& opt,
               std::vector<TarSample>* out)
      : f_(f), file_id_(file_id), opt_(opt), out_(out) {}

  Status Scan() {
    uint64_t off = 0;
    std::string long_name;
    uint8_t h[kBlock];
    std::string last_member = "(none)";
    while (true) {
      if (off >= f_.size()) {
        return Bad(off, "truncated: the archive ends without its end marker after member '" +
                            last_member + "'");
      }
      if (f_.size() - off < kBlock) return Bad(off, "truncated header");
      SLUICE_RETURN_IF_ERROR(f_.ReadAt(off, h, kBlock));
      bool zero = true;
      for (uint64_t i = 0; i < kBlock && zero; i++) zero = h[i] == 0;
      if (zero) break;
      uint64_t stored = 0;
      if (!ParseNumber(h + 148, 8, &stored)) return Bad(off, "unreadable header checksum");
      uint64_t sum = 0;
      for (uint64_t i = 0; i < kBlock; i++) sum += (i >= 148 && i < 156) ? ' ' : h[i];
      if (sum != stored) return Bad(off, "header checksum mismatch (stored " +
                                             std::to_string(stored) + ", computed " +
                                             std::to_string(sum) + ")");
      uint64_t size = 0;
      if (!ParseNumber(h + 124, 12, &size)) return Bad(off, "unreadable size field");
      std::string name = CString(h, 100);
      if (std::memcmp(h + 257, "ustar", 5) == 0) {
        std::string prefix = CString(h + 345, 155);
        if (!prefix.empty()) name = prefix + "/" + name;
      }
      if (!long_name.empty()) {
        name = long_name;
        long_name.clear();
      }
      const uint64_t data = off + kBlock;
      if (size > f_.size() - data) {
        // The header itself is intact, so a different key means the sample
        // before it is complete; the lying member's own sample is the loss.
        if (KeyOf(name) != cur_key_) SLUICE_RETURN_IF_ERROR(Flush());
        return Bad(off, "member '" + name + "' claims " + std::to_string(size) +
                            " bytes but only " + std::to_string(f_.size() - data) + " remain");
      }
      const char type = static_cast<char>(h[156]);
      if (type == 'L') {
        if (size > kMaxLongName) return Bad(off, "GNU long name of " + std::to_string(size) + " bytes");
        std::string buf(size, '\0');
        SLUICE_RETURN_IF_ERROR(f_.ReadAt(data, buf.data(), size));
        long_name = buf.c_str();
      } else if (type == '0' || type == '\0' || type == '7') {
        SLUICE_RETURN_IF_ERROR(AddMember(name, data, size));
      }  // directories, links, pax headers: nothing to read
      off = data + (size + kBlock - 1) / kBlock * kBlock;
      last_member = name;
    }
    return Flush();
  }

  bool partial() const { return !cur_key_.empty(); }

 private:
  Status Bad(uint64_t off, const std::string& what) {
    return Status(Code::kCorrupt, "tar '" + f_.path() + "' at byte " + std::to_string(off) +
                                      (cur_key_.empty() ? "" : " (sample key '" + cur_key_ + "')") +
                                      ": " + what);
  }

  // WebDataset key: the path up to the first '.' of the file name.
  static std::string KeyOf(const std::string& name) {
    size_t slash = name.rfind('/');
    size_t dot = name.find('.', slash == std::string::npos ? 0 : slash + 1);
    return dot == std::string::npos ? name : name.substr(0, dot);
  }

  Status AddMember(const std::string& name, uint64_t data, uint64_t size) {
    std::string key = KeyOf(name);
    std::string ext = key.size() < name.size() ? name.substr(key.size() + 1) : "";
    if (key != cur_key_) {
      SLUICE_RETURN_IF_ERROR(Flush());
      cur_key_ = key;
    }
    if (IsLabelExt(ext)) {
      if (size == 0 || size > 32) return Bad(data - kBlock, "label member '" + name + "' is not a small integer");
      char buf[33] = {};
      SLUICE_RETURN_IF_ERROR(f_.ReadAt(data, buf, size));
      char* end = nullptr;
      long long v = std::strtoll(buf, &end, 10);
      while (*end == '\n' || *end == ' ' || *end == '\r') end++;
      if (end == buf || *end != '\0') return Bad(data - kBlock, "label member '" + name + "' is not an integer");
      label_ = v;
      return Status::Ok();
    }
    if (!has_payload_ && (opt_.tar_data_ext.empty() || ext == opt_.tar_data_ext)) {
      has_payload_ = true;
      payload_off_ = data;
      payload_len_ = size;
    }
    return Status::Ok();
  }

  Status Flush() {
    if (cur_key_.empty()) return Status::Ok();
    if (!has_payload_) {
      return Bad(f_.size(), "sample has no payload member" +
                                (opt_.tar_data_ext.empty() ? std::string()
                                                           : " with extension '" + opt_.tar_data_ext + "'"));
    }
    out_->push_back({file_id_, payload_off_, payload_len_, label_, cur_key_});
    cur_key_.clear();
    has_payload_ = false;
    label_ = -1;
    return Status::Ok();
  }

  const ScanFile& f_;
  uint32_t file_id_;
  const DatasetOptions& opt_;
  std::vector<TarSample>* out_;
  std::string cur_key_;
  bool has_payload_ = false;
  uint64_t payload_off_ = 0, payload_len_ = 0;
  int64_t label_ = -1;
};

}  // namespace

Result<std::unique_ptr<Dataset>> OpenTarDataset(const std::vector<std::string>& tar_paths,
                                                const DatasetOptions& options, DatasetFs& fs) {
  std::vector<std::string> files;
  std::vector<TarSample> samples;
  uint64_t skipped = 0;
  for (const std::string& path : tar_paths) {
    auto f = fs.Open(path);
    if (!f.ok()) {
      if (options.skip_corrupt) {
        skipped++;
        continue;
      }
      return f.status();
    }
    uint32_t id = static_cast<uint32_t>(files.size());
    ShardScanner scanner(**f, id, options, &samples);
    Status st = scanner.Scan();
    if (!st.ok()) {
      if (!options.skip_corrupt) return st;
      skipped++;  // the sample the bad header belonged to; the rest of the shard is unreachable
    }
    files.push_back(path);
  }
  if (samples.empty()) return Status(Code::kInvalid, "tar data set: no readable samples");
  return std::unique_ptr<Dataset>(new TarDataset(std::move(files), std::move(samples), skipped));
}

}  // namespace sluice::prefetch
