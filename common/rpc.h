// The RPC layer over the libfabric transport.
//
// Services and messages are declared in proto/*.proto. A method is named by
// its full name ("sluice.mgmt.MgmtService/Heartbeat") and travels as a 32-bit
// id. Every request carries a request id, a deadline (time budget), the
// caller's credential and the cluster-map version it was built against.
// Payloads up to `inline_threshold` bytes ride inside the frame; larger ones
// move by RMA between registered buffers (the server pulls request payloads
// with fi_read and pushes response payloads with fi_write).
#pragma once

#include <google/protobuf/message.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include "common/buffer_pool.h"
#include "common/fabric.h"
#include "common/frame.h"
#include "proto/rpc.pb.h"

namespace sluice::rpc {

constexpr size_t kDefaultInlineThreshold = 16 * 1024;

// ---------------------------------------------------------------- server --

struct ServerOptions {
  net::FabricOptions fabric;
  // Handler threads: a small, bounded set (the machine may have 2 cores).
  size_t workers = 2;
  // Receive buffers posted at once (each kMaxFrameSize).
  size_t recv_buffers = 32;
  size_t inline_threshold = kDefaultInlineThreshold;
  // Checks every request's credential before anything else happens to it
  // (no payload is pulled, no handler runs); a non-OK status is the answer.
  // Unset: every caller is accepted. `method` is the full method name.
  std::function<Status(const Credential& credential, const std::string& method)> authenticate;
};

// A buffer payloads move through by RMA, inside memory registered with the
// server's endpoint (RpcServer::RegisterMemory), kept alive by `owner` until
// the call has ended.
struct PayloadBuffer {
  char* data = nullptr;
  std::shared_ptr<void> owner;
};

// What a handler sees of the call besides its request message.
class CallContext {
 public:
  const RequestHeader& header() const { return *header_; }
  const Credential& credential() const { return header_->credential(); }
  uint64_t map_version() const { return header_->map_version(); }
  // Monotonic deadline in nanoseconds (0 = none).
  uint64_t deadline_ns() const { return deadline_ns_; }
  bool expired() const;
  // Expired, or within `margin_ns` of the deadline. The server's deadline
  // runs from when it received the request, a little after the caller's:
  // a handler that must not act once the caller may have given up (and
  // retried) checks with a margin.
  bool expired_within(uint64_t margin_ns) const;
  // The request's payload (inline or pulled by RMA), valid during the call.
  std::string_view request_payload() const { return request_payload_; }
  // A registered buffer of `n` bytes to write the response payload into
  // (zero-copy on the way out). Valid until the response is sent.
  Result<char*> AllocResponsePayload(size_t n);
  // Sets the response payload from any memory that lives until the handler
  // returns (copied into registered memory if needed).
  void SetResponsePayload(const void* p, size_t n);
  // The map version the server reports back (0 = leave unset).
  void set_map_version(uint64_t v) { response_map_version_ = v; }
  // From an inline handler (RpcServer::RegisterInline): hand this request
  // to a worker instead; return the result as the handler's status.
  Status Defer() {
    deferred_ = true;
    return Status(Code::kBusy, "deferred to a worker");
  }
  bool on_progress_thread() const { return inline_; }
  // Capacity of the caller's receive buffer (payloads larger fail with TOO_BIG).
  uint64_t response_capacity() const;

 private:
  friend class RpcServer;
  const RequestHeader* header_ = nullptr;
  uint64_t deadline_ns_ = 0;
  std::string_view request_payload_;
  net::BufferPool* pool_ = nullptr;
  net::PooledBuffer payload_in_;
  net::PooledBuffer payload_out_;
  PayloadBuffer payload_in_ext_;   // from the server's payload allocator
  PayloadBuffer payload_out_ext_;
  void* payload_out_desc_ = nullptr;  // of the buffer AllocResponsePayload gave
  size_t payload_out_ext_len_ = 0;
  const class RpcServer* server_ = nullptr;
  const char* response_payload_ = nullptr;
  size_t response_payload_len_ = 0;
  uint64_t response_map_version_ = 0;
  size_t inline_threshold_ = 0;
  bool inline_ = false;
  bool deferred_ = false;
};

// A raw handler: parses `body`, fills `response_body` (serialized message).
using RawHandler =
    std::function<Status(CallContext& ctx, std::string_view body, std::string* response_body)>;

struct ServerStats {
  std::atomic<uint64_t> requests{0};
  std::atomic<uint64_t> errors{0};
  std::atomic<uint64_t> bad_frames{0};
  std::atomic<uint64_t> dropped{0};  // request queue full
  std::atomic<uint64_t> rejected{0};  // credential refused
  std::atomic<uint64_t> pings{0};
};

class RpcServer {
 public:
  ~RpcServer();
  // Opens the endpoint bound to options.fabric.host:port. Does not serve
  // until Start().
  static Result<std::unique_ptr<RpcServer>> Create(const ServerOptions& options);

