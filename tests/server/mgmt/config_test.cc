// Cluster config: the default layout parses, and each bad config gives an
// error naming the file, the line/field and the fix.
#include "common/config.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <unistd.h>

#include "tests/common/test_util.h"

namespace sluice {
namespace {

const char kGood[] = R"([cluster]
name = "t"
replication = 2
chunk_size = "1MiB"
[mgmtd]
port = 7000
[[meta]]
id = 1
port = 7101
[[meta]]
id = 2
port = 7102
[[data]]
id = 1
port = 7201
[[data]]
id = 2
port = 7202
[[data]]
id = 3
port = 7203
targets = ["a", "b"]
)";

TEST(Config, GoodConfigAndBuiltChains) {
  auto c = ParseClusterConfig(kGood, "/etc/sluice/t.toml");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->meta.size(), 2u);
  EXPECT_EQ(c->meta[1].shard, 1u);
  EXPECT_EQ(c->data[2].target_ids, (std::vector<uint32_t>{301, 302}));
  EXPECT_EQ(c->data[2].targets[1], "/etc/sluice/b");
  EXPECT_EQ(c->chunk_size, 1u << 20);
  // One chain per target, each of 2 targets on different servers.
  ASSERT_EQ(c->chains.size(), 4u);
  for (auto& ch : c->chains) {
    ASSERT_EQ(ch.targets.size(), 2u);
    EXPECT_NE(ch.targets[0] / 100, ch.targets[1] / 100);
  }
}

void ExpectError(const std::string& text, const std::vector<std::string>& needles) {
  auto c = ParseClusterConfig(text, "bad.toml");
  ASSERT_FALSE(c.ok()) << text;
  for (auto& n : needles) {
    EXPECT_NE(c.status().message().find(n), std::string::npos)
        << "missing '" << n << "' in: " << c.status().message();
  }
}

TEST(Config, UnknownKey) {
  ExpectError(std::string(kGood) + "[mgmtd2]\n", {"bad.toml", "unknown key 'mgmtd2'"});
  std::string t = kGood;
  t.replace(t.find("replication"), 11, "replicaton");
  ExpectError(t, {"bad.toml:3", "unknown key 'replicaton'", "[cluster]", "replication"});
}

TEST(Config, WrongType) {
  std::string t = kGood;
  t.replace(t.find("replication = 2"), 15, "replication = \"two\"");
  ExpectError(t, {"bad.toml:3", "cluster.replication must be an integer", "string"});
  t = kGood;
  t.replace(t.find("port = 7101"), 11, "port = 99999");
  ExpectError(t, {"meta.port", "out of range"});
}

TEST(Config, SyntaxError) { ExpectError("[cluster\nname=1", {"bad.toml:1"}); }

TEST(Config, DuplicatePortAndChainOnOneHost) {
  std::string t = kGood;
  t.replace(t.find("port = 7202"), 11, "port = 7201");
  ExpectError(t, {"[[data]] id=2", "127.0.0.1:7201", "already uses"});

  std::string hosts = R"([cluster]
replication = 2
[mgmtd]
host = "10.0.0.1"
[[meta]]
id = 1
port = 7101
[[data]]
id = 1
host = "10.0.0.2"
port = 7201
[[data]]
id = 2
host = "10.0.0.2"
port = 7202
[[data]]
id = 3
host = "10.0.0.3"
port = 7203
[[chain]]
targets = [101, 201]
)";
  ExpectError(hosts, {"bad.toml:21", "same host 10.0.0.2", "different hosts"});
  std::string unknown_target = hosts;
  unknown_target.replace(unknown_target.find("[101, 201]"), 10, "[101, 999]");
  ExpectError(unknown_target, {"target 999", "no [[data]] server"});
}

TEST(Config, LoopbackMixedWithRealAddressesIsRefused) {
  // [mgmtd] host left at its default (127.0.0.1) in a file for several hosts.
  ExpectError(R"([cluster]
replication = 2
[[meta]]
id = 1
host = "10.0.0.1"
port = 7101
[[data]]
id = 1
host = "10.0.0.2"
port = 7201
[[data]]
id = 2
host = "10.0.0.3"
port = 7202
)",
              {"[mgmtd] host is 127.0.0.1", "[[meta]] id=1 host is 10.0.0.1", "set [mgmtd] host"});
}

