// sluice-mgmtd as a real process: servers (stand-in processes running the
// real MgmtAgent) register and heartbeat; kill -9 one → offline within the
// lease and its chains re-formed; restart it → syncing at the tail; restart
// mgmtd → map and version intact and servers re-register.
#include <gtest/gtest.h>

#include <fstream>
#include <thread>

#include "common/clock.h"
#include "common/config.h"
#include "common/mgmt_client.h"
#include "tests/common/test_util.h"

namespace sluice {
namespace {

class MgmtdProcess : public ::testing::Test {
 protected:
  void SetUp() override {
    uint16_t p = test::FreePort();
    config_ = dir_.path() + "/cluster.toml";
    std::ofstream f(config_);
    f << "[cluster]\nreplication = 2\nlease_ms = 1000\nheartbeat_ms = 200\n"
      << "[mgmtd]\nport = " << p << "\n";
    f << "[[meta]]\nid = 1\nport = " << test::FreePort() << "\n";
    for (int d = 1; d <= 3; d++) f << "[[data]]\nid = " << d << "\nport = " << test::FreePort() << "\n";
    f.close();
    StartMgmtd();
    rpc::ClientOptions co;
    client_ = std::move(rpc::RpcClient::Create(co).value());
    map_ = std::make_unique<MapClient>(client_.get(), client_->Resolve("127.0.0.1", p).value());
  }
  // Each start logs to its own file: waiting for "serving on" in a log the
  // previous incarnation wrote would return before the new one listens.
  void StartMgmtd() {
    mgmtd_log_ = dir_.path() + "/mgmtd." + std::to_string(spawned_++) + ".log";
    mgmtd_ = test::Child::Spawn({test::BinDir() + "/sluice-mgmtd", "--config", config_}, mgmtd_log_);
    ASSERT_TRUE(test::WaitForText(mgmtd_log_, "serving on")) << mgmtd_log_;
  }
  test::Child Agent(const std::string& kind, int id) {
    std::string log = dir_.path() + "/" + kind + std::to_string(id) + "." + std::to_string(spawned_++) + ".log";
    auto c = test::Child::Spawn({test::BinDir() + "/mgmt_agent_proc", config_, kind, std::to_string(id)}, log);
    EXPECT_TRUE(test::WaitForText(log, "REGISTERED")) << log;
    return c;
  }
  mgmt::ClusterMap Map() {
    auto m = map_->Refresh();
    EXPECT_TRUE(m.ok()) << m.status().ToString();
    return m.ok() ? *m : mgmt::ClusterMap();
  }
  // A missing entry fails the test and reads as a default one (no crash, so
  // the rest of the test still reports what it sees).
  static const mgmt::ServerInfo* Server(const mgmt::ClusterMap& m, mgmt::ServerKind k, uint32_t id) {
    for (auto& s : m.servers()) {
      if (s.kind() == k && s.id() == id) return &s;
    }
    ADD_FAILURE() << "server " << id << " is not in the map";
    return &mgmt::ServerInfo::default_instance();
  }
  static const mgmt::TargetInfo* Target(const mgmt::ClusterMap& m, uint32_t id) {
    for (auto& t : m.targets()) {
      if (t.id() == id) return &t;
    }
    ADD_FAILURE() << "target " << id << " is not in the map";
    return &mgmt::TargetInfo::default_instance();
  }

  test::TempDir dir_;
  std::string config_;
  std::string mgmtd_log_;
  test::Child mgmtd_;
  std::unique_ptr<rpc::RpcClient> client_;
  std::unique_ptr<MapClient> map_;
  int spawned_ = 0;
};

TEST_F(MgmtdProcess, KillDetectReturnAndMgmtdRestart) {
  auto meta = Agent("meta", 1);
  auto d1 = Agent("data", 1);
  auto d2 = Agent("data", 2);
  auto d3 = Agent("data", 3);
  auto m = Map();
  for (auto& c : m.chains()) EXPECT_EQ(c.members_size(), 2);
  EXPECT_EQ(Target(m, 201)->state(), mgmt::SERVING);

  // kill -9 data server 2: offline within the lease (1 s) plus a check step.
  uint64_t t0 = NowMillis();
  d2.Kill(9);
  uint64_t offline_after = 0;
  while (NowMillis() - t0 < 5000) {
    m = Map();
    if (Server(m, mgmt::DATA, 2)->state() == mgmt::OFFLINE) {
      offline_after = NowMillis() - t0;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_GT(offline_after, 0u) << "data server 2 never went offline";
  EXPECT_LT(offline_after, 2500u);
  EXPECT_EQ(Target(m, 201)->state(), mgmt::OFFLINE_T);
  int degraded = 0;
  for (auto& c : m.chains()) {
    for (uint32_t t : c.members()) EXPECT_NE(t, 201u) << "offline target still in chain " << c.id();
    degraded += c.members_size() == 1;
  }
  EXPECT_EQ(degraded, 2);
  uint64_t v_offline = m.version();

  // Restart it: syncing, at the tail of its chains; other servers untouched.
  d2 = Agent("data", 2);
  m = Map();
  EXPECT_GT(m.version(), v_offline);
  EXPECT_EQ(Target(m, 201)->state(), mgmt::SYNCING);
  EXPECT_EQ(Server(m, mgmt::DATA, 2)->state(), mgmt::ONLINE);
  for (auto& c : m.chains()) {
    ASSERT_EQ(c.members_size(), 2);
    if (std::find(c.configured().begin(), c.configured().end(), 201u) != c.configured().end()) {
      EXPECT_EQ(c.members(1), 201u);
    }
  }

  // Restart mgmtd (kill -9): map and version intact; servers re-register.
  uint64_t v_before = m.version();
  mgmtd_.Kill(9);
  StartMgmtd();
  m = Map();
  EXPECT_GE(m.version(), v_before) << "the map version must never go back";
  EXPECT_EQ(Target(m, 201)->state(), mgmt::SYNCING);
  EXPECT_EQ(m.chains_size(), 3);
  // Every server's agent re-registers (new incarnation seen) and stays online
  // past a full lease.
  std::this_thread::sleep_for(std::chrono::milliseconds(1800));
  m = Map();
  for (auto& s : m.servers()) EXPECT_EQ(s.state(), mgmt::ONLINE) << s.DebugString();
  EXPECT_TRUE(test::WaitForText(mgmtd_log_, "loaded cluster map version"));
}

}  // namespace
}  // namespace sluice
