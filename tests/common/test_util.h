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

// Runs `cmd` through /bin/sh with stderr folded into stdout.
struct CommandOutput {
  int exit_code = -1;  // -1 when killed by a signal or not run
  std::string text;
};
CommandOutput RunCommand(const std::string& cmd);

// A local cluster for one test suite: `sluice cluster start --config` in its
// own temp directory on free loopback ports; Stop() (and the destructor)
// runs `sluice cluster stop`, then SIGKILLs any pid still recorded under
// run/, so a failed test leaves no process behind.
class LocalCluster {
 public:
  struct Options {
    std::string name = "test";
    int replication = 2;
    int meta_servers = 2;
    int data_servers = 4;
    int lease_ms = 1500;
    int heartbeat_ms = 300;
    std::string extra_cluster_toml;  // more lines for the [cluster] table
    // Tenants: each gets a secret file <dir>/secrets/<name>.secret (mode
    // 0600), and the servers cluster.secret. Empty: an open cluster.
    std::vector<std::string> tenants;
  };
  LocalCluster() = default;
  LocalCluster(const LocalCluster&) = delete;
  LocalCluster& operator=(const LocalCluster&) = delete;
  ~LocalCluster() { Stop(); }

  // Writes the config and starts every server; the error holds the CLI's output.
  bool Start(const Options& options, std::string* error);
  void Stop();

  const std::string& dir() const { return dir_.path(); }
  const std::string& config() const { return config_; }
  // The secret file of a tenant of Options::tenants ("_cluster": the servers').
  std::string SecretFile(const std::string& tenant) const;
  // `sluice <args> --config <this cluster>`.
  CommandOutput Cli(const std::string& args) const;

 private:
  TempDir dir_;
  std::string config_;
  bool started_ = false;
};

}  // namespace sluice::test
