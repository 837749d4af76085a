// RPC layer: framing and status units, then a real echo server process on
// loopback over tcp and shm: concurrency, bulk payloads, deadlines,
// cancellation, hostile frames, a server killed mid-call and restarted.
#include "common/rpc.h"

#include <gtest/gtest.h>

#include <sys/resource.h>

#include <atomic>
#include <cstring>
#include <thread>

#include "common/clock.h"
#include "common/crc32c.h"
#include "tests/common/test_util.h"

namespace sluice::rpc {
namespace {

const char kEcho[] = "sluice.rpc.Echo/Echo";

// ------------------------------------------------------------ units --

std::string Frame(FrameKind kind, const std::string& header, const std::string& body,
                  const std::string& payload = "") {
  std::string f(kFrameHeaderSize, '\0');
  EncodeFrameHeader(kind, header.size(), body.size(), payload.size(), f.data());
  return f + header + body + payload;
}

TEST(Frame, RoundTrip) {
  std::string f = Frame(FrameKind::kRequest, "hdr", "body!", "pay");
  auto v = DecodeFrame(f.data(), f.size());
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  EXPECT_EQ(v->kind, FrameKind::kRequest);
  EXPECT_EQ(v->header, "hdr");
  EXPECT_EQ(v->body, "body!");
  EXPECT_EQ(v->payload, "pay");
}

TEST(Frame, RejectsHostileInput) {
  std::string good = Frame(FrameKind::kRequest, "h", "b");
  auto bad_magic = good;
  bad_magic[0] ^= 1;
  auto r = DecodeFrame(bad_magic.data(), bad_magic.size());
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("magic"), std::string::npos);

  auto bad_version = good;
  bad_version[4] = 9;
  r = DecodeFrame(bad_version.data(), bad_version.size());
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("version 9"), std::string::npos);

  r = DecodeFrame(good.data(), 10);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("truncated"), std::string::npos);

  // Lengths claiming more than was received.
  r = DecodeFrame(good.data(), good.size() - 1);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("do not match"), std::string::npos);
  auto huge = good;
  huge[12] = huge[13] = huge[14] = huge[15] = '\xff';
  r = DecodeFrame(huge.data(), huge.size());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kProtocol);

  auto bad_kind = good;
  bad_kind[5] = 42;
  r = DecodeFrame(bad_kind.data(), bad_kind.size());
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("kind 42"), std::string::npos);
}

TEST(StatusMapping, EveryCodeMapsToErrnoAndBack) {
  for (uint32_t c = 1; c < static_cast<uint32_t>(Code::kMaxCode); c++) {
    Code code = static_cast<Code>(c);
    int e = CodeToErrno(code);
    EXPECT_NE(e, 0) << CodeName(code);
    if (code != Code::kInternal && code != Code::kCorrupt) {  // both surface as EIO
      EXPECT_EQ(ErrnoToCode(e), code) << CodeName(code);
    }
  }
  EXPECT_EQ(CodeToErrno(Code::kNotFound), ENOENT);
  EXPECT_EQ(CodeToErrno(Code::kNotEmpty), ENOTEMPTY);
  EXPECT_EQ(CodeToErrno(Code::kStaleMap), ESTALE);
  EXPECT_EQ(CodeToErrno(Code::kCorrupt), EIO);
  EXPECT_EQ(ErrnoToCode(ECONNREFUSED), Code::kUnavailable);
  Status s = Status::FromErrno(ENOENT, "open /x");
  EXPECT_EQ(s.code(), Code::kNotFound);
  EXPECT_EQ(s.ToString(), "NOT_FOUND: open /x: No such file or directory");
}

TEST(Crc32c, KnownVectors) {
  // RFC 3720 test vectors.
  EXPECT_EQ(Crc32c("123456789", 9), 0xE3069283u);
  std::string zeros(32, '\0');
  EXPECT_EQ(Crc32c(zeros.data(), zeros.size()), 0x8A9136AAu);
  std::string ones(32, '\xff');
  EXPECT_EQ(Crc32c(ones.data(), ones.size()), 0x62A8AB43u);
  // Extending in pieces equals one pass.
  std::string s = "the quick brown fox jumps over the lazy dog, again and again";
  uint32_t c = Crc32cExtend(Crc32cExtend(0, s.data(), 7), s.data() + 7, s.size() - 7);
  EXPECT_EQ(c, Crc32c(s.data(), s.size()));
}

