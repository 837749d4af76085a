// A real cluster for data-server tests: sluice-mgmtd and N sluice-data
// processes on loopback, each with its own target directory under a fresh
// directory on the real disk; every process is stopped by PID on destruction.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "common/data_client.h"
#include "tests/common/test_util.h"
#include "tests/server/data/test_dir.h"

namespace sluice::data::testing {

class DataCluster {
 public:
  // `servers` data servers with one target each (ids 1..servers, targets
  // 101, 201, ...), replication `replication`.
  //
  // Provider: SLUICE_TEST_PROVIDER or "shm". (Before e0226a1, libfabric 1.17
  // "tcp" crashed the sender in fi_send to a killed peer; the kill tests run
  // on both providers.)
  DataCluster(int servers, int replication, std::vector<std::string> data_args = {},
              std::string provider = DefaultProvider())
      : servers_(servers), data_args_(std::move(data_args)), provider_(std::move(provider)) {
    mgmtd_port_ = test::FreePort();
    std::string text = "[cluster]\nname = \"datatest\"\nprovider = \"" + provider_ + "\"\nreplication = " + std::to_string(replication) +
                       "\nchunk_size = \"1MiB\"\nlease_ms = 2500\nheartbeat_ms = 250\n"
                       "[mgmtd]\nhost = \"127.0.0.1\"\nport = " + std::to_string(mgmtd_port_) +
                       "\ndir = \"" + dir_.path() + "/mgmtd\"\n";
    // mgmtd wants a meta shard in the config; it never starts here.
    text += "[[meta]]\nid = 1\nhost = \"127.0.0.1\"\nport = " + std::to_string(test::FreePort()) +
            "\ndir = \"" + dir_.path() + "/meta\"\n";
    for (int i = 1; i <= servers; i++) {
      uint16_t p = test::FreePort();
      while (p == mgmtd_port_) p = test::FreePort();
      ports_.push_back(p);
      text += "[[data]]\nid = " + std::to_string(i) + "\nhost = \"127.0.0.1\"\nport = " + std::to_string(p) +
              "\ntargets = [\"" + TargetDir(i) + "\"]\n";
    }
    config_ = dir_.path() + "/cluster.toml";
    std::ofstream(config_) << text;
    data_.resize(servers);
    starts_.resize(servers);
  }

  // SLUICE_TEST_PROVIDER overrides the default "shm" (e.g. "tcp").
  static std::string DefaultProvider() {
    const char* p = std::getenv("SLUICE_TEST_PROVIDER");
    return p && *p ? p : "shm";
  }
  // On a failed test, the logs go to stdout before the directory is removed.
  ~DataCluster() {
    if (!::testing::Test::HasFailure()) return;
    client_.reset();
    std::string out = Tail(dir_.path() + "/mgmtd.log", 15);
    for (int i = 1; i <= servers_; i++) {
      for (int n = 1; n <= starts_[i - 1]; n++) {
        out += Tail(dir_.path() + "/data-" + std::to_string(i) + (n > 1 ? "." + std::to_string(n) : "") + ".log", 30);
      }
    }
    std::printf("%s", out.c_str());
  }
  const std::string& dir() const { return dir_.path(); }
  // The last `lines` lines of a file (for failure messages: the dir is removed).
  static std::string Tail(const std::string& path, size_t lines = 25) {
    std::ifstream f(path);
    std::vector<std::string> all;
    for (std::string l; std::getline(f, l);) all.push_back(l);
    std::string out = "--- " + path + "\n";
    for (size_t i = all.size() > lines ? all.size() - lines : 0; i < all.size(); i++) out += all[i] + "\n";
    return out;
  }
  const std::string& config() const { return config_; }
  std::string TargetDir(int server) const { return dir_.path() + "/data-" + std::to_string(server); }
  static uint32_t TargetOf(int server) { return static_cast<uint32_t>(server * 100 + 1); }
  // Log of the server's latest start (each start writes its own file).
  std::string LogOf(int server) const {
    int n = starts_[server - 1];
    return dir_.path() + "/data-" + std::to_string(server) + (n > 1 ? "." + std::to_string(n) : "") + ".log";
  }

  void StartMgmtd() {
    mgmtd_ = test::Child::Spawn({test::BinDir() + "/sluice-mgmtd", "--config", config_}, dir_.path() + "/mgmtd.log");
    ASSERT_TRUE(test::WaitForText(dir_.path() + "/mgmtd.log", "serving on")) << dir_.path() << "/mgmtd.log";
  }
  void StartData(int server) {
    std::vector<std::string> argv = {test::BinDir() + "/sluice-data", "--config", config_, "--id",
                                     std::to_string(server), "--arena-mib", "16", "--workers", "8"};
    argv.insert(argv.end(), data_args_.begin(), data_args_.end());
    starts_[server - 1]++;
    data_[server - 1] = test::Child::Spawn(argv, LogOf(server));
    EXPECT_TRUE(test::WaitForText(LogOf(server), "registered with mgmtd")) << LogOf(server);
  }
  void Kill(int server, int sig = 9) {
    data_[server - 1].Kill(sig);
    data_[server - 1].Wait(10000);
  }
  // Starts everything and waits until every target is SERVING.
  void Start() {
    StartMgmtd();
    if (::testing::Test::HasFatalFailure()) return;
    for (int i = 1; i <= servers_; i++) StartData(i);
    DataClientOptions o;
    o.mgmtd_port = mgmtd_port_;
    o.provider = provider_;
    o.retry_budget_ms = 20000;
    auto c = DataClient::Create(o);
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    client_ = std::move(c.value());
    for (int i = 1; i <= servers_; i++) {
      ASSERT_TRUE(WaitTarget(TargetOf(i), mgmt::SERVING, 15000)) << "target " << TargetOf(i) << " not SERVING; "
                                                                 << "see " << LogOf(i);
    }
  }
  DataClient* client() { return client_.get(); }
  uint16_t mgmtd_port() const { return mgmtd_port_; }

  // Polls mgmtd (every 50 ms) until the target reaches `state`.
  bool WaitTarget(uint32_t target, mgmt::TargetState state, int timeout_ms) {
    uint64_t end = NowMillis() + timeout_ms;
    while (NowMillis() < end) {
      auto m = client_->RefreshMap();
      if (m.ok()) {
        for (auto& t : m->targets()) {
          if (t.id() == target && t.state() == state) return true;
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return false;
  }
  std::vector<uint32_t> ChainIds() {
    std::vector<uint32_t> ids;
    auto m = client_->RefreshMap();
    if (m.ok()) {
      for (auto& c : m->chains()) ids.push_back(c.id());
    }
    return ids;
  }

 private:
  TestDir dir_;
  int servers_;
  std::vector<std::string> data_args_;
  std::string provider_;
  uint16_t mgmtd_port_ = 0;
  std::vector<uint16_t> ports_;
  std::string config_;
  test::Child mgmtd_;
  std::vector<test::Child> data_;
  std::vector<int> starts_;
  std::unique_ptr<DataClient> client_;
};

}  // namespace sluice::data::testing
