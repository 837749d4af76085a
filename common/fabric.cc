#include "common/fabric.h"

#include <rdma/fi_cm.h>
#include <rdma/fi_endpoint.h>
#include <rdma/fi_eq.h>
#include <rdma/fi_errno.h>
#include <rdma/fi_rma.h>

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <random>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>

#include "common/clock.h"
#include "common/log.h"

namespace sluice::net {
namespace {

constexpr uint32_t kFabricVersion = FI_VERSION(1, 9);
constexpr uint64_t kMrMode = FI_MR_LOCAL | FI_MR_VIRT_ADDR | FI_MR_ALLOCATED | FI_MR_PROV_KEY;
constexpr uint64_t kCaps = FI_MSG | FI_RMA | FI_READ | FI_WRITE | FI_REMOTE_READ |
                           FI_REMOTE_WRITE | FI_SEND | FI_RECV;

std::string FiError(const char* what, int rc) {
  return std::string(what) + ": " + fi_strerror(rc < 0 ? -rc : rc);
}

Code FiCode(int err) {
  switch (err) {
    case FI_ECANCELED: return Code::kCancelled;
    case FI_ETIMEDOUT: return Code::kTimeout;
    case FI_EAGAIN: return Code::kBusy;
    case FI_ETRUNC:
    case FI_EMSGSIZE: return Code::kTooBig;
    default: return Code::kUnavailable;
  }
}

fi_info* MakeHints(const std::string& prov) {
  fi_info* hints = fi_allocinfo();
  hints->caps = kCaps;
  hints->mode = FI_CONTEXT | FI_CONTEXT2;
  hints->ep_attr->type = FI_EP_RDM;
  hints->domain_attr->mr_mode = kMrMode;
  hints->domain_attr->threading = FI_THREAD_SAFE;
  hints->domain_attr->av_type = FI_AV_TABLE;
  hints->fabric_attr->prov_name = strdup(prov.c_str());
  return hints;
}

// shm has no ports: a server's "host:port" becomes a stable local name.
bool IsShm(const std::string& prov) { return prov == "shm"; }
std::string ShmName(const std::string& host, uint16_t port) {
  return "sluice_" + (host.empty() ? std::string("local") : host) + "_" + std::to_string(port);
}

// A server's shm region is named per incarnation, "<stable>@<pid>_<random>",
// where <stable> is ShmName(host, port). Reusing one name across a kill -9 and
// restart let peers that still mapped the dead server's region write into the
// new one with stale peer indexes, and the restarted server crashed inside
// libfabric. A small pointer file "/dev/shm/<stable>.addr", locked (flock) for
// as long as its server lives, holds the current region's address; clients
// read it whenever they insert the stable name (after a failure, so a
// restarted server is found again).
constexpr char kShmPrefix[] = "fi_shm://";

std::string ShmPointerPath(const std::string& stable) { return "/dev/shm/" + stable + ".addr"; }

// The region name inside a raw shm address ("fi_shm://name\0" or "name\0").
std::string ShmRegionName(std::string raw) {
  while (!raw.empty() && raw.back() == '\0') raw.pop_back();
  if (raw.rfind(kShmPrefix, 0) == 0) raw.erase(0, sizeof kShmPrefix - 1);
  return raw;
}

// The current address of the server behind a stable shm name, or `raw`
// itself when it is not a stable server name or no server has published one.
std::string ShmCurrentAddress(const std::string& raw) {
  std::string name = ShmRegionName(raw);
  if (name.rfind("sluice_", 0) != 0 || name.rfind("sluice_c_", 0) == 0 ||
      name.find('@') != std::string::npos) {
    return raw;
  }
  int fd = open(ShmPointerPath(name).c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return raw;
  char buf[512];
  ssize_t n = pread(fd, buf, sizeof buf, 0);
  close(fd);
  if (n <= 0 || static_cast<size_t>(n) >= sizeof buf) return raw;
  std::string cur(buf, static_cast<size_t>(n));
  // Only a complete address of this server's incarnation counts.
  if (ShmRegionName(cur).rfind(name + "@", 0) != 0) return raw;
  return cur;
}

// Regions of processes that no longer exist (killed with -9) would stay in
// /dev/shm forever; remove them: clients' "sluice_c_<pid>_*" and servers'
// "<stable>@<pid>_*".
void SweepStaleShmRegions() {
  DIR* d = opendir("/dev/shm");
  if (!d) return;
  while (dirent* e = readdir(d)) {
    int pid = 0;
    const char* at = std::strchr(e->d_name, '@');
    if (std::strncmp(e->d_name, "sluice_", 7) != 0) continue;
    size_t len = std::strlen(e->d_name);
    if (len > 5 && std::strcmp(e->d_name + len - 5, ".addr") == 0) {
      // A pointer file nobody holds locked belongs to a dead server.
      std::string path = std::string("/dev/shm/") + e->d_name;
      int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0) continue;
      if (flock(fd, LOCK_EX | LOCK_NB) == 0) unlink(path.c_str());
      close(fd);
      continue;
    }
    if (std::sscanf(e->d_name, "sluice_c_%d_", &pid) != 1 &&
        (at == nullptr || std::sscanf(at, "@%d_", &pid) != 1)) {
      continue;
    }
    if (pid <= 0 || kill(pid, 0) == 0 || errno != ESRCH) continue;
    shm_unlink(e->d_name);
  }
  closedir(d);
}

// Takes the pointer file of a server's stable shm name (refusing when a live
// server holds it) and removes the region of the incarnation it names, dead
// since the lock was free. Returns the locked descriptor.
Result<int> ClaimShmName(const std::string& stable, const std::string& where) {
  std::string path = ShmPointerPath(stable);
  int fd = -1;
  // A sweeping peer may hold the lock for a moment, or unlink the file
  // between our open and flock: retry briefly, and own only the file that
  // is still at `path`.
  for (int attempt = 0;; attempt++) {
    fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
      return Status(Code::kUnavailable, "cannot open " + path + " for " + where + ": " + strerror(errno));
    }
    struct stat held{}, now{};
    if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
      if (fstat(fd, &held) == 0 && stat(path.c_str(), &now) == 0 && held.st_ino == now.st_ino) break;
    } else if (attempt >= 20) {
      close(fd);
      return Status(Code::kUnavailable, where + ": the address is in use by a running server (" +
                                            path + " is locked)");
    }
    close(fd);
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  char buf[512];
  ssize_t n = pread(fd, buf, sizeof buf, 0);
  if (n > 0 && static_cast<size_t>(n) < sizeof buf) {
    std::string old = ShmRegionName(std::string(buf, static_cast<size_t>(n)));
    if (old.rfind(stable + "@", 0) == 0) shm_unlink(old.c_str());
  }
  shm_unlink(stable.c_str());  // a region under the stable name itself (older Sluice)
  return fd;
}

}  // namespace

