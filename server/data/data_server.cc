#include "server/data/data_server.h"

#include <sys/statvfs.h>

#include <algorithm>
#include <optional>
#include <chrono>
#include <cstring>

#include "common/clock.h"
#include "common/crc32c.h"
#include "common/log.h"

namespace sluice::data {
namespace {

const char kSvc[] = "sluice.datasvc.DataService/";
const char kChainSvc[] = "sluice.datasvc.ChainService/";

std::string Name(const ChunkId& c) {
  return "chunk " + std::to_string(c.inode) + ":" + std::to_string(c.index);
}
std::string T(uint32_t target) { return "target " + std::to_string(target); }

ChunkId FromWire(const datasvc::ChunkId& c) { return ChunkId{c.inode(), c.index()}; }
void ToWire(const ChunkId& c, datasvc::ChunkId* out) {
  out->set_inode(c.inode);
  out->set_index(c.index);
}

const mgmt::TargetInfo* FindTarget(const mgmt::ClusterMap& map, uint32_t id) {
  for (auto& t : map.targets()) {
    if (t.id() == id) return &t;
  }
  return nullptr;
}
const mgmt::ChainInfo* FindChain(const mgmt::ClusterMap& map, uint32_t id) {
  for (auto& c : map.chains()) {
    if (c.id() == id) return &c;
  }
  return nullptr;
}
mgmt::TargetState StateOf(const mgmt::ClusterMap& map, uint32_t id) {
  const mgmt::TargetInfo* t = FindTarget(map, id);
  return t ? t->state() : mgmt::TARGET_STATE_UNKNOWN;
}
// SERVING members in chain order (the replication path).
std::vector<uint32_t> Serving(const mgmt::ClusterMap& map, const mgmt::ChainInfo& c) {
  std::vector<uint32_t> out;
  for (uint32_t m : c.members()) {
    if (StateOf(map, m) == mgmt::SERVING) out.push_back(m);
  }
  return out;
}
std::vector<uint32_t> Syncing(const mgmt::ClusterMap& map, const mgmt::ChainInfo& c) {
  std::vector<uint32_t> out;
  for (uint32_t m : c.members()) {
    if (StateOf(map, m) == mgmt::SYNCING) out.push_back(m);
  }
  return out;
}

}  // namespace

void ToWire(const ChunkMeta& m, datasvc::ChunkMeta* out) {
  ToWire(m.chunk, out->mutable_chunk());
  out->set_version(m.version);
  out->set_length(m.length);
  out->set_crc32c(m.crc);
  out->set_pending_version(m.pending_version);
  out->set_pending_length(m.pending_length);
  out->set_pending_crc32c(m.pending_crc);
}

struct DataServer::Update {
  datasvc::ForwardUpdateRequest::Kind kind = datasvc::ForwardUpdateRequest::WRITE;
  uint32_t target = 0;  // the local target applying it
  ChunkId chunk;
  uint32_t offset = 0;
  uint32_t length = 0;  // write: bytes; truncate: new length
  uint32_t crc = 0;
  uint32_t chunk_size = kMaxChunkSize;
  std::string_view data;
  std::vector<WriteExtent> extents;  // a multi-range write: data holds their bytes in order
  uint64_t version = 0;  // 0 at the head until stored
};

namespace {

template <typename Req>
void ExtentsFromWire(const Req& req, std::vector<WriteExtent>* out) {
  out->reserve(req.extents_size());
  for (const datasvc::WriteExtent& e : req.extents()) out->push_back({e.offset(), e.length(), e.crc32c()});
}

}  // namespace

// ------------------------------------------------------------------ open --

Result<std::unique_ptr<DataServer>> DataServer::Open(const DataServerOptions& options) {
  const ClusterConfig& cfg = options.config;
  const DataServerConfig* dc = cfg.FindData(options.server_id);
  if (!dc) {
    return Status(Code::kNotFound, cfg.path + ": no [[data]] entry with id = " +
                                       std::to_string(options.server_id) +
                                       "; add one or pass an id that exists");
  }
  if (dc->targets.empty()) {
    return Status(Code::kInvalid, cfg.path + ": [[data]] id=" + std::to_string(dc->id) +
                                      " targets is empty; list at least one directory");
  }
  std::unique_ptr<DataServer> s(new DataServer(options));
  for (size_t i = 0; i < dc->targets.size(); i++) {
    std::string field = "[[data]] id=" + std::to_string(dc->id) + " targets[" + std::to_string(i) + "]";
    SLUICE_RETURN_IF_ERROR(CheckWritableDir(dc->targets[i], cfg.path, field));
    ChunkStoreOptions so = options.store;
    so.dir = dc->targets[i];
    so.target_id = dc->target_ids[i];
    auto st = ChunkStore::Open(so);
    if (!st.ok()) {
      return st.status().Prefix(cfg.path + ": " + field + " (" + dc->targets[i] + ", " +
                                T(so.target_id) + ")");
    }
    s->stores_[so.target_id] = std::move(st.value());
  }
  rpc::ClientOptions co;
  co.fabric.provider = cfg.provider;
  auto c = rpc::RpcClient::Create(co);
  if (!c.ok()) return c.status().Prefix("client endpoint for chain forwarding");
  s->peers_rpc_ = std::move(c.value());
  return s;
}

DataServer::~DataServer() { Stop(); }

void DataServer::Stop() {
  std::map<uint32_t, std::thread> threads;
  {
    std::lock_guard<std::mutex> l(resync_mu_);
    stopping_ = true;
    threads.swap(resync_threads_);
  }
  resync_cv_.notify_all();
  map_cv_.notify_all();
  for (auto& [id, t] : threads) {
    if (t.joinable()) t.join();
  }
}

ChunkStore* DataServer::Store(uint32_t target_id) {
  auto it = stores_.find(target_id);
  return it == stores_.end() ? nullptr : it->second.get();
}

std::vector<mgmt::TargetInfo> DataServer::TargetUsage() {
  std::vector<mgmt::TargetInfo> out;
  for (auto& [id, store] : stores_) {
    mgmt::TargetInfo t;
    t.set_id(id);
    t.set_server_id(options_.server_id);
    t.set_path(store->options().dir);
    uint64_t used = 0;
    for (auto& u : store->SpaceUsage()) used += u.used_slots * u.slot_bytes;
    struct statvfs vfs;
    if (statvfs(store->options().dir.c_str(), &vfs) == 0) {
      t.set_capacity_bytes(uint64_t{vfs.f_blocks} * vfs.f_frsize);
    }
    t.set_used_bytes(used);
    out.push_back(std::move(t));
  }
  return out;
}

// ------------------------------------------------------------------- map --

uint64_t DataServer::map_version() const {
  std::lock_guard<std::mutex> l(map_mu_);
  return map_.version();
}

mgmt::ClusterMap DataServer::MapSnapshot() const {
  std::lock_guard<std::mutex> l(map_mu_);
  return map_;
}

void DataServer::OnMap(const mgmt::ClusterMap& map) {
  mgmt::ClusterMap old;
  {
    std::lock_guard<std::mutex> l(map_mu_);
    if (map.version() <= map_.version()) return;
    old = std::move(map_);
    map_ = map;
  }
  map_cv_.notify_all();
  RenewPeersRpc(old, map);
  WarmPeers(map);
  for (auto& [id, store] : stores_) {
    mgmt::TargetState before = StateOf(old, id), now = StateOf(map, id);
    if (before != now) {
      LOG_INFO(T(id) + " is " + mgmt::TargetState_Name(now) + " in map v" + std::to_string(map.version()) +
               (now == mgmt::SERVING ? ": serving reads" : ""));
    }
  }
  std::lock_guard<std::mutex> l(resync_mu_);
  if (stopping_) return;
  for (auto& [id, store] : stores_) {
    if (StateOf(map, id) != mgmt::SYNCING || resync_running_.count(id)) continue;
    auto old = resync_threads_.find(id);
    if (old != resync_threads_.end()) {
      old->second.join();  // finished (not in resync_running_)
      resync_threads_.erase(old);
    }
    resync_running_.insert(id);
    LOG_INFO(T(id) + " is SYNCING in map v" + std::to_string(map.version()) + ": starting resync");
    resync_threads_[id] = std::thread([this, id = id] { ResyncLoop(id); });
  }
}

std::shared_ptr<rpc::RpcClient> DataServer::PeersRpc() {
  std::lock_guard<std::mutex> l(peer_mu_);
  return peers_rpc_;
}

void DataServer::RenewPeersRpc(const mgmt::ClusterMap& old_map, const mgmt::ClusterMap& map) {
  std::string restarted;
  for (auto& s : map.servers()) {
    if (s.kind() != mgmt::DATA || s.id() == options_.server_id) continue;
    for (auto& o : old_map.servers()) {
      if (o.kind() == s.kind() && o.id() == s.id() && o.incarnation() != 0 && o.incarnation() != s.incarnation()) {
        restarted += (restarted.empty() ? "" : ", ") + std::to_string(s.id());
      }
    }
  }
  if (restarted.empty()) return;
  rpc::ClientOptions co;
  co.fabric.provider = options_.config.provider;
  auto c = rpc::RpcClient::Create(co);
  if (!c.ok()) {
    LOG_WARN("cannot renew the peer client after data server(s) " + restarted + " restarted: " + c.status().ToString());
    return;
  }
  std::lock_guard<std::mutex> l(peer_mu_);
  peers_rpc_ = std::move(c.value());
  resolved_.clear();
  warmed_.clear();
  LOG_INFO("data server(s) " + restarted + " restarted: new peer client endpoint");
}

void DataServer::WarmPeers(const mgmt::ClusterMap& map) {
  for (auto& s : map.servers()) {
    if (s.kind() != mgmt::DATA || s.id() == options_.server_id || s.state() != mgmt::ONLINE || s.targets_size() == 0) {
      continue;
    }
    {
      std::lock_guard<std::mutex> l(peer_mu_);
      if (!warmed_.insert({s.id(), s.incarnation()}).second) continue;
    }
    auto peer = PeerOfTarget(map, s.targets(0));
    if (!peer.ok()) continue;
    auto req = std::make_shared<datasvc::QueryChunksRequest>();
    req->set_target_id(s.targets(0));
    auto resp = std::make_shared<datasvc::QueryChunksResponse>();
    auto rpc = PeersRpc();
    rpc->CallAsync(*peer, std::string(kSvc) + "QueryChunks", *req, resp.get(), rpc::CallOptions{3000},
                   [req, resp, rpc](const rpc::CallResult&) {});
  }
}

bool DataServer::WaitMapVersion(uint64_t version, uint32_t timeout_ms) {
  std::unique_lock<std::mutex> l(map_mu_);
  return map_cv_.wait_for(l, std::chrono::milliseconds(timeout_ms),
                          [&] { return map_.version() >= version; });
}

Status DataServer::CheckMap(rpc::CallContext& ctx) {
  uint64_t v = map_version();
  ctx.set_map_version(v);
  if (ctx.map_version() != 0 && ctx.map_version() < v) {
    return Status(Code::kStaleMap, "request built against cluster map v" + std::to_string(ctx.map_version()) +
                                       "; data server " + std::to_string(options_.server_id) + " has v" +
                                       std::to_string(v) + ": refresh the map and retry");
  }
  return Status::Ok();
}

Result<rpc::Peer> DataServer::PeerOfTarget(const mgmt::ClusterMap& map, uint32_t target_id) {
  const mgmt::TargetInfo* t = FindTarget(map, target_id);
  if (!t) return Status(Code::kStaleMap, T(target_id) + " is not in cluster map v" + std::to_string(map.version()));
  for (auto& s : map.servers()) {
    if (s.kind() != mgmt::DATA || s.id() != t->server_id()) continue;
    std::string key = s.host() + ":" + std::to_string(s.port());
    std::lock_guard<std::mutex> l(peer_mu_);
    auto it = resolved_.find(key);
    if (it != resolved_.end()) return it->second;
    auto p = peers_rpc_->Resolve(s.host(), static_cast<uint16_t>(s.port()));  // peer_mu_ held
    if (!p.ok()) return p.status().Prefix("resolve data server of " + T(target_id));
    resolved_[key] = *p;
    return *p;
  }
  return Status(Code::kStaleMap, "data server " + std::to_string(t->server_id()) + " of " + T(target_id) +
                                     " is not in cluster map v" + std::to_string(map.version()));
}

// ----------------------------------------------------------- chunk locks --

bool DataServer::LockChunk(uint32_t chain_id, const ChunkId& chunk, uint64_t deadline_ns) {
  auto key = std::make_tuple(chain_id, chunk.inode, chunk.index);
  std::unique_lock<std::mutex> l(lock_mu_);
  auto free = [&] { return !locked_.count(key); };
  if (deadline_ns == 0) {
    lock_cv_.wait(l, free);
  } else {
    const uint64_t now = NowNanos();
    auto until = std::chrono::steady_clock::now() + std::chrono::nanoseconds(deadline_ns > now ? deadline_ns - now : 0);
    if (!lock_cv_.wait_until(l, until, free)) return false;
  }
  locked_.insert(key);
  return true;
}

void DataServer::UnlockChunk(uint32_t chain_id, const ChunkId& chunk) {
  {
    std::lock_guard<std::mutex> l(lock_mu_);
    locked_.erase(std::make_tuple(chain_id, chunk.inode, chunk.index));
  }
  lock_cv_.notify_all();
}

// ----------------------------------------------------------- update path --

Result<UpdateResult> DataServer::StoreLocally(ChunkStore* store, Update& u, bool commit) {
  UpdateOptions uo{u.version, commit};
  for (int attempt = 0;; attempt++) {
    Result<UpdateResult> r = Status(Code::kInternal, "unreachable");
    if (u.kind == datasvc::ForwardUpdateRequest::WRITE) {
      WriteRequest w;
      w.chunk = u.chunk;
      w.offset = u.offset;
      w.data = std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(u.data.data()), u.data.size());
      w.crc = u.crc;
      w.chunk_size = u.chunk_size;
      w.update = uo;
      w.extents = u.extents;
      r = store->Write(w);
    } else if (u.kind == datasvc::ForwardUpdateRequest::TRUNCATE) {
      r = store->Truncate(u.chunk, u.length, uo, u.chunk_size);
    } else {
      return Status(Code::kUnsupported, "chain update kind REMOVE: remove chunks on every replica instead");
    }
    // At the head (version 0) a pending version left by an update that failed
    // half-way blocks the next one; the head serializes updates of a chunk, so
    // that pending version is abandoned: drop it and retry once.
    if (!r.ok() && r.status().code() == Code::kBusy && u.version == 0 && attempt == 0) {
      auto meta = store->Stat(u.chunk);
      if (meta.ok() && meta->pending_version != 0) {
        LOG_WARN(T(u.target) + " " + Name(u.chunk) + ": dropping abandoned pending version " +
                 std::to_string(meta->pending_version));
        Status d = store->DropPending(u.chunk, meta->pending_version);
        if (!d.ok()) return d;
        continue;
      }
    }
    return r;
  }
}

