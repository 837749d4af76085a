// sluice-meta --config FILE --id N [--workers W]
//
// One metadata shard as a process: opens its MetaStore in the [[meta]] entry's
// dir (shard index = position of the entry, shard count = number of [[meta]]
// entries), serves MetaService on the entry's host:port, registers and
// heartbeats with sluice-mgmtd, and on shard 0 runs the cross-shard
// coordinator and its recovery (at start, every second, and whenever the map
// changes, e.g. a peer shard came back). Stops cleanly on SIGTERM/SIGINT.
//
// --crash-at POINT is a fault-injection hook for crash tests: the process
// SIGKILLs itself at POINT, one of
//   step:K    (shard 0) after durable step K of a cross-shard transaction
//             (1 intent, 2..n+1 prepares, n+2 commit point, then commits)
//   prepare   after a TxnPrepare it received is durable, before replying
//   decide    when a TxnDecide arrives, before applying it
#include <signal.h>

#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/owner_watch.h"
#include "common/auth.h"
#include "common/config.h"
#include "common/log.h"
#include "common/mgmt_client.h"
#include "common/rpc.h"
#include "server/meta/local_shard_handle.h"
#include "server/meta/meta_service.h"
#include "server/meta/meta_store.h"
#include "common/meta/remote_shard_handle.h"
#include "server/meta/txn_coordinator.h"

using namespace sluice;
using namespace sluice::meta;

