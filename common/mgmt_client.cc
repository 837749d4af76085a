#include "common/mgmt_client.h"

#include <random>

#include "common/log.h"

namespace sluice {
namespace {
const char kRegister[] = "sluice.mgmt.MgmtService/Register";
const char kHeartbeat[] = "sluice.mgmt.MgmtService/Heartbeat";
const char kGetMap[] = "sluice.mgmt.MgmtService/GetMap";
const char kSynced[] = "sluice.mgmt.MgmtService/TargetSynced";
}  // namespace

Result<std::unique_ptr<MgmtAgent>> MgmtAgent::Start(const MgmtAgentOptions& options) {
  std::unique_ptr<MgmtAgent> a(new MgmtAgent());
  a->options_ = options;
  rpc::ClientOptions co;
  co.fabric.provider = options.provider;
  auto c = rpc::RpcClient::Create(co);
  if (!c.ok()) return c.status();
  a->rpc_ = std::move(c.value());
  auto p = a->rpc_->Resolve(options.mgmtd_host, options.mgmtd_port);
  if (!p.ok()) return p.status();
  a->mgmtd_ = *p;
  std::random_device rd;
  a->incarnation_ = (uint64_t{rd()} << 32) | rd();
  a->thread_ = std::thread([ptr = a.get()] { ptr->Loop(); });
  return a;
}

MgmtAgent::~MgmtAgent() { Stop(); }

void MgmtAgent::Stop() {
  {
    std::lock_guard<std::mutex> l(mu_);
    if (stop_) return;
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

bool MgmtAgent::WaitRegistered(uint32_t timeout_ms) {
  std::unique_lock<std::mutex> l(mu_);
  return cv_.wait_for(l, std::chrono::milliseconds(timeout_ms), [&] { return registered_; });
}

mgmt::ClusterMap MgmtAgent::map() const {
  std::lock_guard<std::mutex> l(mu_);
  return map_;
}

void MgmtAgent::Adopt(const mgmt::ClusterMap& m) {
  {
    std::lock_guard<std::mutex> l(mu_);
    if (m.version() <= map_.version()) return;
    map_ = m;
  }
  if (options_.on_map) options_.on_map(m);
}

Status MgmtAgent::ReportSynced(uint32_t target_id) {
  mgmt::TargetSyncedRequest req;
  req.set_server_id(options_.server_id);
  req.set_target_id(target_id);
  mgmt::TargetSyncedResponse resp;
  auto r = rpc_->Call(mgmtd_, kSynced, req, &resp, rpc::CallOptions{3000});
  return r.status;
}

void MgmtAgent::Loop() {
  bool need_register = true;
  uint32_t failures = 0;
  for (;;) {
    {
      std::unique_lock<std::mutex> l(mu_);
      if (stop_) return;
    }
    std::vector<mgmt::TargetInfo> usage;
    if (options_.target_usage) usage = options_.target_usage();
    if (need_register) {
      mgmt::RegisterRequest req;
      req.set_server_id(options_.server_id);
      req.set_kind(options_.kind);
      req.set_host(options_.host);
      req.set_port(options_.port);
      req.set_incarnation(incarnation_);
      for (auto& t : usage) *req.add_targets() = t;
      mgmt::RegisterResponse resp;
      auto r = rpc_->Call(mgmtd_, kRegister, req, &resp, rpc::CallOptions{2000});
      if (r.status.ok()) {
        need_register = false;
        failures = 0;
        Adopt(resp.map());
        {
          std::lock_guard<std::mutex> l(mu_);
          registered_ = true;
        }
        cv_.notify_all();
        LOG_INFO("registered with mgmtd " + mgmtd_.label + "; map version " +
                 std::to_string(resp.map().version()));
      } else {
        if (failures++ % 20 == 0) LOG_WARN("cannot register with mgmtd: " + r.status.ToString());
        if (r.status.code() == Code::kNotFound || r.status.code() == Code::kInvalid) {
          LOG_ERROR("mgmtd refused this server: " + r.status.message());
        }
      }
    } else {
      mgmt::HeartbeatRequest req;
      req.set_server_id(options_.server_id);
      req.set_incarnation(incarnation_);
      req.set_kind(options_.kind);
      {
        std::lock_guard<std::mutex> l(mu_);
        req.set_known_version(map_.version());
      }
      for (auto& t : usage) *req.add_targets() = t;
      mgmt::HeartbeatResponse resp;
      auto r = rpc_->Call(mgmtd_, kHeartbeat, req, &resp, rpc::CallOptions{options_.heartbeat_ms * 2});
      if (r.status.ok()) {
        if (resp.reregister()) need_register = true;
        if (resp.has_map()) Adopt(resp.map());
      } else if (failures++ % 20 == 0) {
        LOG_WARN("heartbeat to mgmtd failed: " + r.status.ToString());
      }
    }
    std::unique_lock<std::mutex> l(mu_);
    cv_.wait_for(l, std::chrono::milliseconds(need_register ? 200 : options_.heartbeat_ms),
                 [&] { return stop_; });
  }
}

Result<mgmt::ClusterMap> MapClient::Refresh(uint32_t timeout_ms) {
  mgmt::GetMapRequest req;
  mgmt::GetMapResponse resp;
  auto r = rpc_->Call(mgmtd_, kGetMap, req, &resp, rpc::CallOptions{timeout_ms});
  if (!r.status.ok()) return r.status;
  std::lock_guard<std::mutex> l(mu_);
  if (!have_ || resp.map().version() >= map_.version()) map_ = resp.map();
  have_ = true;
  return map_;
}

Result<mgmt::ClusterMap> MapClient::Get() {
  {
    std::lock_guard<std::mutex> l(mu_);
    if (have_) return map_;
  }
  return Refresh();
}

}  // namespace sluice
