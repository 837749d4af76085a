// Tenant credentials without servers: the config's [[tenant]] entries, secret
// files, the check every server runs before a handler, and how a client finds
// its credential.
#include <sys/stat.h>

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>

#include "common/auth.h"
#include "common/config.h"
#include "tests/common/test_util.h"

namespace sluice::auth {
namespace {

class AuthTest : public ::testing::Test {
 protected:
  std::string Secret(const std::string& name, const std::string& value, mode_t mode = 0600) {
    std::string p = dir_.path() + "/" + name;
    std::ofstream(p) << value << "\n";
    chmod(p.c_str(), mode);
    return p;
  }
  Result<ClusterConfig> Config(const std::string& extra_cluster, const std::string& tenants) {
    std::string text = "[cluster]\n" + extra_cluster + "\n[mgmtd]\nport = 7000\n[[meta]]\nid = 1\nport = 7101\n" +
                       "[[data]]\nid = 1\nport = 7201\n[[data]]\nid = 2\nport = 7202\n" + tenants;
    return ParseClusterConfig(text, dir_.path() + "/cluster.toml");
  }
  rpc::Credential Cred(const std::string& t, const std::string& s) {
    rpc::Credential c;
    c.set_tenant(t);
    c.set_secret(s);
    return c;
  }
  test::TempDir dir_;
};

TEST_F(AuthTest, ConfigTenantsNeedAClusterSecretAndValidNames) {
  auto no_cluster_secret = Config("", "[[tenant]]\nname = \"a\"\nsecret_file = \"a.secret\"\n");
  ASSERT_FALSE(no_cluster_secret.ok());
  EXPECT_NE(no_cluster_secret.status().message().find("cluster.secret_file"), std::string::npos)
      << no_cluster_secret.status().message();
  auto bad_name = Config("secret_file = \"c\"", "[[tenant]]\nname = \"_cluster\"\nsecret_file = \"x\"\n");
  ASSERT_FALSE(bad_name.ok());
  EXPECT_NE(bad_name.status().message().find("tenant name '_cluster'"), std::string::npos);
  auto twice = Config("secret_file = \"c\"",
                      "[[tenant]]\nname = \"a\"\nsecret_file = \"x\"\n[[tenant]]\nname = \"a\"\nsecret_file = \"y\"\n");
  ASSERT_FALSE(twice.ok());
  EXPECT_NE(twice.status().message().find("appears twice"), std::string::npos);
  auto unknown_key = Config("secret_file = \"c\"", "[[tenant]]\nname = \"a\"\nsecret = \"inline\"\n");
  ASSERT_FALSE(unknown_key.ok());
  EXPECT_NE(unknown_key.status().message().find("unknown key 'secret'"), std::string::npos);

  auto ok = Config("secret_file = \"c.secret\"", "[[tenant]]\nname = \"team-a\"\nsecret_file = \"a.secret\"\n");
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  ASSERT_EQ(ok->tenants.size(), 1u);
  EXPECT_EQ(ok->tenants[0].secret_file, dir_.path() + "/a.secret") << "relative to the config's folder";
  EXPECT_EQ(ok->secret_file, dir_.path() + "/c.secret");
}

TEST_F(AuthTest, SecretFilesMustBePrivateAndLongEnough) {
  EXPECT_TRUE(ReadSecretFile(Secret("good", "0123456789abcdef0123"), "t").ok());
  auto open = ReadSecretFile(Secret("open", "0123456789abcdef0123", 0644), "t");
  ASSERT_FALSE(open.ok());
  EXPECT_NE(open.status().message().find("chmod 600"), std::string::npos);
  auto shrt = ReadSecretFile(Secret("short", "abc"), "t");
  ASSERT_FALSE(shrt.ok());
  EXPECT_NE(shrt.status().message().find("16 to 4096 bytes"), std::string::npos);
  auto missing = ReadSecretFile(dir_.path() + "/none", "t");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find(dir_.path() + "/none"), std::string::npos);