std::string ProviderFor(const std::string& configured) {
  if (configured != "tcp") return configured;
  // libfabric >= 1.18's "tcp" provider has native RDM endpoints; 1.17 calls it "net".
  fi_info* hints = MakeHints("tcp");
  fi_info* info = nullptr;
  int rc = fi_getinfo(kFabricVersion, nullptr, nullptr, 0, hints, &info);
  bool native = false;
  for (fi_info* i = info; rc == 0 && i; i = i->next) {
    if (std::strcmp(i->fabric_attr->prov_name, "tcp") == 0) native = true;
  }
  if (info) fi_freeinfo(info);
  fi_freeinfo(hints);
  return native ? "tcp" : "net";
}

std::vector<std::string> AvailableProviders() {
  std::vector<std::string> out;
  for (const char* p : {"tcp", "tcp;ofi_rxm", "shm", "verbs;ofi_rxm"}) {
    fi_info* hints = MakeHints(ProviderFor(p));
    fi_info* info = nullptr;
    if (fi_getinfo(kFabricVersion, nullptr, nullptr, 0, hints, &info) == 0 && info) out.push_back(p);
    if (info) fi_freeinfo(info);
    fi_freeinfo(hints);
  }
  return out;
}

// ---- MemoryRegion ----

MemoryRegion::MemoryRegion(fid_mr* mr, void* addr, size_t len, bool virt_addr)
    : mr_(mr), addr_(addr), len_(len), virt_addr_(virt_addr) {}

MemoryRegion::~MemoryRegion() {
  if (mr_) fi_close(&mr_->fid);
}

