// A temporary directory on the real disk (not tmpfs), removed on destruction.
#pragma once

#include <stdlib.h>

#include <filesystem>
#include <string>

namespace sluice::data::testing {

class TestDir {
 public:
  explicit TestDir(const char* base = "/var/tmp") {
    std::string tmpl = std::string(base) + "/sluice-data-test-XXXXXX";
    char* p = mkdtemp(tmpl.data());
    if (p) path_ = p;
  }
  ~TestDir() {
    std::error_code ec;
    if (!path_.empty()) std::filesystem::remove_all(path_, ec);
  }
  TestDir(const TestDir&) = delete;
  TestDir& operator=(const TestDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace sluice::data::testing