Status DataServer::Forward(const mgmt::ClusterMap& map, uint32_t chain_id, uint32_t to_target,
                           const Update& u, bool is_tail, ChunkMeta* meta_out) {
  auto peer = PeerOfTarget(map, to_target);
  if (!peer.ok()) return peer.status();
  datasvc::ForwardUpdateRequest req;
  req.set_target_id(to_target);
  req.set_chain_id(chain_id);
  req.set_chain_version(map.version());
  req.set_kind(u.kind);
  ToWire(u.chunk, req.mutable_chunk());
  req.set_offset(u.offset);
  req.set_length(u.length);
  req.set_crc32c(u.crc);
  req.set_chunk_size(u.chunk_size);
  req.set_version(u.version);
  req.set_is_tail(is_tail);
  for (const WriteExtent& e : u.extents) {
    datasvc::WriteExtent* x = req.add_extents();
    x->set_offset(e.offset);
    x->set_length(e.length);
    x->set_crc32c(e.crc);
  }
  datasvc::ForwardUpdateResponse resp;
  rpc::CallOptions co;
  co.timeout_ms = options_.forward_timeout_ms;
  co.map_version = map.version();
  co.send_payload = u.data.data();
  co.send_len = u.data.size();
  auto r = PeersRpc()->Call(*peer, std::string(kSvc) + "ForwardUpdate", req, &resp, co);
  if (!r.status.ok()) {
    return Status(r.status.code(), "forward " + Name(u.chunk) + " v" + std::to_string(u.version) + " of chain " +
                                       std::to_string(chain_id) + " to " + T(to_target) + " (" + peer->label +
                                       "): " + r.status.message());
  }
  if (meta_out) {
    meta_out->chunk = u.chunk;
    meta_out->version = resp.meta().version();
    meta_out->length = resp.meta().length();
    meta_out->crc = resp.meta().crc32c();
  }
  return Status::Ok();
}

