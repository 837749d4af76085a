#include "prefetch/folder_dataset.h"

#include <algorithm>
#include <cerrno>
#include <fstream>

namespace sluice::prefetch {
namespace {

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

// The sub-folders or the regular files of `dir`, sorted by name.
Result<std::vector<FsEntry>> SortedEntries(DatasetFs& fs, const std::string& dir, bool want_dirs) {
  SLUICE_ASSIGN_OR_RETURN(std::vector<FsEntry> all, fs.List(dir));
  std::vector<FsEntry> out;
  for (auto& e : all) {
    if ((want_dirs && e.is_dir) || (!want_dirs && e.is_file)) out.push_back(std::move(e));
  }
  std::sort(out.begin(), out.end(), [](const FsEntry& a, const FsEntry& b) { return a.name < b.name; });
  return out;
}

}  // namespace

Result<std::vector<std::string>> FolderClassNames(const std::string& root, DatasetFs& fs) {
  SLUICE_ASSIGN_OR_RETURN(std::vector<FsEntry> dirs, SortedEntries(fs, root, true));
  std::vector<std::string> out;
  for (auto& d : dirs) out.push_back(std::move(d.name));
  return out;
}

Result<std::unique_ptr<Dataset>> OpenFileListDataset(
    std::vector<std::pair<std::string, int64_t>> samples, const DatasetOptions& options, DatasetFs& fs) {
  std::vector<std::string> paths;
  std::vector<uint64_t> sizes;
  std::vector<int64_t> labels;
  uint64_t skipped = 0;
  for (size_t i = 0; i < samples.size(); i++) {
    auto st = fs.Stat(samples[i].first);
    if (!st.ok() || !st->is_file) {
      if (options.skip_corrupt) {
        skipped++;
        continue;
      }
      return Status(st.ok() ? Code::kInvalid : st.status().code(),
                    "sample " + std::to_string(i) + " '" + samples[i].first +
                        "' is missing or not a regular file" +
                        (st.ok() ? std::string() : " (" + st.status().message() + ")"));
    }
    paths.push_back(std::move(samples[i].first));
    sizes.push_back(st->size);
    labels.push_back(samples[i].second);
  }
  if (paths.empty()) return Status(Code::kInvalid, "data set has no readable samples");
  return std::unique_ptr<Dataset>(
      new FolderDataset(std::move(paths), std::move(sizes), std::move(labels), skipped));
}

Result<std::unique_ptr<Dataset>> OpenFolderDataset(const std::string& root, const DatasetOptions& options,
                                                   DatasetFs& fs) {
  // One listing per folder gives names and sizes (no stat per file).
  SLUICE_ASSIGN_OR_RETURN(std::vector<FsEntry> classes, SortedEntries(fs, root, true));
  SLUICE_ASSIGN_OR_RETURN(std::vector<FsEntry> loose, SortedEntries(fs, root, false));
  std::vector<std::string> paths;
  std::vector<uint64_t> sizes;
  std::vector<int64_t> labels;
  auto add = [&](const std::string& dir, std::vector<FsEntry>& files, int64_t label) {
    for (auto& f : files) {
      paths.push_back(JoinPath(dir, f.name));
      sizes.push_back(f.size);
      labels.push_back(label);
    }
  };
  add(root, loose, -1);
  for (size_t c = 0; c < classes.size(); c++) {
    std::string dir = JoinPath(root, classes[c].name);
    SLUICE_ASSIGN_OR_RETURN(std::vector<FsEntry> files, SortedEntries(fs, dir, false));
    add(dir, files, static_cast<int64_t>(c));
  }
  if (paths.empty()) return Status(Code::kInvalid, "folder data set '" + root + "' has no files");
  return std::unique_ptr<Dataset>(new FolderDataset(std::move(paths), std::move(sizes), std::move(labels), 0));
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