namespace {

int Fail(const std::string& msg) {
  std::fprintf(stderr, "sluice-meta: %s\n", msg.c_str());
  return 1;
}

// Runs TxnCoordinator::Recover at start, every `period_ms`, and when poked.
class RecoveryLoop {
 public:
  RecoveryLoop(TxnCoordinator* c, uint32_t period_ms) : c_(c), period_ms_(period_ms) {
    thread_ = std::thread([this] { Loop(); });
  }
  ~RecoveryLoop() {
    {
      std::lock_guard<std::mutex> l(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  void Poke() {
    {
      std::lock_guard<std::mutex> l(mu_);
      poked_ = true;
    }
    cv_.notify_all();
  }

 private:
  void Loop() {
    uint32_t failures = 0;
    for (;;) {
      Status st = c_->Recover();
      if (!st.ok()) {
        if (failures++ % 30 == 0) LOG_WARN("transaction recovery incomplete (retrying): " + st.ToString());
      } else {
        if (failures > 0) LOG_INFO("transaction recovery complete");
        failures = 0;
      }
      std::unique_lock<std::mutex> l(mu_);
      cv_.wait_for(l, std::chrono::milliseconds(period_ms_), [&] { return stop_ || poked_; });
      if (stop_) return;
      poked_ = false;
    }
  }

  TxnCoordinator* c_;
  uint32_t period_ms_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  bool poked_ = false;
  std::thread thread_;
};

}  // namespace

int main(int argc, char** argv) {
  std::string config_path;
  long id = -1;
  size_t workers = 16;
  std::string crash_at;
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    if (a == "--config" && i + 1 < argc) {
      config_path = argv[++i];
    } else if (a == "--id" && i + 1 < argc) {
      char* end = nullptr;
      id = std::strtol(argv[++i], &end, 10);
      if (*end != 0 || id < 0) return Fail(std::string("--id wants a number, got '") + argv[i] + "'");
    } else if (a == "--crash-at" && i + 1 < argc) {
      crash_at = argv[++i];
      if (crash_at != "prepare" && crash_at != "decide" && crash_at.rfind("step:", 0) != 0) {
        return Fail("--crash-at wants step:K, prepare or decide, got '" + crash_at + "'");
      }
    } else if (a == "--workers" && i + 1 < argc) {
      workers = static_cast<size_t>(std::max(1L, std::strtol(argv[++i], nullptr, 10)));
    } else {
      std::fprintf(stderr, "usage: sluice-meta --config FILE --id N [--workers W]\n");
      return 2;
    }
  }
  if (config_path.empty() || id < 0) {
    std::fprintf(stderr, "usage: sluice-meta --config FILE --id N [--workers W]\n");
    return 2;
  }
  SetLogComponent("meta" + std::to_string(id));
  // Block termination signals before any thread starts; main waits for them.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  WatchOwnerFromEnv("sluice-meta " + std::to_string(id));

  auto cfg = LoadClusterConfig(config_path);
  if (!cfg.ok()) return Fail(cfg.status().message());
  const MetaServerConfig* me = cfg->FindMeta(static_cast<uint32_t>(id));
  if (me == nullptr) {
    std::string ids;
    for (auto& m : cfg->meta) ids += (ids.empty() ? "" : ", ") + std::to_string(m.id);
    return Fail(config_path + ": no [[meta]] entry with id = " + std::to_string(id) +
                " (ids there: " + ids + "); pass one of those to --id");
  }
  const std::string field = "[[meta]] id=" + std::to_string(id);
  auto authenticate = auth::SetUpServer(*cfg, "meta " + std::to_string(id) + " at " + me->host + ":" +
                                                  std::to_string(me->port),
                                        {"sluice.meta.MetaService/TxnPrepare", "sluice.meta.MetaService/TxnDecide",
                                         "sluice.meta.MetaService/TxnListPrepared"});
  if (!authenticate.ok()) return Fail(authenticate.status().message());
  Status st = CheckWritableDir(me->dir, config_path, field + " dir");
  if (!st.ok()) return Fail(st.message());
  st = CheckPortFree(me->host, me->port, config_path, field + " port");
  if (!st.ok()) return Fail(st.message());

  const uint32_t num_shards = static_cast<uint32_t>(cfg->meta.size());
  MetaStoreOptions so;
  so.shard_id = me->shard;
  so.num_shards = num_shards;
  auto store = MetaStore::Open(me->dir + "/db", so);
  if (!store.ok()) {
    return Fail(config_path + ": " + field + " dir " + me->dir + ": cannot open shard " +
                std::to_string(me->shard) + " of " + std::to_string(num_shards) + ": " +
                store.status().ToString());
  }

  // Handles to every shard; this one's is local.
  rpc::ClientOptions co;
  co.fabric.provider = cfg->provider;
  auto client = rpc::RpcClient::Create(co);
  if (!client.ok()) return Fail("cannot open the peer RPC client: " + client.status().ToString());
  LocalShardHandle local(store->get());
  std::vector<std::unique_ptr<RemoteShardHandle>> remotes;
  std::vector<ShardHandle*> shards;
  for (auto& m : cfg->meta) {
    if (m.shard == me->shard) {
      shards.push_back(&local);
      continue;
    }
    auto peer = (*client)->Resolve(m.host, m.port);
    if (!peer.ok()) {
      return Fail(config_path + ": [[meta]] id=" + std::to_string(m.id) + " host/port " + m.host + ":" +
                  std::to_string(m.port) + ": " + peer.status().ToString());
    }
    RemoteShardOptions ro;
    ro.timeout_ms = 5000;
    remotes.push_back(std::make_unique<RemoteShardHandle>(client->get(), *peer, m.shard, ro));
    shards.push_back(remotes.back().get());
  }
  (*store)->SetPeers(shards);
  std::unique_ptr<TxnCoordinator> coordinator;
  if (me->shard == 0) {
    coordinator = std::make_unique<TxnCoordinator>(store->get(), shards);
    local.set_coordinator(coordinator.get());
  }
  MetaService service(store->get(), shards, coordinator.get());
  if (crash_at.rfind("step:", 0) == 0 && coordinator) {
    const int k = std::atoi(crash_at.c_str() + 5);
    coordinator->SetStepHook([k](int step) {
      if (step == k) raise(SIGKILL);
    });
  } else if (crash_at == "prepare" || crash_at == "decide") {
    service.SetCallHook([crash_at](std::string_view method, bool after, const Status& st) {
      if (crash_at == "prepare" && method == "TxnPrepare" && after && st.ok()) raise(SIGKILL);
      if (crash_at == "decide" && method == "TxnDecide" && !after) raise(SIGKILL);
    });
  }

  rpc::ServerOptions ro;
  ro.fabric.provider = cfg->provider;
  ro.fabric.host = me->host;
  ro.fabric.port = me->port;
  ro.authenticate = *authenticate;
  // Handlers block on WAL syncs (group commit needs many in flight) and on
  // peer shards; they wait, they do not spin.
  ro.workers = workers;
  ro.recv_buffers = std::max<size_t>(64, workers * 2);
  auto server = rpc::RpcServer::Create(ro);
  if (!server.ok()) {
    return Fail("cannot listen on " + me->host + ":" + std::to_string(me->port) + " (" + field +
                " in " + config_path + "): " + server.status().message());
  }
  service.RegisterWith(server->get());
  st = (*server)->Start();
  if (!st.ok()) return Fail("cannot serve on " + me->host + ":" + std::to_string(me->port) + ": " + st.ToString());

  std::unique_ptr<RecoveryLoop> recovery;
  if (coordinator) recovery = std::make_unique<RecoveryLoop>(coordinator.get(), 1000);

  MgmtAgentOptions ao;
  ao.provider = cfg->provider;
  ao.mgmtd_host = cfg->mgmtd.host;
  ao.mgmtd_port = cfg->mgmtd.port;
  ao.server_id = static_cast<uint32_t>(id);
  ao.kind = mgmt::META;
  ao.host = me->host;
  ao.port = me->port;
  ao.heartbeat_ms = cfg->heartbeat_ms;
  RecoveryLoop* rec = recovery.get();
  ao.on_map = [&service, rec](const mgmt::ClusterMap& m) {
    service.SetMapVersion(m.version());
    if (rec) rec->Poke();
  };
  auto agent = MgmtAgent::Start(ao);
  if (!agent.ok()) return Fail("cannot start the mgmtd agent: " + agent.status().ToString());

  LOG_INFO("meta shard " + std::to_string(me->shard) + " of " + std::to_string(num_shards) +
           " serving on " + me->host + ":" + std::to_string(me->port) + " (" + cfg->provider +
           "), database " + me->dir + "/db" + (coordinator ? ", coordinator" : ""));

  int sig = 0;
  sigwait(&set, &sig);
  LOG_INFO("stopping on signal " + std::to_string(sig));
  (*agent)->Stop();
  recovery.reset();
  (*server)->Stop();
  return 0;
}
