#include "common/meta/meta_client.h"

#include <algorithm>
#include <chrono>
#include <thread>

#include "common/clock.h"
#include "common/config.h"
#include "common/log.h"
#include "common/meta/remote_shard_handle.h"
#include "common/meta/shard_router.h"

namespace sluice::meta {

// One cluster map turned into handles: immutable once built, replaced whole
// on refresh (callers in flight keep theirs alive through the shared_ptr).
struct MetaClient::View {
  std::atomic<uint64_t> version{0};
  std::vector<std::unique_ptr<RemoteShardHandle>> handles;
  std::unique_ptr<ShardRouter> router;
};

MetaClientOptions MetaClientOptionsFromConfig(const ClusterConfig& cfg) {
  MetaClientOptions o;
  o.provider = cfg.provider;
  o.mgmtd_host = cfg.mgmtd.host;
  o.mgmtd_port = cfg.mgmtd.port;
  return o;
}

MetaClient::MetaClient(const MetaClientOptions& options) : options_(options) {}
MetaClient::~MetaClient() = default;

Result<std::unique_ptr<MetaClient>> MetaClient::Open(const MetaClientOptions& options) {
  std::unique_ptr<MetaClient> c(new MetaClient(options));
  rpc::ClientOptions co;
  co.fabric.provider = options.provider;
  co.credential = options.credential;
  auto rpc = rpc::RpcClient::Create(co);
  if (!rpc.ok()) return rpc.status().Prefix("meta client");
  c->rpc_ = std::move(rpc.value());
  auto mgmtd = c->rpc_->Resolve(options.mgmtd_host, options.mgmtd_port);
  if (!mgmtd.ok()) {
    return mgmtd.status().Prefix("meta client: mgmtd " + options.mgmtd_host + ":" +
                                 std::to_string(options.mgmtd_port));
  }
  c->maps_ = std::make_unique<MapClient>(c->rpc_.get(), *mgmtd);
  SLUICE_RETURN_IF_ERROR(c->Refresh(0));
  return c;
}

uint32_t MetaClient::num_shards() const { return CurrentView()->router->num_shards(); }
uint64_t MetaClient::map_version() const { return CurrentView()->version.load(); }

void MetaClient::LookupCounts(uint64_t* lookups, uint64_t* rpcs) const {
  *lookups = *rpcs = 0;
  for (const auto& h : CurrentView()->handles) {
    *lookups += h->lookups();
    *rpcs += h->lookup_rpcs();
  }
}

std::shared_ptr<MetaClient::View> MetaClient::CurrentView() const {
  std::lock_guard<std::mutex> l(mu_);
  return view_;
}

Result<std::shared_ptr<MetaClient::View>> MetaClient::BuildView(const mgmt::ClusterMap& map) {
  const uint32_t n = map.meta_shards();
  if (n == 0 || n > kMaxShards) {
    return Status(Code::kInvalid, "cluster map version " + std::to_string(map.version()) +
                                      " names " + std::to_string(n) + " meta shards");
  }
  std::vector<const mgmt::ServerInfo*> by_shard(n, nullptr);
  for (const auto& s : map.servers()) {
    if (s.kind() != mgmt::META) continue;
    if (s.shard() >= n) {
      return Status(Code::kInvalid, "cluster map version " + std::to_string(map.version()) +
                                        ": meta server " + std::to_string(s.id()) + " claims shard " +
                                        std::to_string(s.shard()) + " of " + std::to_string(n));
    }
    by_shard[s.shard()] = &s;
  }
  auto v = std::make_shared<View>();
  v->version = map.version();
  RemoteShardOptions ro;
  ro.timeout_ms = options_.timeout_ms;
  ro.map_version = &v->version;
  std::vector<ShardHandle*> raw;
  for (uint32_t i = 0; i < n; ++i) {
    if (by_shard[i] == nullptr) {
      return Status(Code::kInvalid, "cluster map version " + std::to_string(map.version()) +
                                        " has no meta server for shard " + std::to_string(i));
    }
    auto peer = rpc_->Resolve(by_shard[i]->host(), static_cast<uint16_t>(by_shard[i]->port()));
    if (!peer.ok()) {
      return peer.status().Prefix("meta shard " + std::to_string(i) + " at " + by_shard[i]->host() +
                                  ":" + std::to_string(by_shard[i]->port()));
    }
    v->handles.push_back(std::make_unique<RemoteShardHandle>(rpc_.get(), *peer, i, ro));
    raw.push_back(v->handles.back().get());
  }
  ShardHandle* coordinator = raw[0];
  v->router = std::make_unique<ShardRouter>(std::move(raw), coordinator,
                                            static_cast<int>(options_.busy_retry_ms));
  return v;
}

Status MetaClient::Refresh(uint64_t seen_version) {
  // One refresh at a time; a caller whose stale view was already replaced
  // by another thread's refresh does not fetch again.
  std::lock_guard<std::mutex> g(refresh_mu_);
  {
    std::lock_guard<std::mutex> l(mu_);
    if (view_ && view_->version.load() > seen_version) return Status::Ok();
  }
  auto map = maps_->Refresh(std::min<uint32_t>(options_.timeout_ms, 5000));
  if (!map.ok()) {
    return map.status().Prefix("meta client: fetch the cluster map from mgmtd " +
                               options_.mgmtd_host + ":" + std::to_string(options_.mgmtd_port));
  }
  stats_.map_refreshes++;
  SLUICE_ASSIGN_OR_RETURN(std::shared_ptr<View> v, BuildView(*map));
  std::lock_guard<std::mutex> l(mu_);
  if (!view_ || v->version.load() >= view_->version.load()) view_ = std::move(v);
  return Status::Ok();
}

Status MetaClient::RefreshMap() {
  auto v = CurrentView();
  return Refresh(v ? v->version.load() : 0);
}

template <typename Fn>
Status MetaClient::Run(Fn&& fn) {
  const uint64_t deadline = NowMillis() + options_.unavailable_retry_ms;
  uint32_t wait_ms = 50;
  for (int attempt = 0;; ++attempt) {
    std::shared_ptr<View> v = CurrentView();
    Status st = fn(*v->router);
    const Code code = st.code();
    if (code != Code::kStaleMap && code != Code::kUnavailable) return st;
    // Refresh either way, so the next call is built against the newest map.
    const uint64_t before = v->version.load();
    Status rs = Refresh(before);
    if (!rs.ok()) LOG_WARN(rs.ToString());
    // A stale map is always worth one resend (the shard refused before doing
    // anything); after that, resend only within unavailable_retry_ms.
    const bool first_stale = code == Code::kStaleMap && attempt == 0;
    if (!first_stale && NowMillis() >= deadline) return st;
    stats_.resends++;
    // A shard that is down (or a map that did not move) needs time: wait,
    // doubling up to 1 s. A newer map is tried at once.
    if (code == Code::kUnavailable || CurrentView()->version.load() <= before) {
      std::this_thread::sleep_for(std::chrono::milliseconds(wait_ms));
      wait_ms = std::min<uint32_t>(wait_ms * 2, 1000);
    }
  }
}

Result<InodeAttr> MetaClient::Lookup(const Caller& c, uint64_t parent, std::string_view name) {
  InodeAttr out;
  SLUICE_RETURN_IF_ERROR(Run([&](ShardRouter& r) {
    SLUICE_ASSIGN_OR_RETURN(out, r.Lookup(c, parent, name));
    return Status::Ok();
  }));
  return out;
}

std::vector<Result<InodeAttr>> MetaClient::LookupMany(const Caller& c,
                                                      const std::vector<LookupItem>& items,
                                                      size_t max_batch) {
  std::vector<Result<InodeAttr>> out = CurrentView()->router->LookupMany(c, items, max_batch);
  for (size_t i = 0; i < out.size(); ++i) {
    const Code code = out[i].status().code();
    if (code == Code::kStaleMap || code == Code::kUnavailable) {
      out[i] = Lookup(c, items[i].parent, items[i].name);
    }
  }
  return out;
}

Result<InodeAttr> MetaClient::GetAttr(uint64_t ino) {
  InodeAttr out;
  SLUICE_RETURN_IF_ERROR(Run([&](ShardRouter& r) {
    SLUICE_ASSIGN_OR_RETURN(out, r.GetAttr(ino));
    return Status::Ok();
  }));
  return out;
}

Result<InodeAttr> MetaClient::SetAttr(const SetAttrRequest& req) {
  InodeAttr out;
  SLUICE_RETURN_IF_ERROR(Run([&](ShardRouter& r) {
    SLUICE_ASSIGN_OR_RETURN(out, r.SetAttr(req));
    return Status::Ok();
  }));
  return out;
}

Result<CreateResult> MetaClient::Create(const Caller& c, uint64_t parent, std::string_view name,
                                        uint32_t mode, bool exclusive) {
  CreateResult out;
  SLUICE_RETURN_IF_ERROR(Run([&](ShardRouter& r) {
    SLUICE_ASSIGN_OR_RETURN(out, r.Create(c, parent, name, mode, exclusive));
    return Status::Ok();
  }));
  return out;
}

Result<InodeAttr> MetaClient::Mkdir(const Caller& c, uint64_t parent, std::string_view name,
                                    uint32_t mode) {
  InodeAttr out;
  SLUICE_RETURN_IF_ERROR(Run([&](ShardRouter& r) {
    SLUICE_ASSIGN_OR_RETURN(out, r.Mkdir(c, parent, name, mode));
    return Status::Ok();
  }));
  return out;
}

Result<InodeAttr> MetaClient::Symlink(const Caller& c, uint64_t parent, std::string_view name,
                                      std::string_view target) {
  InodeAttr out;
  SLUICE_RETURN_IF_ERROR(Run([&](ShardRouter& r) {
    SLUICE_ASSIGN_OR_RETURN(out, r.Symlink(c, parent, name, target));
    return Status::Ok();
  }));
  return out;
}

Result<std::string> MetaClient::Readlink(uint64_t ino) {
  std::string out;
  SLUICE_RETURN_IF_ERROR(Run([&](ShardRouter& r) {
    SLUICE_ASSIGN_OR_RETURN(out, r.Readlink(ino));
    return Status::Ok();
  }));
  return out;
}

Result<InodeAttr> MetaClient::Link(const Caller& c, uint64_t ino, uint64_t new_parent,
                                   std::string_view new_name) {
  InodeAttr out;
  SLUICE_RETURN_IF_ERROR(Run([&](ShardRouter& r) {
    SLUICE_ASSIGN_OR_RETURN(out, r.Link(c, ino, new_parent, new_name));
    return Status::Ok();
  }));
  return out;
}

Status MetaClient::Unlink(const Caller& c, uint64_t parent, std::string_view name, InodeAttr* victim) {
  return Run([&](ShardRouter& r) { return r.Unlink(c, parent, name, victim); });
}

Status MetaClient::Rmdir(const Caller& c, uint64_t parent, std::string_view name) {
  return Run([&](ShardRouter& r) { return r.Rmdir(c, parent, name); });
}

Status MetaClient::Rename(const Caller& c, uint64_t old_parent, std::string_view old_name,
                          uint64_t new_parent, std::string_view new_name, uint32_t flags) {
  return Run([&](ShardRouter& r) {
    return r.Rename(c, old_parent, old_name, new_parent, new_name, flags);
  });
}

Result<std::vector<DirEntry>> MetaClient::ReadDirAll(const Caller& c, uint64_t dir) {
  std::vector<DirEntry> out;
  SLUICE_RETURN_IF_ERROR(Run([&](ShardRouter& r) {
    SLUICE_ASSIGN_OR_RETURN(out, r.ReadDirAll(c, dir));
    return Status::Ok();
  }));
  return out;
}

Result<DirPage> MetaClient::ReadDir(const Caller& c, uint64_t dir, std::string_view cookie,
                                    uint32_t max_entries) {
  DirPage out;
  SLUICE_RETURN_IF_ERROR(Run([&](ShardRouter& r) {
    SLUICE_ASSIGN_OR_RETURN(out, r.ReadDir(c, dir, cookie, max_entries));
    return Status::Ok();
  }));
  return out;
}

Result<StatFsResult> MetaClient::StatFs() {
  StatFsResult out;
  SLUICE_RETURN_IF_ERROR(Run([&](ShardRouter& r) {
    SLUICE_ASSIGN_OR_RETURN(out, r.StatFs());
    return Status::Ok();
  }));
  return out;
}

Result<std::string> MetaClient::GetXattr(const Caller& c, uint64_t ino, std::string_view name) {
  std::string out;
  SLUICE_RETURN_IF_ERROR(Run([&](ShardRouter& r) {
    SLUICE_ASSIGN_OR_RETURN(out, r.GetXattr(c, ino, name));
    return Status::Ok();
  }));
  return out;
}

Status MetaClient::SetXattr(const Caller& c, uint64_t ino, std::string_view name,
                            std::string_view value, uint32_t flags) {
  return Run([&](ShardRouter& r) { return r.SetXattr(c, ino, name, value, flags); });
}

Result<std::vector<std::string>> MetaClient::ListXattr(const Caller& c, uint64_t ino) {
  std::vector<std::string> out;
  SLUICE_RETURN_IF_ERROR(Run([&](ShardRouter& r) {
    SLUICE_ASSIGN_OR_RETURN(out, r.ListXattr(c, ino));
    return Status::Ok();
  }));
  return out;
}

Status MetaClient::RemoveXattr(const Caller& c, uint64_t ino, std::string_view name) {
  return Run([&](ShardRouter& r) { return r.RemoveXattr(c, ino, name); });
}

Result<uint64_t> MetaClient::ReportLength(uint64_t ino, uint64_t length) {
  uint64_t out = 0;
  SLUICE_RETURN_IF_ERROR(Run([&](ShardRouter& r) {
    SLUICE_ASSIGN_OR_RETURN(out, r.ReportLength(ino, length));
    return Status::Ok();
  }));
  return out;
}

Status MetaClient::SetDirLayout(const Caller& c, uint64_t dir, const FileLayout& layout) {
  return Run([&](ShardRouter& r) { return r.SetDirLayout(c, dir, layout); });
}

Result<InodeAttr> MetaClient::Resolve(const Caller& c, std::string_view path) {
  InodeAttr out;
  SLUICE_RETURN_IF_ERROR(Run([&](ShardRouter& r) {
    SLUICE_ASSIGN_OR_RETURN(out, r.Resolve(c, path));
    return Status::Ok();
  }));
  return out;
}

}  // namespace sluice::meta
