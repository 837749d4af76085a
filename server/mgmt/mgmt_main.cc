// sluice-mgmtd --config FILE
// Holds the cluster map in RocksDB, serves MgmtService, expires leases.
#include <rocksdb/db.h>
#include <signal.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>

#include "common/owner_watch.h"
#include "common/clock.h"
#include "common/auth.h"
#include "common/config.h"
#include "common/log.h"
#include "common/rpc.h"
#include "server/mgmt/cluster_map_state.h"

using namespace sluice;

namespace {

const char kMapKey[] = "cluster_map";

class MapStore {
 public:
  static Result<std::unique_ptr<MapStore>> Open(const std::string& dir) {
    rocksdb::Options o;
    o.create_if_missing = true;
    rocksdb::DB* db = nullptr;
    auto s = rocksdb::DB::Open(o, dir, &db);
    if (!s.ok()) return Status(Code::kIo, "open mgmtd database " + dir + ": " + s.ToString());
    auto m = std::make_unique<MapStore>();
    m->db_.reset(db);
    return m;
  }
  Result<bool> Load(mgmt::ClusterMap* map) {
    std::string v;
    auto s = db_->Get(rocksdb::ReadOptions(), kMapKey, &v);
    if (s.IsNotFound()) return false;
    if (!s.ok()) return Status(Code::kIo, "read cluster map: " + s.ToString());
    if (!map->ParseFromString(v)) return Status(Code::kCorrupt, "stored cluster map does not parse");
    return true;
  }
  Status Save(const mgmt::ClusterMap& map) {
    rocksdb::WriteOptions w;
    w.sync = true;
    auto s = db_->Put(w, kMapKey, map.SerializeAsString());
    if (!s.ok()) return Status(Code::kIo, "persist cluster map: " + s.ToString());
    return Status::Ok();
  }

 private:
  std::unique_ptr<rocksdb::DB> db_;
};

}  // namespace