MemoryRegion& MemoryRegion::operator=(MemoryRegion&& o) noexcept {
  if (this != &o) {
    if (mr_) fi_close(&mr_->fid);
    mr_ = o.mr_;
    addr_ = o.addr_;
    len_ = o.len_;
    virt_addr_ = o.virt_addr_;
    o.mr_ = nullptr;
    o.addr_ = nullptr;
    o.len_ = 0;
  }
  return *this;
}

void* MemoryRegion::desc() const { return mr_ ? fi_mr_desc(mr_) : nullptr; }
uint64_t MemoryRegion::key() const { return mr_ ? fi_mr_key(mr_) : 0; }

// ---- Endpoint ----

Result<std::unique_ptr<Endpoint>> Endpoint::Open(const FabricOptions& options) {
  std::unique_ptr<Endpoint> ep(new Endpoint());
  ep->provider_ = ProviderFor(options.provider);
  std::string where = "provider '" + options.provider + "'";
  fi_info* hints = MakeHints(ep->provider_);

  std::string node, service;
  uint64_t flags = 0;
  if (IsShm(ep->provider_)) {
    if (options.port != 0) {
      node = ShmName(options.host, options.port);
      flags = FI_SOURCE;
    }
  } else if (!options.host.empty() || options.port != 0) {
    node = options.host.empty() ? "0.0.0.0" : options.host;
    service = std::to_string(options.port);
    flags = FI_SOURCE;
    where += " at " + node + ":" + service;
  }
  int rc = fi_getinfo(kFabricVersion, node.empty() ? nullptr : node.c_str(),
                      service.empty() ? nullptr : service.c_str(), flags, hints, &ep->info_);
  fi_freeinfo(hints);
  if (rc != 0 || !ep->info_) {
    return Status(Code::kUnavailable,
                  FiError(("no libfabric endpoint for " + where).c_str(), rc) +
                      " (is the provider available? try `fi_info -p " + ep->provider_ + "`)");
  }
  fi_info* info = ep->info_;
  rc = fi_fabric(info->fabric_attr, &ep->fabric_, nullptr);
  if (rc) return Status(Code::kUnavailable, FiError(("fi_fabric for " + where).c_str(), rc));
  rc = fi_domain(ep->fabric_, info, &ep->domain_, nullptr);
  if (rc) return Status(Code::kUnavailable, FiError(("fi_domain for " + where).c_str(), rc));

  fi_av_attr av_attr{};
  av_attr.type = FI_AV_TABLE;
  rc = fi_av_open(ep->domain_, &av_attr, &ep->av_, nullptr);
  if (rc) return Status(Code::kUnavailable, FiError(("fi_av_open for " + where).c_str(), rc));

  // Prefer a CQ with a file descriptor to sleep on. Providers without one
  // (shm in libfabric 1.17, whose fi_cq_sread yields in a loop at ~95% CPU)
  // get a CQ without wait object, polled with a sleeping back-off.
  fi_cq_attr cq_attr{};
  cq_attr.format = FI_CQ_FORMAT_MSG;
  cq_attr.wait_obj = FI_WAIT_FD;
  cq_attr.size = 4096;
  rc = fi_cq_open(ep->domain_, &cq_attr, &ep->cq_, nullptr);
  if (rc == 0 && fi_control(&ep->cq_->fid, FI_GETWAIT, &ep->cq_fd_) != 0) {
    fi_close(&ep->cq_->fid);
    ep->cq_ = nullptr;
    rc = -FI_ENOSYS;
  }
  if (rc) {
    ep->cq_fd_ = -1;
    cq_attr.wait_obj = FI_WAIT_NONE;
    rc = fi_cq_open(ep->domain_, &cq_attr, &ep->cq_, nullptr);
  }
  if (rc) return Status(Code::kUnavailable, FiError(("fi_cq_open for " + where).c_str(), rc));

  rc = fi_endpoint(ep->domain_, info, &ep->ep_, nullptr);
  if (rc) {
    return Status(Code::kUnavailable, FiError(("fi_endpoint for " + where).c_str(), rc) +
                                          " (is the address in use or not local?)");
  }
  if (IsShm(ep->provider_)) {
    // shm would append ":<uid>:<index>" to a bound name; a server's name must
    // be exactly what clients resolve "host:port" to. Unbound (client)
    // endpoints get a name of their own too: shm's default, "<pid>:<uid>:<n>",
    // collides with regions that killed processes left behind once pids are
    // reused (fi_enable then fails with EBUSY).
    std::string n;
    if (options.port != 0) {
      SweepStaleShmRegions();
      std::string stable = ShmName(options.host, options.port);
      auto fd = ClaimShmName(stable, where + " at " + options.host + ":" + std::to_string(options.port));
      if (!fd.ok()) return fd.status();
      ep->shm_pointer_fd_ = fd.value();
      ep->shm_pointer_path_ = ShmPointerPath(stable);
      std::random_device rd;
      char buf[64];
      std::snprintf(buf, sizeof buf, "@%d_%08x", static_cast<int>(getpid()), rd());
      n = stable + buf;
    } else {
      SweepStaleShmRegions();
      std::random_device rd;
      char buf[64];
      std::snprintf(buf, sizeof buf, "sluice_c_%d_%08x%08x", static_cast<int>(getpid()), rd(), rd());
      n = buf;
    }
    rc = fi_setname(&ep->ep_->fid, n.data(), n.size() + 1);
    if (rc) return Status(Code::kUnavailable, FiError(("fi_setname for " + where).c_str(), rc));
  }
  rc = fi_ep_bind(ep->ep_, &ep->av_->fid, 0);
  if (rc == 0) rc = fi_ep_bind(ep->ep_, &ep->cq_->fid, FI_TRANSMIT | FI_RECV);
  if (rc) return Status(Code::kUnavailable, FiError(("fi_ep_bind for " + where).c_str(), rc));
  rc = fi_enable(ep->ep_);
  if (rc) {
    return Status(Code::kUnavailable, FiError(("fi_enable for " + where).c_str(), rc) +
                                          " (is the port already in use?)");
  }
  char name[256];
  size_t name_len = sizeof name;
  rc = fi_getname(&ep->ep_->fid, name, &name_len);
  if (rc) return Status(Code::kUnavailable, FiError(("fi_getname for " + where).c_str(), rc));
  ep->name_.assign(name, name_len);
  if (ep->shm_pointer_fd_ >= 0) {
    // Publish the incarnation's address last, once peers can reach it.
    if (ftruncate(ep->shm_pointer_fd_, 0) != 0 ||
        pwrite(ep->shm_pointer_fd_, ep->name_.data(), ep->name_.size(), 0) !=
            static_cast<ssize_t>(ep->name_.size())) {
      return Status(Code::kUnavailable, "cannot write " + ep->shm_pointer_path_ + ": " + strerror(errno));
    }
  }
  ep->inject_size_ = info->tx_attr ? info->tx_attr->inject_size : 0;
  return ep;
}

