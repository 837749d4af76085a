// sluice-data --config FILE --id N
// Serves the chunk targets of data server N of the cluster config: one
// ChunkStore per target directory behind DataService/ChainService, registered
// with sluice-mgmtd. Stops cleanly on SIGTERM/SIGINT.
#include <signal.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include "common/owner_watch.h"
#include "common/auth.h"
#include "common/config.h"
#include "common/log.h"
#include "common/mgmt_client.h"
#include "common/rpc.h"
#include "server/data/data_server.h"

using namespace sluice;

namespace {

int Fail(const std::string& msg) {
  std::fprintf(stderr, "sluice-data: %s\n", msg.c_str());
  return 1;
}

void Usage() {
  std::fprintf(stderr,
               "usage: sluice-data --config FILE --id N [--sync-writes 0|1] [--arena-mib M] [--workers W]\n"
               "                  [--forward-timeout-ms MS] [--test-late-forward INODE:MS[:EVERY]]\n");
}

}  // namespace

int main(int argc, char** argv) {
  std::string config_path;
  long id = -1;
  bool sync_writes = true;
  long arena_mib = 64;
  long workers = 16;
  long forward_timeout_ms = 5000;
  uint64_t late_inode = 0;
  long late_ms = 0;
  long late_every = 0;
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    auto next = [&]() -> const char* { return i + 1 < argc ? argv[++i] : nullptr; };
    const char* v = nullptr;
    if (a == "--config" && (v = next())) {
      config_path = v;
    } else if (a == "--id" && (v = next())) {
      id = std::strtol(v, nullptr, 10);
    } else if (a == "--sync-writes" && (v = next())) {
      sync_writes = std::string(v) != "0";
    } else if (a == "--arena-mib" && (v = next())) {
      arena_mib = std::strtol(v, nullptr, 10);
    } else if (a == "--workers" && (v = next())) {
      workers = std::strtol(v, nullptr, 10);
    } else if (a == "--forward-timeout-ms" && (v = next())) {
      forward_timeout_ms = std::strtol(v, nullptr, 10);
    } else if (a == "--test-late-forward" && (v = next())) {
      // INODE:MS[:EVERY], a fault-test hook (DataServerOptions::test_late_forward_*)
      char* end = nullptr;
      late_inode = std::strtoull(v, &end, 10);
      if (!end || *end != ':') return Fail("--test-late-forward wants INODE:MS[:EVERY]");
      late_ms = std::strtol(end + 1, &end, 10);
      if (end && *end == ':') late_every = std::strtol(end + 1, nullptr, 10);
    } else {
      Usage();
      return 2;
    }
  }
  if (config_path.empty() || id < 0) {
    Usage();
    return 2;
  }
  if (arena_mib < 4 || workers < 2) return Fail("--arena-mib must be >= 4 and --workers >= 2");
  if (forward_timeout_ms < 100) return Fail("--forward-timeout-ms must be >= 100");
  SetLogComponent("data-" + std::to_string(id));
  // Block termination signals before any thread starts; main waits for them.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  WatchOwnerFromEnv("sluice-data " + std::to_string(id));

  auto cfg = LoadClusterConfig(config_path);
  if (!cfg.ok()) return Fail(cfg.status().message());
  const DataServerConfig* dc = cfg->FindData(static_cast<uint32_t>(id));
  if (!dc) {
    return Fail(config_path + ": no [[data]] entry with id = " + std::to_string(id) +
                "; pass the id of one of its [[data]] entries");
  }

  auto authenticate = auth::SetUpServer(
      *cfg, "data " + std::to_string(id) + " at " + dc->host + ":" + std::to_string(dc->port),
      {"sluice.datasvc.DataService/ForwardUpdate", "sluice.datasvc.DataService/Commit",
       "sluice.datasvc.DataService/InstallChunk"});
  if (!authenticate.ok()) return Fail(authenticate.status().message());

  std::atomic<MgmtAgent*> agent_ptr{nullptr};
  data::DataServerOptions dso;
  dso.config = *cfg;
  dso.server_id = static_cast<uint32_t>(id);
  dso.store.sync_writes = sync_writes;
  dso.store.buffer_arena_bytes = static_cast<size_t>(arena_mib) << 20;
  dso.forward_timeout_ms = static_cast<uint32_t>(forward_timeout_ms);
  dso.test_late_forward_inode = late_inode;
  dso.test_late_forward_ms = static_cast<uint32_t>(late_ms);
  dso.test_late_forward_every = static_cast<uint32_t>(late_every);
  dso.report_synced = [&agent_ptr](uint32_t target) -> Status {
    MgmtAgent* a = agent_ptr.load();
    if (!a) return Status(Code::kUnavailable, "not registered with mgmtd yet");
    return a->ReportSynced(target);
  };
  auto ds = data::DataServer::Open(dso);
  if (!ds.ok()) return Fail(ds.status().ToString());

  rpc::ServerOptions so;
  so.fabric.provider = cfg->provider;
  so.fabric.host = dc->host;
  so.fabric.port = dc->port;
  so.authenticate = *authenticate;
  // Chain forwards block a worker until the successor answers: enough
  // workers that chains crossing this server cannot exhaust them. They sleep
  // on a condition variable; none spins.
  so.workers = static_cast<size_t>(workers);
  auto server = rpc::RpcServer::Create(so);
  if (!server.ok()) {
    return Fail("cannot listen on " + dc->host + ":" + std::to_string(dc->port) + " ([[data]] id=" +
                std::to_string(id) + " host/port in " + config_path + "): " + server.status().message() +
                "; is another process using the port?");
  }
  (*ds)->RegisterHandlers(server->get());
  Status st = (*server)->Start();
  if (!st.ok()) return Fail("start RPC server: " + st.ToString());

  MgmtAgentOptions ao;
  ao.provider = cfg->provider;
  ao.mgmtd_host = cfg->mgmtd.host;
  ao.mgmtd_port = cfg->mgmtd.port;
  ao.server_id = static_cast<uint32_t>(id);
  ao.kind = mgmt::DATA;
  ao.host = dc->host;
  ao.port = dc->port;
  ao.heartbeat_ms = cfg->heartbeat_ms;
  data::DataServer* dsp = ds->get();
  ao.target_usage = [dsp] { return dsp->TargetUsage(); };
  ao.on_map = [dsp](const mgmt::ClusterMap& m) { dsp->OnMap(m); };
  auto agent = MgmtAgent::Start(ao);
  if (!agent.ok()) return Fail("mgmtd agent ([mgmtd] in " + config_path + "): " + agent.status().ToString());
  agent_ptr = agent->get();

  std::string targets;
  for (size_t i = 0; i < dc->targets.size(); i++) {
    targets += (i ? ", " : "") + std::to_string(dc->target_ids[i]) + "=" + dc->targets[i];
  }
  LOG_INFO("sluice-data " + std::to_string(id) + " listening on " + dc->host + ":" + std::to_string(dc->port) +
           " (" + cfg->provider + "), targets " + targets);

  int sig = 0;
  sigwait(&set, &sig);
  LOG_INFO("signal " + std::to_string(sig) + ": stopping");
  agent_ptr = nullptr;
  (*agent)->Stop();
  (*ds)->Stop();
  (*server)->Stop();
  LOG_INFO("stopped");
  return 0;
}
