#include "prefetch/folder_dataset.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <fstream>

namespace sluice::prefetch {
namespace {

namespace fs = std::filesystem;

class FolderDataset final : public Dataset {
 public:
  FolderDataset(std::vector<std::string> paths, std::vector<uint64_t> sizes,
                std::vector<int64_t> labels, uint64_t skipped)
      : paths_(std::move(paths)), sizes_(std::move(sizes)), labels_(std::move(labels)) {
    skipped_ = skipped;
  }
  const char* kind() const override { return "folder"; }
  uint64_t size() const override { return paths_.size(); }
  const std::vector<std::string>& files() const override { return paths_; }
  Result<SampleLocation> Locate(uint64_t index) const override {
    if (index >= paths_.size()) {
      return Status(Code::kInvalid, "folder data set: sample " + std::to_string(index) +
                                        " out of range");
    }
    return SampleLocation{static_cast<uint32_t>(index), 0, sizes_[index]};
  }
  int64_t Label(uint64_t index) const override { return labels_[index]; }
  Result<std::span<const uint8_t>> Payload(uint64_t, std::span<const uint8_t> raw) const override {
    return raw;
  }
  std::string Describe(uint64_t index) const override {
    return "'" + paths_[index] + "' sample " + std::to_string(index);
  }

 private:
  std::vector<std::string> paths_;
  std::vector<uint64_t> sizes_;
  std::vector<int64_t> labels_;
};

Result<std::vector<std::string>> SortedEntries(const std::string& dir, bool want_dirs) {
  std::error_code ec;
  std::vector<std::string> out;
  fs::directory_iterator it(dir, ec);
  if (ec) return Status(ErrnoToCode(ec.value()), "list '" + dir + "': " + ec.message());
  for (const auto& e : it) {
    std::error_code ec2;
    bool is_dir = e.is_directory(ec2);
    bool is_file = e.is_regular_file(ec2);
    if ((want_dirs && is_dir) || (!want_dirs && is_file)) out.push_back(e.path().filename());
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

Result<std::vector<std::string>> FolderClassNames(const std::string& root) {
  return SortedEntries(root, true);
}

Result<std::unique_ptr<Dataset>> OpenFileListDataset(
    std::vector<std::pair<std::string, int64_t>> samples, const DatasetOptions& options) {
  std::vector<std::string> paths;
  std::vector<uint64_t> sizes;
  std::vector<int64_t> labels;
  uint64_t skipped = 0;
  for (size_t i = 0; i < samples.size(); i++) {
    struct stat st;
    if (stat(samples[i].first.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
      int err = errno ? errno : EINVAL;
      if (options.skip_corrupt) {
        skipped++;
        continue;
      }
      return Status::FromErrno(err, "sample " + std::to_string(i) + " '" + samples[i].first +
                                        "' is missing or not a regular file");
    }
    paths.push_back(std::move(samples[i].first));
    sizes.push_back(static_cast<uint64_t>(st.st_size));
    labels.push_back(samples[i].second);
  }
  if (paths.empty()) return Status(Code::kInvalid, "data set has no readable samples");
  return std::unique_ptr<Dataset>(
      new FolderDataset(std::move(paths), std::move(sizes), std::move(labels), skipped));
}

Result<std::unique_ptr<Dataset>> OpenFolderDataset(const std::string& root,
                                                   const DatasetOptions& options) {
  SLUICE_ASSIGN_OR_RETURN(std::vector<std::string> classes, SortedEntries(root, true));
  std::vector<std::pair<std::string, int64_t>> samples;
  SLUICE_ASSIGN_OR_RETURN(std::vector<std::string> loose, SortedEntries(root, false));
  for (auto& f : loose) samples.emplace_back(root + "/" + f, -1);
  for (size_t c = 0; c < classes.size(); c++) {
    std::string dir = root + "/" + classes[c];
    SLUICE_ASSIGN_OR_RETURN(std::vector<std::string> files, SortedEntries(dir, false));
    for (auto& f : files) samples.emplace_back(dir + "/" + f, static_cast<int64_t>(c));
  }
  if (samples.empty()) return Status(Code::kInvalid, "folder data set '" + root + "' has no files");
  return OpenFileListDataset(std::move(samples), options);
}

Result<std::vector<std::pair<std::string, int64_t>>> ReadSampleList(const std::string& list_path) {
  std::ifstream in(list_path);
  if (!in) return Status::FromErrno(errno ? errno : ENOENT, "open sample list '" + list_path + "'");
  std::vector<std::pair<std::string, int64_t>> out;
  std::string line;
  size_t line_no = 0;
  while (std::getline(in, line)) {
    line_no++;
    if (line.empty() || line[0] == '#') continue;
    size_t tab = line.find('\t');
    int64_t label = -1;
    if (tab != std::string::npos) {
      const std::string num = line.substr(tab + 1);
      char* end = nullptr;
      errno = 0;
      long long v = std::strtoll(num.c_str(), &end, 10);
      if (num.empty() || errno != 0 || *end != '\0' || v < -1 || v > INT32_MAX) {
        return Status(Code::kInvalid, "sample list '" + list_path + "' line " +
                                          std::to_string(line_no) + ": label '" + num +
                                          "' is not an integer in [-1, 2^31)");
      }
      label = v;
      line.resize(tab);
    }
    out.emplace_back(line, label);
  }
  return out;
}

}  // namespace sluice::prefetch
