// Talking to sluice-mgmtd.
//
// MgmtAgent runs inside every meta and data server: it registers, heartbeats
// every `heartbeat_ms`, re-registers when mgmtd restarted, and hands every new
// cluster map to `on_map`. MapClient is what clients and tools use: fetch the
// map, cache it, refresh it when a server says the caller's version is stale.
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "common/rpc.h"
#include "proto/mgmt.pb.h"

namespace sluice {

struct MgmtAgentOptions {
  std::string provider = "tcp";
  std::string mgmtd_host = "127.0.0.1";
  uint16_t mgmtd_port = 7000;
  uint32_t server_id = 0;
  mgmt::ServerKind kind = mgmt::META;
  std::string host;  // where this server listens
  uint16_t port = 0;
  uint32_t heartbeat_ms = 500;
  // Current capacity/usage of this server's targets (data servers).
  std::function<std::vector<mgmt::TargetInfo>()> target_usage;
  // Called (on the agent's thread) with every newer map.
  std::function<void(const mgmt::ClusterMap&)> on_map;
};

class MgmtAgent {
 public:
  ~MgmtAgent();
  // Starts the agent thread; registration is retried until mgmtd answers.
  static Result<std::unique_ptr<MgmtAgent>> Start(const MgmtAgentOptions& options);
  // Waits until registered (true) or timeout.
  bool WaitRegistered(uint32_t timeout_ms);
  mgmt::ClusterMap map() const;
  // Tells mgmtd a SYNCING target has caught up.
  Status ReportSynced(uint32_t target_id);
  void Stop();

 private:
  MgmtAgent() = default;
  void Loop();
  void Adopt(const mgmt::ClusterMap& m);

  MgmtAgentOptions options_;
  std::unique_ptr<rpc::RpcClient> rpc_;
  rpc::Peer mgmtd_;
  uint64_t incarnation_ = 0;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  mgmt::ClusterMap map_;
  bool registered_ = false;
  bool stop_ = false;
  std::thread thread_;
};

class MapClient {
 public:
  MapClient(rpc::RpcClient* rpc, rpc::Peer mgmtd) : rpc_(rpc), mgmtd_(std::move(mgmtd)) {}
  // Fetches the map from mgmtd (always a round trip) and caches it.
  Result<mgmt::ClusterMap> Refresh(uint32_t timeout_ms = 5000);
  // The cached map (fetching once if none is cached).
  Result<mgmt::ClusterMap> Get();

 private:
  rpc::RpcClient* rpc_;
  rpc::Peer mgmtd_;
  std::mutex mu_;
  bool have_ = false;
  mgmt::ClusterMap map_;
};

}  // namespace sluice
