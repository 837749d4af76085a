// A real cluster on loopback for process-level meta tests: sluice-mgmtd and
// N sluice-meta shard processes from the build, a config file written into
// a fresh temp dir, free ports. Every process is stopped by PID when the
// cluster goes away (test_util's Child), even when the test fails.
#pragma once

#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include "common/rpc.h"
#include "common/meta/meta_client.h"
#include "common/meta/remote_shard_handle.h"
#include "tests/common/test_util.h"

namespace sluice::meta::testing {

class MetaProcCluster {
 public:
  // `provider`: the libfabric provider of the cluster (default: $SLUICE_TEST_PROVIDER or "tcp").
  explicit MetaProcCluster(int shards, std::string provider = "")
      : shards_(shards), provider_(std::move(provider)), procs_(shards) {
    if (provider_.empty()) {
      const char* env = std::getenv("SLUICE_TEST_PROVIDER");
      provider_ = env ? env : "tcp";
    }
    config_ = dir_.path() + "/cluster.toml";
    mgmtd_port_ = test::FreePort();
    std::ofstream f(config_);
    f << "[cluster]\nprovider = \"" << provider_ << "\"\nreplication = 1\nlease_ms = 1500\nheartbeat_ms = 200\n"
      << "[mgmtd]\nhost = \"127.0.0.1\"\nport = " << mgmtd_port_ << "\n";
    for (int i = 0; i < shards; ++i) {
      ports_.push_back(test::FreePort());
      f << "[[meta]]\nid = " << (i + 1) << "\nhost = \"127.0.0.1\"\nport = " << ports_.back() << "\n";
    }
    // The config needs a data server; these tests never start it.
    f << "[[data]]\nid = 1\nhost = \"127.0.0.1\"\nport = " << test::FreePort() << "\n";
  }

  const std::string& config() const { return config_; }
  const std::string& provider() const { return provider_; }
  const std::string& dir() const { return dir_.path(); }
  uint16_t port(int shard) const { return ports_[shard]; }

  // Starts mgmtd and every shard; false (with a message) if one is not serving.
  ::testing::AssertionResult StartAll() {
    std::string log = dir_.path() + "/mgmtd.log";
    mgmtd_ = test::Child::Spawn(Guarded({test::BinDir() + "/sluice-mgmtd", "--config", config_}), log);
    if (!test::WaitForText(log, "serving on")) {
      return ::testing::AssertionFailure() << "mgmtd not serving; " << log << ":\n" << Tail(log);
    }
    for (int i = 0; i < shards_; ++i) {
      auto r = StartShard(i);
      if (!r) return r;
    }
    return ::testing::AssertionSuccess();
  }

  // Starts shard `shard` (config id shard+1) with extra arguments; waits
  // until it serves.
  ::testing::AssertionResult StartShard(int shard, std::vector<std::string> extra = {}) {
    std::string log = dir_.path() + "/meta" + std::to_string(shard + 1) + "." +
                      std::to_string(spawned_++) + ".log";
    std::vector<std::string> argv = Guarded({test::BinDir() + "/sluice-meta", "--config", config_, "--id",
                                             std::to_string(shard + 1), "--workers", "8"});
    argv.insert(argv.end(), extra.begin(), extra.end());
    procs_[shard] = test::Child::Spawn(argv, log);
    last_log_ = log;
    if (!test::WaitForText(log, "serving on", 15000)) {
      return ::testing::AssertionFailure() << "shard " << shard << " not serving; " << log << ":\n"
                                           << Tail(log);
    }
    return ::testing::AssertionSuccess();
  }
  test::Child& shard_proc(int shard) { return procs_[shard]; }
  const std::string& last_log() const { return last_log_; }

  MetaClientOptions ClientOptions() const {
    MetaClientOptions o;
    o.provider = provider_;
    o.mgmtd_host = "127.0.0.1";
    o.mgmtd_port = mgmtd_port_;
    o.timeout_ms = 10000;
    return o;
  }
  std::unique_ptr<MetaClient> Client(uint32_t unavailable_retry_ms = 15000) const {
    MetaClientOptions o = ClientOptions();
    o.unavailable_retry_ms = unavailable_retry_ms;
    auto c = MetaClient::Open(o);
    EXPECT_TRUE(c.ok()) << c.status().ToString();
    return c.ok() ? std::move(c.value()) : nullptr;
  }

  // The last lines of a log (the temp dir is gone when the test reports).
  static std::string Tail(const std::string& path, size_t bytes = 2000) {
    std::ifstream f(path);
    std::string all((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    return all.size() > bytes ? all.substr(all.size() - bytes) : all;
  }

  // One raw RPC client for the test's direct shard calls, made on first use
  // and kept (a fresh endpoint per check only adds connection churn).
  rpc::RpcClient* rpc() {
    if (!rpc_) {
      rpc::ClientOptions co;
      co.fabric.provider = provider_;
      auto c = rpc::RpcClient::Create(co);
      EXPECT_TRUE(c.ok()) << c.status().ToString();
      if (c.ok()) rpc_ = std::move(c.value());
    }
    return rpc_.get();
  }

  // argv run under `setpriv --pdeathsig KILL` when available, so that the
  // servers die with the test even if the test process itself crashes
  // (Child's destructor only runs on a normal exit).
  static std::vector<std::string> Guarded(std::vector<std::string> argv) {
    static const bool have_setpriv = access("/usr/bin/setpriv", X_OK) == 0;
    if (!have_setpriv) return argv;
    argv.insert(argv.begin(), {"/usr/bin/setpriv", "--pdeathsig", "KILL", "--"});
    return argv;
  }

 private:
  test::TempDir dir_;
  int shards_;
  std::string provider_;
  std::string config_;
  uint16_t mgmtd_port_ = 0;
  std::vector<uint16_t> ports_;
  test::Child mgmtd_;
  std::vector<test::Child> procs_;
  int spawned_ = 0;
  std::string last_log_;
  std::unique_ptr<rpc::RpcClient> rpc_;
};

}  // namespace sluice::meta::testing