Result<ChunkMeta> DataServer::ApplyInChain(const mgmt::ClusterMap& map, const mgmt::ChainInfo& chain,
                                           uint32_t my_target, Update& u) {
  ChunkStore* store = Store(my_target);
  std::vector<uint32_t> serving = Serving(map, chain);
  auto pos = std::find(serving.begin(), serving.end(), my_target);
  if (pos == serving.end()) {
    // A SYNCING member: take the update as committed; a gap (kInvalid) means
    // this chunk is still to be copied by resync.
    auto r = StoreLocally(store, u, true);
    if (!r.ok()) return r.status();
    return r->meta;
  }
  size_t idx = pos - serving.begin();
  bool last = idx + 1 == serving.size();
  auto r = StoreLocally(store, u, last);
  if (!r.ok()) return r.status();
  ChunkMeta meta = r->meta;
  // Already committed here, so on every member after this one too (each
  // commits only once its successor has): answer with this copy and forward
  // nothing. Forwarding the incoming bytes could hand a different update of
  // this version to a member that lacks it (a SYNCING one), splitting the
  // chain; the sender compares this answer with its own copy (below).
  if (r->already_applied) return meta;
  if (u.version == 0) u.version = last ? meta.version : meta.pending_version;
  if (!last) {
    ChunkMeta down;
    Status st = Forward(map, chain.id(), serving[idx + 1], u, idx + 2 == serving.size(), &down);
    if (!st.ok()) {
      Status d = store->DropPending(u.chunk, u.version);
      if (!d.ok()) LOG_WARN(T(my_target) + ": " + d.ToString());
      return st;
    }
    // The successor already had version v and it differs from ours: an
    // earlier update of v reached it, but its answer never came back here
    // (the forward timed out), so this replica dropped it and has now given
    // the number v to another update. Committing would split the chain; the
    // successor's copy wins (the lost update's outcome was unknown to its
    // writer, so either is right) and this update retries on top of it.
    // (A successor already past v — a chain view older than its — is the
    // same case: its copy wins.)
    if (down.version > u.version ||
        (down.version == u.version && (down.crc != meta.pending_crc || down.length != meta.pending_length))) {
      return AdoptSuccessorVersion(map, chain.id(), my_target, serving[idx + 1], u, down);
    }
    auto c = store->Commit(u.chunk, u.version);
    if (!c.ok()) return c.status().Prefix(T(my_target) + " commit " + Name(u.chunk) + " v" + std::to_string(u.version));
    meta = *c;
    if (down.version == meta.version && (down.crc != meta.crc || down.length != meta.length)) {
      // Invariant: a committed version has the same bytes on every replica.
      LOG_ERROR("chain " + std::to_string(chain.id()) + " diverged at " + Name(u.chunk) + " v" +
                std::to_string(meta.version) + ": " + T(my_target) + " crc " + std::to_string(meta.crc) + " vs " +
                T(serving[idx + 1]) + " crc " + std::to_string(down.crc));
      return Status(Code::kInternal, "chain " + std::to_string(chain.id()) + " replicas disagree on " +
                                         Name(u.chunk) + " v" + std::to_string(meta.version));
    }
  } else {
    // The commit point: copy to SYNCING members, best effort (resync covers
    // what they miss).
    for (uint32_t y : Syncing(map, chain)) {
      if (y == my_target) continue;
      Status st = Forward(map, chain.id(), y, u, true, nullptr);
      if (!st.ok()) LOG_DEBUG("syncing member missed an update (resync copies it): " + st.ToString());
    }
  }
  return meta;
}