// A server and a client in this process, over tcp on loopback.
struct InProcess {
  uint16_t port = test::FreePort();
  Result<std::unique_ptr<RpcServer>> server = Status(Code::kInternal, "not created");
  Result<std::unique_ptr<RpcClient>> client = Status(Code::kInternal, "not created");
  Result<Peer> peer = Status(Code::kInternal, "not resolved");
  explicit InProcess(size_t workers) {
    ServerOptions so;
    so.fabric = {"tcp", "127.0.0.1", port};
    so.workers = workers;
    server = RpcServer::Create(so);
  }
  // After the handlers are registered.
  Status StartAndConnect() {
    SLUICE_RETURN_IF_ERROR((*server)->Start());
    ClientOptions co;
    co.fabric.provider = "tcp";
    client = RpcClient::Create(co);
    if (!client.ok()) return client.status();
    peer = (*client)->Resolve("127.0.0.1", port);
    return peer.status();
  }
};

// In-process dispatch: handlers run on at most `workers` threads at once.
TEST(Dispatch, BoundedWorkersAndUnknownMethod) {
  InProcess p(2);
  auto& server = p.server;
  ASSERT_TRUE(server.ok()) << server.status().ToString();
  std::atomic<int> running{0}, max_running{0};
  (*server)->Register<EchoRequest, EchoResponse>(
      kEcho, [&](CallContext&, const EchoRequest& req, EchoResponse* resp) {
        int now = ++running;
        int m = max_running.load();
        while (now > m && !max_running.compare_exchange_weak(m, now)) {}
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        --running;
        resp->set_data(req.data());
        return Status::Ok();
      });
  Status started = p.StartAndConnect();
  ASSERT_TRUE(started.ok()) << started.ToString();
  auto& client = p.client;
  auto& peer = p.peer;
  std::atomic<int> ok{0};
  std::vector<std::unique_ptr<EchoResponse>> resps;
  std::mutex mu;
  std::condition_variable cv;
  int done = 0;
  for (int i = 0; i < 12; i++) {
    resps.push_back(std::make_unique<EchoResponse>());
    EchoRequest req;
    req.set_data("x" + std::to_string(i));
    (*client)->CallAsync(*peer, kEcho, req, resps.back().get(), {}, [&](const CallResult& r) {
      if (r.status.ok()) ok++;
      std::lock_guard<std::mutex> l(mu);
      done++;
      cv.notify_all();
    });
  }
  {
    std::unique_lock<std::mutex> l(mu);
    cv.wait_for(l, std::chrono::seconds(10), [&] { return done == 12; });
  }
  EXPECT_EQ(ok.load(), 12);
  EXPECT_EQ(max_running.load(), 2);
  for (int i = 0; i < 12; i++) EXPECT_EQ(resps[i]->data(), "x" + std::to_string(i));

  EchoRequest req;
  EchoResponse resp;
  auto r = (*client)->Call(*peer, "sluice.rpc.Echo/NoSuchMethod", req, &resp);
  EXPECT_EQ(r.status.code(), Code::kUnsupported);
  EXPECT_NE(r.status.message().find("unknown method"), std::string::npos) << r.status.ToString();
}

// Inline handlers run on the progress thread; one that defers hands the
// request to a worker's handler, which then answers it.
TEST(Dispatch, InlineHandlersAnswerOrDefer) {
  InProcess p(1);
  auto& server = p.server;
  ASSERT_TRUE(server.ok()) << server.status().ToString();
  std::atomic<int> by_worker{0}, inline_calls{0};
  (*server)->Register<EchoRequest, EchoResponse>(
      kEcho, [&](CallContext& ctx, const EchoRequest& req, EchoResponse* resp) {
        EXPECT_FALSE(ctx.on_progress_thread());
        by_worker++;
        resp->set_data("worker:" + req.data());
        return Status::Ok();
      });
  (*server)->RegisterInline<EchoRequest, EchoResponse>(
      kEcho, [&](CallContext& ctx, const EchoRequest& req, EchoResponse* resp) {
        EXPECT_TRUE(ctx.on_progress_thread());
        inline_calls++;
        if (req.data() == "defer") return ctx.Defer();
        if (req.data() == "fail") return Status(Code::kNotFound, "no such thing inline");
        resp->set_data("inline:" + req.data());
        return Status::Ok();
      });
  Status started = p.StartAndConnect();
  ASSERT_TRUE(started.ok()) << started.ToString();
  auto& client = p.client;
  auto& peer = p.peer;
  auto call = [&](const std::string& data, EchoResponse* resp) {
    EchoRequest req;
    req.set_data(data);
    return (*client)->Call(*peer, kEcho, req, resp, CallOptions{5000});
  };
  EchoResponse r1, r2, r3;
  ASSERT_TRUE(call("a", &r1).status.ok());
  EXPECT_EQ(r1.data(), "inline:a");
  EXPECT_EQ(by_worker.load(), 0);
  ASSERT_TRUE(call("defer", &r2).status.ok());
  EXPECT_EQ(r2.data(), "worker:defer");
  EXPECT_EQ(by_worker.load(), 1);
  auto bad = call("fail", &r3);
  EXPECT_EQ(bad.status.code(), Code::kNotFound);
  EXPECT_NE(bad.status.message().find("no such thing inline"), std::string::npos);
  EXPECT_EQ(inline_calls.load(), 3);
  EXPECT_EQ((*server)->stats().requests.load(), 3u);
}