Endpoint::~Endpoint() {
  Stop();
  if (ep_) fi_close(&ep_->fid);
  if (cq_) fi_close(&cq_->fid);
  if (av_) fi_close(&av_->fid);
  if (domain_) fi_close(&domain_->fid);
  if (fabric_) fi_close(&fabric_->fid);
  if (info_) fi_freeinfo(info_);
  if (shm_pointer_fd_ >= 0) {
    unlink(shm_pointer_path_.c_str());  // still locked: no other server owns it
    close(shm_pointer_fd_);
  }
}

void Endpoint::Start() {
  if (running_.exchange(true)) return;
  progress_ = std::thread([this] { ProgressLoop(); });
}

void Endpoint::Stop() {
  if (!running_.exchange(false)) return;
  if (progress_.joinable()) progress_.join();
}

void Endpoint::Shutdown() {
  Stop();
  if (ep_) fi_close(&ep_->fid);
  ep_ = nullptr;
}

void Endpoint::SetTicker(uint32_t interval_ms, std::function<void()> tick) {
  tick_ms_ = interval_ms;
  tick_ = std::move(tick);
}

void Endpoint::HandleBatch(fi_cq_msg_entry* entries, ssize_t n) {
  if (n == -FI_EAVAIL) {
    fi_cq_err_entry err{};
    if (fi_cq_readerr(cq_, &err, 0) > 0) {
      auto* op = static_cast<Operation*>(err.op_context);
      std::string msg = std::string("libfabric completion error: ") + fi_strerror(err.err);
      if (op && op->complete) {
        op->complete(op, Status(FiCode(err.err), msg), 0);
      } else if (op && op->done) {
        op->done(Status(FiCode(err.err), msg), 0);
      }
    }
    return;
  }
  for (ssize_t i = 0; i < n; i++) {
    auto* op = static_cast<Operation*>(entries[i].op_context);
    if (!op) continue;
    if (op->complete) {
      op->complete(op, Status::Ok(), entries[i].len);
    } else if (op->done) {
      op->done(Status::Ok(), entries[i].len);
    }
  }
}

