// The cluster map's transitions: registration, lease expiry moving targets
// out of chains, return as SYNCING at the tail, resync to SERVING, and a
// version that only grows.
#include "server/mgmt/cluster_map_state.h"

#include <gtest/gtest.h>

#include <algorithm>

namespace sluice::mgmt {
namespace {

ClusterConfig FourDataServers() {
  auto c = ParseClusterConfig(R"([cluster]
replication = 2
lease_ms = 1000
heartbeat_ms = 100
[[meta]]
id = 1
port = 7101
[[data]]
id = 1
port = 7201
[[data]]
id = 2
port = 7202
[[data]]
id = 3
port = 7203
[[data]]
id = 4
port = 7204
)",
                              "/tmp/x.toml");
  EXPECT_TRUE(c.ok()) << c.status().ToString();
  return *c;
}

RegisterRequest Reg(uint32_t id, ServerKind kind, uint64_t inc) {
  RegisterRequest r;
  r.set_server_id(id);
  r.set_kind(kind);
  r.set_incarnation(inc);
  return r;
}

bool InChains(const ClusterMap& m, uint32_t target) {
  for (auto& c : m.chains()) {
    if (std::find(c.members().begin(), c.members().end(), target) != c.members().end()) return true;
  }
  return false;
}

const TargetInfo& Target(const ClusterMap& m, uint32_t id) {
  for (auto& t : m.targets()) {
    if (t.id() == id) return t;
  }
  static TargetInfo none;
  return none;
}

TEST(ClusterMapState, FailureAndReturn) {
  ClusterMapState s(ClusterMapState::Bootstrap(FourDataServers()), 0);
  uint64_t v0 = s.version();
  ASSERT_TRUE(s.Register(Reg(1, META, 11), 0).ok());
  for (uint32_t d = 1; d <= 4; d++) ASSERT_TRUE(s.Register(Reg(d, DATA, 100 + d), 0).ok());
  ClusterMap m = s.Snapshot();
  EXPECT_GT(m.version(), v0);
  for (auto& c : m.chains()) EXPECT_EQ(c.members_size(), 2) << c.DebugString();
  EXPECT_EQ(Target(m, 301).state(), SERVING);

  // Heartbeats keep everyone but data3 alive past the lease.
  for (uint64_t t = 200; t <= 1400; t += 200) {
    for (uint32_t d : {1u, 2u, 4u}) {
      HeartbeatRequest h;
      h.set_server_id(d);
      h.set_kind(DATA);
      h.set_incarnation(100 + d);
      ASSERT_TRUE(s.Heartbeat(h, t).ok());
    }
    HeartbeatRequest h;  // meta 1 and data 1 share an id but not a kind
    h.set_server_id(1);
    h.set_kind(META);
    h.set_incarnation(11);
    ASSERT_TRUE(s.Heartbeat(h, t).ok());
    s.ExpireLeases(t);
  }
  m = s.Snapshot();
  uint64_t v1 = m.version();
  EXPECT_EQ(Target(m, 301).state(), OFFLINE_T);
  EXPECT_FALSE(InChains(m, 301)) << "an offline target must leave its chains";
  int degraded = 0;
  for (auto& c : m.chains()) degraded += c.members_size() < 2;
  EXPECT_EQ(degraded, 2);

  // Return: SYNCING, appended at the tail of its chains.
  ASSERT_TRUE(s.Register(Reg(3, DATA, 999), 1500).ok());
  m = s.Snapshot();
  EXPECT_GT(m.version(), v1);
  EXPECT_EQ(Target(m, 301).state(), SYNCING);
  for (auto& c : m.chains()) {
    if (std::find(c.configured().begin(), c.configured().end(), 301u) != c.configured().end()) {
      ASSERT_EQ(c.members_size(), 2);
      EXPECT_EQ(c.members(1), 301u) << "a returning target joins at the tail";
    }
  }
  uint64_t v2 = m.version();
  ASSERT_TRUE(s.TargetSynced(3, 301).ok());
  EXPECT_EQ(Target(s.Snapshot(), 301).state(), SERVING);
  EXPECT_GT(s.version(), v2);
  EXPECT_FALSE(s.TargetSynced(2, 301).ok()) << "a target can only be reported by its server";
}

TEST(ClusterMapState, UnknownServerAndReregister) {
  ClusterMapState s(ClusterMapState::Bootstrap(FourDataServers()), 0);
  auto r = s.Register(Reg(42, DATA, 1), 0);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("server id 42"), std::string::npos);
  r = s.Register(Reg(2, META, 1), 0);
  ASSERT_FALSE(r.ok()) << "data server 2 cannot register as a meta server";
  EXPECT_NE(r.status().message().find("META server id 2"), std::string::npos) << r.status().ToString();

  // A restarted mgmtd (new state from the persisted map) asks servers to re-register.
  ASSERT_TRUE(s.Register(Reg(2, DATA, 7), 0).ok());
  ClusterMapState restarted(s.Snapshot(), 5000);
  EXPECT_EQ(restarted.version(), s.version());
  HeartbeatRequest h;
  h.set_server_id(2);
  h.set_kind(DATA);
  h.set_incarnation(7);
  auto hb = restarted.Heartbeat(h, 5100);
  ASSERT_TRUE(hb.ok());
  EXPECT_TRUE(hb->reregister());
  // And gives everyone a full lease before declaring them offline.
  EXPECT_FALSE(restarted.ExpireLeases(5900));
  EXPECT_TRUE(restarted.ExpireLeases(6100));
}

}  // namespace
}  // namespace sluice::mgmt
