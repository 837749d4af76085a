#include "server/mgmt/cluster_map_state.h"

#include <algorithm>

#include "common/clock.h"
#include "common/log.h"

namespace sluice::mgmt {

ClusterMap ClusterMapState::Bootstrap(const ClusterConfig& cfg) {
  ClusterMap m;
  m.set_version(1);
  m.set_cluster_name(cfg.name);
  m.set_provider(cfg.provider);
  m.set_replication(cfg.replication);
  m.set_chunk_size(cfg.chunk_size);
  m.set_stripe_width(cfg.stripe_width);
  m.set_meta_shards(static_cast<uint32_t>(cfg.meta.size()));
  m.set_lease_ms(cfg.lease_ms);
  for (auto& mc : cfg.meta) {
    ServerInfo* s = m.add_servers();
    s->set_id(mc.id);
    s->set_kind(META);
    s->set_host(mc.host);
    s->set_port(mc.port);
    s->set_state(OFFLINE);
    s->set_shard(mc.shard);
  }
  for (auto& dc : cfg.data) {
    ServerInfo* s = m.add_servers();
    s->set_id(dc.id);
    s->set_kind(DATA);
    s->set_host(dc.host);
    s->set_port(dc.port);
    s->set_state(OFFLINE);
    for (size_t i = 0; i < dc.targets.size(); i++) {
      s->add_targets(dc.target_ids[i]);
      TargetInfo* t = m.add_targets();
      t->set_id(dc.target_ids[i]);
      t->set_server_id(dc.id);
      t->set_path(dc.targets[i]);
      // Before a first registration nothing is stored: a target joins as
      // SERVING (nothing to resync) once its server registers.
      t->set_state(TARGET_STATE_UNKNOWN);
    }
  }
  for (auto& c : cfg.chains) {
    ChainInfo* ci = m.add_chains();
    ci->set_id(c.id);
    for (uint32_t t : c.targets) ci->add_configured(t);
  }
  return m;
}

ClusterMapState::ClusterMapState(ClusterMap map, uint64_t now_ms) : map_(std::move(map)) {
  for (auto& s : map_.servers()) last_heard_ms_[Key(s.kind(), s.id())] = now_ms;
}

ServerInfo* ClusterMapState::FindServer(ServerKind kind, uint32_t id) {
  for (auto& s : *map_.mutable_servers()) {
    if (s.id() == id && s.kind() == kind) return &s;
  }
  return nullptr;
}

TargetInfo* ClusterMapState::FindTarget(uint32_t id) {
  for (auto& t : *map_.mutable_targets()) {
    if (t.id() == id) return &t;
  }
  return nullptr;
}

Result<ClusterMap> ClusterMapState::Register(const RegisterRequest& req, uint64_t now_ms) {
  std::lock_guard<std::mutex> l(mu_);
  ServerInfo* s = FindServer(req.kind(), req.server_id());
  if (!s) {
    return Status(Code::kNotFound, ServerKind_Name(req.kind()) + " server id " +
                                       std::to_string(req.server_id()) +
                                       " is not in the cluster config; check the id passed to the server");
  }
  bool changed = false;
  if (s->state() != ONLINE || s->incarnation() != req.incarnation()) changed = true;
  s->set_state(ONLINE);
  s->set_incarnation(req.incarnation());
  s->set_last_heartbeat_unix_ms(WallMillis());
  if (!req.host().empty() && req.host() != s->host()) {
    s->set_host(req.host());
    changed = true;
  }
  last_heard_ms_[Key(s->kind(), s->id())] = now_ms;
  incarnation_[Key(s->kind(), s->id())] = req.incarnation();
  for (auto& rt : req.targets()) {
    TargetInfo* t = FindTarget(rt.id());
    if (!t || t->server_id() != s->id()) continue;
    t->set_capacity_bytes(rt.capacity_bytes());
    t->set_used_bytes(rt.used_bytes());
  }
  if (s->kind() == DATA) {
    for (uint32_t tid : s->targets()) {
      TargetInfo* t = FindTarget(tid);
      if (!t) continue;
      if (t->state() == TARGET_STATE_UNKNOWN) {
        t->set_state(SERVING);  // first start: nothing to resync
        changed = true;
      } else if (t->state() == OFFLINE_T) {
        t->set_state(SYNCING);
        changed = true;
      }
      // Put the target back into every chain built from it (at the tail).
      for (auto& c : *map_.mutable_chains()) {
        bool configured = std::find(c.configured().begin(), c.configured().end(), tid) != c.configured().end();
        bool member = std::find(c.members().begin(), c.members().end(), tid) != c.members().end();
        if (configured && !member) {
          if (t->state() == SERVING) {
            // Keep the configured order while the chain is being formed.
            std::vector<uint32_t> m(c.members().begin(), c.members().end());
            m.push_back(tid);
            std::vector<uint32_t> ordered;
            for (uint32_t x : c.configured()) {
              if (std::find(m.begin(), m.end(), x) != m.end()) ordered.push_back(x);
            }
            c.clear_members();
            for (uint32_t x : ordered) c.add_members(x);
          } else {
            c.add_members(tid);
          }
          changed = true;
        }
      }
    }
  }
  if (changed) Bump();
  LOG_INFO("server " + std::to_string(s->id()) + " (" + ServerKind_Name(s->kind()) + ") registered from " +
           s->host() + ":" + std::to_string(s->port()) + "; map version " + std::to_string(map_.version()));
  return map_;
}

Result<HeartbeatResponse> ClusterMapState::Heartbeat(const HeartbeatRequest& req, uint64_t now_ms) {
  std::lock_guard<std::mutex> l(mu_);
  HeartbeatResponse r;
  ServerInfo* s = FindServer(req.kind(), req.server_id());
  if (!s) {
    return Status(Code::kNotFound, ServerKind_Name(req.kind()) + " server id " +
                                       std::to_string(req.server_id()) + " is not in the cluster map");
  }
  auto it = incarnation_.find(Key(s->kind(), s->id()));
  if (it == incarnation_.end() || it->second != req.incarnation() || s->state() != ONLINE) {
    r.set_reregister(true);
  } else {
    last_heard_ms_[Key(s->kind(), s->id())] = now_ms;
    s->set_last_heartbeat_unix_ms(WallMillis());
    for (auto& rt : req.targets()) {
      TargetInfo* t = FindTarget(rt.id());
      if (!t || t->server_id() != s->id()) continue;
      t->set_capacity_bytes(rt.capacity_bytes());
      t->set_used_bytes(rt.used_bytes());
    }
  }
  r.set_version(map_.version());
  if (req.known_version() < map_.version()) *r.mutable_map() = map_;
  return r;
}

bool ClusterMapState::ExpireLeases(uint64_t now_ms) {
  std::lock_guard<std::mutex> l(mu_);
  bool changed = false;
  for (auto& s : *map_.mutable_servers()) {
    if (s.state() != ONLINE) continue;
    uint64_t heard = last_heard_ms_[Key(s.kind(), s.id())];
    if (now_ms <= heard + map_.lease_ms()) continue;
    s.set_state(OFFLINE);
    changed = true;
    LOG_WARN("server " + std::to_string(s.id()) + " (" + s.host() + ":" + std::to_string(s.port()) +
             ") missed its lease of " + std::to_string(map_.lease_ms()) + " ms: offline");
    for (uint32_t tid : s.targets()) {
      TargetInfo* t = FindTarget(tid);
      if (t && t->state() != TARGET_STATE_UNKNOWN) t->set_state(OFFLINE_T);
      for (auto& c : *map_.mutable_chains()) {
        std::vector<uint32_t> m;
        for (uint32_t x : c.members()) {
          if (x != tid) m.push_back(x);
        }
        if (static_cast<int>(m.size()) != c.members_size()) {
          c.clear_members();
          for (uint32_t x : m) c.add_members(x);
        }
      }
    }
  }
  if (changed) Bump();
  return changed;
}

Result<uint64_t> ClusterMapState::TargetSynced(uint32_t server_id, uint32_t target_id) {
  std::lock_guard<std::mutex> l(mu_);
  TargetInfo* t = FindTarget(target_id);
  if (!t || t->server_id() != server_id) {
    return Status(Code::kNotFound, "target " + std::to_string(target_id) + " does not belong to server " +
                                       std::to_string(server_id));
  }
  if (t->state() == SYNCING) {
    t->set_state(SERVING);
    Bump();
    LOG_INFO("target " + std::to_string(target_id) + " resynced: serving; map version " +
             std::to_string(map_.version()));
  }
  return map_.version();
}

ClusterMap ClusterMapState::Snapshot() const {
  std::lock_guard<std::mutex> l(mu_);
  return map_;
}

uint64_t ClusterMapState::version() const {
  std::lock_guard<std::mutex> l(mu_);
  return map_.version();
}

}  // namespace sluice::mgmt
