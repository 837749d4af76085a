// The cluster map as a state machine: registrations, heartbeats, lease
// expiry, chain membership and the version that only grows. Pure logic with
// an injected clock, so every transition is unit-tested without processes;
// MgmtServer persists it and serves it over RPC.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>

#include "common/config.h"
#include "common/status.h"
#include "proto/mgmt.pb.h"

namespace sluice::mgmt {

class ClusterMapState {
 public:
  // A fresh map built from the config (every server OFFLINE until it registers).
  static ClusterMap Bootstrap(const ClusterConfig& cfg);

  // Takes ownership of `map` (loaded from disk or bootstrapped). `now_ms` is
  // the monotonic time; every lease restarts from it, so a restarted mgmtd
  // gives every server a full lease to come back.
  ClusterMapState(ClusterMap map, uint64_t now_ms);

  // A server (re)starting. Unknown ids are refused (kNotFound, naming the id).
  // A DATA server coming back turns its OFFLINE targets SYNCING and appends
  // them to their chains' tails; the version bumps on any change.
  Result<ClusterMap> Register(const RegisterRequest& req, uint64_t now_ms);
  // Refreshes a lease. `reregister` is set when the incarnation is unknown.
  Result<HeartbeatResponse> Heartbeat(const HeartbeatRequest& req, uint64_t now_ms);
  // Marks servers whose lease expired OFFLINE and removes their targets from
  // chains. Returns true if the map changed.
  bool ExpireLeases(uint64_t now_ms);
  // A SYNCING target has caught up: it becomes SERVING.
  Result<uint64_t> TargetSynced(uint32_t server_id, uint32_t target_id);

  ClusterMap Snapshot() const;
  uint64_t version() const;

 private:
  ServerInfo* FindServer(ServerKind kind, uint32_t id);
  static uint64_t Key(ServerKind kind, uint32_t id) { return (uint64_t{static_cast<uint32_t>(kind)} << 32) | id; }
  TargetInfo* FindTarget(uint32_t id);
  void Bump() { map_.set_version(map_.version() + 1); }

  mutable std::mutex mu_;
  ClusterMap map_;
  std::map<uint64_t, uint64_t> last_heard_ms_;   // monotonic
  std::map<uint64_t, uint64_t> incarnation_;     // seen since this mgmtd started
};

}  // namespace sluice::mgmt