// ------------------------------------------- two processes, per provider --

class RpcProcessTest : public ::testing::TestWithParam<std::string> {
 protected:
  void StartServer() {
    // A log per start: "READY" from the previous incarnation must not count.
    log_ = dir_.path() + "/server." + std::to_string(starts_++) + ".log";
    server_ = test::Child::Spawn({test::BinDir() + "/echo_server", GetParam(), "127.0.0.1",
                                  std::to_string(port_)},
                                 log_);
    ASSERT_TRUE(test::WaitForText(log_, "READY")) << "echo_server did not start; see " << log_;
  }
  void SetUp() override {
    port_ = test::FreePort();
    StartServer();
    ClientOptions co;
    co.fabric.provider = GetParam();
    auto c = RpcClient::Create(co);
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    client_ = std::move(c.value());
    auto p = client_->Resolve("127.0.0.1", port_);
    ASSERT_TRUE(p.ok()) << p.status().ToString();
    peer_ = *p;
  }
  CallResult Echo(const std::string& data, EchoResponse* resp, CallOptions opts = {},
                  uint32_t sleep_ms = 0, bool bulk = false) {
    EchoRequest req;
    req.set_data(data);
    req.set_sleep_ms(sleep_ms);
    req.set_bulk(bulk);
    req.set_want_crc(true);
    return client_->Call(peer_, kEcho, req, resp, opts);
  }

  test::TempDir dir_;
  uint16_t port_ = 0;
  std::string log_;
  int starts_ = 0;
  test::Child server_;
  std::unique_ptr<RpcClient> client_;
  Peer peer_;
};

TEST_P(RpcProcessTest, ManyConcurrentCalls) {
  constexpr int kThreads = 4, kPerThread = 300;
  std::atomic<int> good{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < kThreads; t++) {
    ts.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; i++) {
        EchoResponse resp;
        std::string d = std::to_string(t) + ":" + std::to_string(i);
        auto r = Echo(d, &resp);
        if (r.status.ok() && resp.data() == d) good++;
      }
    });
  }
  for (auto& t : ts) t.join();
  EXPECT_EQ(good.load(), kThreads * kPerThread);

  // And many in flight at once from one thread.
  std::vector<EchoResponse> resps(500);
  std::atomic<int> done{0}, ok{0};
  for (int i = 0; i < 500; i++) {
    EchoRequest req;
    req.set_data(std::to_string(i));
    client_->CallAsync(peer_, kEcho, req, &resps[i], {}, [&](const CallResult& r) {
      if (r.status.ok()) ok++;
      done++;
    });
  }
  for (int i = 0; i < 1000 && done < 500; i++) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(ok.load(), 500);
  for (int i = 0; i < 500; i++) EXPECT_EQ(resps[i].data(), std::to_string(i));
}

