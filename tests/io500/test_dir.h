// A fresh temporary directory for one test, removed (recursively) at the end.
#pragma once

#include <stdlib.h>

#include <filesystem>
#include <string>

namespace sluice::io500 {

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "io500-test.XXXXXX").string();
    char* p = ::mkdtemp(tmpl.data());
    path_ = p ? p : "";
  }
  ~TempDir() {
    std::error_code ec;
    if (!path_.empty()) std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace sluice::io500