Status DataServer::AdoptSuccessorVersion(const mgmt::ClusterMap& map, uint32_t chain_id, uint32_t my_target,
                                         uint32_t next, const Update& u, const ChunkMeta& down) {
  const std::string what = T(my_target) + " " + Name(u.chunk) + " v" + std::to_string(u.version) + " of chain " +
                           std::to_string(chain_id);
  Status d = Store(my_target)->DropPending(u.chunk, u.version);
  if (!d.ok()) return d.Prefix(what + ": drop the pending version");
  auto peer = PeerOfTarget(map, next);
  if (!peer.ok()) return peer.status().Prefix(what);
  datasvc::ChunkMeta m;
  ToWire(u.chunk, m.mutable_chunk());
  m.set_version(down.version);
  m.set_length(down.length);  // if the chunk changed since, the copy fails and the retry sorts it out
  const datasvc::ChunkMeta* one = &m;
  auto n = CopyChunks(my_target, *peer, next, std::span<const datasvc::ChunkMeta* const>(&one, 1), "adopt",
                      options_.forward_timeout_ms);
  if (!n.ok()) {
    // A race with the successor (the chunk changed or went): the retry sorts it out.
    Code code = n.status().code() == Code::kCorrupt || n.status().code() == Code::kNotFound ? Code::kBusy
                                                                                          : n.status().code();
    return Status(code, what + ": " + n.status().message());
  }
  LOG_WARN(what + ": " + T(next) + " already held this version from an update whose answer was lost; adopted "
           "its copy, the update retries on top of it");
  return Status(Code::kBusy, what + ": " + T(next) + " held this version from an earlier update (its answer was "
                                    "lost); adopted it, retry");
}

Result<ChunkMeta> DataServer::ApplyAtHead(rpc::CallContext& ctx, uint32_t chain_id, Update& u) {
  if (!Store(u.target)) {
    return Status(Code::kNotFound, T(u.target) + " is not on data server " + std::to_string(options_.server_id));
  }
  if (ctx.map_version() > map_version()) WaitMapVersion(ctx.map_version(), 2000);
  mgmt::ClusterMap map = MapSnapshot();
  const mgmt::ChainInfo* chain = FindChain(map, chain_id);
  if (!chain) {
    return Status(Code::kStaleMap, "chain " + std::to_string(chain_id) + " is not in cluster map v" +
                                       std::to_string(map.version()));
  }
  std::vector<uint32_t> serving = Serving(map, *chain);
  if (serving.empty() || serving[0] != u.target) {
    return Status(Code::kStaleMap, T(u.target) + " is not the head of chain " + std::to_string(chain_id) +
                                       " in cluster map v" + std::to_string(map.version()) +
                                       (serving.empty() ? " (no serving member)" : ""));
  }
  ctx.set_map_version(map.version());
  return ApplyLocked(ctx, map, *chain, u);
}

Result<ChunkMeta> DataServer::ApplyLocked(rpc::CallContext& ctx, const mgmt::ClusterMap& map,
                                          const mgmt::ChainInfo& chain, Update& u) {
  const uint32_t chain_id = static_cast<uint32_t>(chain.id());
  // In progress under this map from before the wait for the chunk, so that
  // a resync listing built against a newer map waits for it (WaitUpdatesBefore).
  BeginUpdate(map.version());
  const bool locked = LockChunk(chain_id, u.chunk, ctx.deadline_ns());
  // Not applied within 10% of the call's budget (at most 1 s) of its
  // deadline: the caller may give up (and retry, and write newer bytes) a
  // little before the server's deadline, which runs from when the request
  // arrived.
  const uint64_t budget_ns = uint64_t{ctx.header().deadline_ms()} * 1000000;
  std::optional<Result<ChunkMeta>> r;
  if (locked && !ctx.expired_within(std::min<uint64_t>(budget_ns / 10, 1000000000ull))) {
    r = ApplyInChain(map, chain, u.target, u);
  }
  if (locked) UnlockChunk(chain_id, u.chunk);
  EndUpdate(map.version());
  if (r) return std::move(*r);
  return Status(Code::kTimeout, T(u.target) + " " + Name(u.chunk) +
                                    (u.version ? " v" + std::to_string(u.version) : std::string()) +
                                    ": the call's deadline passed while it waited for the chunk; not applied");
}

// -------------------------------------------------------------- handlers --

Status DataServer::HandleBatchRead(rpc::CallContext& ctx, const datasvc::BatchReadRequest& req,
                                   datasvc::BatchReadResponse* resp) {
  SLUICE_RETURN_IF_ERROR(CheckMap(ctx));
  ChunkStore* store = Store(req.target_id());
  if (!store) {
    return Status(Code::kNotFound, T(req.target_id()) + " is not on data server " + std::to_string(options_.server_id));
  }
  mgmt::TargetState state = StateOf(MapSnapshot(), req.target_id());
  if (state != mgmt::SERVING) {
    return Status(Code::kUnavailable, T(req.target_id()) + " is " + mgmt::TargetState_Name(state) +
                                          ", not serving reads: read another replica");
  }
  if (req.ranges_size() > 65536) return Status(Code::kTooBig, "batch read of more than 65536 ranges");
  std::vector<ReadRequest> reads;
  reads.reserve(req.ranges_size());
  uint64_t total = 0, requested = 0;
  for (auto& r : req.ranges()) {
    if (r.length() > kMaxChunkSize || r.bulk_offset() > (uint64_t{1} << 40)) {
      return Status(Code::kInvalid, "read range of " + Name(FromWire(r.chunk())) + " out of bounds");
    }
    reads.push_back(ReadRequest{FromWire(r.chunk()), r.offset(), r.length()});
    total = std::max<uint64_t>(total, r.bulk_offset() + r.length());
    requested += r.length();
  }
  if (total > ctx.response_capacity() || total > net::BufferPool::kMaxBuffer) {
    return Status(Code::kTooBig, "batch read of " + std::to_string(total) +
                                     " bytes does not fit the caller's buffer of " +
                                     std::to_string(ctx.response_capacity()) + " bytes");
  }
  char* out = nullptr;
  if (total > 0) {
    auto p = ctx.AllocResponsePayload(total);
    if (!p.ok()) return p.status();
    out = *p;
    // Never send back bytes of an earlier request that sat in the buffer.
    if (requested != total) std::memset(out, 0, total);
  }
  // Disk reads land straight in the response buffer (it goes out by RMA from
  // there) when the ranges' places in it do not overlap.
  if (out) {
    std::vector<std::pair<uint64_t, uint64_t>> places;  // (bulk offset, length)
    places.reserve(reads.size());
    for (auto& r : req.ranges()) places.emplace_back(r.bulk_offset(), r.length());
    std::sort(places.begin(), places.end());
    bool disjoint = true;
    for (size_t i = 1; i < places.size() && disjoint; i++) {
      disjoint = places[i - 1].first + places[i - 1].second <= places[i].first;
    }
    for (int i = 0; disjoint && i < req.ranges_size(); i++) {
      reads[i].dest = reinterpret_cast<uint8_t*>(out + req.ranges(i).bulk_offset());
      reads[i].dest_capacity = req.ranges(i).length();
    }
  }
  std::vector<ReadResult> results = store->BatchRead(reads);
  for (int i = 0; i < req.ranges_size(); i++) {
    const auto& range = req.ranges(i);
    ReadResult& rr = results[i];
    datasvc::ReadRangeResult* o = resp->add_results();
    o->set_code(static_cast<uint32_t>(rr.status.code()));
    uint32_t got = 0;
    if (rr.status.ok()) {
      got = std::min(rr.length, range.length());
      char* place = out + range.bulk_offset();
      if (got && reinterpret_cast<const char*>(rr.data) != place) std::memcpy(place, rr.data, got);
      o->set_length(got);
      o->set_crc32c(rr.crc);
      o->set_version(rr.version);
      o->set_chunk_length(rr.chunk_length);
      o->set_chunk_crc32c(rr.chunk_crc);
      o->set_pending_version(rr.pending_version);
    } else {
      o->set_message(rr.status.message());
    }
    if (out && got < range.length()) std::memset(out + range.bulk_offset() + got, 0, range.length() - got);
  }
  return Status::Ok();
}