  // Registers a handler under "package.Service/Method". Call before Start().
  void RegisterRaw(const std::string& full_name, RawHandler handler);
  template <typename Req, typename Resp>
  void Register(const std::string& full_name,
                std::function<Status(CallContext&, const Req&, Resp*)> handler) {
    RegisterRaw(full_name, Wrap<Req, Resp>(full_name, std::move(handler)));
  }
  // Registers a second handler for a method already registered, run on the
  // endpoint's progress thread as the request arrives (no hand-off to a
  // worker: the cost of a small read-only call halves). It must be quick and
  // must not wait on anything; when it cannot answer alone it returns
  // ctx.Defer() and the request goes to a worker's handler as usual.
  // Requests with an RMA payload always go to a worker.
  void RegisterInlineRaw(const std::string& full_name, RawHandler handler);
  template <typename Req, typename Resp>
  void RegisterInline(const std::string& full_name,
                      std::function<Status(CallContext&, const Req&, Resp*)> handler) {
    RegisterInlineRaw(full_name, Wrap<Req, Resp>(full_name, std::move(handler)));
  }

 private:
  template <typename Req, typename Resp>
  static RawHandler Wrap(const std::string& full_name,
                         std::function<Status(CallContext&, const Req&, Resp*)> handler) {
    return [full_name, handler](CallContext& ctx, std::string_view body,
                                std::string* out) -> Status {
      Req req;
      if (!req.ParseFromArray(body.data(), static_cast<int>(body.size()))) {
        return Status(Code::kProtocol, "request body of " + full_name + " (" +
                                           std::to_string(body.size()) +
                                           " bytes) is not a valid " + req.GetTypeName());
      }
      Resp resp;
      Status st = handler(ctx, req, &resp);
      if (st.ok()) resp.SerializeToString(out);
      return st;
    };
  }

 public:

  // Registers [addr, addr+len) with the endpoint, for payload buffers (see
  // SetPayloadAllocator); deregistered when the server is destroyed.
  Status RegisterMemory(void* addr, size_t len);
  // Where request payloads pulled by RMA land and AllocResponsePayload's
  // buffers come from (e.g. an IO engine's own registered memory, so payloads
  // go to and from disk without a copy): `alloc(len)` returns a buffer of at
  // least `len` bytes inside memory given to RegisterMemory, or an empty one
  // (then the server's pool is used). Thread-safe; set before Start().
  void SetPayloadAllocator(std::function<PayloadBuffer(size_t len)> alloc);

  Status Start();
  void Stop();
  net::Endpoint* endpoint() { return ep_.get(); }
  const ServerStats& stats() const { return stats_; }

 private:
  struct RecvSlot {
    net::Operation op;
    net::PooledBuffer buf;
    size_t len = 0;
  };
  RpcServer() = default;
  void OnRecv(RecvSlot* slot, Status st, size_t len);
  void WorkerLoop();
  // Handles one frame. With `inline_only`, only what an inline handler can
  // answer: returns false (nothing sent) when the frame must go to a worker.
  bool Process(const char* frame, size_t len, bool inline_only = false);
  void Repost(RecvSlot* slot);
  void Reply(fi_addr_t dest, uint64_t request_id, const Status& st, const std::string& body,
             CallContext* ctx, const RequestHeader* req, FrameKind kind = FrameKind::kResponse);
  Status WaitOp(const std::function<Status(net::Operation*)>& post);
  // A buffer from the payload allocator and its local descriptor, if any.
  friend class CallContext;
  bool AllocPayload(size_t len, PayloadBuffer* out, void** desc) const;

