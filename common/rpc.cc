#include "common/rpc.h"

#include <cinttypes>
#include <cstring>
#include <random>

#include "common/clock.h"
#include "common/log.h"

namespace sluice::rpc {
namespace {

// An operation whose completion a thread waits for, with a bounded wait. If
// the waiter gives up, the operation frees itself when libfabric reports.
struct WaitOp : net::Operation {
  std::mutex mu;
  std::condition_variable cv;
  bool done_flag = false;
  bool abandoned = false;
  Status status;

  static void Complete(net::Operation* base, Status s, size_t) {
    auto* w = static_cast<WaitOp*>(base);
    std::unique_lock<std::mutex> l(w->mu);
    if (w->abandoned) {
      l.unlock();
      delete w;
      return;
    }
    w->done_flag = true;
    w->status = s;
    w->cv.notify_all();
  }
};

Status PostAndWait(const std::function<Status(net::Operation*)>& post, uint32_t timeout_ms,
                   const char* what) {
  auto* w = new WaitOp;
  w->complete = &WaitOp::Complete;
  Status ps = post(w);
  if (!ps.ok()) {
    delete w;
    return ps;
  }
  std::unique_lock<std::mutex> l(w->mu);
  if (!w->cv.wait_for(l, std::chrono::milliseconds(timeout_ms), [&] { return w->done_flag; })) {
    w->abandoned = true;  // freed by Complete when (if) libfabric reports
    return Status(Code::kTimeout, std::string(what) + " did not complete within " +
                                      std::to_string(timeout_ms) + " ms");
  }
  Status st = w->status;
  l.unlock();
  delete w;
  return st;
}

// A send whose buffer is released when libfabric is done with it.
struct SendOp : net::Operation {
  net::PooledBuffer buf;
  std::function<void(Status)> on_error;
  static void Complete(net::Operation* base, Status st, size_t) {
    auto* s = static_cast<SendOp*>(base);
    if (!st.ok() && s->on_error) s->on_error(st);
    delete s;
  }
};

Status SendFrame(net::Endpoint* ep, fi_addr_t dest, net::PooledBuffer buf, size_t len,
                 std::function<void(Status)> on_error) {
  auto* s = new SendOp;
  s->buf = std::move(buf);
  s->on_error = std::move(on_error);
  s->complete = &SendOp::Complete;
  Status st = ep->PostSend(dest, s->buf.data(), len, s->buf.desc(), s);
  if (!st.ok()) delete s;
  return st;
}

// Serializes header+body(+inline payload) into a registered frame buffer.
Result<size_t> BuildFrame(net::PooledBuffer& buf, FrameKind kind,
                          const google::protobuf::MessageLite& header, std::string_view body,
                          std::string_view payload) {
  size_t hl = header.ByteSizeLong();
  size_t total = kFrameHeaderSize + hl + body.size() + payload.size();
  if (total > buf.capacity()) {
    return Status(Code::kTooBig, "frame of " + std::to_string(total) + " bytes exceeds the " +
                                     std::to_string(buf.capacity()) + "-byte limit");
  }
  EncodeFrameHeader(kind, static_cast<uint32_t>(hl), static_cast<uint32_t>(body.size()),
                    static_cast<uint32_t>(payload.size()), buf.data());
  header.SerializeWithCachedSizesToArray(reinterpret_cast<uint8_t*>(buf.data() + kFrameHeaderSize));
  std::memcpy(buf.data() + kFrameHeaderSize + hl, body.data(), body.size());
  if (!payload.empty()) {
    std::memcpy(buf.data() + kFrameHeaderSize + hl + body.size(), payload.data(), payload.size());
  }
  return total;
}

std::string Hex32(uint32_t v) {
  char b[16];
  std::snprintf(b, sizeof b, "0x%08x", v);
  return b;
}

}  // namespace

// ------------------------------------------------------------ CallContext --

bool CallContext::expired() const { return deadline_ns_ != 0 && NowNanos() > deadline_ns_; }

bool CallContext::expired_within(uint64_t margin_ns) const {
  return deadline_ns_ != 0 && NowNanos() + margin_ns > deadline_ns_;
}

Result<char*> CallContext::AllocResponsePayload(size_t n) {
  PayloadBuffer ext;
  void* desc = nullptr;
  if (server_ && server_->AllocPayload(std::max<size_t>(n, 1), &ext, &desc)) {
    payload_out_ext_ = std::move(ext);
    payload_out_desc_ = desc;
    payload_out_ext_len_ = n;
    response_payload_ = payload_out_ext_.data;
    response_payload_len_ = n;
    return payload_out_ext_.data;
  }
  auto b = pool_->Get(std::max<size_t>(n, 1));
  if (!b.ok()) return b.status();
  payload_out_ = std::move(b.value());
  response_payload_ = payload_out_.data();
  response_payload_len_ = n;
  return payload_out_.data();
}

void CallContext::SetResponsePayload(const void* p, size_t n) {
  response_payload_ = static_cast<const char*>(p);
  response_payload_len_ = n;
}

uint64_t CallContext::response_capacity() const {
  uint64_t inline_room = kMaxFrameSize - kFrameHeaderSize - 4096;
  return std::max<uint64_t>(header_->bulk_out().len(), inline_room);
}

// -------------------------------------------------------------- RpcServer --

Result<std::unique_ptr<RpcServer>> RpcServer::Create(const ServerOptions& options) {
  std::unique_ptr<RpcServer> s(new RpcServer());
  s->options_ = options;
  auto ep = net::Endpoint::Open(options.fabric);
  if (!ep.ok()) return ep.status();
  s->ep_ = std::move(ep.value());
  s->pool_ = std::make_unique<net::BufferPool>(s->ep_.get());
  return s;
}

RpcServer::~RpcServer() {
  Stop();
  if (ep_) ep_->Shutdown();
  slots_.clear();
  pool_.reset();
  user_regions_.clear();
}

Status RpcServer::RegisterMemory(void* addr, size_t len) {
  auto mr = ep_->Register(addr, len);
  if (!mr.ok()) return mr.status();
  user_regions_.push_back(std::make_unique<net::MemoryRegion>(std::move(mr.value())));
  return Status::Ok();
}

void RpcServer::SetPayloadAllocator(std::function<PayloadBuffer(size_t len)> alloc) {
  payload_alloc_ = std::move(alloc);
}

bool RpcServer::AllocPayload(size_t len, PayloadBuffer* out, void** desc) const {
  if (!payload_alloc_) return false;
  PayloadBuffer b = payload_alloc_(len);
  if (!b.data) return false;
  for (const auto& r : user_regions_) {
    if (r->Contains(b.data, len)) {
      *desc = r->desc();
      *out = std::move(b);
      return true;
    }
  }
  return false;  // not in registered memory: the pool's buffer instead
}

void RpcServer::RegisterRaw(const std::string& full_name, RawHandler handler) {
  uint32_t id = MethodId(full_name);
  auto it = handlers_.find(id);
  if (it != handlers_.end() && it->second.name != full_name) {
    LOG_ERROR("method id collision: " + full_name + " and " + it->second.name);
    std::abort();
  }
  Method& m = handlers_[id];
  m.name = full_name;
  m.handler = std::move(handler);
}

void RpcServer::RegisterInlineRaw(const std::string& full_name, RawHandler handler) {
  auto it = handlers_.find(MethodId(full_name));
  if (it == handlers_.end() || it->second.name != full_name) {
    LOG_ERROR("inline handler for " + full_name + " registered before the method itself");
    std::abort();
  }
  it->second.inline_handler = std::move(handler);
  has_inline_ = true;
}

Status RpcServer::Start() {
  for (size_t i = 0; i < options_.recv_buffers; i++) {
    auto slot = std::make_unique<RecvSlot>();
    auto b = pool_->Get(kMaxFrameSize);
    if (!b.ok()) return b.status();
    slot->buf = std::move(b.value());
    RecvSlot* raw = slot.get();
    slot->op.done = [this, raw](Status st, size_t len) { OnRecv(raw, st, len); };
    slots_.push_back(std::move(slot));
  }
  ep_->Start();
  for (auto& slot : slots_) {
    SLUICE_RETURN_IF_ERROR(ep_->PostRecv(slot->buf.data(), slot->buf.capacity(), slot->buf.desc(),
                                         &slot->op));
  }
  for (size_t i = 0; i < std::max<size_t>(1, options_.workers); i++) {
    workers_.emplace_back([this] { WorkerLoop(); });
  }
  return Status::Ok();
}

void RpcServer::Stop() {
  {
    std::lock_guard<std::mutex> l(mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  cv_.notify_all();
  for (auto& t : workers_) t.join();
  workers_.clear();
  if (ep_) ep_->Stop();
}

void RpcServer::Repost(RecvSlot* slot) {
  Status st = ep_->PostRecv(slot->buf.data(), slot->buf.capacity(), slot->buf.desc(), &slot->op);
  if (!st.ok()) LOG_ERROR("cannot repost receive buffer: " + st.ToString());
}

void RpcServer::OnRecv(RecvSlot* slot, Status st, size_t len) {
  if (!st.ok()) {
    // A receive fails when the endpoint is closing; nothing to process.
    if (st.code() != Code::kCancelled) LOG_WARN("receive failed: " + st.ToString());
    return;
  }
  slot->len = len;
  // Liveness probes are answered here, ahead of queued work, so a busy
  // server is never mistaken for a dead one.
  if (len >= kFrameHeaderSize && static_cast<uint8_t>(slot->buf.data()[5]) ==
                                     static_cast<uint8_t>(FrameKind::kPing)) {
    Process(slot->buf.data(), len);
    Repost(slot);
    return;
  }
  // Small read-only requests may be answered right here (RegisterInline).
  if (has_inline_ && Process(slot->buf.data(), len, /*inline_only=*/true)) {
    Repost(slot);
    return;
  }
  // Requests are copied out and the buffer goes back at once: the transport
  // must keep reading a peer's stream, which also carries the payloads that
  // handlers are waiting for (RMA reads). Held receive buffers would stall
  // that stream behind queued requests once a client has more calls in
  // flight than there are buffers: a deadlock.
  std::string frame(slot->buf.data(), len);
  Repost(slot);
  bool dropped = false;
  {
    std::lock_guard<std::mutex> l(mu_);
    if (queue_.size() >= kMaxQueuedRequests || queued_bytes_ + len > kMaxQueuedBytes) {
      dropped = true;
    } else {
      queued_bytes_ += len;
      queue_.push_back(std::move(frame));
    }
  }
  if (dropped) {
    stats_.dropped++;
    uint64_t now = NowMillis();
    if (now - last_drop_log_ms_ >= 1000) {
      last_drop_log_ms_ = now;
      LOG_WARN("request queue full (" + std::to_string(kMaxQueuedRequests) + " requests or " +
               std::to_string(kMaxQueuedBytes >> 20) +
               " MiB waiting for a handler): dropped a request; its caller will time out and retry");
    }
    return;
  }
  cv_.notify_one();
}

void RpcServer::WorkerLoop() {
  for (;;) {
    std::string frame;
    {
      std::unique_lock<std::mutex> l(mu_);
      cv_.wait(l, [&] { return stopping_ || !queue_.empty(); });
      if (stopping_) return;
      frame = std::move(queue_.front());
      queue_.pop_front();
      queued_bytes_ -= frame.size();
    }
    Process(frame.data(), frame.size());
  }
}

bool RpcServer::Process(const char* data, size_t len, bool inline_only) {
  uint64_t recv_ns = NowNanos();
  auto frame = DecodeFrame(data, len);
  RequestHeader h;
  if (!frame.ok()) {
    stats_.bad_frames++;
    LOG_WARN("dropped frame of " + std::to_string(len) + " bytes: " + frame.status().message());
    return true;
  }
  if (frame->kind != FrameKind::kRequest && frame->kind != FrameKind::kPing) {
    stats_.bad_frames++;
    LOG_WARN("dropped frame: a server accepts requests and pings, got kind " +
             std::to_string(static_cast<int>(frame->kind)));
    return true;
  }
  if (!h.ParseFromArray(frame->header.data(), static_cast<int>(frame->header.size())) ||
      h.reply_to().empty()) {
    stats_.bad_frames++;
    LOG_WARN("dropped frame: request header (" + std::to_string(frame->header.size()) +
             " bytes) is not a valid RequestHeader with a reply address");
    return true;
  }
  auto dest = ep_->Insert(h.reply_to());
  if (!dest.ok()) {
    stats_.bad_frames++;
    LOG_WARN("dropped request " + std::to_string(h.request_id()) + ": " + dest.status().message());
    return true;
  }
  if (frame->kind == FrameKind::kPing) {
    stats_.pings++;
    Reply(*dest, h.request_id(), Status::Ok(), "", nullptr, &h, FrameKind::kPong);
    return true;
  }
  auto it = handlers_.find(h.method_id());
  if (inline_only && (it == handlers_.end() || !it->second.inline_handler || h.bulk_in().len() > 0)) {
    return false;
  }
  stats_.requests++;
  if (it == handlers_.end()) {
    Reply(*dest, h.request_id(),
          Status(Code::kUnsupported, "unknown method id " + Hex32(h.method_id()) +
                                         " (is the server older than the client?)"),
          "", nullptr, &h);
    return true;
  }
  CallContext ctx;
  ctx.header_ = &h;
  ctx.pool_ = pool_.get();
  ctx.server_ = this;
  ctx.inline_threshold_ = options_.inline_threshold;
  if (h.deadline_ms() > 0) ctx.deadline_ns_ = recv_ns + uint64_t{h.deadline_ms()} * 1000000;
  ctx.inline_ = inline_only;
  const std::string& method = it->second.name;
  Status st;
  std::string body;
  if (options_.authenticate) st = options_.authenticate(h.credential(), method);
  if (!st.ok()) {
    stats_.rejected++;
  } else if (ctx.expired()) {
    st = Status(Code::kTimeout, method + ": deadline expired before the server started it");
  } else if (h.bulk_in().len() > 0) {
    if (h.bulk_in().len() > net::BufferPool::kMaxBuffer) {
      st = Status(Code::kTooBig, method + ": request payload of " +
                                     std::to_string(h.bulk_in().len()) + " bytes is too large");
    } else {
      size_t n = h.bulk_in().len();
      char* buf = nullptr;
      void* desc = nullptr;
      if (AllocPayload(n, &ctx.payload_in_ext_, &desc)) {
        buf = ctx.payload_in_ext_.data;
      } else {
        auto b = pool_->Get(n);
        if (!b.ok()) {
          st = b.status();
        } else {
          ctx.payload_in_ = std::move(b.value());
          buf = ctx.payload_in_.data();
          desc = ctx.payload_in_.desc();
        }
      }
      if (buf) {
        st = PostAndWait(
            [&](net::Operation* op) {
              return ep_->PostRead(*dest, buf, n, desc, h.bulk_in().addr(), h.bulk_in().key(), op);
            },
            10000, "RMA read of the request payload");
        if (st.ok()) {
          ctx.request_payload_ = std::string_view(buf, n);
        } else if (st.code() == Code::kTimeout) {
          // The read may still land later: never reuse its buffer.
          new net::PooledBuffer(std::move(ctx.payload_in_));
          new PayloadBuffer(std::move(ctx.payload_in_ext_));
        }
      }
    }
  } else {
    ctx.request_payload_ = frame->payload;
  }
  if (st.ok()) st = (inline_only ? it->second.inline_handler : it->second.handler)(ctx, frame->body, &body);
  if (ctx.deferred_) {
    stats_.requests--;  // counted again by the worker
    return false;
  }
  if (!st.ok()) stats_.errors++;
  Reply(*dest, h.request_id(), st, st.ok() ? body : std::string(), &ctx, &h);
  return true;
}

void RpcServer::Reply(fi_addr_t dest, uint64_t request_id, const Status& status,
                      const std::string& body, CallContext* ctx, const RequestHeader* req,
                      FrameKind kind) {
  ResponseHeader rh;
  rh.set_request_id(request_id);
  Status st = status;
  std::string_view inline_payload;
  if (st.ok() && ctx && ctx->response_payload_len_ > 0) {
    size_t n = ctx->response_payload_len_;
    const BulkRegion& out = req->bulk_out();
    size_t room = kMaxFrameSize - kFrameHeaderSize - body.size() - 256;
    if (n > options_.inline_threshold && out.len() >= n) {
      const char* src = ctx->response_payload_;
      net::PooledBuffer copy;
      void* desc = nullptr;
      if (ctx->payload_out_ && ctx->payload_out_.region()->Contains(src, n)) {
        desc = ctx->payload_out_.desc();
      } else if (ctx->payload_out_desc_ && src >= ctx->payload_out_ext_.data &&
                 src + n <= ctx->payload_out_ext_.data + ctx->payload_out_ext_len_) {
        desc = ctx->payload_out_desc_;
      } else {
        auto b = pool_->Get(n);
        if (!b.ok()) {
          st = b.status();
        } else {
          copy = std::move(b.value());
          std::memcpy(copy.data(), src, n);
          src = copy.data();
          desc = copy.desc();
        }
      }
      if (st.ok() && ctx->expired()) st = Status(Code::kTimeout, "deadline expired before reply");
      if (st.ok()) {
        st = PostAndWait(
            [&](net::Operation* op) {
              return ep_->PostWrite(dest, src, n, desc, out.addr(), out.key(), op);
            },
            10000, "RMA write of the response payload");
      }
      if (st.ok()) rh.set_bulk_out_len(n);
    } else if (n <= room && (out.len() == 0 || n <= out.len())) {
      inline_payload = std::string_view(ctx->response_payload_, n);
      rh.set_payload_len(n);
    } else {
      st = Status(Code::kTooBig, "response payload of " + std::to_string(n) +
                                     " bytes does not fit the caller's buffer of " +
                                     std::to_string(out.len()) + " bytes");
    }
  }
  rh.set_code(static_cast<uint32_t>(st.code()));
  if (!st.ok()) rh.set_message(st.message());
  if (ctx && ctx->response_map_version_) rh.set_map_version(ctx->response_map_version_);
  auto buf = pool_->Get(kMaxFrameSize);
  if (!buf.ok()) {
    LOG_ERROR("no buffer for reply: " + buf.status().ToString());
    return;
  }
  std::string_view b = st.ok() ? std::string_view(body) : std::string_view();
  auto len = BuildFrame(buf.value(), kind, rh, b, inline_payload);
  if (!len.ok()) {
    // The body itself is too large: tell the caller rather than go silent.
    rh.set_code(static_cast<uint32_t>(Code::kTooBig));
    rh.set_message("response of request " + std::to_string(request_id) + ": " +
                   len.status().message());
    rh.set_payload_len(0);
    rh.set_bulk_out_len(0);
    len = BuildFrame(buf.value(), kind, rh, {}, {});
    if (!len.ok()) return;
  }
  Status ss = SendFrame(ep_.get(), dest, std::move(buf.value()), *len, [](Status e) {
    LOG_DEBUG("reply not delivered: " + e.ToString());
  });
  if (!ss.ok()) LOG_WARN("reply to request " + std::to_string(request_id) + " failed: " + ss.ToString());
}

// -------------------------------------------------------------- RpcClient --

struct RpcClient::PendingCall {
  uint64_t id = 0;
  std::string peer;        // raw address
  std::string label;
  std::string method;
  google::protobuf::Message* response = nullptr;
  Callback done;
  uint64_t start_ns = 0;
  uint64_t deadline_ns = 0;
  void* recv_buf = nullptr;
  size_t recv_cap = 0;
  net::PooledBuffer bulk_in;   // bounce buffer for a large request payload
  net::PooledBuffer bulk_out;  // bounce buffer for a large response payload
  bool user_bulk_out = false;  // response lands directly in recv_buf
  bool uses_bulk = false;
};

struct RpcClient::PeerState {
  fi_addr_t addr = FI_ADDR_NOTAVAIL;
  std::string label;
  uint64_t last_heard_ns = 0;
  uint64_t ping_sent_ns = 0;
  int outstanding = 0;
};

namespace {
std::mutex g_credential_mu;
Credential g_default_credential;
}  // namespace

void SetDefaultCredential(const Credential& credential) {
  std::lock_guard<std::mutex> l(g_credential_mu);
  g_default_credential = credential;
}

Credential DefaultCredential() {
  std::lock_guard<std::mutex> l(g_credential_mu);
  return g_default_credential;
}

Result<std::unique_ptr<RpcClient>> RpcClient::Create(const ClientOptions& options) {
  std::unique_ptr<RpcClient> c(new RpcClient());
  c->options_ = options;
  if (c->options_.credential.tenant().empty()) c->options_.credential = DefaultCredential();
  auto ep = net::Endpoint::Open(options.fabric);
  if (!ep.ok()) return ep.status();
  c->ep_ = std::move(ep.value());
  c->pool_ = std::make_unique<net::BufferPool>(c->ep_.get());
  // Request ids start at random so a restarted client never reuses recent ones.
  std::random_device rd;
  c->next_id_ = (uint64_t{rd()} << 32 | rd()) & 0x3fffffffffffffffull;
  for (size_t i = 0; i < 16; i++) {
    auto slot = std::make_unique<RecvSlot>();
    auto b = c->pool_->Get(kMaxFrameSize);
    if (!b.ok()) return b.status();
    slot->buf = std::move(b.value());
    RpcClient* self = c.get();
    slot->op.done = [self, i](Status st, size_t len) { self->OnRecv(i, st, len); };
    c->slots_.push_back(std::move(slot));
  }
  c->ep_->SetTicker(50, [self = c.get()] { self->Tick(); });
  c->ep_->Start();
  for (auto& s : c->slots_) {
    SLUICE_RETURN_IF_ERROR(c->ep_->PostRecv(s->buf.data(), s->buf.capacity(), s->buf.desc(), &s->op));
  }
  return c;
}

RpcClient::~RpcClient() {
  if (ep_) ep_->Shutdown();
  // Calls still outstanding complete as cancelled so nobody waits forever.
  std::vector<uint64_t> ids;
  {
    std::lock_guard<std::mutex> l(mu_);
    for (auto& [id, c] : calls_) ids.push_back(id);
  }
  for (uint64_t id : ids) {
    CallResult r;
    r.status = Status(Code::kCancelled, "client shut down");
    Complete(id, r);
  }
  quarantine_.clear();
  calls_.clear();
  slots_.clear();
  user_regions_.clear();
  pool_.reset();
}

Result<Peer> RpcClient::Resolve(const std::string& host, uint16_t port) {
  auto raw = ep_->Resolve(host, port);
  if (!raw.ok()) return raw.status();
  return Peer{raw.value(), host + ":" + std::to_string(port)};
}

Status RpcClient::RegisterMemory(void* addr, size_t len) {
  auto mr = ep_->Register(addr, len);
  if (!mr.ok()) return mr.status();
  std::lock_guard<std::mutex> l(mu_);
  user_regions_.push_back(std::make_unique<net::MemoryRegion>(std::move(mr.value())));
  return Status::Ok();
}

const net::MemoryRegion* RpcClient::FindUserRegion(const void* p, size_t n) {
  for (auto& r : user_regions_) {
    if (r->Contains(p, n)) return r.get();
  }
  return nullptr;
}

size_t RpcClient::outstanding() const {
  std::lock_guard<std::mutex> l(mu_);
  return calls_.size();
}

uint64_t RpcClient::CallAsync(const Peer& peer, const std::string& method,
                              const google::protobuf::Message& request,
                              google::protobuf::Message* response, const CallOptions& options,
                              Callback done) {
  uint64_t id = next_id_++;
  auto fail = [&](Status st) {
    CallResult r;
    r.status = st.Prefix(method + " to " + peer.label);
    if (done) done(r);
    return id;
  };
  auto call = std::make_shared<PendingCall>();
  call->id = id;
  call->peer = peer.address;
  call->label = peer.label;
  call->method = method;
  call->response = response;
  call->done = std::move(done);
  call->start_ns = NowNanos();
  call->deadline_ns = options.timeout_ms ? call->start_ns + uint64_t{options.timeout_ms} * 1000000 : 0;
  call->recv_buf = options.recv_buf;
  call->recv_cap = options.recv_cap;

  RequestHeader h;
  h.set_request_id(id);
  h.set_method_id(MethodId(method));
  h.set_deadline_ms(options.timeout_ms);
  *h.mutable_credential() = options_.credential;
  h.set_map_version(options.map_version);
  h.set_reply_to(ep_->name());
  std::string_view inline_payload;
  if (options.send_len > 0) {
    h.set_payload_len(options.send_len);
    if (options.send_len <= options_.inline_threshold) {
      inline_payload = std::string_view(static_cast<const char*>(options.send_payload), options.send_len);
    } else {
      const net::MemoryRegion* mr;
      {
        std::lock_guard<std::mutex> l(mu_);
        mr = FindUserRegion(options.send_payload, options.send_len);
      }
      BulkRegion* b = h.mutable_bulk_in();
      b->set_len(options.send_len);
      if (mr) {
        b->set_addr(mr->RemoteAddr(options.send_payload));
        b->set_key(mr->key());
      } else {
        auto buf = pool_->Get(options.send_len);
        if (!buf.ok()) return fail(buf.status());
        call->bulk_in = std::move(buf.value());
        std::memcpy(call->bulk_in.data(), options.send_payload, options.send_len);
        b->set_addr(call->bulk_in.RemoteAddr(call->bulk_in.data()));
        b->set_key(call->bulk_in.key());
      }
      call->uses_bulk = true;
    }
  }
  if (options.recv_cap > options_.inline_threshold && options.recv_buf) {
    const net::MemoryRegion* mr;
    {
      std::lock_guard<std::mutex> l(mu_);
      mr = FindUserRegion(options.recv_buf, options.recv_cap);
    }
    BulkRegion* b = h.mutable_bulk_out();
    b->set_len(options.recv_cap);
    if (mr) {
      b->set_addr(mr->RemoteAddr(options.recv_buf));
      b->set_key(mr->key());
      call->user_bulk_out = true;
    } else {
      auto buf = pool_->Get(options.recv_cap);
      if (!buf.ok()) return fail(buf.status());
      call->bulk_out = std::move(buf.value());
      b->set_addr(call->bulk_out.RemoteAddr(call->bulk_out.data()));
      b->set_key(call->bulk_out.key());
    }
    call->uses_bulk = true;
  } else if (options.recv_buf && options.recv_cap > 0) {
    // Small response payloads come inline; tell the server the limit.
    h.mutable_bulk_out()->set_len(0);
  }

  std::string body;
  request.SerializeToString(&body);
  auto frame = pool_->Get(kMaxFrameSize);
  if (!frame.ok()) return fail(frame.status());
  auto len = BuildFrame(frame.value(), FrameKind::kRequest, h, body, inline_payload);
  if (!len.ok()) return fail(len.status());

  fi_addr_t dest;
  {
    std::lock_guard<std::mutex> l(mu_);
    auto& ps = peers_[peer.address];
    if (!ps) {
      auto a = ep_->Insert(peer.address);
      if (!a.ok()) {
        peers_.erase(peer.address);
        return fail(a.status());
      }
      ps = std::make_unique<PeerState>();
      ps->addr = a.value();
      ps->label = peer.label;
    }
    if (ps->outstanding == 0) ps->last_heard_ns = NowNanos();
    ps->outstanding++;
    dest = ps->addr;
    calls_[id] = call;
  }
  Status st = SendFrame(ep_.get(), dest, std::move(frame.value()), *len,
                        [this, id, label = peer.label, addr = peer.address](Status e) {
                          FailPeer(addr, "send to " + label + " failed: " + e.message());
                        });
  if (!st.ok()) {
    CallResult r;
    r.status = st.Prefix(method + " to " + peer.label);
    Complete(id, r);
  }
  return id;
}

CallResult RpcClient::Call(const Peer& peer, const std::string& method,
                           const google::protobuf::Message& request,
                           google::protobuf::Message* response, const CallOptions& options) {
  struct Sync {
    std::mutex mu;
    std::condition_variable cv;
    bool done = false;
    CallResult result;
  };
  auto s = std::make_shared<Sync>();
  CallAsync(peer, method, request, response, options, [s](const CallResult& r) {
    std::lock_guard<std::mutex> l(s->mu);
    s->result = r;
    s->done = true;
    s->cv.notify_all();
  });
  std::unique_lock<std::mutex> l(s->mu);
  s->cv.wait(l, [&] { return s->done; });
  return s->result;
}

void RpcClient::Cancel(uint64_t call_id) {
  CallResult r;
  r.status = Status(Code::kCancelled, "call cancelled by the caller");
  Complete(call_id, r);
}

void RpcClient::OnRecv(size_t slot, Status st, size_t len) {
  if (!st.ok()) return;  // endpoint closing
  RecvSlot* s = slots_[slot].get();
  HandleResponse(s->buf.data(), len);
  Status rs = ep_->PostRecv(s->buf.data(), s->buf.capacity(), s->buf.desc(), &s->op);
  if (!rs.ok()) LOG_ERROR("client cannot repost receive buffer: " + rs.ToString());
}

void RpcClient::HandleResponse(const char* data, size_t len) {
  auto frame = DecodeFrame(data, len);
  if (!frame.ok()) {
    LOG_WARN("client dropped frame: " + frame.status().message());
    return;
  }
  ResponseHeader rh;
  if ((frame->kind != FrameKind::kResponse && frame->kind != FrameKind::kPong) ||
      !rh.ParseFromArray(frame->header.data(), static_cast<int>(frame->header.size()))) {
    LOG_WARN("client dropped frame: not a valid response");
    return;
  }
  if (frame->kind == FrameKind::kPong) {
    std::lock_guard<std::mutex> l(mu_);
    auto it = pings_.find(rh.request_id());
    if (it == pings_.end()) return;
    auto p = peers_.find(it->second);
    if (p != peers_.end()) {
      p->second->last_heard_ns = NowNanos();
      p->second->ping_sent_ns = 0;
    }
    pings_.erase(it);
    return;
  }
  CallResult r;
  r.map_version = rh.map_version();
  if (rh.code() != 0) {
    Code c = rh.code() < static_cast<uint32_t>(Code::kMaxCode) ? static_cast<Code>(rh.code())
                                                                : Code::kInternal;
    r.status = Status(c, rh.message());
  }
  Complete(rh.request_id(), r, frame->payload, frame->body, rh.bulk_out_len());
}

void RpcClient::Complete(uint64_t id, CallResult result, std::string_view payload,
                         std::string_view body, uint64_t bulk_len) {
  std::shared_ptr<PendingCall> call;
  {
    std::lock_guard<std::mutex> l(mu_);
    auto it = calls_.find(id);
    if (it == calls_.end()) return;  // already completed (late reply, or cancelled)
    call = it->second;
    calls_.erase(it);
    auto p = peers_.find(call->peer);
    if (p != peers_.end()) {
      p->second->outstanding--;
      p->second->last_heard_ns = NowNanos();
    }
  }
  bool from_server = body.data() != nullptr;
  if (from_server && result.status.ok()) {
    if (call->response &&
        !call->response->ParseFromArray(body.data(), static_cast<int>(body.size()))) {
      result.status = Status(Code::kProtocol, "response body (" + std::to_string(body.size()) +
                                                  " bytes) is not a valid " +
                                                  call->response->GetTypeName());
    }
  }
  if (from_server && result.status.ok()) {
    // Payload: inline, or already written by RMA into recv_buf / bounce buffer.
    if (!payload.empty()) {
      if (payload.size() > call->recv_cap) {
        result.status = Status(Code::kTooBig, "response payload larger than the receive buffer");
      } else {
        std::memcpy(call->recv_buf, payload.data(), payload.size());
        result.payload_len = payload.size();
      }
    }
  }
  if (from_server && result.status.ok() && bulk_len > 0) {
    if (bulk_len > call->recv_cap) {
      result.status = Status(Code::kProtocol, "server reported more bulk bytes than the buffer holds");
    } else {
      if (!call->user_bulk_out) std::memcpy(call->recv_buf, call->bulk_out.data(), bulk_len);
      result.payload_len = bulk_len;
    }
  }
  if (!from_server && call->uses_bulk) {
    // The server may still touch our bounce buffers: keep them for a while.
    std::lock_guard<std::mutex> l(mu_);
    quarantine_.emplace(NowNanos() + 60ull * 1000000000ull, call);
  }
  if (!result.status.ok()) {
    result.status = result.status.Prefix(call->method + " to " + call->label);
  }
  if (call->done) call->done(result);
}

void RpcClient::FailPeer(const std::string& address, const std::string& why) {
  std::vector<uint64_t> ids;
  {
    std::lock_guard<std::mutex> l(mu_);
    for (auto& [id, c] : calls_) {
      if (c->peer == address) ids.push_back(id);
    }
    peers_.erase(address);
    for (auto it = pings_.begin(); it != pings_.end();) {
      it = it->second == address ? pings_.erase(it) : std::next(it);
    }
  }
  // The address stays in the address vector: libfabric 1.17's tcp provider
  // crashes in fi_send to an address removed with fi_av_remove (tested), and
  // re-establishes a connection by itself on the next send.
  for (uint64_t id : ids) {
    CallResult r;
    r.status = Status(Code::kUnavailable, why);
    Complete(id, r);
  }
}

void RpcClient::Tick() {
  uint64_t now = NowNanos();
  std::vector<uint64_t> expired;
  std::vector<std::pair<std::string, std::string>> dead;  // address, label
  std::vector<std::pair<uint64_t, fi_addr_t>> probes;
  {
    std::lock_guard<std::mutex> l(mu_);
    for (auto& [id, c] : calls_) {
      if (c->deadline_ns && now > c->deadline_ns) expired.push_back(id);
    }
    for (auto& [addr, ps] : peers_) {
      if (ps->outstanding <= 0) continue;
      if (ps->ping_sent_ns && now - ps->ping_sent_ns > uint64_t{options_.peer_timeout_ms} * 1000000) {
        dead.emplace_back(addr, ps->label);
      } else if (!ps->ping_sent_ns &&
                 now - ps->last_heard_ns > uint64_t{options_.probe_after_ms} * 1000000) {
        uint64_t pid = next_id_++;
        ps->ping_sent_ns = now;
        pings_[pid] = addr;
        probes.emplace_back(pid, ps->addr);
      }
    }
    while (!quarantine_.empty() && quarantine_.begin()->first < now) {
      quarantine_.erase(quarantine_.begin());
    }
  }
  for (uint64_t id : expired) {
    CallResult r;
    r.status = Status(Code::kTimeout, "deadline expired with no reply");
    Complete(id, r);
  }
  for (auto& [addr, label] : dead) {
    FailPeer(addr, "server " + label + " stopped answering (no reply to a liveness probe within " +
                       std::to_string(options_.peer_timeout_ms) + " ms)");
  }
  for (auto& [pid, dest] : probes) {
    RequestHeader h;
    h.set_request_id(pid);
    h.set_reply_to(ep_->name());
    auto buf = pool_->Get(1024);
    if (!buf.ok()) continue;
    auto len = BuildFrame(buf.value(), FrameKind::kPing, h, {}, {});
    if (!len.ok()) continue;
    Status st = SendFrame(ep_.get(), dest, std::move(buf.value()), *len, nullptr);
    if (!st.ok()) LOG_DEBUG("liveness probe not sent: " + st.ToString());
  }
}

}  // namespace sluice::rpc
