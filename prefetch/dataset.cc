#include "prefetch/dataset.h"

#include <algorithm>

#include "prefetch/folder_dataset.h"
#include "prefetch/packed_dataset.h"
#include "prefetch/tar_dataset.h"
#include "prefetch/tfrecord_dataset.h"

namespace sluice::prefetch {
namespace {

bool EndsWith(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

Result<std::vector<std::string>> ListFiles(const std::string& dir, const std::string& suffix, DatasetFs& fs) {
  SLUICE_ASSIGN_OR_RETURN(std::vector<FsEntry> all, fs.List(dir));
  std::vector<std::string> out;
  for (const FsEntry& e : all) {
    if (e.is_file && EndsWith(e.name, suffix)) out.push_back(JoinPath(dir, e.name));
  }
  std::sort(out.begin(), out.end());
  return out;
}

Result<std::unique_ptr<Dataset>> OpenDataset(const std::string& path, const std::string& format,
                                             const DatasetOptions& options, DatasetFs& fs) {
  auto what = fs.Stat(path);
  if (!what.ok()) {
    if (what.status().code() == Code::kNotFound) {
      return Status(Code::kNotFound, "data set '" + path + "' does not exist");
    }
    return Status(what.status().code(), "data set '" + path + "': " + what.status().message());
  }
  bool is_dir = what->is_dir;
  struct Kind {
    const char* name;
    std::vector<std::string> suffixes;
  };
  const std::vector<Kind> kinds = {
      {"packed", {".sidx"}}, {"tar", {".tar"}}, {"tfrecord", {".tfrecord", ".tfrec"}}};
  std::string fmt = format;
  std::vector<std::string> files;
  for (const Kind& k : kinds) {
    if (fmt != "auto" && fmt != k.name) continue;
    for (const std::string& suf : k.suffixes) {
      if (is_dir) {
        SLUICE_ASSIGN_OR_RETURN(std::vector<std::string> found, ListFiles(path, suf, fs));
        files.insert(files.end(), found.begin(), found.end());
      } else if (EndsWith(path, suf) || fmt == k.name) {
        files = {path};
        break;
      }
    }
    if (!files.empty()) {
      fmt = k.name;
      break;
    }
  }
  if (fmt == "auto") fmt = is_dir ? "folder" : "";
  if (fmt == "folder") return OpenFolderDataset(path, options, fs);
  if (fmt == "packed") return OpenPackedDataset(files, options, fs);
  if (fmt == "tar") return OpenTarDataset(files, options, fs);
  if (fmt == "tfrecord") return OpenTfRecordDataset(files, options, fs);
  return Status(Code::kInvalid, "data set '" + path + "': cannot tell its format (format '" +
                                    format + "'); expected a folder, *.sidx, *.tar or *.tfrecord");
}

}  // namespace sluice::prefetch
