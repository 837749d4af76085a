// Helpers for tests that start real things: free ports, temp dirs, child
// processes stopped by PID even when the test fails.
#pragma once

#include <sys/types.h>

#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
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
// It is also SIGKILLed by the kernel when the thread that spawned it exits
// (PR_SET_PDEATHSIG), so it cannot outlive a test killed by a timeout or a
// crash; spawn from the test's main thread, not a short-lived helper thread.
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

// The LocalCluster of one test suite and, when it is missing, why.
class SuiteCluster {
 public:
  // Starts a new cluster; on failure keeps the error and stops what started.
  void Start(const LocalCluster::Options& options);
  void Stop();
  LocalCluster* get() const { return cluster_.get(); }
  const std::string& error() const { return error_; }

 private:
  std::unique_ptr<LocalCluster> cluster_;
  std::string error_;
};

// A fixture base whose suite shares one LocalCluster, started once before the
// suite's first test from `static LocalCluster::Options Suite::ClusterOptions()`
// and stopped after its last, whatever the tests did:
//
//   class ClientTest : public test::LocalClusterSuite<ClientTest> {
//    public:
//     static test::LocalCluster::Options ClusterOptions() { ... }
//    protected:
//     void SetUpWithCluster() override { ... cluster().config() ... }
//   };
//
// When the cluster did not start, every test of the suite fails with the
// start error (a failure in SetUpTestSuite would make gtest skip them).
template <typename Suite>
class LocalClusterSuite : public ::testing::Test {
 public:
  static void SetUpTestSuite() { shared_.Start(Suite::ClusterOptions()); }
  static void TearDownTestSuite() { shared_.Stop(); }

 protected:
  void SetUp() final {
    if (shared_.get() == nullptr) GTEST_FAIL() << "the suite's cluster did not start: " << shared_.error();
    SetUpWithCluster();
  }
  // The suite's own per-test set-up, run once the cluster is known to be up.
  virtual void SetUpWithCluster() {}

  static LocalCluster& cluster() { return *shared_.get(); }

 private:
  static inline SuiteCluster shared_;
};

}  // namespace sluice::test
