#include "common/data_client.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <thread>

#include "common/clock.h"
#include "common/crc32c.h"
#include "common/log.h"
#include "proto/data_chain.pb.h"

namespace sluice {
namespace {

const char kSvc[] = "sluice.datasvc.DataService/";
const char kChainSvc[] = "sluice.datasvc.ChainService/";
// Contiguous read destinations of at least this many bytes get an RPC of
// their own (written in place by RMA); smaller ranges are staged together.
constexpr uint64_t kDirectRunBytes = 64u << 10;

std::string Name(uint64_t inode, uint64_t index) {
  return "chunk " + std::to_string(inode) + ":" + std::to_string(index);
}
std::string T(uint32_t target) { return "target " + std::to_string(target); }

bool Retryable(Code c) {
  return c == Code::kUnavailable || c == Code::kStaleMap || c == Code::kTimeout || c == Code::kBusy;
}

const mgmt::ChainInfo* FindChain(const mgmt::ClusterMap& map, uint32_t id) {
  for (auto& c : map.chains()) {
    if (c.id() == id) return &c;
  }
  return nullptr;
}
mgmt::TargetState StateOf(const mgmt::ClusterMap& map, uint32_t id) {
  for (auto& t : map.targets()) {
    if (t.id() == id) return t.state();
  }
  return mgmt::TARGET_STATE_UNKNOWN;
}

// Backoff between retries: 20 ms doubling to 500 ms, bounded by the deadline.
void Backoff(int attempt, uint64_t deadline_ms) {
  uint64_t ms = std::min<uint64_t>(500, 20ull << std::min(attempt, 5));
  uint64_t now = NowMillis();
  if (now >= deadline_ms) return;
  std::this_thread::sleep_for(std::chrono::milliseconds(std::min(ms, deadline_ms - now)));
}

}  // namespace

Result<std::unique_ptr<DataClient>> DataClient::Create(const DataClientOptions& options) {
  std::unique_ptr<DataClient> c(new DataClient());
  c->options_ = options;
  rpc::ClientOptions co;
  co.fabric.provider = options.provider;
  co.credential = options.credential;
  auto r = rpc::RpcClient::Create(co);
  if (!r.ok()) return r.status();
  c->rpc_ = std::move(r.value());
  auto m = c->rpc_->Resolve(options.mgmtd_host, options.mgmtd_port);
  if (!m.ok()) return m.status().Prefix("resolve mgmtd");
  c->mgmtd_ = *m;
  c->map_ = std::make_shared<MapClient>(c->rpc_.get(), *m);
  return c;
}

DataClient::~DataClient() = default;

std::shared_ptr<rpc::RpcClient> DataClient::Rpc() {
  std::lock_guard<std::mutex> l(peer_mu_);
  return rpc_;
}
std::shared_ptr<MapClient> DataClient::Maps() {
  std::lock_guard<std::mutex> l(peer_mu_);
  return map_;
}
rpc::RpcClient* DataClient::rpc() { return Rpc().get(); }

Status DataClient::RegisterMemory(void* addr, size_t len) {
  std::lock_guard<std::mutex> l(peer_mu_);
  SLUICE_RETURN_IF_ERROR(rpc_->RegisterMemory(addr, len));
  regions_.emplace_back(addr, len);
  return Status::Ok();
}

Result<mgmt::ClusterMap> DataClient::FetchMap(bool refresh) {
  auto maps = Maps();
  auto m = refresh ? maps->Refresh() : maps->Get();
  if (!m.ok()) return m;
  std::string restarted;
  std::lock_guard<std::mutex> l(peer_mu_);
  for (auto& s : m->servers()) {
    if (s.kind() != mgmt::DATA) continue;
    uint64_t& seen = incarnations_[s.id()];
    if (seen != 0 && s.incarnation() != 0 && seen != s.incarnation()) {
      restarted += (restarted.empty() ? "" : ", ") + std::to_string(s.id());
    }
    if (s.incarnation() != 0) seen = s.incarnation();
  }
  if (!restarted.empty()) {
    rpc::ClientOptions co;
    co.fabric.provider = options_.provider;
    co.credential = options_.credential;
    auto c = rpc::RpcClient::Create(co);
    if (c.ok()) {
      std::shared_ptr<rpc::RpcClient> fresh = std::move(c.value());
      for (auto& [addr, len] : regions_) {
        Status st = fresh->RegisterMemory(addr, len);
        if (!st.ok()) LOG_WARN("re-register memory after a data server restart: " + st.ToString());
      }
      auto fresh_map = std::make_shared<MapClient>(fresh.get(), mgmtd_);
      retired_.push_back(std::move(rpc_));  // in-flight calls and the old MapClient still use it
      rpc_ = std::move(fresh);
      map_ = std::move(fresh_map);
      peers_.clear();
      LOG_INFO("data server(s) " + restarted + " restarted: new client endpoint");
    } else {
      LOG_WARN("cannot renew the client endpoint: " + c.status().ToString());
    }
  }
  return m;
}

Result<mgmt::ClusterMap> DataClient::Map() { return FetchMap(false); }
Result<mgmt::ClusterMap> DataClient::RefreshMap() { return FetchMap(true); }

Result<rpc::Peer> DataClient::PeerOfTarget(const mgmt::ClusterMap& map, uint32_t target_id) {
  uint32_t server = 0;
  bool found = false;
  for (auto& t : map.targets()) {
    if (t.id() == target_id) {
      server = t.server_id();
      found = true;
    }
  }
  if (!found) return Status(Code::kNotFound, T(target_id) + " is not in cluster map v" + std::to_string(map.version()));
  for (auto& s : map.servers()) {
    if (s.kind() != mgmt::DATA || s.id() != server) continue;
    std::string key = s.host() + ":" + std::to_string(s.port());
    std::lock_guard<std::mutex> l(peer_mu_);
    auto it = peers_.find(key);
    if (it != peers_.end()) return it->second;
    auto p = rpc_->Resolve(s.host(), static_cast<uint16_t>(s.port()));
    if (!p.ok()) return p.status().Prefix("resolve data server " + std::to_string(server));
    peers_[key] = *p;
    return *p;
  }
  return Status(Code::kNotFound, "data server " + std::to_string(server) + " of " + T(target_id) +
                                     " is not in cluster map v" + std::to_string(map.version()));
}

// ------------------------------------------------------------------ updates --

Result<ChunkVersion> DataClient::Update(uint32_t chain_id, const std::string& method,
                                        const google::protobuf::Message& req,
                                        const std::function<void(uint32_t)>& set_head, const void* payload,
                                        size_t len, const std::string& what) {
  uint64_t deadline = NowMillis() + options_.retry_budget_ms;
  Status last;
  for (int attempt = 0;; attempt++) {
    auto map = FetchMap(attempt != 0);
    if (!map.ok()) {
      last = map.status().Prefix("cluster map");
    } else {
      const mgmt::ChainInfo* chain = FindChain(*map, chain_id);
      if (!chain) {
        return Status(Code::kNotFound, what + ": chain " + std::to_string(chain_id) + " is not in cluster map v" +
                                           std::to_string(map->version()));
      }
      if (chain->members_size() == 0 || StateOf(*map, chain->members(0)) != mgmt::SERVING) {
        last = Status(Code::kUnavailable, what + ": chain " + std::to_string(chain_id) +
                                              " has no serving head in map v" + std::to_string(map->version()));
      } else {
        uint32_t head = chain->members(0);
        auto peer = PeerOfTarget(*map, head);
        if (!peer.ok()) {
          last = peer.status();
        } else {
          set_head(head);
          datasvc::UpdateResponse resp;
          rpc::CallOptions co;
          co.timeout_ms = options_.call_timeout_ms;
          co.map_version = map->version();
          co.send_payload = payload;
          co.send_len = len;
          auto r = Rpc()->Call(*peer, method, req, &resp, co);
          if (r.status.ok()) {
            return ChunkVersion{resp.meta().version(), resp.meta().length(), resp.meta().crc32c()};
          }
          last = Status(r.status.code(), what + " via head " + T(head) + " (" + peer->label +
                                             "): " + r.status.message());
          if (!Retryable(r.status.code())) return last;
        }
      }
    }
    if (NowMillis() >= deadline) return last.Prefix("gave up after " + std::to_string(attempt + 1) + " attempts");
    Backoff(attempt, deadline);
  }
}

Result<ChunkVersion> DataClient::Write(const ChunkWrite& w) {
  datasvc::ChainWriteRequest req;
  datasvc::WriteRequest* wr = req.mutable_write();
  wr->mutable_chunk()->set_inode(w.inode);
  wr->mutable_chunk()->set_index(w.index);
  wr->set_length(w.length);
  wr->set_chunk_size(w.chunk_size);
  std::string what;
  if (w.extents.empty()) {
    wr->set_offset(w.offset);
    wr->set_crc32c(Crc32c(w.data, w.length));
    what = "write " + Name(w.inode, w.index) + " [" + std::to_string(w.offset) + ", +" + std::to_string(w.length) +
           ") of chain " + std::to_string(w.chain_id);
  } else {
    uint64_t sum = 0;
    bool empty = false;
    for (const ChunkExtent& e : w.extents) {
      sum += e.length;
      empty |= e.length == 0;
    }
    if (empty || sum != w.length) {
      return Status(Code::kInvalid, "write " + Name(w.inode, w.index) + ": " + std::to_string(w.extents.size()) +
                                        " extents (empty, or not adding up to " + std::to_string(w.length) +
                                        " bytes)");
    }
    const char* p = static_cast<const char*>(w.data);
    for (const ChunkExtent& e : w.extents) {
      datasvc::WriteExtent* x = wr->add_extents();
      x->set_offset(e.offset);
      x->set_length(e.length);
      x->set_crc32c(Crc32c(p, e.length));
      p += e.length;
    }
    what = "write " + Name(w.inode, w.index) + " " + std::to_string(w.extents.size()) + " ranges [" +
           std::to_string(w.extents.front().offset) + ", " +
           std::to_string(uint64_t{w.extents.back().offset} + w.extents.back().length) + ") of chain " +
           std::to_string(w.chain_id);
  }
  req.set_chain_id(w.chain_id);
  return Update(w.chain_id, std::string(kChainSvc) + "Write", req,
                [&req](uint32_t head) { req.mutable_write()->set_target_id(head); }, w.data, w.length, what);
}

Result<ChunkVersion> DataClient::Truncate(uint32_t chain_id, uint64_t inode, uint64_t index, uint32_t length,
                                          uint32_t chunk_size) {
  datasvc::ChainTruncateRequest req;
  auto* t = req.mutable_truncate();
  t->mutable_chunk()->set_inode(inode);
  t->mutable_chunk()->set_index(index);
  t->set_length(length);
  t->set_chunk_size(chunk_size);
  req.set_chain_id(chain_id);
  return Update(chain_id, std::string(kChainSvc) + "Truncate", req,
                [&req](uint32_t head) { req.mutable_truncate()->set_target_id(head); }, nullptr, 0,
                "truncate " + Name(inode, index) + " to " + std::to_string(length) + " bytes");
}

Result<uint64_t> DataClient::RemoveChunks(uint32_t chain_id, uint64_t inode, const std::vector<uint64_t>& indexes) {
  return Remove({chain_id}, inode, indexes);
}

Result<uint64_t> DataClient::RemoveFile(const std::vector<uint32_t>& chains, uint64_t inode) {
  return Remove(chains, inode, {});
}

Result<uint64_t> DataClient::Remove(const std::vector<uint32_t>& chains, uint64_t inode,
                                    const std::vector<uint64_t>& indexes) {
  // Every member of every chain at once, against the cached map; when a
  // member answers kStaleMap or cannot be reached, the whole removal is sent
  // again once with a fresh map (removing twice is harmless).
  for (int attempt = 0;; attempt++) {
    auto map = FetchMap(attempt > 0);
    if (!map.ok()) return map.status();
    struct Call {
      uint32_t target = 0;
      bool head = false;
      datasvc::RemoveChunksRequest req;
      datasvc::RemoveChunksResponse resp;
      Status status;
    };
    std::vector<std::unique_ptr<Call>> calls;
    for (uint32_t chain_id : chains) {
      const mgmt::ChainInfo* chain = FindChain(*map, chain_id);
      if (!chain) return Status(Code::kNotFound, "chain " + std::to_string(chain_id) + " is not in the cluster map");
      for (int i = 0; i < chain->members_size(); i++) {
        auto c = std::make_unique<Call>();
        c->target = chain->members(i);
        c->head = i == 0;
        c->req.set_target_id(c->target);
        c->req.set_inode(inode);
        for (uint64_t x : indexes) c->req.add_indexes(x);
        calls.push_back(std::move(c));
      }
    }
    std::mutex mu;
    std::condition_variable cv;
    size_t left = calls.size();
    std::shared_ptr<rpc::RpcClient> rpc = Rpc();
    for (auto& cp : calls) {
      Call* c = cp.get();
      auto done = [&, c](const rpc::CallResult& r) {
        std::lock_guard<std::mutex> l(mu);
        c->status = r.status;
        if (--left == 0) cv.notify_all();
      };
      auto peer = PeerOfTarget(*map, c->target);
      if (!peer.ok()) {
        rpc::CallResult r;
        r.status = peer.status();
        done(r);
        continue;
      }
      rpc->CallAsync(*peer, std::string(kSvc) + "RemoveChunks", c->req, &c->resp,
                     rpc::CallOptions{options_.call_timeout_ms, map->version()}, done);
    }
    {
      std::unique_lock<std::mutex> l(mu);
      cv.wait(l, [&] { return left == 0; });
    }
    // A member that knows a newer map, or one that is gone (the fresh map
    // may have moved it out of its chain): once more against a fresh map.
    bool again = false;
    for (auto& c : calls) {
      Code k = c->status.code();
      again |= k == Code::kStaleMap || k == Code::kUnavailable || k == Code::kTimeout;
    }
    if (again && attempt == 0) continue;
    uint64_t removed = 0;
    for (auto& c : calls) {
      if (!c->status.ok()) {
        return c->status.Prefix("remove chunks of inode " + std::to_string(inode) + " on " + T(c->target));
      }
      if (c->head) removed += c->resp.removed();
    }
    return removed;
  }
}

// -------------------------------------------------------------------- reads --

// One BatchRead RPC: ops of one target, and where their bytes land.
struct DataClient::Batch {
  uint32_t target = 0;
  std::vector<size_t> ops;       // indexes into the caller's span
  datasvc::BatchReadRequest req;
  datasvc::BatchReadResponse resp;
  char* base = nullptr;          // caller memory (direct) or staging
  std::vector<char> staging;
  bool direct = false;
};

Status DataClient::BatchRead(std::span<ReadOp> ops, const std::function<void(size_t)>& on_done) {
  uint64_t deadline = NowMillis() + options_.retry_budget_ms;
  std::vector<size_t> pending;
  std::vector<std::vector<uint32_t>> tried(ops.size());
  for (size_t i = 0; i < ops.size(); i++) {
    ops[i].status = Status::Ok();
    ops[i].bytes = 0;
    if (ops[i].length == 0) {
      if (on_done) on_done(i);
      continue;
    }
    pending.push_back(i);
  }
  bool refresh = false;
  for (int round = 0; !pending.empty(); round++) {
    auto map = FetchMap(refresh);
    std::shared_ptr<rpc::RpcClient> rpc = Rpc();
    if (!map.ok()) {
      if (NowMillis() >= deadline) return map.status().Prefix("batch read: cluster map");
      Backoff(round, deadline);
      continue;
    }
    refresh = false;
    std::mutex mu;
    std::condition_variable cv;
    size_t outstanding = 0;
    std::vector<size_t> retry;
    std::vector<std::shared_ptr<Batch>> batches;
    // Choose a replica per op and group by target.
    std::map<uint32_t, std::vector<size_t>> by_target;
    for (size_t i : pending) {
      ReadOp& op = ops[i];
      if (op.target_id) {
        by_target[op.target_id].push_back(i);
        continue;
      }
      const mgmt::ChainInfo* chain = FindChain(*map, op.chain_id);
      std::vector<uint32_t> cands, fresh;
      if (chain) {
        for (uint32_t m : chain->members()) {
          if (StateOf(*map, m) != mgmt::SERVING) continue;
          cands.push_back(m);
          if (std::find(tried[i].begin(), tried[i].end(), m) == tried[i].end()) fresh.push_back(m);
        }
      }
      if (!chain) {
        op.status = Status(Code::kNotFound, "read " + Name(op.inode, op.index) + ": chain " +
                                                std::to_string(op.chain_id) + " is not in cluster map v" +
                                                std::to_string(map->version()));
        if (on_done) on_done(i);
        continue;
      }
      if (cands.empty()) {
        op.status = Status(Code::kUnavailable, "read " + Name(op.inode, op.index) + ": chain " +
                                                   std::to_string(op.chain_id) + " has no serving replica");
        retry.push_back(i);
        continue;
      }
      if (fresh.empty()) {  // every replica failed once: start over
        tried[i].clear();
        fresh = cands;
      }
      uint64_t h = (op.inode * 0x9E3779B97F4A7C15ull) ^ (op.index * 0xC2B2AE3D27D4EB4Full);
      by_target[fresh[(h >> 17) % fresh.size()]].push_back(i);
    }
    // Split per target into RPC-sized batches. A run of ranges whose
    // destinations are contiguous and large (a striped read: one chunk per
    // chain) is a batch of its own, so the server writes it straight into
    // the caller's memory; small scattered ranges share staged batches.
    for (auto& [target, list] : by_target) {
      std::sort(list.begin(), list.end(), [&](size_t x, size_t y) {
        return static_cast<char*>(ops[x].dest) < static_cast<char*>(ops[y].dest);
      });
      std::vector<size_t> small;
      for (size_t k = 0; k < list.size();) {
        size_t end = k + 1;
        uint64_t run = ops[list[k]].length;
        while (end < list.size() && end - k < options_.max_batch_ranges &&
               run + ops[list[end]].length <= options_.max_batch_bytes &&
               static_cast<char*>(ops[list[end - 1]].dest) + ops[list[end - 1]].length ==
                   static_cast<char*>(ops[list[end]].dest)) {
          run += ops[list[end]].length;
          end++;
        }
        if (run >= kDirectRunBytes) {
          auto b = std::make_shared<Batch>();
          b->target = target;
          b->ops.assign(list.begin() + static_cast<std::ptrdiff_t>(k), list.begin() + static_cast<std::ptrdiff_t>(end));
          batches.push_back(std::move(b));
        } else {
          small.insert(small.end(), list.begin() + static_cast<std::ptrdiff_t>(k),
                       list.begin() + static_cast<std::ptrdiff_t>(end));
        }
        k = end;
      }
      for (size_t k = 0; k < small.size();) {
        auto b = std::make_shared<Batch>();
        b->target = target;
        uint64_t bytes = 0;
        while (k < small.size() && b->ops.size() < options_.max_batch_ranges &&
               (b->ops.empty() || bytes + ops[small[k]].length <= options_.max_batch_bytes)) {
          b->ops.push_back(small[k]);
          bytes += ops[small[k]].length;
          k++;
        }
        batches.push_back(std::move(b));
      }
    }
    auto finish = [&](size_t i) {
      if (on_done) on_done(i);
    };
    for (auto& b : batches) {
      auto peer = PeerOfTarget(*map, b->target);
      if (!peer.ok()) {
        for (size_t i : b->ops) {
          ops[i].status = peer.status();
          if (ops[i].target_id) {
            finish(i);
          } else {
            retry.push_back(i);
          }
        }
        refresh = true;
        continue;
      }
      // Contiguous destinations land directly; otherwise stage.
      std::vector<size_t> order = b->ops;
      std::sort(order.begin(), order.end(),
                [&](size_t x, size_t y) { return ops[x].dest < ops[y].dest; });
      bool contiguous = true;
      for (size_t k = 1; k < order.size(); k++) {
        if (static_cast<char*>(ops[order[k - 1]].dest) + ops[order[k - 1]].length !=
            static_cast<char*>(ops[order[k]].dest)) {
          contiguous = false;
        }
      }
      uint64_t total = 0;
      b->req.set_target_id(b->target);
      if (contiguous) {
        b->direct = true;
        b->base = static_cast<char*>(ops[order[0]].dest);
      }
      for (size_t i : b->ops) {
        auto* r = b->req.add_ranges();
        r->mutable_chunk()->set_inode(ops[i].inode);
        r->mutable_chunk()->set_index(ops[i].index);
        r->set_offset(ops[i].offset);
        r->set_length(ops[i].length);
        if (b->direct) {
          r->set_bulk_offset(static_cast<char*>(ops[i].dest) - b->base);
        } else {
          r->set_bulk_offset(total);
        }
        total += ops[i].length;
      }
      if (!b->direct) {
        b->staging.resize(total);
        b->base = b->staging.data();
      }
      rpc::CallOptions co;
      co.timeout_ms = options_.call_timeout_ms;
      co.map_version = map->version();
      co.recv_buf = b->base;
      co.recv_cap = total;
      {
        std::lock_guard<std::mutex> l(mu);
        outstanding++;
      }
      std::string label = peer->label;
      rpc->CallAsync(*peer, std::string(kSvc) + "BatchRead", b->req, &b->resp, co,
                      [&, b, label](const rpc::CallResult& cr) {
        std::vector<size_t> again, done;
        bool stale = false;
        if (!cr.status.ok()) {
          for (size_t i : b->ops) {
            ops[i].status = Status(cr.status.code(), "read " + Name(ops[i].inode, ops[i].index) + " from " +
                                                         T(b->target) + " (" + label + "): " + cr.status.message());
            // A transport failure is retried even for a pinned target (a
            // restarted server is reached again once the failure was seen).
            if (Retryable(cr.status.code())) {
              again.push_back(i);
            } else {
              done.push_back(i);
            }
          }
          stale = true;
        } else if (b->resp.results_size() != static_cast<int>(b->ops.size())) {
          for (size_t i : b->ops) {
            ops[i].status = Status(Code::kProtocol, T(b->target) + " answered " +
                                                        std::to_string(b->resp.results_size()) + " of " +
                                                        std::to_string(b->ops.size()) + " read ranges");
            done.push_back(i);
          }
        } else {
          for (size_t k = 0; k < b->ops.size(); k++) {
            size_t i = b->ops[k];
            ReadOp& op = ops[i];
            const auto& res = b->resp.results(static_cast<int>(k));
            Code code = static_cast<Code>(res.code());
            if (code == Code::kOk && res.length() > op.length) {
              code = Code::kProtocol;
            }
            if (code == Code::kOk) {
              const char* src = b->base + b->req.ranges(static_cast<int>(k)).bulk_offset();
              if (!b->direct) std::memcpy(op.dest, src, res.length());
              if (Crc32c(op.dest, res.length()) != res.crc32c()) {
                code = Code::kCorrupt;
                op.status = Status(Code::kCorrupt, "end-to-end CRC32C mismatch reading " + Name(op.inode, op.index) +
                                                       " [" + std::to_string(op.offset) + ", +" +
                                                       std::to_string(res.length()) + ") from " + T(b->target));
                LOG_WARN(op.status.message());
              } else {
                op.status = Status::Ok();
                op.bytes = res.length();
                op.version = res.version();
                op.served_by = b->target;
                done.push_back(i);
                continue;
              }
            } else {
              op.status = Status(code, "read " + Name(op.inode, op.index) + " from " + T(b->target) + ": " +
                                           (res.message().empty() ? std::string(CodeName(code)) : res.message()));
            }
            // A replica failure other than "no such chunk" is worth another replica.
            bool failover = code != Code::kNotFound && code != Code::kInvalid && code != Code::kProtocol;
            if (!op.target_id && failover) {
              again.push_back(i);
            } else {
              done.push_back(i);
            }
          }
        }
        for (size_t i : done) finish(i);
        std::lock_guard<std::mutex> l(mu);
        for (size_t i : again) {
          tried[i].push_back(b->target);
          retry.push_back(i);
        }
        if (stale) refresh = true;
        if (--outstanding == 0) cv.notify_all();
      });
    }
    {
      std::unique_lock<std::mutex> l(mu);
      cv.wait(l, [&] { return outstanding == 0; });
    }
    if (retry.empty()) break;
    if (NowMillis() >= deadline) {
      for (size_t i : retry) finish(i);  // each carries its last error
      break;
    }
    refresh = true;
    std::sort(retry.begin(), retry.end());
    pending = std::move(retry);
    // A failover to a fresh replica goes at once; a second round of every
    // replica waits for the map to change.
    bool any_fresh = false;
    for (size_t i : pending) {
      if (!tried[i].empty() && tried[i].size() < 3) any_fresh = true;
    }
    if (!any_fresh || round > 2) Backoff(round, deadline);
  }
  return Status::Ok();
}

// ----------------------------------------------------------- metadata, scrub --

Result<std::vector<datasvc::ChunkMeta>> DataClient::QueryChunks(uint32_t target_id, uint64_t inode,
                                                                const std::vector<uint64_t>& indexes) {
  auto map = FetchMap(false);
  if (!map.ok()) return map.status();
  auto peer = PeerOfTarget(*map, target_id);
  if (!peer.ok()) return peer.status();
  datasvc::QueryChunksRequest req;
  req.set_target_id(target_id);
  req.set_inode(inode);
  for (uint64_t i : indexes) {
    auto* c = req.add_chunks();
    c->set_inode(inode);
    c->set_index(i);
  }
  datasvc::QueryChunksResponse resp;
  auto r = Rpc()->Call(*peer, std::string(kSvc) + "QueryChunks", req, &resp, rpc::CallOptions{options_.call_timeout_ms});
  if (!r.status.ok()) return r.status.Prefix("query chunks of inode " + std::to_string(inode) + " on " + T(target_id));
  return std::vector<datasvc::ChunkMeta>(resp.metas().begin(), resp.metas().end());
}

Result<datasvc::ScrubResponse> DataClient::Scrub(uint32_t target_id) {
  auto map = FetchMap(false);
  if (!map.ok()) return map.status();
  auto peer = PeerOfTarget(*map, target_id);
  if (!peer.ok()) return peer.status();
  datasvc::ScrubRequest req;
  req.set_target_id(target_id);
  datasvc::ScrubResponse resp;
  auto r = Rpc()->Call(*peer, std::string(kSvc) + "Scrub", req, &resp, rpc::CallOptions{600000});
  if (!r.status.ok()) return r.status.Prefix("scrub " + T(target_id));
  return resp;
}

}  // namespace sluice