Status DataServer::HandleForward(rpc::CallContext& ctx, const datasvc::ForwardUpdateRequest& req,
                                 datasvc::ForwardUpdateResponse* resp) {
  // Not refused when the sender's map is older: this member applies the
  // update by its own (newer) map. Refusing would silently lose updates sent
  // best-effort to a SYNCING member that has just learned it is SERVING.
  ctx.set_map_version(map_version());
  if (!Store(req.target_id())) {
    return Status(Code::kNotFound, T(req.target_id()) + " is not on data server " + std::to_string(options_.server_id));
  }
  if (ctx.map_version() > map_version()) WaitMapVersion(ctx.map_version(), 2000);
  mgmt::ClusterMap map = MapSnapshot();
  const mgmt::ChainInfo* chain = FindChain(map, static_cast<uint32_t>(req.chain_id()));
  if (!chain || std::find(chain->members().begin(), chain->members().end(), req.target_id()) ==
                    chain->members().end()) {
    return Status(Code::kStaleMap, T(req.target_id()) + " is not a member of chain " +
                                       std::to_string(req.chain_id()) + " in cluster map v" +
                                       std::to_string(map.version()));
  }
  if (req.version() == 0) return Status(Code::kInvalid, "forwarded update without a version");
  Update u;
  u.kind = req.kind();
  u.target = req.target_id();
  u.chunk = FromWire(req.chunk());
  u.offset = req.offset();
  u.length = req.length();
  u.crc = req.crc32c();
  u.chunk_size = req.chunk_size() ? req.chunk_size() : kMaxChunkSize;
  u.version = req.version();
  u.data = ctx.request_payload().empty() ? std::string_view(req.inline_data()) : ctx.request_payload();
  ExtentsFromWire(req, &u.extents);
  if (u.kind == datasvc::ForwardUpdateRequest::WRITE && u.data.size() != u.length) {
    return Status(Code::kProtocol, "forwarded write of " + Name(u.chunk) + " carries " +
                                       std::to_string(u.data.size()) + " bytes, header says " +
                                       std::to_string(u.length));
  }
  // One forwarded update of a chunk at a time here too: a sender whose
  // forward timed out retries the same version while the first attempt may
  // still be waiting on its own successor, and that attempt's cleanup (drop
  // the pending version) must not hit the retry's.
  auto r = ApplyLocked(ctx, map, *chain, u);
  if (!r.ok()) return r.status();
  if (TestLateForward(u.chunk)) {
    LOG_WARN("test hook: answering the forward of " + Name(u.chunk) + " v" + std::to_string(u.version) + " " +
             std::to_string(options_.test_late_forward_ms) + " ms late");
    std::this_thread::sleep_for(std::chrono::milliseconds(options_.test_late_forward_ms));
  }
  ToWire(*r, resp->mutable_meta());
  return Status::Ok();
}

bool DataServer::TestLateForward(const ChunkId& chunk) {
  if (!options_.test_late_forward_ms || chunk.inode != options_.test_late_forward_inode) return false;
  const uint64_t k = late_forward_seen_++;
  const uint32_t every = options_.test_late_forward_every;
  return every ? k % every == every - 1 : k == 0;
}

void DataServer::BeginUpdate(uint64_t map_version) {
  std::lock_guard<std::mutex> l(inflight_mu_);
  inflight_.insert(map_version);
}

void DataServer::EndUpdate(uint64_t map_version) {
  {
    std::lock_guard<std::mutex> l(inflight_mu_);
    inflight_.erase(inflight_.find(map_version));
  }
  inflight_cv_.notify_all();
}

Status DataServer::WaitUpdatesBefore(uint64_t version, uint32_t timeout_ms) {
  if (map_version() < version) WaitMapVersion(version, timeout_ms);
  if (map_version() < version) {
    return Status(Code::kStaleMap, "data server " + std::to_string(options_.server_id) + " has not seen map v" +
                                       std::to_string(version) + " yet; retry");
  }
  std::unique_lock<std::mutex> l(inflight_mu_);
  bool done = inflight_cv_.wait_for(l, std::chrono::milliseconds(timeout_ms), [&] {
    return inflight_.empty() || *inflight_.begin() >= version;
  });
  if (!done) return Status(Code::kBusy, "updates begun under a map older than v" + std::to_string(version) +
                                            " are still in progress; retry");
  return Status::Ok();
}