TEST(Config, BuiltChainsPutReplicasOnDifferentHosts) {
  std::string two_on_one = R"([cluster]
replication = 2
[mgmtd]
host = "10.0.0.1"
[[meta]]
id = 1
port = 7101
[[data]]
id = 1
host = "10.0.0.2"
port = 7201
[[data]]
id = 2
host = "10.0.0.2"
port = 7202
[[data]]
id = 3
host = "10.0.0.3"
port = 7203
)";
  auto cfg = ParseClusterConfig(two_on_one, "hosts.toml");
  ASSERT_TRUE(cfg.ok()) << cfg.status().ToString();
  ASSERT_FALSE(cfg->chains.empty());
  for (const auto& c : cfg->chains) {
    ASSERT_EQ(c.targets.size(), 2u);
    EXPECT_NE(cfg->DataOfTarget(c.targets[0])->host, cfg->DataOfTarget(c.targets[1])->host)
        << "chain " << c.id << " has both replicas on one host";
  }
  std::string three = two_on_one;
  three.replace(three.find("replication = 2"), 15, "replication = 3");
  ExpectError(three, {"replication 3 needs [[data]] servers on 3 different hosts", "has 2"});
}

TEST(Config, HostNamesAreResolvedWhenCheckingThisHost) {
  EXPECT_TRUE(CheckPortFree("localhost", 0, "c.toml", "x").ok());
  Status unknown = CheckPortFree("no-such-host.invalid", 0, "c.toml", "[[data]] id=1 host");
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.message().find("does not resolve"), std::string::npos) << unknown.message();
  // TEST-NET-3 (RFC 5737) is never an address of this host.
  Status elsewhere = CheckPortFree("203.0.113.7", 0, "c.toml", "[[data]] id=1 host");
  ASSERT_FALSE(elsewhere.ok());
  EXPECT_NE(elsewhere.message().find("not an address of this host"), std::string::npos) << elsewhere.message();
}

TEST(Config, TooFewServersForReplication) {
  ExpectError(R"([cluster]
replication = 3
[[meta]]
id = 1
port = 7101
[[data]]
id = 1
port = 7201
[[data]]
id = 2
port = 7202
)",
              {"replication 3 needs at least 3 [[data]] servers"});
}

TEST(Config, BadSizes) {
  std::string t = kGood;
  t.replace(t.find("\"1MiB\""), 6, "\"3MiB\"");
  ExpectError(t, {"chunk_size must be a power of two"});
  t = kGood;
  t.replace(t.find("\"1MiB\""), 6, "\"1XB\"");
  ExpectError(t, {"unknown unit 'XB'"});
}

TEST(Config, PortInUseAndUnwritableDir) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  uint16_t port = test::FreePort();
  a.sin_port = htons(port);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ASSERT_EQ(listen(fd, 1), 0);
  Status st = CheckPortFree("127.0.0.1", port, "c.toml", "[mgmtd] port");
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find("c.toml: [mgmtd] port: port " + std::to_string(port)), std::string::npos)
      << st.message();
  EXPECT_NE(st.message().find("already in use"), std::string::npos);
  close(fd);
  EXPECT_TRUE(CheckPortFree("127.0.0.1", port, "c.toml", "x").ok());

  test::TempDir dir;
  std::string ro = dir.path() + "/ro";
  ASSERT_EQ(mkdir(ro.c_str(), 0500), 0);
  // As root permission bits do not stop us; a path under a regular file does.
  std::string file = dir.path() + "/file";
  FILE* f = fopen(file.c_str(), "w");
  fclose(f);
  st = CheckWritableDir(file + "/sub", "c.toml", "[[data]] id=1 targets[0]");
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find("[[data]] id=1 targets[0]"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("cannot create directory"), std::string::npos) << st.message();
  EXPECT_TRUE(CheckWritableDir(dir.path() + "/new/dir", "c.toml", "x").ok());
}

}  // namespace
}  // namespace sluice
