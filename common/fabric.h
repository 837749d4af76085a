// The libfabric transport: one reliable-datagram endpoint (FI_EP_RDM) per
// process role, with a completion queue that a progress thread waits on
// (fi_cq_sread; never spins), memory registration in the modes verbs needs,
// and RMA read/write for bulk data.
//
// The same code runs on every provider: `tcp` (libfabric's native TCP RDM
// provider, called `net` in libfabric 1.17), `tcp;ofi_rxm`, `shm` and
// `verbs;ofi_rxm`. FI_MR_LOCAL | FI_MR_VIRT_ADDR | FI_MR_ALLOCATED |
// FI_MR_PROV_KEY are requested and always honoured — every local buffer is
// registered and its descriptor passed, RMA addresses are virtual addresses,
// keys come from the provider — even where the provider would not need it,
// so the code tested on TCP is the code that runs on RDMA.
#pragma once

#include <rdma/fabric.h>
#include <rdma/fi_domain.h>
#include <rdma/fi_eq.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "common/status.h"

namespace sluice::net {

struct FabricOptions {
  // "tcp", "tcp;ofi_rxm", "shm", "verbs;ofi_rxm" (or any libfabric provider name).
  std::string provider = "tcp";
  // Address to bind (servers); empty host = any/ephemeral (clients).
  std::string host;
  // Port to bind; 0 = ephemeral.
  uint16_t port = 0;
};

// A registered memory region. Movable, not copyable; deregisters on destruction.
class MemoryRegion {
 public:
  MemoryRegion() = default;
  MemoryRegion(fid_mr* mr, void* addr, size_t len, bool virt_addr);
  ~MemoryRegion();
  MemoryRegion(MemoryRegion&& o) noexcept { *this = std::move(o); }
  MemoryRegion& operator=(MemoryRegion&& o) noexcept;
  MemoryRegion(const MemoryRegion&) = delete;
  MemoryRegion& operator=(const MemoryRegion&) = delete;

  void* addr() const { return addr_; }
  size_t len() const { return len_; }
  void* desc() const;        // local descriptor (FI_MR_LOCAL)
  uint64_t key() const;      // remote key (FI_MR_PROV_KEY)
  // The address a peer passes to fi_read/fi_write to reach `p` in this region:
  // the virtual address under FI_MR_VIRT_ADDR, else the offset from the region's
  // start (providers that decline VIRT_ADDR, such as libfabric's tcp, use offsets).
  uint64_t RemoteAddr(const void* p) const {
    return virt_addr_ ? reinterpret_cast<uint64_t>(p)
                      : static_cast<uint64_t>(static_cast<const char*>(p) -
                                              static_cast<const char*>(addr_));
  }
  bool valid() const { return mr_ != nullptr; }
  // True when [p, p+n) lies inside this region.
  bool Contains(const void* p, size_t n) const {
    auto* b = static_cast<const char*>(addr_);
    auto* q = static_cast<const char*>(p);
    return mr_ && q >= b && q + n <= b + len_;
  }

 private:
  fid_mr* mr_ = nullptr;
  void* addr_ = nullptr;
  size_t len_ = 0;
  bool virt_addr_ = true;
};

// The context of one posted operation. The completion callback runs on the
// endpoint's progress thread and must not block for long.
struct Operation {
  fi_context2 fi_ctx;  // must stay first: libfabric owns it while posted
  // status is OK or the error; len is the bytes received (receives only).
  std::function<void(Status status, size_t len)> done;
  // Alternative to `done` for operations that free themselves on completion
  // (a std::function must not destroy itself while running). Used if set.
  void (*complete)(Operation* op, Status status, size_t len) = nullptr;
};

// An RDM endpoint with its own fabric, domain, address vector, completion
// queue and progress thread. Thread-safe: any thread may post operations.
class Endpoint {
 public:
  ~Endpoint();
  Endpoint(const Endpoint&) = delete;
  Endpoint& operator=(const Endpoint&) = delete;