TEST_P(RpcProcessTest, PayloadsInlineAndByRma) {
  for (size_t n : {size_t{1}, size_t{4096}, size_t{16384}, size_t{16385}, size_t{1} << 20,
                   size_t{16} << 20}) {
    std::vector<char> out(n), in(n + 7, 0);
    for (size_t i = 0; i < n; i++) out[i] = static_cast<char>(i * 131 + n);
    CallOptions o;
    o.send_payload = out.data();
    o.send_len = n;
    o.recv_buf = in.data();
    o.recv_cap = in.size();
    EchoResponse resp;
    auto r = Echo("p", &resp, o, 0, true);
    ASSERT_TRUE(r.status.ok()) << n << ": " << r.status.ToString();
    EXPECT_EQ(resp.bulk_len(), n);
    EXPECT_EQ(resp.crc(), Crc32c(out.data(), n));
    ASSERT_EQ(r.payload_len, n);
    EXPECT_EQ(0, std::memcmp(in.data(), out.data(), n)) << n;
  }
  // Zero-copy from registered user memory.
  size_t n = 4 << 20;
  auto* mem = static_cast<char*>(aligned_alloc(4096, 2 * n));
  Status reg = client_->RegisterMemory(mem, 2 * n);
  ASSERT_TRUE(reg.ok()) << reg.ToString();
  for (size_t i = 0; i < n; i++) mem[i] = static_cast<char>(i * 7);
  std::memset(mem + n, 0, n);
  CallOptions o;
  o.send_payload = mem;
  o.send_len = n;
  o.recv_buf = mem + n;
  o.recv_cap = n;
  EchoResponse resp;
  auto r = Echo("z", &resp, o, 0, true);
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_EQ(0, std::memcmp(mem, mem + n, n));
  // A response larger than the receive buffer is refused, not truncated.
  o.recv_cap = n / 2;
  r = Echo("small", &resp, o, 0, true);
  EXPECT_EQ(r.status.code(), Code::kTooBig) << r.status.ToString();
  free(mem);
}

// More calls with RMA payloads in flight to one server than it has receive
// buffers: every one completes with its bytes. (The server used to keep a
// request in its receive buffer until a handler took it; with > 32 calls in
// flight the payloads the handlers waited for sat behind unread requests and
// the connection hung.)
TEST_P(RpcProcessTest, ManyRmaPayloadsInFlightAtOnce) {
  constexpr int kCalls = 128;
  constexpr size_t kLen = 64 << 10;  // above the inline threshold: moved by RMA
  std::vector<std::vector<char>> out(kCalls), in(kCalls);
  std::vector<EchoResponse> resps(kCalls);
  std::atomic<int> done{0}, ok{0};
  for (int i = 0; i < kCalls; i++) {
    out[i].resize(kLen);
    for (size_t k = 0; k < kLen; k++) out[i][k] = static_cast<char>(k * 31 + i);
    in[i].assign(kLen, 0);
    EchoRequest req;
    req.set_data(std::to_string(i));
    req.set_bulk(true);
    req.set_want_crc(true);
    CallOptions o;
    o.timeout_ms = 30000;
    o.send_payload = out[i].data();
    o.send_len = kLen;
    o.recv_buf = in[i].data();
    o.recv_cap = kLen;
    client_->CallAsync(peer_, kEcho, req, &resps[i], o, [&](const CallResult& r) {
      if (r.status.ok() && r.payload_len == kLen) ok++;
      done++;
    });
  }
  for (int i = 0; i < 3000 && done < kCalls; i++) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  ASSERT_EQ(done.load(), kCalls) << "calls still outstanding after 30 s: the connection hung";
  EXPECT_EQ(ok.load(), kCalls);
  for (int i = 0; i < kCalls; i++) EXPECT_EQ(0, std::memcmp(in[i].data(), out[i].data(), kLen)) << i;
}

TEST_P(RpcProcessTest, ErrorsCarryCodeAndMessage) {
  EchoRequest req;
  req.set_data("/a/b");
  req.set_fail_code(static_cast<uint32_t>(Code::kNotFound));
  EchoResponse resp;
  auto r = client_->Call(peer_, kEcho, req, &resp);
  EXPECT_EQ(r.status.code(), Code::kNotFound);
  EXPECT_EQ(r.status.to_errno(), ENOENT);
  EXPECT_NE(r.status.message().find("/a/b"), std::string::npos) << r.status.ToString();
  EXPECT_NE(r.status.message().find(kEcho), std::string::npos) << r.status.ToString();
}