  ServerOptions options_;
  std::unique_ptr<net::Endpoint> ep_;
  std::unique_ptr<net::BufferPool> pool_;
  std::vector<std::unique_ptr<net::MemoryRegion>> user_regions_;  // RegisterMemory
  std::function<PayloadBuffer(size_t)> payload_alloc_;
  struct Method {
    std::string name;
    RawHandler handler;
    RawHandler inline_handler;  // may be empty
  };
  std::unordered_map<uint32_t, Method> handlers_;
  bool has_inline_ = false;
  std::vector<std::unique_ptr<RecvSlot>> slots_;

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::string> queue_;  // request frames waiting for a worker
  static constexpr size_t kMaxQueuedRequests = 16384;
  static constexpr size_t kMaxQueuedBytes = 256u << 20;
  size_t queued_bytes_ = 0;
  uint64_t last_drop_log_ms_ = 0;  // progress thread only
  bool stopping_ = false;
  std::vector<std::thread> workers_;
  ServerStats stats_;
};

// ---------------------------------------------------------------- client --

// The credential this process speaks with when a client's options carry
// none (a server sets the cluster's own; a tool, its tenant's). Thread-safe.
void SetDefaultCredential(const Credential& credential);
Credential DefaultCredential();

struct ClientOptions {
  net::FabricOptions fabric;
  Credential credential;  // empty tenant: DefaultCredential() at Create
  size_t inline_threshold = kDefaultInlineThreshold;
  // A peer with calls outstanding that has not been heard from for this long
  // is probed; if the probe is not answered within `peer_timeout_ms`, its
  // calls fail with UNAVAILABLE (so a killed server is noticed promptly).
  uint32_t probe_after_ms = 300;
  uint32_t peer_timeout_ms = 1500;
};

struct CallOptions {
  uint32_t timeout_ms = 10000;
  uint64_t map_version = 0;
  // Request payload (inline or RMA by size).
  const void* send_payload = nullptr;
  size_t send_len = 0;
  // Where a response payload lands; recv_cap bounds it.
  void* recv_buf = nullptr;
  size_t recv_cap = 0;
};

struct CallResult {
  Status status;
  uint64_t map_version = 0;   // server's map version, if it reported one
  size_t payload_len = 0;     // response payload bytes written to recv_buf
};

// A server as the client knows it. Cheap to copy.
struct Peer {
  std::string address;  // raw libfabric address
  std::string label;    // "host:port", for messages
};

class RpcClient {
 public:
  using Callback = std::function<void(const CallResult&)>;

  ~RpcClient();
  static Result<std::unique_ptr<RpcClient>> Create(const ClientOptions& options);

  // Resolves host:port on the configured provider.
  Result<Peer> Resolve(const std::string& host, uint16_t port);

  // Starts a call; `done` runs exactly once (on the progress thread, or on the
  // caller's thread if the call fails to start). `response` must stay alive
  // until then. Returns a call id for Cancel().
  uint64_t CallAsync(const Peer& peer, const std::string& method,
                     const google::protobuf::Message& request,
                     google::protobuf::Message* response, const CallOptions& options,
                     Callback done);
  // Blocking form.
  CallResult Call(const Peer& peer, const std::string& method,
                  const google::protobuf::Message& request, google::protobuf::Message* response,
                  const CallOptions& options = {});
  // Completes the call with CANCELLED if it has not completed yet.
  void Cancel(uint64_t call_id);

  // Registers user memory so calls whose send_payload/recv_buf lie inside it
  // move bytes by RMA without a copy. The memory must outlive the client.
  Status RegisterMemory(void* addr, size_t len);

  size_t outstanding() const;
  net::Endpoint* endpoint() { return ep_.get(); }

 private:
  struct PendingCall;
  struct PeerState;
  RpcClient() = default;
  void OnRecv(size_t slot, Status st, size_t len);
  void HandleResponse(const char* data, size_t len);
  void Complete(uint64_t id, CallResult result, std::string_view payload = {},
                std::string_view body = {}, uint64_t bulk_len = 0);
  void Tick();
  void FailPeer(const std::string& address, const std::string& why);
  const net::MemoryRegion* FindUserRegion(const void* p, size_t n);

  ClientOptions options_;
  std::unique_ptr<net::Endpoint> ep_;
  std::unique_ptr<net::BufferPool> pool_;
  struct RecvSlot {
    net::Operation op;
    net::PooledBuffer buf;
  };
  std::vector<std::unique_ptr<RecvSlot>> slots_;

  mutable std::mutex mu_;
  std::atomic<uint64_t> next_id_{1};
  std::unordered_map<uint64_t, std::shared_ptr<PendingCall>> calls_;
  std::unordered_map<uint64_t, std::string> pings_;  // ping id -> peer address
  std::unordered_map<std::string, std::unique_ptr<PeerState>> peers_;
  // Buffers of abandoned calls that a late RMA could still touch.
  std::multimap<uint64_t, std::shared_ptr<PendingCall>> quarantine_;
  std::vector<std::unique_ptr<net::MemoryRegion>> user_regions_;
};

}  // namespace sluice::rpc