  // Opens an endpoint on `options.provider`, bound to host:port when given.
  // Fails with a message naming the provider and address when the provider
  // is missing or the address cannot be bound.
  static Result<std::unique_ptr<Endpoint>> Open(const FabricOptions& options);

  // Starts the progress thread (waits on the CQ; runs completions).
  void Start();
  // Stops the progress thread. Posted operations are abandoned (no callback).
  void Stop();
  // Stops and closes the endpoint itself, so no posted buffer is touched any
  // more; registered regions may then be freed before the Endpoint is destroyed.
  void Shutdown();

  // This endpoint's raw address, to be given to peers.
  const std::string& name() const { return name_; }
  const std::string& provider() const { return provider_; }
  // Resolves "host:port" (or an shm name) into a raw address for Insert().
  Result<std::string> Resolve(const std::string& host, uint16_t port) const;
  // Inserts a raw address into the address vector (cached), returning its fi_addr.
  // On shm a server's stable name maps to its current incarnation's region,
  // read again on every call (so call it again after a peer failed).
  Result<fi_addr_t> Insert(const std::string& raw_address);
  // Forgets a peer. Beware: libfabric 1.17's tcp provider crashes in a later
  // fi_send to a removed address that is inserted again; the RPC layer keeps
  // failed peers in the address vector (the provider reconnects by itself).
  void Remove(const std::string& raw_address);

  // Registers [addr, addr+len) for local use and remote read/write.
  Result<MemoryRegion> Register(void* addr, size_t len);

  // Posting. `op` must stay alive until its done() runs. Buffers must lie in
  // registered regions whose desc() is passed (FI_MR_LOCAL).
  Status PostRecv(void* buf, size_t len, void* desc, Operation* op);
  Status PostSend(fi_addr_t dest, const void* buf, size_t len, void* desc, Operation* op);
  Status PostRead(fi_addr_t src, void* buf, size_t len, void* desc, uint64_t remote_addr,
                  uint64_t remote_key, Operation* op);
  Status PostWrite(fi_addr_t dest, const void* buf, size_t len, void* desc,
                   uint64_t remote_addr, uint64_t remote_key, Operation* op);

  // Called on the progress thread about every `interval_ms` (for timers).
  void SetTicker(uint32_t interval_ms, std::function<void()> tick);

  size_t inject_size() const { return inject_size_; }

 private:
  Endpoint() = default;
  Status Post(const char* what, const std::function<ssize_t()>& post);
  void ProgressLoop();
  void HandleBatch(fi_cq_msg_entry* entries, ssize_t n);

  std::string provider_;
  fi_info* info_ = nullptr;
  fid_fabric* fabric_ = nullptr;
  fid_domain* domain_ = nullptr;
  fid_av* av_ = nullptr;
  fid_cq* cq_ = nullptr;
  fid_ep* ep_ = nullptr;
  std::string name_;
  size_t inject_size_ = 0;
  int cq_fd_ = -1;
  std::atomic<uint64_t> next_key_{1};  // CQ wait descriptor, or -1 when the CQ is polled

  int shm_pointer_fd_ = -1;        // shm servers: the locked pointer file
  std::string shm_pointer_path_;

  std::mutex av_mu_;
  std::unordered_map<std::string, fi_addr_t> av_cache_;

  std::atomic<bool> running_{false};
  std::thread progress_;
  std::atomic<std::thread::id> progress_id_{};
  uint32_t tick_ms_ = 100;
  std::function<void()> tick_;
};

// The libfabric provider name that `configured` maps to on this libfabric
// (e.g. "tcp" -> "net" on 1.17, whose "tcp" provider has no native RDM).
std::string ProviderFor(const std::string& configured);
// Providers usable on this machine among tcp, tcp;ofi_rxm, shm, verbs;ofi_rxm.
std::vector<std::string> AvailableProviders();

}  // namespace sluice::net