TEST_P(RpcProcessTest, DeadlineExpires) {
  EchoResponse resp;
  CallOptions o;
  o.timeout_ms = 300;
  uint64_t t0 = NowMillis();
  auto r = Echo("slow", &resp, o, 3000);
  uint64_t took = NowMillis() - t0;
  EXPECT_EQ(r.status.code(), Code::kTimeout) << r.status.ToString();
  EXPECT_LT(took, 1500u);
  EXPECT_GE(took, 290u);
  // The server keeps serving.
  r = Echo("after", &resp);
  EXPECT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_EQ(resp.data(), "after");
}

TEST_P(RpcProcessTest, Cancellation) {
  EchoRequest req;
  req.set_sleep_ms(2000);
  EchoResponse resp;
  std::atomic<int> code{-1};
  uint64_t t0 = NowMillis();
  uint64_t id = client_->CallAsync(peer_, kEcho, req, &resp, {}, [&](const CallResult& r) {
    code = static_cast<int>(r.status.code());
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  client_->Cancel(id);
  EXPECT_EQ(code.load(), static_cast<int>(Code::kCancelled));
  EXPECT_LT(NowMillis() - t0, 1000u);
  client_->Cancel(id);  // twice is harmless
  EXPECT_EQ(client_->outstanding(), 0u);
}

TEST_P(RpcProcessTest, ServerKilledMidCallThenRestarted) {
  EchoRequest req;
  req.set_sleep_ms(10000);
  EchoResponse resp;
  std::atomic<int> code{-1};
  std::atomic<uint64_t> when{0};
  CallOptions o;
  o.timeout_ms = 60000;
  client_->CallAsync(peer_, kEcho, req, &resp, o, [&](const CallResult& r) {
    code = static_cast<int>(r.status.code());
    when = NowMillis();
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  uint64_t killed = NowMillis();
  server_.Kill(9);
  for (int i = 0; i < 500 && code < 0; i++) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  ASSERT_EQ(code.load(), static_cast<int>(Code::kUnavailable));
  EXPECT_LT(when - killed, 4000u) << "a dead server must be noticed promptly";

  // Restart on the same address: the same client reconnects.
  if (GetParam() == "shm") {
    // A killed shm server leaves its region behind; the restart must cope.
  }
  StartServer();
  EchoResponse r2;
  CallResult res;
  for (int i = 0; i < 20; i++) {
    res = Echo("again", &r2, CallOptions{2000});
    if (res.status.ok()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_TRUE(res.status.ok()) << res.status.ToString();
  EXPECT_EQ(r2.data(), "again");
}

// A call to a server that died after an earlier call succeeded fails cleanly
// (no crash, prompt error), and calls work again once it is back.
TEST_P(RpcProcessTest, CallAfterServerDiedBetweenCalls) {
  EchoResponse resp;
  ASSERT_TRUE(Echo("first", &resp).status.ok());
  server_.Kill(9);
  for (int i = 0; i < 3; i++) {
    uint64_t t0 = NowMillis();
    auto r = Echo("to the dead", &resp, CallOptions{20000});
    EXPECT_FALSE(r.status.ok());
    EXPECT_LT(NowMillis() - t0, 5000u) << r.status.ToString();
  }
  StartServer();
  CallResult res;
  for (int i = 0; i < 30; i++) {
    res = Echo("back", &resp, CallOptions{2000});
    if (res.status.ok()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_TRUE(res.status.ok()) << res.status.ToString();
}

// A client whose server is gone waits; it does not burn a core trying to
// reach it (two cores: nothing may spin). While a call to the dead server is
// failing, libfabric's tcp provider retries the connection in a loop (about
// 20% of a core here until the liveness probe gives up, docs/transport.md);
// once the calls have failed, the client costs what it cost idle before.
TEST_P(RpcProcessTest, DeadServerCostsNoCpu) {
  auto cpu_ms = [] {
    rusage u{};
    getrusage(RUSAGE_SELF, &u);
    return (u.ru_utime.tv_sec + u.ru_stime.tv_sec) * 1000.0 +
           (u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1000.0;
  };
  auto idle_ms = [&] {  // CPU of 2 s with no call outstanding
    double c = cpu_ms();
    std::this_thread::sleep_for(std::chrono::milliseconds(2000));
    return cpu_ms() - c;
  };
  EchoResponse resp;
  ASSERT_TRUE(Echo("first", &resp).status.ok());
  double idle_before = idle_ms();  // shm polls its CQ with a sleeping back-off
  server_.Kill(9);
  double c0 = cpu_ms();
  uint64_t t0 = NowMillis();
  for (int i = 0; i < 2; i++) EXPECT_FALSE(Echo("to the dead", &resp, CallOptions{20000}).status.ok());
  double failing = cpu_ms() - c0;
  uint64_t wall = NowMillis() - t0;
  EXPECT_LT(failing, 0.6 * static_cast<double>(wall))
      << failing << " ms of CPU in " << wall << " ms of calls to a dead server";
  double idle_after = idle_ms();
  EXPECT_LT(idle_after, idle_before + 100.0)
      << idle_after << " ms of CPU in 2 s with no call outstanding after the failures, "
      << idle_before << " ms before the server died";
}

// Hostile frames from a raw endpoint: each is refused with a clear log line or
// an error reply, and the server keeps serving everyone.
TEST_P(RpcProcessTest, HostileFramesDoNotHurtOthers) {
  auto ep = net::Endpoint::Open(net::FabricOptions{GetParam(), "", 0});
  ASSERT_TRUE(ep.ok());
  (*ep)->Start();
  net::BufferPool pool(ep->get());
  auto dest = (*ep)->Insert(peer_.address);
  ASSERT_TRUE(dest.ok());
  auto send = [&](const std::string& bytes) {
    auto b = pool.Get(std::max<size_t>(bytes.size(), 1));
    ASSERT_TRUE(b.ok());
    std::memcpy(b->data(), bytes.data(), bytes.size());
    std::atomic<bool> done{false};
    net::Operation op;
    op.done = [&](Status, size_t) { done = true; };
    ASSERT_TRUE((*ep)->PostSend(*dest, b->data(), bytes.size(), b->desc(), &op).ok());
    for (int i = 0; i < 500 && !done; i++) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  };
  RequestHeader h;
  h.set_request_id(77);
  h.set_method_id(MethodId(kEcho));
  h.set_reply_to((*ep)->name());
  std::string hs = h.SerializeAsString();
  std::string good = Frame(FrameKind::kRequest, hs, "");
  std::string bad_magic = good;
  bad_magic[1] = 'X';
  send(bad_magic);
  std::string bad_version = good;
  bad_version[4] = 7;
  send(bad_version);
  send(good.substr(0, 11));                                      // truncated header
  send(good.substr(0, good.size() - 3));                         // lengths lie
  send(Frame(FrameKind::kRequest, "\xff\xff\xff garbage", ""));  // header not protobuf
  send(Frame(FrameKind::kResponse, hs, ""));                     // wrong direction

  // A valid header with a body that is not an EchoRequest gets a PROTOCOL reply.
  auto rb = pool.Get(kMaxFrameSize);
  ASSERT_TRUE(rb.ok());
  std::atomic<size_t> got{0};
  net::Operation rop;
  rop.done = [&](Status st, size_t n) { got = st.ok() ? n : 1; };
  ASSERT_TRUE((*ep)->PostRecv(rb->data(), rb->capacity(), rb->desc(), &rop).ok());
  send(Frame(FrameKind::kRequest, hs, std::string("\x0a\xff\xff\xff\xff\x0f", 6)));
  for (int i = 0; i < 500 && got == 0; i++) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  ASSERT_GT(got.load(), kFrameHeaderSize);
  auto v = DecodeFrame(rb->data(), got);
  ASSERT_TRUE(v.ok());
  ResponseHeader rh;
  ASSERT_TRUE(rh.ParseFromArray(v->header.data(), v->header.size()));
  EXPECT_EQ(rh.request_id(), 77u);
  EXPECT_EQ(rh.code(), static_cast<uint32_t>(Code::kProtocol));
  EXPECT_NE(rh.message().find("not a valid"), std::string::npos) << rh.message();

  // Everyone else is still served.
  EchoResponse resp;
  auto r = Echo("still here", &resp);
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_EQ(resp.data(), "still here");
  (*ep)->Shutdown();
  // The server logged what it dropped and why.
  EXPECT_TRUE(test::WaitForText(log_, "bad frame magic", 2000));
  EXPECT_TRUE(test::WaitForText(log_, "unsupported frame version 7", 2000));
  EXPECT_TRUE(test::WaitForText(log_, "truncated frame", 2000));
  EXPECT_TRUE(test::WaitForText(log_, "do not match", 2000));
}

INSTANTIATE_TEST_SUITE_P(Providers, RpcProcessTest, ::testing::Values("tcp", "shm"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace sluice::rpc