void DataServer::RegisterHandlers(rpc::RpcServer* server) {
  using rpc::CallContext;
  namespace ds = datasvc;
  std::string svc = kSvc, chain_svc = kChainSvc;

  // Payloads move by RMA straight between the peer and the engine's IO
  // arena (registered with io_uring as well): a written chunk goes to disk
  // from where it landed, a read one to the wire from where the disk put it.
  // With several targets the first one's arena serves all (a write to another
  // target then runs as unregistered IO, which is only slower).
  if (!stores_.empty()) {
    ChunkStore* store = stores_.begin()->second.get();
    const iovec& arena = store->buffer_arena();
    Status st = arena.iov_len ? server->RegisterMemory(arena.iov_base, arena.iov_len)
                              : Status(Code::kUnsupported, "no IO arena");
    if (st.ok()) {
      server->SetPayloadAllocator([store](size_t len) -> rpc::PayloadBuffer {
        IoBuffer b = store->AllocateBuffer(len);
        if (!b.registered()) return {};  // the arena is used up: the RPC pool serves
        auto owner = std::make_shared<IoBuffer>(std::move(b));
        return rpc::PayloadBuffer{reinterpret_cast<char*>(owner->data()), owner};
      });
    } else {
      LOG_WARN("payloads go through the RPC layer's buffers (one copy more): registering the IO arena of " +
               T(stores_.begin()->first) + " with the transport: " + st.ToString());
    }
  }

  server->Register<ds::BatchReadRequest, ds::BatchReadResponse>(
      svc + "BatchRead", [this](CallContext& ctx, const ds::BatchReadRequest& req, ds::BatchReadResponse* resp) {
        return HandleBatchRead(ctx, req, resp);
      });
  server->Register<ds::ForwardUpdateRequest, ds::ForwardUpdateResponse>(
      svc + "ForwardUpdate",
      [this](CallContext& ctx, const ds::ForwardUpdateRequest& req, ds::ForwardUpdateResponse* resp) {
        return HandleForward(ctx, req, resp);
      });

  auto write = [this](CallContext& ctx, uint32_t chain_id, const ds::WriteRequest& req,
                      ds::UpdateResponse* resp) -> Status {
    Update u;
    u.kind = ds::ForwardUpdateRequest::WRITE;
    u.target = req.target_id();
    u.chunk = FromWire(req.chunk());
    u.offset = req.offset();
    u.length = req.length();
    u.crc = req.crc32c();
    u.chunk_size = req.chunk_size() ? req.chunk_size() : kMaxChunkSize;
    u.data = ctx.request_payload().empty() ? std::string_view(req.inline_data()) : ctx.request_payload();
    ExtentsFromWire(req, &u.extents);
    if (u.data.size() != u.length) {
      return Status(Code::kProtocol, "write of " + Name(u.chunk) + " to " + T(u.target) + " carries " +
                                         std::to_string(u.data.size()) + " bytes, header says " +
                                         std::to_string(u.length));
    }
    auto r = ApplyAtHead(ctx, chain_id, u);
    if (!r.ok()) return r.status();
    ToWire(*r, resp->mutable_meta());
    return Status::Ok();
  };
  auto truncate = [this](CallContext& ctx, uint32_t chain_id, const ds::TruncateChunkRequest& req,
                         ds::UpdateResponse* resp) -> Status {
    Update u;
    u.kind = ds::ForwardUpdateRequest::TRUNCATE;
    u.target = req.target_id();
    u.chunk = FromWire(req.chunk());
    u.length = req.length();
    u.chunk_size = req.chunk_size() ? req.chunk_size() : kMaxChunkSize;
    auto r = ApplyAtHead(ctx, chain_id, u);
    if (!r.ok()) return r.status();
    ToWire(*r, resp->mutable_meta());
    return Status::Ok();
  };
  // DataService/Write and TruncateChunk carry no chain id: the chain is the
  // one the target heads, when that is unambiguous.
  auto chain_of_head = [this](uint32_t target) -> Result<uint32_t> {
    mgmt::ClusterMap map = MapSnapshot();
    std::vector<uint32_t> found;
    for (auto& c : map.chains()) {
      auto s = Serving(map, c);
      if (!s.empty() && s[0] == target) found.push_back(c.id());
    }
    if (found.size() == 1) return found[0];
    if (found.empty()) {
      return Status(Code::kStaleMap, T(target) + " heads no chain in cluster map v" + std::to_string(map.version()));
    }
    return Status(Code::kInvalid, T(target) + " heads " + std::to_string(found.size()) +
                                      " chains: send ChainService/Write with the chain id");
  };
  server->Register<ds::WriteRequest, ds::UpdateResponse>(
      svc + "Write", [this, write, chain_of_head](CallContext& ctx, const ds::WriteRequest& req,
                                                   ds::UpdateResponse* resp) -> Status {
        SLUICE_RETURN_IF_ERROR(CheckMap(ctx));
        auto c = chain_of_head(req.target_id());
        if (!c.ok()) return c.status();
        return write(ctx, *c, req, resp);
      });
  server->Register<ds::ChainWriteRequest, ds::UpdateResponse>(
      chain_svc + "Write",
      [this, write](CallContext& ctx, const ds::ChainWriteRequest& req, ds::UpdateResponse* resp) -> Status {
        SLUICE_RETURN_IF_ERROR(CheckMap(ctx));
        return write(ctx, req.chain_id(), req.write(), resp);
      });
  server->Register<ds::TruncateChunkRequest, ds::UpdateResponse>(
      svc + "TruncateChunk", [this, truncate, chain_of_head](CallContext& ctx, const ds::TruncateChunkRequest& req,
                                                              ds::UpdateResponse* resp) -> Status {
        SLUICE_RETURN_IF_ERROR(CheckMap(ctx));
        auto c = chain_of_head(req.target_id());
        if (!c.ok()) return c.status();
        return truncate(ctx, *c, req, resp);
      });
  server->Register<ds::ChainTruncateRequest, ds::UpdateResponse>(
      chain_svc + "Truncate",
      [this, truncate](CallContext& ctx, const ds::ChainTruncateRequest& req, ds::UpdateResponse* resp) -> Status {
        SLUICE_RETURN_IF_ERROR(CheckMap(ctx));
        return truncate(ctx, req.chain_id(), req.truncate(), resp);
      });

  auto store_of = [this](uint32_t target) -> Result<ChunkStore*> {
    ChunkStore* s = Store(target);
    if (!s) return Status(Code::kNotFound, T(target) + " is not on data server " + std::to_string(options_.server_id));
    return s;
  };
  server->Register<ds::RemoveChunksRequest, ds::RemoveChunksResponse>(
      svc + "RemoveChunks",
      [this, store_of](CallContext& ctx, const ds::RemoveChunksRequest& req, ds::RemoveChunksResponse* resp) -> Status {
        SLUICE_RETURN_IF_ERROR(CheckMap(ctx));
        SLUICE_ASSIGN_OR_RETURN(ChunkStore * s, store_of(req.target_id()));
        Result<uint64_t> n = uint64_t{0};
        if (req.indexes_size() == 0) {
          n = s->RemoveFile(req.inode());
        } else {
          std::vector<ChunkId> ids;
          for (uint64_t i : req.indexes()) ids.push_back(ChunkId{req.inode(), i});
          n = s->Remove(ids);
        }
        if (!n.ok()) return n.status();
        resp->set_removed(*n);
        return Status::Ok();
      });
  // Removing a file that has nothing on this target (an empty file; chunks
  // live on a few of the chains) is answered as it arrives, on the progress
  // thread; anything with chunks to remove goes to a worker as above.
  server->RegisterInline<ds::RemoveChunksRequest, ds::RemoveChunksResponse>(
      svc + "RemoveChunks",
      [this, store_of](CallContext& ctx, const ds::RemoveChunksRequest& req, ds::RemoveChunksResponse* resp) -> Status {
        if (req.indexes_size() != 0) return ctx.Defer();
        SLUICE_RETURN_IF_ERROR(CheckMap(ctx));
        auto s = store_of(req.target_id());
        if (!s.ok()) return ctx.Defer();
        auto has = (*s)->HasFile(req.inode());
        if (!has.ok() || *has) return ctx.Defer();
        resp->set_removed(0);
        return Status::Ok();
      });
  server->Register<ds::QueryChunksRequest, ds::QueryChunksResponse>(
      svc + "QueryChunks",
      [this, store_of](CallContext& ctx, const ds::QueryChunksRequest& req, ds::QueryChunksResponse* resp) -> Status {
        SLUICE_RETURN_IF_ERROR(CheckMap(ctx));
        SLUICE_ASSIGN_OR_RETURN(ChunkStore * s, store_of(req.target_id()));
        if (req.chunks_size() > 0) {
          for (auto& c : req.chunks()) {
            auto m = s->Stat(FromWire(c));
            if (m.ok()) {
              ToWire(*m, resp->add_metas());
            } else if (m.status().code() != Code::kNotFound) {
              return m.status();
            }
          }
          return Status::Ok();
        }
        auto all = s->ListFile(req.inode());
        if (!all.ok()) return all.status();
        for (auto& m : *all) ToWire(m, resp->add_metas());
        return Status::Ok();
      });
  server->Register<ds::ListChunksRequest, ds::ListChunksResponse>(
      svc + "ListChunks",
      [this, store_of](CallContext& ctx, const ds::ListChunksRequest& req, ds::ListChunksResponse* resp) -> Status {
        SLUICE_RETURN_IF_ERROR(CheckMap(ctx));
        SLUICE_ASSIGN_OR_RETURN(ChunkStore * s, store_of(req.target_id()));
        // A resync listing: nothing begun under an older map may still be in progress.
        if (ctx.map_version() != 0 && !req.has_after()) {
          SLUICE_RETURN_IF_ERROR(WaitUpdatesBefore(ctx.map_version(), 5000));
        }
        size_t limit = std::clamp<uint32_t>(req.limit() ? req.limit() : 1024, 1, 4096);
        ChunkId after;
        if (req.has_after()) after = FromWire(req.after());
        auto list = s->ListChunks(req.has_after() ? &after : nullptr, limit);
        if (!list.ok()) return list.status();
        for (auto& m : *list) ToWire(m, resp->add_metas());
        resp->set_done(list->size() < limit);
        return Status::Ok();
      });
  server->Register<ds::ScrubRequest, ds::ScrubResponse>(
      svc + "Scrub", [this, store_of](CallContext& ctx, const ds::ScrubRequest& req, ds::ScrubResponse* resp) -> Status {
        SLUICE_RETURN_IF_ERROR(CheckMap(ctx));
        SLUICE_ASSIGN_OR_RETURN(ChunkStore * s, store_of(req.target_id()));
        auto rep = s->Scrub();
        if (!rep.ok()) return rep.status();
        resp->set_chunks_checked(rep->chunks_checked);
        resp->set_bytes_checked(rep->bytes_checked);
        for (auto& b : rep->bad) {
          auto* o = resp->add_bad();
          ToWire(b.chunk, o->mutable_chunk());
          o->set_version(b.version);
          o->set_message((b.pending ? "pending version: " : "") + b.status.ToString());
        }
        return Status::Ok();
      });
  server->Register<ds::CommitRequest, ds::CommitResponse>(
      svc + "Commit", [this, store_of](CallContext& ctx, const ds::CommitRequest& req, ds::CommitResponse* resp) -> Status {
        SLUICE_RETURN_IF_ERROR(CheckMap(ctx));
        SLUICE_ASSIGN_OR_RETURN(ChunkStore * s, store_of(req.target_id()));
        auto m = s->Commit(FromWire(req.chunk()), req.version());
        if (!m.ok()) return m.status();
        ToWire(*m, resp->mutable_meta());
        return Status::Ok();
      });
  server->Register<ds::InstallChunkRequest, ds::UpdateResponse>(
      svc + "InstallChunk",
      [this, store_of](CallContext& ctx, const ds::InstallChunkRequest& req, ds::UpdateResponse* resp) -> Status {
        SLUICE_RETURN_IF_ERROR(CheckMap(ctx));
        SLUICE_ASSIGN_OR_RETURN(ChunkStore * s, store_of(req.target_id()));
        std::string_view data =
            ctx.request_payload().empty() ? std::string_view(req.inline_data()) : ctx.request_payload();
        if (data.size() != req.length()) {
          return Status(Code::kProtocol, "install of " + Name(FromWire(req.chunk())) + " carries " +
                                             std::to_string(data.size()) + " bytes, header says " +
                                             std::to_string(req.length()));
        }
        auto r = s->Install(FromWire(req.chunk()), req.version(),
                            std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(data.data()), data.size()),
                            req.crc32c());
        if (!r.ok()) return r.status();
        ToWire(r->meta, resp->mutable_meta());
        resp->set_already_applied(r->already_applied);
        return Status::Ok();
      });
}