// How long the progress thread keeps polling after a completion before it
// sleeps: more completions usually follow, and catching them without a
// sleep/wake halves small round trips. SLUICE_POLL_US overrides (0: never poll).
uint64_t PollWindowNs() {
  static const uint64_t ns = [] {
    const char* e = std::getenv("SLUICE_POLL_US");
    return (e && *e ? std::strtoull(e, nullptr, 10) : 30) * 1000;
  }();
  return ns;
}

void Endpoint::ProgressLoop() {
  progress_id_ = std::this_thread::get_id();
  fi_cq_msg_entry entries[64];
  const uint64_t poll_ns = PollWindowNs();
  uint64_t now = NowNanos();
  uint64_t next_tick = now + uint64_t{tick_ms_} * 1000000;
  uint64_t last_activity = now;
  uint32_t backoff_us = 0;
  while (running_.load(std::memory_order_relaxed)) {
    ssize_t n = fi_cq_read(cq_, entries, 64);
    now = NowNanos();  // one clock read per turn
    if (n > 0 || n == -FI_EAVAIL) {
      HandleBatch(entries, n);
      last_activity = now;
      backoff_us = 0;
    } else if (n == -FI_EAGAIN) {
      if (now - last_activity < poll_ns) {
        // Polling right after a completion (see PollWindowNs).
      } else if (cq_fd_ >= 0) {
        // Sleep in the provider's wait (its wait set includes the sockets
        // that manual progress must read) until the next tick at most.
        int wait_ms = now >= next_tick ? 0 : static_cast<int>((next_tick - now + 999999) / 1000000);
        if (wait_ms > 0) {
          ssize_t m = fi_cq_sread(cq_, entries, 64, nullptr, wait_ms);
          now = NowNanos();
          if (m > 0 || m == -FI_EAVAIL) {
            HandleBatch(entries, m);
            last_activity = now;
          }
        }
      } else {
        // No wait object: sleep, doubling up to 1 ms while idle.
        backoff_us = backoff_us == 0 ? 20 : std::min<uint32_t>(backoff_us * 2, 1000);
        std::this_thread::sleep_for(std::chrono::microseconds(backoff_us));
      }
    } else if (n < 0) {
      LOG_WARN(FiError("fi_cq_read", static_cast<int>(n)));
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    if (now >= next_tick) {
      if (tick_) tick_();
      next_tick = NowNanos() + uint64_t{tick_ms_} * 1000000;
    }
  }
}

Result<std::string> Endpoint::Resolve(const std::string& host, uint16_t port) const {
  fi_info* hints = MakeHints(provider_);
  fi_info* info = nullptr;
  std::string node = IsShm(provider_) ? ShmName(host, port) : host;
  std::string service = IsShm(provider_) ? "" : std::to_string(port);
  int rc = fi_getinfo(kFabricVersion, node.c_str(), service.empty() ? nullptr : service.c_str(), 0,
                      hints, &info);
  fi_freeinfo(hints);
  if (rc != 0 || !info || !info->dest_addr) {
    if (info) fi_freeinfo(info);
    return Status(Code::kInvalid, FiError(("cannot resolve " + host + ":" + std::to_string(port) +
                                           " on provider " + provider_)
                                              .c_str(),
                                          rc ? rc : -FI_EADDRNOTAVAIL));
  }
  std::string raw(static_cast<const char*>(info->dest_addr), info->dest_addrlen);
  fi_freeinfo(info);
  return raw;
}

Result<fi_addr_t> Endpoint::Insert(const std::string& peer_address) {
  std::string raw_address = IsShm(provider_) ? ShmCurrentAddress(peer_address) : peer_address;
  std::lock_guard<std::mutex> l(av_mu_);
  auto it = av_cache_.find(raw_address);
  if (it != av_cache_.end()) return it->second;
  fi_addr_t addr = FI_ADDR_NOTAVAIL;
  int rc = fi_av_insert(av_, raw_address.data(), 1, &addr, 0, nullptr);
  if (rc != 1) {
    return Status(Code::kInvalid, "fi_av_insert: peer address of " +
                                      std::to_string(raw_address.size()) + " bytes refused");
  }
  av_cache_.emplace(raw_address, addr);
  return addr;
}

void Endpoint::Remove(const std::string& raw_address) {
  std::lock_guard<std::mutex> l(av_mu_);
  auto it = av_cache_.find(raw_address);
  if (it == av_cache_.end()) return;
  fi_addr_t a = it->second;
  fi_av_remove(av_, &a, 1, 0);
  av_cache_.erase(it);
}

Result<MemoryRegion> Endpoint::Register(void* addr, size_t len) {
  fid_mr* mr = nullptr;
  uint64_t access = FI_SEND | FI_RECV | FI_READ | FI_WRITE | FI_REMOTE_READ | FI_REMOTE_WRITE;
  // Under FI_MR_PROV_KEY the provider picks the key; providers that decline
  // that mode need a key unique within the domain, which we supply.
  uint64_t requested_key = next_key_.fetch_add(1);
  int rc = fi_mr_reg(domain_, addr, len, access, 0, requested_key, 0, &mr, nullptr);
  if (rc) return Status(Code::kNoSpace, FiError("fi_mr_reg", rc));
  if (info_->domain_attr->mr_mode & FI_MR_ENDPOINT) {
    rc = fi_mr_bind(mr, &ep_->fid, 0);
    if (rc == 0) rc = fi_mr_enable(mr);
    if (rc) {
      fi_close(&mr->fid);
      return Status(Code::kNoSpace, FiError("fi_mr_bind", rc));
    }
  }
  return MemoryRegion(mr, addr, len, (info_->domain_attr->mr_mode & FI_MR_VIRT_ADDR) != 0);
}

Status Endpoint::Post(const char* what, const std::function<ssize_t()>& post) {
  // Retries while the provider's queues are full (or a peer is still being
  // connected), driving progress meanwhile and backing off so nothing spins.
  // The progress thread itself may not wait long: it is what drains queues.
  bool on_progress = std::this_thread::get_id() == progress_id_.load();
  uint64_t deadline = NowMillis() + (on_progress ? 2 : 2000);
  for (int attempt = 0;; attempt++) {
    ssize_t rc = post();
    if (rc == 0) return Status::Ok();
    if (rc != -FI_EAGAIN) return Status(FiCode(static_cast<int>(-rc)), FiError(what, rc));
    fi_cq_read(cq_, nullptr, 0);
    if (NowMillis() > deadline) {
      return Status(Code::kUnavailable,
                    std::string(what) + ": the peer is not accepting (queue full or unreachable)");
    }
    if (attempt > 10) std::this_thread::sleep_for(std::chrono::microseconds(on_progress ? 20 : 100));
  }
}

Status Endpoint::PostRecv(void* buf, size_t len, void* desc, Operation* op) {
  return Post("fi_recv", [&] { return fi_recv(ep_, buf, len, desc, FI_ADDR_UNSPEC, op); });
}

Status Endpoint::PostSend(fi_addr_t dest, const void* buf, size_t len, void* desc,
                          Operation* op) {
  return Post("fi_send", [&] { return fi_send(ep_, buf, len, desc, dest, op); });
}

Status Endpoint::PostRead(fi_addr_t src, void* buf, size_t len, void* desc, uint64_t remote_addr,
                          uint64_t remote_key, Operation* op) {
  return Post("fi_read",
              [&] { return fi_read(ep_, buf, len, desc, src, remote_addr, remote_key, op); });
}

Status Endpoint::PostWrite(fi_addr_t dest, const void* buf, size_t len, void* desc,
                           uint64_t remote_addr, uint64_t remote_key, Operation* op) {
  return Post("fi_write",
              [&] { return fi_write(ep_, buf, len, desc, dest, remote_addr, remote_key, op); });
}

}  // namespace sluice::net
