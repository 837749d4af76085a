#include "client/sluice_client.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <chrono>
#include <deque>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <thread>
#include <utility>

#include "client/read_buffers.h"
#include "common/auth.h"
#include "common/config.h"
#include "common/data_client.h"
#include "common/log.h"
#include "common/meta/meta_client.h"

namespace sluice::client {

// ------------------------------------------------------------ WritePool --

// A fixed set of threads running chunk writes, so that one buffer's chunks
// go to their chains at once. Threads sleep on a condition variable.
class WritePool {
 public:
  explicit WritePool(size_t n) {
    for (size_t i = 0; i < std::max<size_t>(1, n); ++i) threads_.emplace_back([this] { Loop(); });
  }
  ~WritePool() {
    {
      std::lock_guard<std::mutex> l(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_) t.join();
  }
  void Submit(std::function<void()> fn) {
    {
      std::lock_guard<std::mutex> l(mu_);
      q_.push_back(std::move(fn));
    }
    cv_.notify_one();
  }

 private:
  void Loop() {
    for (;;) {
      std::function<void()> fn;
      {
        std::unique_lock<std::mutex> l(mu_);
        cv_.wait(l, [this] { return stop_ || !q_.empty(); });
        if (q_.empty()) return;
        fn = std::move(q_.front());
        q_.pop_front();
      }
      fn();
    }
  }
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> q_;
  bool stop_ = false;
  std::vector<std::thread> threads_;
};

// ----------------------------------------------------------- InodeState --

struct InodeState {
  std::mutex mu;
  std::condition_variable cv;
  InodeAttr attr;           // layout and identity
  uint64_t size = 0;        // the length as this client knows it
  uint64_t reported = 0;    // the last length meta confirmed
  bool dirty = false;       // written since the last report
  uint64_t gen = 0;         // bumps on every write or truncate (read-ahead validity)
  // Write-behind buffer shared by every File of the inode in this client:
  // extents not sent yet (offset -> bytes), never overlapping or touching —
  // a write that reaches one is merged into it, so writers interleaving
  // blocks (IOR-hard's ranks through one mount, the kernel's writeback out
  // of order) still send long runs.
  std::map<uint64_t, std::vector<char>> wb;
  size_t wb_bytes = 0;
  static constexpr size_t kMaxExtents = 64;
  // Adds n bytes at off to the buffer; they replace buffered bytes they cover.
  void BufferWrite(const char* p, size_t n, uint64_t off) {
    const uint64_t end = off + n;
    auto it = wb.upper_bound(off);
    if (it != wb.begin()) {
      auto prev = std::prev(it);
      if (prev->first + prev->second.size() >= off) it = prev;
    }
    uint64_t base = off;
    std::vector<char> merged;
    if (it != wb.end() && it->first <= off) {  // extends the extent it starts in or after
      base = it->first;
      merged = std::move(it->second);
      wb_bytes -= merged.size();
      it = wb.erase(it);
    }
    if (base + merged.size() < end) merged.resize(end - base);
    std::memcpy(merged.data() + (off - base), p, n);
    uint64_t merged_end = base + merged.size();
    // Extents the new bytes reach: keep only what lies past them.
    while (it != wb.end() && it->first <= merged_end) {
      uint64_t e_end = it->first + it->second.size();
      if (e_end > merged_end) {
        merged.insert(merged.end(), it->second.begin() + static_cast<std::ptrdiff_t>(merged_end - it->first),
                      it->second.end());
        merged_end = e_end;
      }
      wb_bytes -= it->second.size();
      it = wb.erase(it);
    }
    wb_bytes += merged.size();
    wb.emplace(base, std::move(merged));
  }
  size_t inflight = 0;      // bytes sent, not yet acknowledged
  // [offset, end) of every write taken out of the buffer and not finished
  // (queued on the pool, in flight, or written synchronously). Writes go out
  // on a pool of threads, so a write that overlaps one of these waits for
  // it: otherwise the older bytes could land last. Empty = all landed.
  std::multimap<uint64_t, uint64_t> inflight_ranges;
  // Nothing buffered and nothing being written.
  bool Idle() const { return wb.empty() && inflight_ranges.empty(); }
  // The failure of a write sent in the background, reported once (mu held).
  Status TakeError() { return std::exchange(error, Status::Ok()); }
  bool OverlapsInflight(uint64_t off, uint64_t end) const {
    for (const auto& [o, e] : inflight_ranges) {
      if (o >= end) break;
      if (e > off) return true;
    }
    return false;
  }
  Status error;             // first failed background write, returned once
};

namespace {

using meta::Mix64;

bool Retryable(Code c) {
  return c == Code::kUnavailable || c == Code::kTimeout || c == Code::kStaleMap || c == Code::kBusy;
}

}  // namespace

std::string ExpandHome(const std::string& path) {
  if (path.rfind("~/", 0) == 0) {
    const char* h = std::getenv("HOME");
    return std::string(h ? h : "/root") + path.substr(1);
  }
  return path;
}

std::string DefaultClusterConfig() {
  if (const char* h = std::getenv("SLUICE_HOME")) return std::string(h) + "/local/cluster.toml";
  return ExpandHome("~/.sluice/local/cluster.toml");
}

// --------------------------------------------------------------- Client --

Result<std::unique_ptr<Client>> Client::Connect(const ClientOptions& options) {
  std::unique_ptr<Client> c(new Client());
  c->options_ = options;
  std::string where = options.cluster.empty() ? DefaultClusterConfig() : ExpandHome(options.cluster);
  std::string provider = options.provider, host;
  uint16_t port = 0;
  ClusterConfig cluster_config;  // empty when `where` is host:port
  cluster_config.path = where;
  size_t colon = where.rfind(':');
  bool is_addr = colon != std::string::npos && where.find('/') == std::string::npos &&
                 where.find(".toml") == std::string::npos;
  if (is_addr) {
    host = where.substr(0, colon);
    int p = std::atoi(where.c_str() + colon + 1);
    if (p <= 0 || p > 65535) return Status(Code::kInvalid, "bad mgmtd address '" + where + "': want host:port");
    port = static_cast<uint16_t>(p);
  } else {
    auto cfg = LoadClusterConfig(where);
    if (!cfg.ok()) {
      return cfg.status().Prefix("cluster config " + where +
                                 " (start a local cluster with `sluice cluster start`, or pass --config)");
    }
    cluster_config = std::move(cfg.value());
    provider = cluster_config.provider;
    host = cluster_config.mgmtd.host;
    port = cluster_config.mgmtd.port;
  }
  rpc::Credential cred;
  cred.set_tenant(options.tenant);
  cred.set_secret(options.secret);
  if (options.secret.empty()) {
    // The tenant's secret file (named, from the environment, or the config's "default").
    auto c2 = auth::ClientCredential(cluster_config, options.tenant, options.secret_file);
    if (!c2.ok()) return c2.status().Prefix("credential for " + where);
    cred = *c2;
  }

  meta::MetaClientOptions mo;
  mo.provider = provider;
  mo.mgmtd_host = host;
  mo.mgmtd_port = port;
  mo.credential = cred;
  mo.unavailable_retry_ms = options.deadline_ms;
  mo.timeout_ms = std::min<uint32_t>(options.deadline_ms, 10000);
  auto m = meta::MetaClient::Open(mo);
  if (!m.ok()) return m.status().Prefix("connect to mgmtd " + host + ":" + std::to_string(port));
  c->meta_ = std::move(m.value());

  DataClientOptions dopt;
  dopt.provider = provider;
  dopt.mgmtd_host = host;
  dopt.mgmtd_port = port;
  dopt.credential = cred;
  dopt.retry_budget_ms = options.deadline_ms;
  dopt.call_timeout_ms = std::min<uint32_t>(options.deadline_ms, 10000);
  auto d = DataClient::Create(dopt);
  if (!d.ok()) return d.status().Prefix("data client");
  c->data_ = std::move(d.value());
  auto map = c->data_->Map();
  if (!map.ok()) return map.status().Prefix("cluster map from mgmtd " + host + ":" + std::to_string(port));
  if (map->chunk_size() >= meta::kMinChunkSize && map->chunk_size() <= meta::kMaxChunkSize) {
    c->map_chunk_size_ = static_cast<uint32_t>(map->chunk_size());
  }
  c->map_stripe_width_ = std::max<uint32_t>(1, map->stripe_width());
  for (auto& ch : map->chains()) c->map_chains_.push_back(ch.id());
  std::sort(c->map_chains_.begin(), c->map_chains_.end());
  if (c->map_chains_.empty()) return Status(Code::kUnavailable, "the cluster map has no chains (no data servers)");

  c->caller_ = meta::MakeCaller(options.uid == static_cast<uint32_t>(-1) ? geteuid() : options.uid,
                                options.gid == static_cast<uint32_t>(-1) ? getegid() : options.gid);
  c->pool_ = std::make_unique<WritePool>(options.io_threads);
  DataClient* data = c->data_.get();
  c->read_buffers_ = std::make_shared<ReadBuffers>(
      std::max<size_t>(options.read_ahead_bytes, 1), options.read_ahead_registered,
      [data](void* p, size_t n) { return data->RegisterMemory(p, n); });

  // A fresh cluster's root has no chain pool: give it the map's chains so
  // files spread over every chain (files without chains use the same
  // deterministic choice computed here, see ChainOf).
  auto root = c->meta_->GetAttr(meta::kRootIno);
  if (!root.ok()) return root.status().Prefix("stat of the root directory");
  if (root->layout().chain_ids_size() == 0 && c->caller_.uid() == 0) {
    FileLayout l;
    l.set_chunk_size(c->map_chunk_size_);
    l.set_stripe_width(std::min<uint32_t>(c->map_stripe_width_, static_cast<uint32_t>(c->map_chains_.size())));
    for (uint32_t id : c->map_chains_) l.add_chain_ids(id);
    Status st = c->meta_->SetDirLayout(c->caller_, meta::kRootIno, l);
    if (!st.ok()) LOG_WARN("could not set the root directory's layout: " + st.ToString());
  }
  return c;
}

Client::~Client() {
  {
    std::lock_guard<std::mutex> l(removals_mu_);
    removals_stop_ = true;  // the removers finish the queue first
  }
  removals_cv_.notify_all();
  for (std::thread& t : removers_) t.join();
  pool_.reset();
}

void Client::RemoveDataLater(const InodeAttr& attr) {
  constexpr size_t kMaxQueued = 4096;
  std::unique_lock<std::mutex> l(removals_mu_);
  if (removers_.empty()) {
    for (int i = 0; i < 2; i++) removers_.emplace_back([this] { RemoverLoop(); });
  }
  removals_cv_.wait(l, [&] { return removals_.size() < kMaxQueued; });
  removals_.push_back(attr);
  removals_cv_.notify_all();
}

void Client::RemoverLoop() {
  std::unique_lock<std::mutex> l(removals_mu_);
  for (;;) {
    removals_cv_.wait(l, [&] { return !removals_.empty() || removals_stop_; });
    if (removals_.empty()) return;  // stopping, and nothing left
    InodeAttr attr = std::move(removals_.front());
    removals_.pop_front();
    removals_running_++;
    removals_cv_.notify_all();  // room in the queue
    l.unlock();
    Status st = RemoveData(attr);
    if (!st.ok()) LOG_WARN("data of unlinked " + meta::InoString(attr.ino()) + " not removed: " + st.ToString());
    l.lock();
    removals_running_--;
    removals_cv_.notify_all();
  }
}

bool Client::WaitRemovals(int timeout_ms) {
  std::unique_lock<std::mutex> l(removals_mu_);
  auto idle = [&] { return removals_.empty() && removals_running_ == 0; };
  if (timeout_ms < 0) {
    removals_cv_.wait(l, idle);
    return true;
  }
  return removals_cv_.wait_for(l, std::chrono::milliseconds(timeout_ms), idle);
}

uint32_t Client::ChunkSizeOf(const InodeAttr& attr) const {
  uint32_t cs = attr.layout().chunk_size();
  return cs >= meta::kMinChunkSize && cs <= meta::kMaxChunkSize ? cs : map_chunk_size_;
}

uint32_t Client::ChainOf(const InodeAttr& attr, uint64_t i) const {
  const FileLayout& l = attr.layout();
  if (l.chain_ids_size() > 0) {
    uint32_t w = std::clamp<uint32_t>(l.stripe_width(), 1, static_cast<uint32_t>(l.chain_ids_size()));
    return l.chain_ids(static_cast<int>(i % w));
  }
  uint64_t n = map_chains_.size();
  uint64_t w = std::min<uint64_t>(map_stripe_width_, n);
  uint64_t start = Mix64(attr.ino()) % n;
  return map_chains_[(start + i % w) % n];
}

std::shared_ptr<InodeState> Client::StateOf(const InodeAttr& attr) {
  std::lock_guard<std::mutex> l(states_mu_);
  auto& w = states_[attr.ino()];
  auto st = w.lock();
  if (!st) {
    st = std::make_shared<InodeState>();
    st->attr = attr;
    st->size = attr.size();
    st->reported = attr.size();
    w = st;
    return st;
  }
  // Close-to-open: a newer length from meta wins unless we have unreported writes.
  std::lock_guard<std::mutex> g(st->mu);
  if (!st->dirty && st->Idle() && st->size != attr.size()) {
    st->size = attr.size();
    st->gen++;
  }
  return st;
}

void Client::DropStateIfIdle(uint64_t ino) {
  std::lock_guard<std::mutex> l(states_mu_);
  auto it = states_.find(ino);
  if (it != states_.end() && it->second.expired()) states_.erase(it);
}

namespace {

// The names of a path, without empty and "." components: "/a//b/./c" -> a, b, c.
std::vector<std::string_view> PathNames(std::string_view path) {
  std::vector<std::string_view> names;
  size_t pos = 0;
  while (pos < path.size()) {
    size_t end = path.find('/', pos);
    if (end == std::string_view::npos) end = path.size();
    std::string_view name = path.substr(pos, end - pos);
    if (!name.empty() && name != ".") names.push_back(name);
    pos = end + 1;
  }
  return names;
}

std::string JoinPath(const std::vector<std::string_view>& names, size_t n) {
  std::string out;
  for (size_t i = 0; i < n; i++) {
    out += '/';
    out += names[i];
  }
  return out.empty() ? "/" : out;
}

}  // namespace

void Client::ForgetDirs() {
  std::lock_guard<std::mutex> l(dirs_mu_);
  dirs_.clear();
}

Result<InodeAttr> Client::ResolveDir(const std::string& path, bool use_cache) {
  auto names = PathNames(path);
  const auto now = std::chrono::steady_clock::now();
  // The deepest ancestor (or the directory itself) still in the cache.
  size_t have = 0;
  InodeAttr cur;
  bool cached = false;
  if (use_cache && options_.dir_cache_ms > 0) {
    std::lock_guard<std::mutex> l(dirs_mu_);
    for (size_t n = names.size() + 1; n-- > 0;) {
      auto it = dirs_.find(JoinPath(names, n));
      if (it != dirs_.end() && it->second.expires > now) {
        have = n;
        cur = it->second.attr;
        cached = true;
        break;
      }
    }
  }
  if (cached) {
    stats_.dir_cache_hits++;
  } else {
    SLUICE_ASSIGN_OR_RETURN(cur, meta_->GetAttr(meta::kRootIno));
  }
  const auto expires = now + std::chrono::milliseconds(options_.dir_cache_ms);
  std::vector<std::pair<std::string, InodeAttr>> learned;
  if (!cached) learned.emplace_back("/", cur);
  for (size_t i = have; i < names.size(); i++) {
    auto next = meta_->Lookup(caller_, cur.ino(), names[i]);
    if (!next.ok()) {
      // A cached ancestor may have been removed or renamed by another
      // client since: walk once more from the root before giving up.
      if (cached && next.status().code() == Code::kNotFound) {
        ForgetDirs();
        return ResolveDir(path, false);
      }
      return next.status();
    }
    cur = std::move(next.value());
    if (cur.type() != meta::FILE_TYPE_DIRECTORY) {
      return Status(Code::kNotDir, JoinPath(names, i + 1) + " is not a directory");
    }
    learned.emplace_back(JoinPath(names, i + 1), cur);
  }
  if (options_.dir_cache_ms > 0 && !learned.empty()) {
    std::lock_guard<std::mutex> l(dirs_mu_);
    if (dirs_.size() > 100000) dirs_.clear();  // bounded: a walk over a huge tree starts over
    for (auto& [p, a] : learned) dirs_[p] = CachedDir{a, expires};
  }
  return cur;
}

Result<InodeAttr> Client::Resolve(std::string_view path) {
  auto names = PathNames(path);
  if (names.empty()) {
    auto root = ResolveDir("/");
    if (!root.ok()) return root.status().Prefix(std::string(path));
    return root;
  }
  std::string dir = JoinPath(names, names.size() - 1);
  auto d = ResolveDir(dir);
  if (!d.ok()) return d.status().Prefix(std::string(path));
  auto r = Lookup(caller_, d->ino(), names.back());
  if (!r.ok()) return r.status().Prefix(std::string(path));
  return r;
}

Result<std::pair<uint64_t, std::string>> Client::ResolveParent(std::string_view path) {
  auto names = PathNames(path);
  if (names.empty()) return Status(Code::kInvalid, "'" + std::string(path) + "' has no parent: want /dir/name");
  std::string dir = JoinPath(names, names.size() - 1);
  auto d = ResolveDir(dir);
  if (!d.ok()) return d.status().Prefix(std::string(path));
  return std::make_pair(d->ino(), std::string(names.back()));
}

Result<InodeAttr> Client::Stat(std::string_view path) {
  // A lookup answers with the inode's attributes, read as it answers.
  return Resolve(path);
}

Result<InodeAttr> Client::Mkdir(std::string_view path, uint32_t mode) {
  SLUICE_ASSIGN_OR_RETURN(auto pn, ResolveParent(path));
  auto r = MkdirAt(caller_, pn.first, pn.second, mode);
  if (!r.ok()) return r.status().Prefix("mkdir " + std::string(path));
  return r;
}

Status Client::Unlink(std::string_view path) {
  SLUICE_ASSIGN_OR_RETURN(auto pn, ResolveParent(path));
  return UnlinkAt(caller_, pn.first, pn.second, nullptr).Prefix("unlink " + std::string(path));
}

Status Client::Rmdir(std::string_view path) {
  SLUICE_ASSIGN_OR_RETURN(auto pn, ResolveParent(path));
  return RmdirAt(caller_, pn.first, pn.second).Prefix("rmdir " + std::string(path));
}

Status Client::Rename(std::string_view from, std::string_view to) {
  SLUICE_ASSIGN_OR_RETURN(auto a, ResolveParent(from));
  SLUICE_ASSIGN_OR_RETURN(auto b, ResolveParent(to));
  return RenameAt(caller_, a.first, a.second, b.first, b.second, 0, nullptr)
      .Prefix("rename " + std::string(from) + " -> " + std::string(to));
}

Result<std::vector<DirEntry>> Client::ListDir(std::string_view path) {
  SLUICE_ASSIGN_OR_RETURN(InodeAttr d, Resolve(path));
  auto all = meta_->ReadDirAll(caller_, d.ino());
  if (!all.ok()) return all.status().Prefix("readdir " + std::string(path));
  return all;
}

Result<std::unique_ptr<File>> Client::Open(std::string_view path, int flags, uint32_t mode) {
  InodeAttr attr;
  if (flags & O_CREAT) {
    SLUICE_ASSIGN_OR_RETURN(auto pn, ResolveParent(path));
    auto cr = Create(caller_, pn.first, pn.second, mode & 07777, (flags & O_EXCL) != 0);
    if (!cr.ok()) return cr.status().Prefix("create " + std::string(path));
    attr = cr->attr;
    if (cr->created) flags &= ~O_TRUNC;
  } else {
    SLUICE_ASSIGN_OR_RETURN(attr, Resolve(path));
  }
  if (attr.type() == meta::FILE_TYPE_DIRECTORY && (flags & O_ACCMODE) != O_RDONLY) {
    return Status(Code::kIsDir, std::string(path) + " is a directory");
  }
  auto f = OpenInode(attr, flags);
  if (!f.ok()) return f.status().Prefix("open " + std::string(path));
  return f;
}

void Client::MergeLocalSize(InodeAttr* a) {
  std::shared_ptr<InodeState> st;
  {
    std::lock_guard<std::mutex> l(states_mu_);
    auto it = states_.find(a->ino());
    if (it != states_.end()) st = it->second.lock();
  }
  if (st) {
    std::lock_guard<std::mutex> l(st->mu);
    if (st->dirty || st->size > a->size()) a->set_size(std::max(st->size, a->size()));
  }
}

Result<InodeAttr> Client::Lookup(const Caller& caller, uint64_t parent, std::string_view name) {
  SLUICE_ASSIGN_OR_RETURN(InodeAttr a, meta_->Lookup(caller, parent, name));
  MergeLocalSize(&a);
  return a;
}

std::vector<Result<InodeAttr>> Client::LookupMany(const Caller& caller, uint64_t parent,
                                                 const std::vector<std::string>& names) {
  std::vector<meta::LookupItem> items;
  items.reserve(names.size());
  for (const auto& n : names) items.push_back({parent, n});
  auto out = meta_->LookupMany(caller, items);
  for (auto& r : out) {
    if (r.ok()) MergeLocalSize(&r.value());
  }
  return out;
}

Result<InodeAttr> Client::GetAttr(uint64_t ino) {
  SLUICE_ASSIGN_OR_RETURN(InodeAttr a, meta_->GetAttr(ino));
  std::shared_ptr<InodeState> st;
  {
    std::lock_guard<std::mutex> l(states_mu_);
    auto it = states_.find(ino);
    if (it != states_.end()) st = it->second.lock();
  }
  if (st) {
    std::lock_guard<std::mutex> l(st->mu);
    // Another client may have grown the file; our unreported writes may be beyond it.
    if (!st->dirty && a.size() > st->size) st->size = a.size();
    if (st->dirty) a.set_size(std::max(st->size, a.size()));
  }
  return a;
}

std::vector<Client::TakenExtent> Client::TakeBuffer(InodeState* st, std::unique_lock<std::mutex>& l) {
  // Older in-flight writes of these bytes land first. The extents stay in
  // the buffer while waiting (newer writes still merge into them and every
  // reader and flusher still sees them), then leave it and become
  // registered ranges in one step: newer writes of the same bytes wait for
  // them from then on.
  st->cv.wait(l, [&] {
    for (const auto& [off, bytes] : st->wb) {
      if (st->OverlapsInflight(off, off + bytes.size())) return false;
    }
    return true;
  });
  std::map<uint64_t, std::vector<char>> extents;
  extents.swap(st->wb);
  st->wb_bytes = 0;
  std::vector<TakenExtent> out;
  out.reserve(extents.size());
  for (auto& [off, bytes] : extents) {
    auto range = st->inflight_ranges.emplace(off, off + bytes.size());
    out.push_back(TakenExtent{off, std::make_shared<std::vector<char>>(std::move(bytes)), range});
  }
  return out;
}

void Client::WriteBufferNow(const InodeAttr& attr, const std::shared_ptr<InodeState>& st,
                            std::unique_lock<std::mutex>& l) {
  if (st->wb.empty()) return;
  std::vector<TakenExtent> taken = TakeBuffer(st.get(), l);
  for (const TakenExtent& t : taken) st->inflight += t.bytes->size();
  l.unlock();
  SubmitExtents(attr, st, std::move(taken));
  l.lock();
}

Status Client::FlushInode(uint64_t ino) {
  std::shared_ptr<InodeState> st;
  {
    std::lock_guard<std::mutex> l(states_mu_);
    auto it = states_.find(ino);
    if (it != states_.end()) st = it->second.lock();
  }
  if (!st) return Status::Ok();
  std::unique_lock<std::mutex> l(st->mu);
  WriteBufferNow(st->attr, st, l);
  st->cv.wait(l, [&] { return st->inflight_ranges.empty(); });
  if (Status e = st->TakeError(); !e.ok()) return e;
  if (!st->dirty) return Status::Ok();
  uint64_t size = st->size;
  l.unlock();
  auto r = meta_->ReportLength(ino, size);
  if (!r.ok()) return r.status().code() == Code::kNotFound ? Status::Ok() : r.status();
  l.lock();
  if (st->size <= *r) {
    st->dirty = false;
    st->size = *r;
  }
  return Status::Ok();
}

Result<InodeAttr> Client::SetAttr(const meta::SetAttrRequest& req) {
  // Pending writes land (and grow the length, which stamps mtime) before
  // the new attributes, so that utimens after write sticks (cp -a, tar).
  SLUICE_RETURN_IF_ERROR(FlushInode(req.ino()));
  if (!(req.valid() & meta::kSetSize)) {
    ForgetDirs();  // a directory's mode or owner may change who may walk through it
    return meta_->SetAttr(req);
  }
  SLUICE_ASSIGN_OR_RETURN(InodeAttr cur, meta_->GetAttr(req.ino()));
  if (cur.type() == meta::FILE_TYPE_DIRECTORY) return Status(Code::kIsDir, "truncate of a directory");
  if (cur.type() != meta::FILE_TYPE_REGULAR) return Status(Code::kInvalid, "truncate of a non-regular file");
  std::shared_ptr<InodeState> st = StateOf(cur);
  std::unique_lock<std::mutex> l(st->mu);
  // Everything written before the truncate lands before it.
  WriteBufferNow(cur, st, l);
  st->cv.wait(l, [&] { return st->inflight_ranges.empty(); });
  // A write before the truncate failed: say so, change nothing.
  if (Status e = st->TakeError(); !e.ok()) return e;
  uint64_t old_size = std::max(st->size, cur.size());
  uint64_t new_size = req.size();
  if (new_size < old_size) SLUICE_RETURN_IF_ERROR(TruncateData(cur, old_size, new_size));
  // Report pending growth first so that meta's max never resurrects the old end.
  auto r = meta_->SetAttr(req);
  if (!r.ok()) return r.status();
  st->size = new_size;
  st->reported = new_size;
  st->dirty = false;
  st->gen++;
  return r;
}

Status Client::TruncateData(const InodeAttr& attr, uint64_t old_size, uint64_t new_size) {
  uint64_t cs = ChunkSizeOf(attr);
  uint64_t first_gone = (new_size + cs - 1) / cs;  // first chunk wholly past the end
  if (new_size % cs != 0) {
    uint64_t idx = new_size / cs;
    auto r = data_->Truncate(ChainOf(attr, idx), attr.ino(), idx, static_cast<uint32_t>(new_size % cs),
                             static_cast<uint32_t>(cs));
    if (!r.ok() && r.status().code() != Code::kNotFound) return r.status().Prefix("truncate chunk");
  }
  uint64_t end = (old_size + cs - 1) / cs;
  if (new_size == 0) return RemoveData(attr);
  std::map<uint32_t, std::vector<uint64_t>> by_chain;
  for (uint64_t i = first_gone; i < end; ++i) by_chain[ChainOf(attr, i)].push_back(i);
  for (auto& [chain, idx] : by_chain) {
    auto r = data_->RemoveChunks(chain, attr.ino(), idx);
    if (!r.ok() && r.status().code() != Code::kNotFound) return r.status().Prefix("remove chunks");
  }
  return Status::Ok();
}

Status Client::RemoveData(const InodeAttr& attr) {
  std::set<uint32_t> chains;
  uint64_t w = attr.layout().chain_ids_size() > 0 ? attr.layout().chain_ids_size() : map_stripe_width_;
  for (uint64_t i = 0; i < w; ++i) chains.insert(ChainOf(attr, i));
  // Every replica of every chain in one round trip.
  auto r = data_->RemoveFile(std::vector<uint32_t>(chains.begin(), chains.end()), attr.ino());
  if (!r.ok() && r.status().code() != Code::kNotFound) return r.status();
  return Status::Ok();
}

Result<meta::CreateResult> Client::Create(const Caller& caller, uint64_t parent, std::string_view name,
                                          uint32_t mode, bool exclusive) {
  return meta_->Create(caller, parent, name, mode, exclusive);
}

Result<InodeAttr> Client::MkdirAt(const Caller& caller, uint64_t parent, std::string_view name, uint32_t mode) {
  return meta_->Mkdir(caller, parent, name, mode);
}

Result<InodeAttr> Client::SymlinkAt(const Caller& caller, uint64_t parent, std::string_view name,
                                    std::string_view target) {
  return meta_->Symlink(caller, parent, name, target);
}

Result<std::string> Client::Readlink(uint64_t ino) { return meta_->Readlink(ino); }

Result<InodeAttr> Client::LinkAt(const Caller& caller, uint64_t ino, uint64_t new_parent,
                                 std::string_view new_name) {
  return meta_->Link(caller, ino, new_parent, new_name);
}

Status Client::UnlinkAt(const Caller& caller, uint64_t parent, std::string_view name, InodeAttr* orphan) {
  // The shard answers with the inode as the unlink left it (no lookup first;
  // it refuses directories with EISDIR itself).
  InodeAttr victim;
  SLUICE_RETURN_IF_ERROR(meta_->Unlink(caller, parent, name, &victim));
  if (victim.ino() == 0) {
    LOG_WARN("unlink of '" + std::string(name) + "' in " + meta::InoString(parent) +
             ": the meta server did not say which inode it removed (an older server?); its data is not removed");
    return Status::Ok();
  }
  if (victim.type() == meta::FILE_TYPE_REGULAR && victim.nlink() == 0) {
    if (orphan) {
      *orphan = victim;
      return Status::Ok();
    }
    RemoveDataLater(victim);
  }
  return Status::Ok();
}

Status Client::RmdirAt(const Caller& caller, uint64_t parent, std::string_view name) {
  ForgetDirs();
  return meta_->Rmdir(caller, parent, name);
}

Status Client::RenameAt(const Caller& caller, uint64_t old_parent, std::string_view old_name, uint64_t new_parent,
                        std::string_view new_name, uint32_t flags, InodeAttr* orphan) {
  ForgetDirs();
  std::optional<InodeAttr> replaced;
  if (!(flags & meta::kRenameExchange)) {
    auto v = meta_->Lookup(caller, new_parent, new_name);
    if (v.ok() && v->type() == meta::FILE_TYPE_REGULAR && v->nlink() <= 1) {
      auto src = meta_->Lookup(caller, old_parent, old_name);
      if (src.ok() && src->ino() != v->ino()) replaced = *v;
    }
  }
  SLUICE_RETURN_IF_ERROR(meta_->Rename(caller, old_parent, old_name, new_parent, new_name, flags));
  if (replaced) {
    if (orphan) {
      *orphan = *replaced;
      orphan->set_nlink(0);
    } else {
      RemoveDataLater(*replaced);
    }
  }
  return Status::Ok();
}

Result<std::vector<meta::DirEntry>> Client::ReadDirAll(const Caller& caller, uint64_t dir) {
  return meta_->ReadDirAll(caller, dir);
}

Result<meta::DirPage> Client::ReadDirAt(const Caller& caller, uint64_t dir, std::string_view cookie,
                                        uint32_t max_entries) {
  return meta_->ReadDir(caller, dir, cookie, max_entries);
}

Result<meta::StatFsResult> Client::StatFs() {
  // Space freed by this client's unlinks shows at once, unless removals keep
  // coming or the data servers do not answer: then df does not wait long.
  WaitRemovals(2000);
  return meta_->StatFs();
}

std::string FormatLayout(const FileLayout& l) {
  std::string out = "chunk_size=" + std::to_string(l.chunk_size()) +
                    " stripe_width=" + std::to_string(l.stripe_width());
  if (l.chain_ids_size() > 0) {
    out += " chains=";
    for (int i = 0; i < l.chain_ids_size(); i++) {
      out += (i ? "," : "") + std::to_string(l.chain_ids(i));
    }
  }
  return out;
}

Result<FileLayout> ParseLayout(std::string_view text, FileLayout base) {
  std::istringstream in{std::string(text)};
  std::string item;
  auto bad = [&](const std::string& why) {
    return Status(Code::kInvalid, "layout '" + std::string(text) + "': " + why +
                                      " (expected e.g. 'chunk_size=64KiB stripe_width=4 chains=1,2,3,4')");
  };
  bool any = false;
  while (in >> item) {
    size_t eq = item.find('=');
    if (eq == std::string::npos) return bad("'" + item + "' is not key=value");
    std::string key = item.substr(0, eq), value = item.substr(eq + 1);
    if (key == "chunk_size") {
      auto n = ParseSize(value);
      if (!n.ok() || *n > UINT32_MAX) return bad("chunk_size '" + value + "' is not a size");
      base.set_chunk_size(static_cast<uint32_t>(*n));
    } else if (key == "stripe_width") {
      char* end = nullptr;
      unsigned long w = std::strtoul(value.c_str(), &end, 10);
      if (value.empty() || *end || w == 0 || w > 4096) return bad("stripe_width '" + value + "' is not a count");
      base.set_stripe_width(static_cast<uint32_t>(w));
    } else if (key == "chains") {
      base.clear_chain_ids();
      std::istringstream ids(value);
      std::string id;
      while (std::getline(ids, id, ',')) {
        char* end = nullptr;
        unsigned long c = std::strtoul(id.c_str(), &end, 10);
        if (id.empty() || *end || c > UINT32_MAX) return bad("chain id '" + id + "' is not a number");
        base.add_chain_ids(static_cast<uint32_t>(c));
      }
    } else {
      return bad("unknown key '" + key + "'");
    }
    any = true;
  }
  if (!any) return bad("nothing to set");
  SLUICE_RETURN_IF_ERROR(meta::ValidateLayout(base));
  return base;
}

Result<FileLayout> Client::LayoutOf(uint64_t ino) {
  SLUICE_ASSIGN_OR_RETURN(InodeAttr a, meta_->GetAttr(ino));
  FileLayout l = a.layout();
  // What a file created now would get where the directory leaves it open.
  if (l.chunk_size() == 0) l.set_chunk_size(map_chunk_size_);
  if (l.stripe_width() == 0) l.set_stripe_width(map_stripe_width_);
  return l;
}

Status Client::SetDirLayoutAt(const Caller& caller, uint64_t dir, std::string_view text) {
  SLUICE_ASSIGN_OR_RETURN(FileLayout cur, LayoutOf(dir));
  SLUICE_ASSIGN_OR_RETURN(FileLayout l, ParseLayout(text, cur));
  for (uint32_t id : l.chain_ids()) {
    if (!std::binary_search(map_chains_.begin(), map_chains_.end(), id)) {
      return Status(Code::kInvalid, "layout: chain " + std::to_string(id) + " is not in the cluster map");
    }
  }
  if (l.chain_ids_size() > 0 && l.stripe_width() > static_cast<uint32_t>(l.chain_ids_size())) {
    return Status(Code::kInvalid, "layout: stripe_width " + std::to_string(l.stripe_width()) +
                                      " is more than the " + std::to_string(l.chain_ids_size()) + " chains given");
  }
  Status st = meta_->SetDirLayout(caller, dir, l);
  if (st.code() == Code::kNotDir) {
    return Status(Code::kNotDir, "a file's layout is fixed when it is created; set " +
                                     std::string(kLayoutXattr) + " on its directory");
  }
  return st;
}

Result<FileLayout> Client::Layout(std::string_view path) {
  SLUICE_ASSIGN_OR_RETURN(InodeAttr a, Resolve(path));
  auto l = LayoutOf(a.ino());
  if (!l.ok()) return l.status().Prefix("layout of " + std::string(path));
  return l;
}

Status Client::SetDirLayout(std::string_view path, std::string_view layout) {
  SLUICE_ASSIGN_OR_RETURN(InodeAttr a, Resolve(path));
  Status st = SetDirLayoutAt(caller_, a.ino(), layout);
  if (!st.ok()) return st.Prefix("set layout of " + std::string(path));
  ForgetDirs();
  return st;
}

Result<std::string> Client::GetXattr(const Caller& caller, uint64_t ino, std::string_view name) {
  if (name == kLayoutXattr) {
    SLUICE_ASSIGN_OR_RETURN(FileLayout l, LayoutOf(ino));
    return FormatLayout(l);
  }
  return meta_->GetXattr(caller, ino, name);
}
Status Client::SetXattr(const Caller& caller, uint64_t ino, std::string_view name, std::string_view value,
                        uint32_t flags) {
  if (name == kLayoutXattr) {
    Status st = SetDirLayoutAt(caller, ino, value);
    if (st.ok()) ForgetDirs();
    return st;
  }
  return meta_->SetXattr(caller, ino, name, value, flags);
}
Result<std::vector<std::string>> Client::ListXattr(const Caller& caller, uint64_t ino) {
  return meta_->ListXattr(caller, ino);
}
Status Client::RemoveXattr(const Caller& caller, uint64_t ino, std::string_view name) {
  if (name == kLayoutXattr) {
    return Status(Code::kNotPermitted, std::string(kLayoutXattr) + " cannot be removed; set another layout");
  }
  return meta_->RemoveXattr(caller, ino, name);
}

Result<std::unique_ptr<File>> Client::OpenInode(const InodeAttr& attr, int flags) {
  if (attr.type() == meta::FILE_TYPE_SYMLINK) return Status(Code::kLoop, "open of a symlink");
  std::shared_ptr<InodeState> st = StateOf(attr);
  std::unique_ptr<File> f(new File(this, attr, flags, st));
  if ((flags & O_TRUNC) && (flags & O_ACCMODE) != O_RDONLY && attr.type() == meta::FILE_TYPE_REGULAR) {
    SLUICE_RETURN_IF_ERROR(f->Truncate(0));
  }
  return f;
}

Status Client::RegisterBuffer(void* addr, size_t len) { return data_->RegisterMemory(addr, len); }

Result<size_t> Client::ReadChunks(const InodeAttr& attr, void* buf, size_t n, uint64_t offset, uint64_t size) {
  if (offset >= size) return size_t{0};
  n = static_cast<size_t>(std::min<uint64_t>(n, size - offset));
  uint64_t cs = ChunkSizeOf(attr);
  std::vector<ReadOp> ops;
  ops.reserve(n / cs + 2);
  for (uint64_t pos = offset; pos < offset + n;) {
    uint64_t idx = pos / cs, in = pos % cs;
    uint64_t len = std::min<uint64_t>(cs - in, offset + n - pos);
    ReadOp op;
    op.chain_id = ChainOf(attr, idx);
    op.inode = attr.ino();
    op.index = idx;
    op.offset = static_cast<uint32_t>(in);
    op.length = static_cast<uint32_t>(len);
    op.dest = static_cast<char*>(buf) + (pos - offset);
    ops.push_back(op);
    pos += len;
  }
  uint64_t deadline = options_.deadline_ms;
  auto t0 = std::chrono::steady_clock::now();
  std::vector<size_t> todo(ops.size());
  for (size_t i = 0; i < ops.size(); ++i) todo[i] = i;
  for (int attempt = 0;; ++attempt) {
    std::vector<ReadOp> batch;
    for (size_t i : todo) batch.push_back(ops[i]);
    Status bs = data_->BatchRead(batch);
    std::vector<size_t> again;
    Status last;
    if (!bs.ok()) {
      last = bs;
      again = todo;
    } else {
      for (size_t k = 0; k < batch.size(); ++k) {
        ReadOp& op = batch[k];
        char* d = static_cast<char*>(op.dest);
        if (op.status.ok()) {
          if (op.bytes < op.length) std::memset(d + op.bytes, 0, op.length - op.bytes);
        } else if (op.status.code() == Code::kNotFound) {
          std::memset(d, 0, op.length);  // a hole
        } else if (Retryable(op.status.code())) {
          again.push_back(todo[k]);
          last = op.status;
        } else {
          return op.status.Prefix("read of " + meta::InoString(attr.ino()) + " chunk " + std::to_string(op.index));
        }
      }
    }
    if (again.empty()) break;
    auto spent = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0);
    if (static_cast<uint64_t>(spent.count()) >= deadline) {
      return last.Prefix("read of " + meta::InoString(attr.ino()) + " gave up after " +
                         std::to_string(spent.count()) + " ms");
    }
    stats_.retries++;
    (void)data_->RefreshMap();
    std::this_thread::sleep_for(std::chrono::milliseconds(std::min(50 * (attempt + 1), 500)));
    todo = std::move(again);
  }
  stats_.chunk_reads += ops.size();
  stats_.bytes_read += n;
  return n;
}

Status Client::WriteChunks(const InodeAttr& attr, const char* buf, size_t n, uint64_t offset) {
  uint64_t cs = ChunkSizeOf(attr);
  std::mutex mu;
  std::condition_variable cv;
  size_t left = 0;
  Status first;
  for (uint64_t pos = offset; pos < offset + n;) {
    uint64_t idx = pos / cs, in = pos % cs;
    uint64_t len = std::min<uint64_t>(cs - in, offset + n - pos);
    ChunkWrite w;
    w.chain_id = ChainOf(attr, idx);
    w.inode = attr.ino();
    w.index = idx;
    w.offset = static_cast<uint32_t>(in);
    w.data = buf + (pos - offset);
    w.length = static_cast<uint32_t>(len);
    w.chunk_size = static_cast<uint32_t>(cs);
    {
      std::lock_guard<std::mutex> l(mu);
      ++left;
    }
    pool_->Submit([this, w, &mu, &cv, &left, &first] {
      auto r = data_->Write(w);
      std::lock_guard<std::mutex> l(mu);
      if (!r.ok() && first.ok()) {
        first = r.status().Prefix("write of " + meta::InoString(w.inode) + " chunk " + std::to_string(w.index));
      }
      if (--left == 0) cv.notify_all();
    });
    pos += len;
  }
  std::unique_lock<std::mutex> l(mu);
  cv.wait(l, [&] { return left == 0; });
  if (first.ok()) {
    stats_.bytes_written += n;
    stats_.chunk_writes += (n + cs - 1) / cs;
  }
  return first;
}

void Client::SubmitExtents(const InodeAttr& attr, const std::shared_ptr<InodeState>& st,
                           std::vector<TakenExtent> extents) {
  const uint64_t cs = ChunkSizeOf(attr);
  // What falls in each chunk: (extent, file offset, bytes), ascending.
  struct Piece {
    size_t extent;
    uint64_t pos;
    uint32_t len;
  };
  std::map<uint64_t, std::vector<Piece>> by_chunk;
  // The extents (their bytes stay alive until every write is done) and how
  // many chunk writes each still waits for.
  struct Sent {
    TakenExtent taken;
    size_t left = 0;
  };
  auto sent = std::make_shared<std::vector<Sent>>(extents.size());
  for (size_t i = 0; i < extents.size(); i++) {
    const uint64_t off = extents[i].off, end = off + extents[i].bytes->size();
    for (uint64_t pos = off; pos < end;) {
      uint64_t len = std::min<uint64_t>(cs - pos % cs, end - pos);
      by_chunk[pos / cs].push_back(Piece{i, pos, static_cast<uint32_t>(len)});
      (*sent)[i].left++;
      pos += len;
    }
    (*sent)[i].taken = std::move(extents[i]);
  }
  for (auto& [idx, pieces] : by_chunk) {
    ChunkWrite w;
    w.chain_id = ChainOf(attr, idx);
    w.inode = attr.ino();
    w.index = idx;
    w.chunk_size = static_cast<uint32_t>(cs);
    std::shared_ptr<std::vector<char>> joined;  // a multi-range write's bytes, in order
    auto bytes_of = [&](const Piece& p) {
      const TakenExtent& t = (*sent)[p.extent].taken;
      return t.bytes->data() + (p.pos - t.off);
    };
    if (pieces.size() == 1) {
      w.offset = static_cast<uint32_t>(pieces[0].pos % cs);
      w.data = bytes_of(pieces[0]);
      w.length = pieces[0].len;
    } else {
      joined = std::make_shared<std::vector<char>>();
      size_t total = 0;
      for (const Piece& p : pieces) total += p.len;
      joined->reserve(total);
      for (const Piece& p : pieces) {
        w.extents.push_back(ChunkExtent{static_cast<uint32_t>(p.pos % cs), p.len});
        joined->insert(joined->end(), bytes_of(p), bytes_of(p) + p.len);
      }
      w.data = joined->data();
      w.length = static_cast<uint32_t>(joined->size());
    }
    std::vector<size_t> owners;
    for (const Piece& p : pieces) owners.push_back(p.extent);
    pool_->Submit([this, w = std::move(w), st, sent, joined, owners = std::move(owners)] {
      auto r = data_->Write(w);
      if (r.ok()) {
        stats_.bytes_written += w.length;
        stats_.chunk_writes++;
      }
      std::lock_guard<std::mutex> g(st->mu);
      for (size_t e : owners) {
        if (--(*sent)[e].left == 0) st->inflight_ranges.erase((*sent)[e].taken.range);
      }
      st->inflight -= w.length;
      if (!r.ok() && st->error.ok()) {
        st->error = r.status().Prefix("write of " + meta::InoString(w.inode) + " chunk " + std::to_string(w.index));
      }
      st->cv.notify_all();
    });
  }
}

Status Client::BatchRead(std::span<BatchReadItem> items, const std::function<void(size_t)>& on_done) {
  // Bytes this client wrote and has not sent yet are read back too: such
  // files are flushed first (each once).
  std::set<File*> flushed;
  for (BatchReadItem& it : items) {
    if (!it.file || it.file->closed_ || flushed.count(it.file)) continue;
    bool busy;
    {
      std::lock_guard<std::mutex> l(it.file->st_->mu);
      busy = !it.file->st_->Idle();
    }
    if (busy) SLUICE_RETURN_IF_ERROR(it.file->FlushBuffer(true));
    flushed.insert(it.file);
  }
  std::vector<ReadOp> ops;
  std::vector<size_t> owner;
  std::vector<std::atomic<int>> left(items.size());
  std::vector<size_t> zero_items;
  for (size_t i = 0; i < items.size(); ++i) {
    BatchReadItem& it = items[i];
    it.status = Status::Ok();
    it.bytes = 0;
    if (!it.file || it.file->closed_) {
      it.status = Status(Code::kInvalid, "batch read item " + std::to_string(i) + ": no open file");
      zero_items.push_back(i);
      continue;
    }
    const InodeAttr& attr = it.file->attr_;
    uint64_t size = it.file->Size();
    uint64_t end = std::min<uint64_t>(size, it.offset + it.length);
    it.bytes = end > it.offset ? end - it.offset : 0;
    uint64_t cs = ChunkSizeOf(attr);
    int count = 0;
    for (uint64_t pos = it.offset; pos < end;) {
      uint64_t idx = pos / cs, in = pos % cs;
      uint64_t len = std::min<uint64_t>(cs - in, end - pos);
      ReadOp op;
      op.chain_id = ChainOf(attr, idx);
      op.inode = attr.ino();
      op.index = idx;
      op.offset = static_cast<uint32_t>(in);
      op.length = static_cast<uint32_t>(len);
      op.dest = static_cast<char*>(it.dest) + (pos - it.offset);
      ops.push_back(op);
      owner.push_back(i);
      ++count;
      pos += len;
    }
    left[i].store(count);
    if (count == 0) zero_items.push_back(i);
  }
  for (size_t i : zero_items) {
    if (on_done) on_done(i);
  }
  if (ops.empty()) return Status::Ok();
  std::mutex mu;
  Status bs = data_->BatchRead(ops, [&](size_t k) {
    ReadOp& op = ops[k];
    size_t i = owner[k];
    char* d = static_cast<char*>(op.dest);
    if (op.status.ok()) {
      if (op.bytes < op.length) std::memset(d + op.bytes, 0, op.length - op.bytes);
    } else if (op.status.code() == Code::kNotFound) {
      std::memset(d, 0, op.length);
    } else {
      std::lock_guard<std::mutex> l(mu);
      if (items[i].status.ok()) items[i].status = op.status;
    }
    if (left[i].fetch_sub(1) == 1 && on_done) on_done(i);
  });
  if (!bs.ok()) return bs;
  stats_.chunk_reads += ops.size();
  for (auto& it : items) {
    if (it.status.ok()) stats_.bytes_read += it.bytes;
  }
  return Status::Ok();
}

// ----------------------------------------------------------------- File --

struct File::Window {
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  Status status;
  uint64_t off = 0;
  size_t len = 0;  // requested
  size_t got = 0;  // read
  uint64_t gen = 0;
  ReadBuffers::Lease buf;
};

File::File(Client* c, InodeAttr attr, int flags, std::shared_ptr<InodeState> st)
    : client_(c), attr_(std::move(attr)), flags_(flags), st_(std::move(st)) {}

File::~File() {
  if (!closed_) {
    Status s = Close();
    if (!s.ok()) LOG_WARN("close of " + meta::InoString(attr_.ino()) + ": " + s.ToString());
  }
}

uint64_t File::Size() const {
  std::lock_guard<std::mutex> l(st_->mu);
  return st_->size;
}

Status File::FlushBuffer(bool wait) {
  std::unique_lock<std::mutex> l(st_->mu);
  if (!st_->wb.empty()) {
    // The buffer goes out as a whole (write_behind_bytes plus one write):
    // ranges that share a chunk become one multi-range chunk write.
    const size_t cap = client_->options_.write_inflight_bytes;
    std::vector<Client::TakenExtent> taken = client_->TakeBuffer(st_.get(), l);
    size_t n = 0;
    for (const Client::TakenExtent& t : taken) n += t.bytes->size();
    st_->cv.wait(l, [&] { return st_->inflight == 0 || st_->inflight + n <= cap; });
    st_->inflight += n;
    l.unlock();
    client_->SubmitExtents(attr_, st_, std::move(taken));
    l.lock();
  }
  if (wait) st_->cv.wait(l, [&] { return st_->inflight_ranges.empty(); });
  return st_->TakeError();
}

Result<size_t> File::Pwrite(const void* buf, size_t n, uint64_t offset) {
  if (closed_) return Status(Code::kInvalid, "write on a closed file");
  if ((flags_ & O_ACCMODE) == O_RDONLY) return Status(Code::kPermission, "write on a file opened read-only");
  if (attr_.type() != meta::FILE_TYPE_REGULAR) return Status(Code::kIsDir, "write on a non-regular file");
  if (n == 0) return size_t{0};
  const size_t cap = client_->options_.write_behind_bytes;
  {
    std::unique_lock<std::mutex> l(st_->mu);
    if (Status e = st_->TakeError(); !e.ok()) return e;
    st_->gen++;
    st_->dirty = true;
    st_->size = std::max(st_->size, offset + n);
    if (n < cap) {
      st_->BufferWrite(static_cast<const char*>(buf), n, offset);
      if (st_->wb_bytes < cap && st_->wb.size() <= InodeState::kMaxExtents) return n;
      l.unlock();
      SLUICE_RETURN_IF_ERROR(FlushBuffer(false));
      return n;
    }
  }
  // Too large to buffer: send what is buffered, then this, in parallel chunk
  // writes of its own.
  SLUICE_RETURN_IF_ERROR(FlushBuffer(false));
  // Earlier in-flight writes to the same bytes land first; newer ones wait
  // for this one.
  std::multimap<uint64_t, uint64_t>::iterator range;
  {
    std::unique_lock<std::mutex> l(st_->mu);
    st_->cv.wait(l, [&] { return !st_->OverlapsInflight(offset, offset + n); });
    range = st_->inflight_ranges.emplace(offset, offset + n);
  }
  Status ws = client_->WriteChunks(attr_, static_cast<const char*>(buf), n, offset);
  {
    std::lock_guard<std::mutex> l(st_->mu);
    st_->inflight_ranges.erase(range);
  }
  st_->cv.notify_all();
  SLUICE_RETURN_IF_ERROR(ws);
  return n;
}

Result<size_t> File::Write(const void* buf, size_t n) {
  std::lock_guard<std::mutex> l(mu_);
  if (flags_ & O_APPEND) pos_ = Size();
  auto r = Pwrite(buf, n, pos_);
  if (r.ok()) pos_ += *r;
  return r;
}

Result<size_t> File::Read(void* buf, size_t n) {
  std::lock_guard<std::mutex> l(mu_);
  auto r = ReadAhead(buf, n, pos_);
  if (r.ok()) pos_ += *r;
  return r;
}

Result<size_t> File::Pread(void* buf, size_t n, uint64_t offset) {
  std::lock_guard<std::mutex> l(mu_);
  return ReadAhead(buf, n, offset);
}

Result<size_t> File::PreadSpans(void* buf, size_t n, uint64_t offset, Spans* spans) {
  spans->pieces.clear();
  spans->hold.clear();
  std::lock_guard<std::mutex> l(mu_);
  auto r = ReadAhead(buf, n, offset, spans);
  if (r.ok() && spans->pieces.empty() && *r > 0) spans->pieces.emplace_back(static_cast<const char*>(buf), *r);
  return r;
}

// mu_ held. With `spans`, window bytes are referenced there, not copied.
Result<size_t> File::ReadAhead(void* buf, size_t n, uint64_t offset, Spans* spans) {
  if (closed_) return Status(Code::kInvalid, "read on a closed file");
  if ((flags_ & O_ACCMODE) == O_WRONLY) return Status(Code::kPermission, "read on a file opened write-only");
  if (attr_.type() == meta::FILE_TYPE_DIRECTORY) return Status(Code::kIsDir, "read of a directory");
  uint64_t gen;
  bool dirty;
  {
    std::lock_guard<std::mutex> l(st_->mu);
    gen = st_->gen;
    dirty = !st_->Idle();
  }
  if (dirty) SLUICE_RETURN_IF_ERROR(FlushBuffer(true));
  uint64_t size = Size();
  if (offset + n > size) {
    // Another client may have grown the file since it was opened.
    auto a = client_->meta_->GetAttr(attr_.ino());
    if (a.ok()) {
      std::lock_guard<std::mutex> l(st_->mu);
      if (a->size() > st_->size && !st_->dirty) st_->size = a->size();
      size = st_->size;
    }
  }
  if (offset >= size || n == 0) return size_t{0};
  n = static_cast<size_t>(std::min<uint64_t>(n, size - offset));
  size_t window = client_->options_.read_ahead_bytes;
  // Sequential: continuing the previous read, or skipping forward by no more
  // than this read's length (a strided reader still uses at least half of
  // what read-ahead fetches, as in IOR's interleaved shared-file reads; the
  // kernel's read-ahead serves a mount the same way).
  bool sequential = offset >= last_read_end_ && offset - last_read_end_ <= n;
  last_read_end_ = offset + n;
  auto covers = [&](const std::shared_ptr<Window>& w, uint64_t at) {
    return w && w->gen == gen && at >= w->off && at < w->off + w->len;
  };
  // A read that continues the previous one (or lands in a window already
  // fetched) is served from the windows; others go straight to the servers.
  bool in_windows = covers(cur_, offset);
  for (auto& w : ahead_) in_windows = in_windows || covers(w, offset);
  if (!in_windows && (!sequential || window <= n)) return client_->ReadChunks(attr_, buf, n, offset, size);
  const size_t depth = std::max<size_t>(1, client_->options_.read_ahead_windows);
  size_t done = 0;
  while (done < n) {
    uint64_t at = offset + done;
    if (!covers(cur_, at)) {
      // Drop windows before `at` (recycling their memory), or start afresh.
      while (!ahead_.empty() && !covers(ahead_.front(), at)) ahead_.pop_front();
      if (!ahead_.empty()) {
        cur_ = std::move(ahead_.front());
        ahead_.pop_front();
      } else {
        cur_ = StartWindow(at, size, gen);
      }
    }
    Window& w = *cur_;
    {
      std::unique_lock<std::mutex> l(w.mu);
      w.cv.wait(l, [&] { return w.done; });
    }
    if (!w.status.ok()) {
      Status s = w.status;
      cur_.reset();
      ahead_.clear();
      return s;
    }
    // Keep `depth` windows fetching ahead while this one is consumed.
    uint64_t next_off = ahead_.empty() ? w.off + w.len : ahead_.back()->off + ahead_.back()->len;
    while (ahead_.size() < depth && next_off < size) {
      ahead_.push_back(StartWindow(next_off, size, gen));
      next_off = ahead_.back()->off + ahead_.back()->len;
    }
    if (at >= w.off + w.got) break;  // the window came back short: end of the data
    size_t take = static_cast<size_t>(std::min<uint64_t>(n - done, w.off + w.got - at));
    if (spans) {
      spans->pieces.emplace_back(w.buf.data() + (at - w.off), take);
      spans->hold.push_back(cur_);
    } else {
      std::memcpy(static_cast<char*>(buf) + done, w.buf.data() + (at - w.off), take);
    }
    done += take;
  }
  client_->stats_.read_ahead_hits++;
  return done;
}

std::shared_ptr<File::Window> File::StartWindow(uint64_t offset, uint64_t size, uint64_t gen) {
  auto w = std::make_shared<Window>();
  w->off = offset;
  w->len = static_cast<size_t>(std::min<uint64_t>(client_->options_.read_ahead_bytes, size - offset));
  w->gen = gen;
  w->buf = client_->read_buffers_->Get(w->len);
  Client* c = client_;
  InodeAttr attr = attr_;
  c->pool_->Submit([c, attr, w, size] {
    auto r = c->ReadChunks(attr, w->buf.data(), w->len, w->off, size);
    std::lock_guard<std::mutex> l(w->mu);
    if (r.ok()) {
      w->got = *r;
    } else {
      w->status = r.status();
    }
    w->done = true;
    w->cv.notify_all();
  });
  return w;
}

Result<uint64_t> File::Seek(int64_t offset, int whence) {
  std::lock_guard<std::mutex> l(mu_);
  int64_t base = whence == SEEK_SET ? 0 : whence == SEEK_CUR ? static_cast<int64_t>(pos_)
                                                              : static_cast<int64_t>(Size());
  if (whence != SEEK_SET && whence != SEEK_CUR && whence != SEEK_END) return Status(Code::kInvalid, "bad whence");
  if (base + offset < 0) return Status(Code::kInvalid, "seek before the start of the file");
  pos_ = static_cast<uint64_t>(base + offset);
  return pos_;
}

Status File::Fsync() {
  if (closed_) return Status(Code::kInvalid, "fsync on a closed file");
  SLUICE_RETURN_IF_ERROR(FlushBuffer(true));
  uint64_t size;
  {
    std::lock_guard<std::mutex> l(st_->mu);
    if (!st_->dirty) return Status::Ok();
    size = st_->size;
  }
  auto r = client_->meta_->ReportLength(attr_.ino(), size);
  if (!r.ok()) {
    // An unlinked file has no inode record any more; its length does not matter.
    if (r.status().code() == Code::kNotFound) return Status::Ok();
    return r.status().Prefix("report length of " + meta::InoString(attr_.ino()));
  }
  std::lock_guard<std::mutex> l(st_->mu);
  st_->reported = std::max(st_->reported, *r);
  if (st_->size <= *r) {
    st_->dirty = false;
    st_->size = *r;
  }
  return Status::Ok();
}

Status File::Close() {
  if (closed_) return Status(Code::kInvalid, "close of a closed file");
  Status s = Fsync();
  closed_ = true;
  uint64_t ino = attr_.ino();
  st_.reset();
  client_->DropStateIfIdle(ino);
  return s;
}

Status File::Truncate(uint64_t size) {
  if (closed_) return Status(Code::kInvalid, "truncate on a closed file");
  meta::SetAttrRequest req;
  *req.mutable_caller() = client_->caller_;
  req.set_ino(attr_.ino());
  req.set_valid(meta::kSetSize);
  req.set_size(size);
  auto r = client_->SetAttr(req);
  if (!r.ok()) return r.status();
  return Status::Ok();
}

}  // namespace sluice::client
