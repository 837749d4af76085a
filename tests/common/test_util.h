// Helpers for tests that start real things: free ports, temp dirs, child
// processes stopped by PID even when the test fails.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

namespace sluice::test {

// A TCP port that was free a moment ago (bound then released).
uint16_t FreePort();

// A fresh directory under $TMPDIR (or /tmp), removed with its contents on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// A child process; SIGKILLed and reaped on destruction unless already reaped.
class Child {
 public:
  // Starts argv[0] with argv; stdout/stderr go to `log_path` if given.
  static Child Spawn(const std::vector<std::string>& argv, const std::string& log_path = "");
  Child() = default;
  Child(Child&& o) noexcept : pid_(o.pid_) { o.pid_ = -1; }
  Child& operator=(Child&& o) noexcept;
  ~Child();
  pid_t pid() const { return pid_; }
  void Kill(int sig = 9);
  // Waits for exit; returns the wait status, or -1 after timeout_ms.
  int Wait(int timeout_ms = 10000);

 private:
  pid_t pid_ = -1;
};

// Waits until the file at `path` contains `text`; false after timeout_ms.
bool WaitForText(const std::string& path, const std::string& text, int timeout_ms = 10000);

// Directory holding the built binaries (build/bin).
std::string BinDir();

}  // namespace sluice::test