  std::string made = dir_.path() + "/made.secret";
  ASSERT_TRUE(CreateSecretFile(made).ok());
  auto first = ReadSecretFile(made, "t");
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_EQ(first->size(), 64u);
  ASSERT_TRUE(CreateSecretFile(made).ok());  // an existing secret is kept
  EXPECT_EQ(*ReadSecretFile(made, "t"), *first);
}

TEST_F(AuthTest, CheckRefusesMissingUnknownWrongAndInternalCalls) {
  Secret("c.secret", "cluster-secret-0123456789");
  Secret("a.secret", "tenant-a-secret-0123456789");
  auto cfg = Config("secret_file = \"c.secret\"", "[[tenant]]\nname = \"a\"\nsecret_file = \"a.secret\"\n");
  ASSERT_TRUE(cfg.ok()) << cfg.status().ToString();
  auto a = Authenticator::FromConfig(*cfg, "meta 1 at 10.0.0.1:7101");
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  a->RequireCluster("svc/Internal");

  EXPECT_TRUE(a->Check(Cred("a", "tenant-a-secret-0123456789"), "svc/Lookup").ok());
  EXPECT_TRUE(a->Check(Cred("_cluster", "cluster-secret-0123456789"), "svc/Internal").ok());

  auto none = a->Check(Cred("", ""), "svc/Lookup");
  EXPECT_EQ(none.code(), Code::kPermission);
  EXPECT_NE(none.message().find("no tenant credential"), std::string::npos) << none.message();
  EXPECT_NE(none.message().find("meta 1 at 10.0.0.1:7101"), std::string::npos) << none.message();
  auto unknown = a->Check(Cred("b", "tenant-a-secret-0123456789"), "svc/Lookup");
  EXPECT_EQ(unknown.code(), Code::kPermission);
  EXPECT_NE(unknown.message().find("unknown tenant 'b'"), std::string::npos);
  auto wrong = a->Check(Cred("a", "tenant-a-secret-012345678X"), "svc/Lookup");
  EXPECT_EQ(wrong.code(), Code::kPermission);
  EXPECT_NE(wrong.message().find("wrong secret for tenant 'a'"), std::string::npos);
  EXPECT_EQ(wrong.message().find("tenant-a-secret"), std::string::npos) << "a refusal never echoes a secret";
  EXPECT_EQ(a->Check(Cred("a", "tenant-a-secret-01234567890"), "svc/Lookup").code(), Code::kPermission);
  auto internal = a->Check(Cred("a", "tenant-a-secret-0123456789"), "svc/Internal");
  EXPECT_EQ(internal.code(), Code::kPermission);
  EXPECT_NE(internal.message().find("reserved for the cluster"), std::string::npos);

  // Open cluster: everything passes.
  auto open_cfg = Config("", "");
  ASSERT_TRUE(open_cfg.ok());
  auto open = Authenticator::FromConfig(*open_cfg, "x");
  ASSERT_TRUE(open.ok());
  EXPECT_TRUE(open->open());
  EXPECT_TRUE(open->Check(Cred("", ""), "svc/Internal").ok());
}

TEST_F(AuthTest, ClientCredentialFromArgumentsEnvironmentOrDefaultTenant) {
  Secret("c.secret", "cluster-secret-0123456789");
  Secret("a.secret", "tenant-a-secret-0123456789");
  Secret("d.secret", "tenant-default-secret-0123");
  auto cfg = Config("secret_file = \"c.secret\"",
                    "[[tenant]]\nname = \"a\"\nsecret_file = \"a.secret\"\n"
                    "[[tenant]]\nname = \"default\"\nsecret_file = \"d.secret\"\n");
  ASSERT_TRUE(cfg.ok()) << cfg.status().ToString();
  unsetenv("SLUICE_TENANT");
  unsetenv("SLUICE_SECRET_FILE");
  auto d = ClientCredential(*cfg, "", "");
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->tenant(), "default");
  EXPECT_EQ(d->secret(), "tenant-default-secret-0123");
  auto named = ClientCredential(*cfg, "a", "");
  ASSERT_TRUE(named.ok());
  EXPECT_EQ(named->secret(), "tenant-a-secret-0123456789");
  setenv("SLUICE_TENANT", "a", 1);
  auto env = ClientCredential(*cfg, "", "");
  unsetenv("SLUICE_TENANT");
  ASSERT_TRUE(env.ok());
  EXPECT_EQ(env->tenant(), "a");
  auto stranger = ClientCredential(*cfg, "zed", "");
  ASSERT_FALSE(stranger.ok());
  EXPECT_NE(stranger.status().message().find("tenant 'zed' is not in"), std::string::npos);
}

}  // namespace
}  // namespace sluice::auth
