// A stand-in server process for mgmtd tests: registers as (kind, id) with the
// mgmtd of a config and heartbeats until killed. Prints "REGISTERED".
//   agent_proc CONFIG meta|data ID
#include <unistd.h>

#include <cstdio>
#include <cstring>

#include "common/config.h"
#include "common/mgmt_client.h"

using namespace sluice;

int main(int argc, char** argv) {
  if (argc < 4) return 2;
  auto cfg = LoadClusterConfig(argv[1]);
  if (!cfg.ok()) {
    std::fprintf(stderr, "%s\n", cfg.status().ToString().c_str());
    return 1;
  }
  MgmtAgentOptions o;
  o.provider = cfg->provider;
  o.mgmtd_host = cfg->mgmtd.host;
  o.mgmtd_port = cfg->mgmtd.port;
  o.kind = std::strcmp(argv[2], "meta") == 0 ? mgmt::META : mgmt::DATA;
  o.server_id = static_cast<uint32_t>(std::atoi(argv[3]));
  o.heartbeat_ms = cfg->heartbeat_ms;
  if (o.kind == mgmt::META) {
    if (auto* m = cfg->FindMeta(o.server_id)) {
      o.host = m->host;
      o.port = m->port;
    }
  } else if (auto* d = cfg->FindData(o.server_id)) {
    o.host = d->host;
    o.port = d->port;
  }
  o.on_map = [](const mgmt::ClusterMap& m) {
    std::printf("MAP %llu\n", static_cast<unsigned long long>(m.version()));
    std::fflush(stdout);
  };
  auto a = MgmtAgent::Start(o);
  if (!a.ok()) {
    std::fprintf(stderr, "%s\n", a.status().ToString().c_str());
    return 1;
  }
  if ((*a)->WaitRegistered(20000)) {
    std::printf("REGISTERED\n");
    std::fflush(stdout);
  }
  for (;;) pause();
}