// ---------------------------------------------------------------- resync --

Result<uint64_t> DataServer::ResyncPass(uint32_t target_id, uint32_t peer_target, uint64_t* peer_version) {
  ChunkStore* store = Store(target_id);
  mgmt::ClusterMap map = MapSnapshot();
  SLUICE_ASSIGN_OR_RETURN(rpc::Peer peer, PeerOfTarget(map, peer_target));
  uint64_t copied = 0;
  bool have_after = false;
  datasvc::ChunkId after;
  for (;;) {
    {
      std::lock_guard<std::mutex> l(resync_mu_);
      if (stopping_) return Status(Code::kCancelled, "resync of " + T(target_id) + " stopped");
    }
    datasvc::ListChunksRequest lreq;
    lreq.set_target_id(peer_target);
    lreq.set_limit(512);
    if (have_after) *lreq.mutable_after() = after;
    datasvc::ListChunksResponse lresp;
    // Built against our map: the peer first lets updates that began under an
    // older map (not knowing this target) finish.
    auto lr = PeersRpc()->Call(peer, std::string(kSvc) + "ListChunks", lreq, &lresp,
                               rpc::CallOptions{10000, map.version()});
    if (!lr.status.ok()) return lr.status.Prefix("resync " + T(target_id) + ": list chunks of " + T(peer_target));
    if (!have_after) *peer_version = lr.map_version;
    // Which of these does the local target lack, or hold older?
    std::vector<const datasvc::ChunkMeta*> need;
    for (auto& m : lresp.metas()) {
      if (m.version() == 0) continue;
      auto local = store->Stat(FromWire(m.chunk()));
      if (local.ok() && local->version >= m.version()) continue;
      need.push_back(&m);
    }
    SLUICE_ASSIGN_OR_RETURN(uint64_t n, CopyChunks(target_id, peer, peer_target, need, "resync", 30000));
    copied += n;
    if (lresp.done() || lresp.metas_size() == 0) break;
    after = lresp.metas(lresp.metas_size() - 1).chunk();
    have_after = true;
  }
  return copied;
}

