#include "tools/io500/backend.h"

#include <sys/stat.h>

#include "tools/io500/posix_backend.h"
#ifdef SLUICE_IO500_HAVE_NATIVE
#include "tools/io500/sluice_backend.h"
#endif

namespace sluice::io500 {

Status FileSystem::MkdirIfMissing(const std::string& path, uint32_t mode) {
  Status st = Mkdir(path, mode);
  if (st.code() == Code::kExists) return Status::Ok();
  return st;
}

Status FileSystem::RemoveTree(const std::string& path) {
  auto st = Stat(path);
  if (!st.ok()) return st.status().code() == Code::kNotFound ? Status::Ok() : st.status();
  if (!st->is_dir) return Unlink(path);
  SLUICE_ASSIGN_OR_RETURN(auto entries, ReadDir(path));
  for (const auto& e : entries) {
    std::string child = path.empty() ? e.name : path + "/" + e.name;
    if (e.type == DirEntry::Type::kDir) {
      SLUICE_RETURN_IF_ERROR(RemoveTree(child));
    } else if (e.type == DirEntry::Type::kUnknown) {
      SLUICE_RETURN_IF_ERROR(RemoveTree(child));
    } else {
      Status s = Unlink(child);
      if (!s.ok() && s.code() != Code::kNotFound) return s;
    }
  }
  Status s = Rmdir(path);
  if (!s.ok() && s.code() != Code::kNotFound) return s;
  return Status::Ok();
}

Result<std::unique_ptr<FileSystem>> MakeFileSystem(const std::string& spec) {
  std::string path = spec;
  if (spec.rfind("native:", 0) == 0) {
#ifdef SLUICE_IO500_HAVE_NATIVE
    return MakeSluiceFileSystem(spec);  // tools/io500/sluice_backend.cc
#endif
    return Status(Code::kUnsupported,
                  "target '" + spec +
                      "': the native back end needs libsluice (client/), which is not built "
                      "yet; use a POSIX path such as the FUSE mount for now");
  }
  if (spec.rfind("posix:", 0) == 0) path = spec.substr(6);
  if (path.empty()) return Status(Code::kInvalid, "empty target directory in '" + spec + "'");
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    return Status::FromErrno(errno, "target directory " + path + " (create it first)");
  }
  if (!S_ISDIR(st.st_mode)) return Status(Code::kNotDir, "target " + path + " is not a directory");
  return std::unique_ptr<FileSystem>(new PosixFileSystem(path));
}

}  // namespace sluice::io500