int main(int argc, char** argv) {
  std::string config_path;
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    if (a == "--config" && i + 1 < argc) config_path = argv[++i];
  }
  if (config_path.empty()) {
    std::fprintf(stderr, "usage: sluice-mgmtd --config FILE\n");
    return 2;
  }
  SetLogComponent("mgmtd");
  // Block termination signals in every thread; main waits for them.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  WatchOwnerFromEnv("sluice-mgmtd");

  auto cfg = LoadClusterConfig(config_path);
  if (!cfg.ok()) {
    std::fprintf(stderr, "sluice-mgmtd: %s\n", cfg.status().message().c_str());
    return 1;
  }
  auto authenticate = auth::SetUpServer(
      *cfg, "mgmtd at " + cfg->mgmtd.host + ":" + std::to_string(cfg->mgmtd.port),
      {"sluice.mgmt.MgmtService/Register", "sluice.mgmt.MgmtService/Heartbeat",
       "sluice.mgmt.MgmtService/TargetSynced"});
  if (!authenticate.ok()) {
    std::fprintf(stderr, "sluice-mgmtd: %s\n", authenticate.status().message().c_str());
    return 1;
  }
  Status st = CheckWritableDir(cfg->mgmtd.dir, config_path, "[mgmtd] dir");
  if (!st.ok()) {
    std::fprintf(stderr, "sluice-mgmtd: %s\n", st.message().c_str());
    return 1;
  }
  auto store = MapStore::Open(cfg->mgmtd.dir + "/db");
  if (!store.ok()) {
    std::fprintf(stderr, "sluice-mgmtd: %s\n", store.status().ToString().c_str());
    return 1;
  }
  mgmt::ClusterMap map;
  auto loaded = (*store)->Load(&map);
  if (!loaded.ok()) {
    std::fprintf(stderr, "sluice-mgmtd: %s\n", loaded.status().ToString().c_str());
    return 1;
  }
  if (!*loaded) {
    map = mgmt::ClusterMapState::Bootstrap(*cfg);
    st = (*store)->Save(map);
    if (!st.ok()) {
      std::fprintf(stderr, "sluice-mgmtd: %s\n", st.ToString().c_str());
      return 1;
    }
    LOG_INFO("bootstrapped cluster map '" + cfg->name + "' from " + config_path);
  } else {
    LOG_INFO("loaded cluster map version " + std::to_string(map.version()));
  }
  mgmt::ClusterMapState state(map, NowMillis());
  std::mutex save_mu;
  uint64_t saved_version = state.version();
  auto persist = [&]() -> Status {
    std::lock_guard<std::mutex> l(save_mu);
    auto snap = state.Snapshot();
    if (snap.version() == saved_version) return Status::Ok();
    SLUICE_RETURN_IF_ERROR((*store)->Save(snap));
    saved_version = snap.version();
    return Status::Ok();
  };

  rpc::ServerOptions so;
  so.fabric.provider = cfg->provider;
  so.fabric.host = cfg->mgmtd.host;
  so.fabric.port = cfg->mgmtd.port;
  so.authenticate = *authenticate;
  auto server = rpc::RpcServer::Create(so);
  if (!server.ok()) {
    std::fprintf(stderr, "sluice-mgmtd: cannot listen on %s:%u ([mgmtd] in %s): %s\n",
                 cfg->mgmtd.host.c_str(), cfg->mgmtd.port, config_path.c_str(),
                 server.status().message().c_str());
    return 1;
  }
  (*server)->Register<mgmt::RegisterRequest, mgmt::RegisterResponse>(
      "sluice.mgmt.MgmtService/Register",
      [&](rpc::CallContext&, const mgmt::RegisterRequest& req, mgmt::RegisterResponse* resp) -> Status {
        auto m = state.Register(req, NowMillis());
        if (!m.ok()) return m.status();
        SLUICE_RETURN_IF_ERROR(persist());
        *resp->mutable_map() = *m;
        return Status::Ok();
      });
  (*server)->Register<mgmt::HeartbeatRequest, mgmt::HeartbeatResponse>(
      "sluice.mgmt.MgmtService/Heartbeat",
      [&](rpc::CallContext&, const mgmt::HeartbeatRequest& req, mgmt::HeartbeatResponse* resp) -> Status {
        auto r = state.Heartbeat(req, NowMillis());
        if (!r.ok()) return r.status();
        *resp = *r;
        return Status::Ok();
      });
  (*server)->Register<mgmt::GetMapRequest, mgmt::GetMapResponse>(
      "sluice.mgmt.MgmtService/GetMap",
      [&](rpc::CallContext& ctx, const mgmt::GetMapRequest& req, mgmt::GetMapResponse* resp) -> Status {
        *resp->mutable_map() = state.Snapshot();
        ctx.set_map_version(resp->map().version());
        return Status::Ok();
      });
  (*server)->Register<mgmt::TargetSyncedRequest, mgmt::TargetSyncedResponse>(
      "sluice.mgmt.MgmtService/TargetSynced",
      [&](rpc::CallContext&, const mgmt::TargetSyncedRequest& req, mgmt::TargetSyncedResponse* resp) -> Status {
        auto v = state.TargetSynced(req.server_id(), req.target_id());
        if (!v.ok()) return v.status();
        SLUICE_RETURN_IF_ERROR(persist());
        resp->set_version(*v);
        return Status::Ok();
      });
  st = (*server)->Start();
  if (!st.ok()) {
    std::fprintf(stderr, "sluice-mgmtd: %s\n", st.ToString().c_str());
    return 1;
  }
  LOG_INFO("serving on " + cfg->mgmtd.host + ":" + std::to_string(cfg->mgmtd.port) + " (" +
           cfg->provider + "), map version " + std::to_string(state.version()));

  std::atomic<bool> stop{false};
  std::thread leases([&] {
    uint32_t step = std::max<uint32_t>(20, cfg->lease_ms / 10);
    while (!stop) {
      std::this_thread::sleep_for(std::chrono::milliseconds(step));
      if (state.ExpireLeases(NowMillis())) {
        Status ps = persist();
        if (!ps.ok()) LOG_ERROR(ps.ToString());
      }
    }
  });
  int sig;
  sigwait(&set, &sig);
  LOG_INFO("stopping on signal " + std::to_string(sig));
  stop = true;
  leases.join();
  (*server)->Stop();
  (void)persist();
  return 0;
}