Result<uint64_t> DataServer::CopyChunks(uint32_t target_id, const rpc::Peer& peer, uint32_t peer_target,
                                        std::span<const datasvc::ChunkMeta* const> need, const std::string& why,
                                        uint32_t timeout_ms) {
  ChunkStore* store = Store(target_id);
  uint64_t copied = 0;
  std::vector<char> buf;
  // In batches of up to 32 MiB.
  for (size_t i = 0; i < need.size();) {
    datasvc::BatchReadRequest rreq;
    rreq.set_target_id(peer_target);
    uint64_t total = 0;
    size_t j = i;
    for (; j < need.size() && (j == i || total + need[j]->length() <= (32u << 20)); j++) {
      auto* r = rreq.add_ranges();
      *r->mutable_chunk() = need[j]->chunk();
      r->set_offset(0);
      r->set_length(std::max<uint32_t>(need[j]->length(), 1));
      r->set_bulk_offset(total);
      total += std::max<uint32_t>(need[j]->length(), 1);
    }
    buf.resize(total);
    datasvc::BatchReadResponse rresp;
    rpc::CallOptions co{timeout_ms};
    co.recv_buf = buf.data();
    co.recv_cap = buf.size();
    auto rr = PeersRpc()->Call(peer, std::string(kSvc) + "BatchRead", rreq, &rresp, co);
    if (!rr.status.ok()) return rr.status.Prefix(why + " " + T(target_id) + ": read from " + T(peer_target));
    if (rresp.results_size() != rreq.ranges_size()) {
      return Status(Code::kProtocol, why + ": " + T(peer_target) + " answered " +
                                         std::to_string(rresp.results_size()) + " of " +
                                         std::to_string(rreq.ranges_size()) + " ranges");
    }
    for (int k = 0; k < rresp.results_size(); k++) {
      const auto& res = rresp.results(k);
      const auto& range = rreq.ranges(k);
      ChunkId id = FromWire(range.chunk());
      if (res.code() == static_cast<uint32_t>(Code::kNotFound)) continue;  // removed meanwhile
      if (res.code() != 0) {
        return Status(static_cast<Code>(res.code()), why + " " + T(target_id) + ": read " + Name(id) +
                                                         " from " + T(peer_target) + ": " + res.message());
      }
      const char* p = buf.data() + range.bulk_offset();
      if (res.length() != res.chunk_length() || Crc32c(p, res.length()) != res.crc32c()) {
        return Status(Code::kCorrupt, why + " " + T(target_id) + ": " + Name(id) + " from " + T(peer_target) +
                                          " arrived incomplete or with a bad CRC32C");
      }
      auto ins = store->Install(id, res.version(),
                                std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(p), res.length()),
                                res.crc32c());
      if (!ins.ok()) {
        if (ins.status().code() == Code::kInvalid) continue;  // a newer version arrived by the chain
        return ins.status().Prefix(why + " " + T(target_id) + " install " + Name(id));
      }
      copied++;
    }
    i = j;
  }
  return copied;
}

void DataServer::ResyncLoop(uint32_t target_id) {
  uint64_t start = NowMillis();
  uint64_t total = 0;
  int passes = 0;
  int clean_passes = 0;
  auto pause = [&](uint32_t ms) {
    std::unique_lock<std::mutex> l(resync_mu_);
    resync_cv_.wait_for(l, std::chrono::milliseconds(ms), [&] { return stopping_; });
    return !stopping_;
  };
  for (;;) {
    {
      std::lock_guard<std::mutex> l(resync_mu_);
      if (stopping_) break;
    }
    mgmt::ClusterMap map = MapSnapshot();
    if (StateOf(map, target_id) != mgmt::SYNCING) break;
    std::set<uint32_t> peers;
    for (auto& c : map.chains()) {
      if (std::find(c.members().begin(), c.members().end(), target_id) == c.members().end()) continue;
      for (uint32_t m : Serving(map, c)) {
        if (m != target_id) peers.insert(m);
      }
    }
    if (peers.empty()) {
      LOG_WARN("resync " + T(target_id) + ": no serving chain peer in map v" + std::to_string(map.version()) +
               "; waiting");
      if (!pause(500)) break;
      continue;
    }
    uint64_t copied = 0;
    Status st;
    // A pass only proves the target complete if every peer already knew it
    // as a chain member (map version >= ours) when the pass began: before
    // that, a head may commit updates without forwarding them here.
    bool peers_current = true;
    for (uint32_t p : peers) {
      uint64_t peer_version = 0;
      auto r = ResyncPass(target_id, p, &peer_version);
      if (!r.ok()) {
        st = r.status();
        break;
      }
      copied += *r;
      if (peer_version < map.version()) peers_current = false;
    }
    passes++;
    if (!st.ok()) {
      LOG_WARN(st.ToString() + "; retrying");
      if (!pause(300)) break;
      continue;
    }
    total += copied;
    // Two clean passes in a row, both begun when every peer knew this target:
    // an update that a head began under an older map has finished by then.
    clean_passes = (copied == 0 && peers_current) ? clean_passes + 1 : 0;
    if (clean_passes < 2) {
      if (!peers_current && !pause(50)) break;  // let the peers' heartbeats bring the map
      continue;
    }
    Status rs = options_.report_synced ? options_.report_synced(target_id) : Status::Ok();
    if (!rs.ok()) {
      LOG_WARN("resync " + T(target_id) + ": cannot report synced to mgmtd: " + rs.ToString());
      if (!pause(300)) break;
      continue;
    }
    LOG_INFO("resync " + T(target_id) + " done: copied " + std::to_string(total) + " chunks from " +
             std::to_string(peers.size()) + " peer(s) in " + std::to_string(passes) + " passes, " +
             std::to_string(NowMillis() - start) + " ms; reported synced");
    // Wait for the map to show it (or another state), then stop.
    uint64_t v = map.version();
    std::unique_lock<std::mutex> l(map_mu_);
    map_cv_.wait_for(l, std::chrono::milliseconds(5000), [&] { return map_.version() > v || stopping_; });
    if (StateOf(map_, target_id) == mgmt::SYNCING && !stopping_) continue;
    break;
  }
  std::lock_guard<std::mutex> l(resync_mu_);
  resync_running_.erase(target_id);
}

}  // namespace sluice::data
