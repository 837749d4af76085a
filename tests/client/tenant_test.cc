// Tenant credentials against a real cluster started with two tenants: the
// right secret works; a missing, unknown or wrong one is refused by the
// servers with PERMISSION naming the tenant and the server; a tenant cannot
// call a method reserved for the servers; and after every refusal the servers
// still serve the good client (nothing it wrote is lost).
#include <fcntl.h>

#include <gtest/gtest.h>

#include <string>

#include "client/sluice_client.h"
#include "common/config.h"
#include "common/mgmt_client.h"
#include "common/rpc.h"
#include "proto/mgmt.pb.h"
#include "tests/common/test_util.h"

namespace sluice::client {
namespace {

class TenantTest : public test::LocalClusterSuite<TenantTest> {
 public:
  static test::LocalCluster::Options ClusterOptions() {
    test::LocalCluster::Options o;
    o.name = "tenanttest";
    o.data_servers = 2;
    o.meta_servers = 2;
    o.tenants = {"alpha", "beta"};
    return o;
  }

 protected:
  static Result<std::unique_ptr<Client>> As(const std::string& tenant, const std::string& secret_file,
                                            const std::string& secret = "") {
    ClientOptions o;
    o.cluster = cluster().config();
    o.tenant = tenant;
    o.secret_file = secret_file;
    o.secret = secret;
    o.deadline_ms = 5000;
    return Client::Connect(o);
  }
  static void WriteAndCheck(Client* c, const std::string& path, const std::string& text) {
    auto f = c->Open(path, O_CREAT | O_WRONLY | O_TRUNC, 0644);
    ASSERT_TRUE(f.ok()) << f.status().ToString();
    ASSERT_TRUE((*f)->Write(text.data(), text.size()).ok());
    ASSERT_TRUE((*f)->Close().ok());
    auto r = c->Open(path, O_RDONLY);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    std::string back(text.size(), '\0');
    auto n = (*r)->Read(back.data(), back.size());
    ASSERT_TRUE(n.ok()) << n.status().ToString();
    EXPECT_EQ(back, text);
  }
};

TEST_F(TenantTest, RightSecretWorksAndWrongOnesAreRefusedWhileOthersAreServed) {
  auto good = As("alpha", cluster().SecretFile("alpha"));
  ASSERT_TRUE(good.ok()) << good.status().ToString();
  WriteAndCheck(good->get(), "/alpha-before", "written before the refusals");

  auto wrong = As("alpha", "", "not-alpha-secret-0123456789");
  ASSERT_FALSE(wrong.ok());
  EXPECT_EQ(wrong.status().code(), Code::kPermission) << wrong.status().ToString();
  EXPECT_NE(wrong.status().message().find("wrong secret for tenant 'alpha'"), std::string::npos)
      << wrong.status().ToString();
  EXPECT_NE(wrong.status().message().find("mgmtd at"), std::string::npos) << "names the server";

  // beta's secret file presented as alpha's.
  auto swapped = As("alpha", cluster().SecretFile("beta"));
  ASSERT_FALSE(swapped.ok());
  EXPECT_EQ(swapped.status().code(), Code::kPermission);

  auto unknown = As("gamma", cluster().SecretFile("beta"));
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.status().message().find("unknown tenant 'gamma'"), std::string::npos)
      << unknown.status().ToString();

  // No credential at all (the config has no "default" tenant to fall back to).
  unsetenv("SLUICE_TENANT");
  unsetenv("SLUICE_SECRET_FILE");
  auto none = As("", "");
  ASSERT_FALSE(none.ok());
  EXPECT_NE(none.status().message().find("no tenant credential"), std::string::npos) << none.status().ToString();

  // The other tenant works, and the first client's data is intact.
  auto beta = As("beta", cluster().SecretFile("beta"));
  ASSERT_TRUE(beta.ok()) << beta.status().ToString();
  WriteAndCheck(beta->get(), "/beta-after", "beta writes after the refusals");
  WriteAndCheck(good->get(), "/alpha-after", "alpha still served");
  auto st = (*good)->Stat("/alpha-before");
  ASSERT_TRUE(st.ok()) << st.status().ToString();
  EXPECT_EQ(st->size(), std::string("written before the refusals").size());
}

TEST_F(TenantTest, ATenantCannotCallServerOnlyMethods) {
  auto cfg = LoadClusterConfig(cluster().config());
  ASSERT_TRUE(cfg.ok()) << cfg.status().ToString();
  rpc::ClientOptions co;
  co.fabric.provider = cfg->provider;
  co.credential.set_tenant("alpha");
  auto secret = test::RunCommand("cat " + cluster().SecretFile("alpha"));
  ASSERT_EQ(secret.exit_code, 0);
  while (!secret.text.empty() && secret.text.back() == '\n') secret.text.pop_back();
  co.credential.set_secret(secret.text);
  auto rpc = rpc::RpcClient::Create(co);
  ASSERT_TRUE(rpc.ok()) << rpc.status().ToString();
  auto peer = (*rpc)->Resolve(cfg->mgmtd.host, cfg->mgmtd.port);
  ASSERT_TRUE(peer.ok());
  // A tenant may read the map...
  mgmt::GetMapRequest greq;
  mgmt::GetMapResponse gresp;
  rpc::CallOptions call;
  call.timeout_ms = 3000;
  EXPECT_TRUE((*rpc)->Call(*peer, "sluice.mgmt.MgmtService/GetMap", greq, &gresp, call).status.ok());
  // ...but may not register a server (it could take over a data server's slot).
  mgmt::RegisterRequest req;
  mgmt::RegisterResponse resp;
  auto r = (*rpc)->Call(*peer, "sluice.mgmt.MgmtService/Register", req, &resp, call);
  EXPECT_EQ(r.status.code(), Code::kPermission) << r.status.ToString();
  EXPECT_NE(r.status.message().find("reserved for the cluster"), std::string::npos) << r.status.ToString();
  // The map is unchanged and every server still serving.
  auto status = cluster().Cli("cluster status");
  EXPECT_EQ(status.exit_code, 0) << status.text;
}

}  // namespace
}  // namespace sluice::client
