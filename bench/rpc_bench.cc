// RPC benchmark: the RPC layer against a bare libfabric exchange of our own,
// per provider, measured in the same run between two processes on loopback.
//
//   rpc_bench [--providers tcp,shm,tcp;ofi_rxm] [--rounds 5]
//
// Small: 64-byte round trip (RPC echo call vs bare send/recv ping-pong).
// Bulk: moving N bytes client -> server (RPC call with an N-byte payload,
// pulled by the server with fi_read, vs a bare descriptor message + fi_read +
// ack). Prints medians over rounds and the ratio RPC/bare.
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "common/rpc.h"

using namespace sluice;

namespace {

const char kEcho[] = "sluice.rpc.Echo/Echo";

// ---------------------------------------------------------- bare exchange --

struct Signal {
  std::mutex mu;
  std::condition_variable cv;
  int count = 0;
  Status st;
  void Post(Status s) {
    std::lock_guard<std::mutex> l(mu);
    count++;
    if (!s.ok()) st = s;
    cv.notify_all();
  }
  // A bare exchange has no retries: a lost message would hang the benchmark,
  // so give up loudly instead.
  void WaitForever(int n) {
    std::unique_lock<std::mutex> l(mu);
    cv.wait(l, [&] { return count >= n; });
  }
  void WaitFor(int n) {
    std::unique_lock<std::mutex> l(mu);
    if (!cv.wait_for(l, std::chrono::seconds(20), [&] { return count >= n; })) {
      std::fprintf(stderr, "rpc_bench: bare exchange got no completion in 20 s (a lost message); rerun\n");
      std::exit(1);
    }
  }
};

void MustPost(const Status& st, const char* what) {
  if (!st.ok()) {
    std::fprintf(stderr, "rpc_bench: bare exchange %s failed: %s\n", what, st.ToString().c_str());
    std::exit(1);
  }
}

struct BareMsg {
  uint64_t addr, len, key;
  uint32_t name_len;
  char name[200];
};

// The bare server: receive a descriptor, fi_read the bytes if any, send an ack.
int ServeBare(const std::string& prov, uint16_t port) {
  auto ep = net::Endpoint::Open(net::FabricOptions{prov, "127.0.0.1", port});
  if (!ep.ok()) {
    std::fprintf(stderr, "bare server: %s\n", ep.status().ToString().c_str());
    return 1;
  }
  (*ep)->Start();
  net::BufferPool pool(ep->get());
  auto rbuf = pool.Get(4096).value();
  auto data = pool.Get(16 << 20).value();
  auto ack = pool.Get(4096).value();
  std::printf("READY\n");
  std::fflush(stdout);
  for (;;) {
    Signal got;
    size_t got_len = 0;
    net::Operation rop;
    rop.done = [&](Status s, size_t n) {
      got_len = n;
      got.Post(s);
    };
    if (!(*ep)->PostRecv(rbuf.data(), 4096, rbuf.desc(), &rop).ok()) return 1;
    got.WaitForever(1);  // the client may be busy with the RPC half
    BareMsg m;
    std::memcpy(&m, rbuf.data(), std::min(got_len, sizeof m));
    auto peer = (*ep)->Insert(std::string(m.name, m.name_len));
    if (!peer.ok()) return 1;
    if (m.len > 0) {
      Signal rd;
      net::Operation op;
      op.done = [&](Status s, size_t) { rd.Post(s); };
      if (!(*ep)->PostRead(*peer, data.data(), m.len, data.desc(), m.addr, m.key, &op).ok()) return 1;
      rd.WaitFor(1);
    }
    Signal sd;
    net::Operation sop;
    sop.done = [&](Status s, size_t) { sd.Post(s); };
    if (!(*ep)->PostSend(*peer, ack.data(), 64, ack.desc(), &sop).ok()) return 1;
    sd.WaitFor(1);
  }
}

struct BareClient {
  std::unique_ptr<net::Endpoint> ep;
  std::unique_ptr<net::BufferPool> pool;
  net::PooledBuffer msg, ack, data;
  fi_addr_t server;

  static std::unique_ptr<BareClient> Connect(const std::string& prov, uint16_t port) {
    auto c = std::make_unique<BareClient>();
    c->ep = std::move(net::Endpoint::Open(net::FabricOptions{prov, "", 0}).value());
    c->ep->Start();
    c->pool = std::make_unique<net::BufferPool>(c->ep.get());
    c->msg = c->pool->Get(4096).value();
    c->ack = c->pool->Get(4096).value();
    c->data = c->pool->Get(16 << 20).value();
    std::memset(c->data.data(), 0x5a, 16 << 20);
    c->server = c->ep->Insert(c->ep->Resolve("127.0.0.1", port).value()).value();
    return c;
  }
  // One exchange: descriptor (+ server's fi_read of len bytes) + ack.
  void Exchange(size_t len) {
    Signal s;
    net::Operation rop, sop;
    rop.done = [&](Status st, size_t) { s.Post(st); };
    sop.done = [&](Status st, size_t) { s.Post(st); };
    MustPost(ep->PostRecv(ack.data(), 4096, ack.desc(), &rop), "receive");
    BareMsg m{};
    m.addr = len ? data.RemoteAddr(data.data()) : 0;
    m.len = len;
    m.key = data.key();
    m.name_len = static_cast<uint32_t>(ep->name().size());
    std::memcpy(m.name, ep->name().data(), m.name_len);
    size_t n = len ? sizeof m : 64;  // small case: a 64-byte message
    if (!len) {
      std::memcpy(msg.data(), &m, sizeof m);
      n = offsetof(BareMsg, name) + m.name_len;
      n = std::max<size_t>(n, 64);
    } else {
      std::memcpy(msg.data(), &m, sizeof m);
    }
    MustPost(ep->PostSend(server, msg.data(), n, msg.desc(), &sop), "send");
    s.WaitFor(2);
  }
};

// ---------------------------------------------------------------- helpers --

pid_t Spawn(const std::vector<std::string>& argv, const std::string& log) {
  pid_t pid = fork();
  if (pid == 0) {
    FILE* f = std::freopen(log.c_str(), "w", stdout);
    (void)f;
    std::vector<char*> a;
    for (auto& s : argv) a.push_back(const_cast<char*>(s.c_str()));
    a.push_back(nullptr);
    execv(a[0], a.data());
    _exit(127);
  }
  return pid;
}

bool WaitReady(const std::string& log) {
  for (int i = 0; i < 500; i++) {
    FILE* f = std::fopen(log.c_str(), "r");
    if (f) {
      char buf[64] = {};
      size_t n = std::fread(buf, 1, sizeof buf - 1, f);
      std::fclose(f);
      if (n && std::strstr(buf, "READY")) return true;
    }
    usleep(20000);
  }
  return false;
}

uint16_t PickPort() { return static_cast<uint16_t>(20000 + (getpid() * 7919 + NowNanos()) % 30000); }

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

std::string SelfDir() {
  char buf[4096];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  buf[n > 0 ? n : 0] = 0;
  std::string s(buf);
  return s.substr(0, s.rfind('/'));
}

}  // namespace

int main(int argc, char** argv) {
  std::string self = SelfDir() + "/rpc_bench";
  if (argc >= 4 && std::string(argv[1]) == "--serve-bare") return ServeBare(argv[2], std::atoi(argv[3]));

  std::vector<std::string> providers = {"tcp", "tcp;ofi_rxm", "shm"};
  int rounds = 5;
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    if (a == "--rounds" && i + 1 < argc) rounds = std::atoi(argv[++i]);
    if (a == "--providers" && i + 1 < argc) {
      providers.clear();
      std::string list = argv[++i];
      size_t p = 0;
      while (p <= list.size()) {
        size_t c = list.find(',', p);
        if (c == std::string::npos) c = list.size();
        providers.push_back(list.substr(p, c - p));
        p = c + 1;
      }
    }
  }
  auto available = net::AvailableProviders();
  std::printf("Sluice RPC benchmark: RPC layer vs bare libfabric exchange, same run, loopback\n");
  std::printf("medians of %d rounds; bulk = client->server payload pulled by fi_read\n\n", rounds);
  std::printf("%-12s %-10s %14s %14s %8s %s\n", "provider", "test", "rpc", "bare", "ratio", "target");
  const std::vector<size_t> sizes = {64 << 10, 1 << 20, 16 << 20};
  for (const auto& prov : providers) {
    if (std::find(available.begin(), available.end(), prov) == available.end()) {
      std::printf("%-12s not available on this machine\n", prov.c_str());
      continue;
    }
    std::string dir = "/tmp/rpc_bench." + std::to_string(getpid());
    std::string mk = "mkdir -p " + dir;
    if (std::system(mk.c_str()) != 0) return 1;
    uint16_t rport = PickPort(), bport = static_cast<uint16_t>(rport + 1);
    pid_t rpid = Spawn({SelfDir() + "/echo_server", prov, "127.0.0.1", std::to_string(rport), "2"},
                       dir + "/rpc.log");
    pid_t bpid = Spawn({self, "--serve-bare", prov, std::to_string(bport)}, dir + "/bare.log");
    if (!WaitReady(dir + "/rpc.log") || !WaitReady(dir + "/bare.log")) {
      std::printf("%-12s servers did not start (see %s)\n", prov.c_str(), dir.c_str());
      kill(rpid, SIGKILL);
      kill(bpid, SIGKILL);
      continue;
    }
    rpc::ClientOptions co;
    co.fabric.provider = prov;
    auto client = std::move(rpc::RpcClient::Create(co).value());
    auto peer = client->Resolve("127.0.0.1", rport).value();
    auto bare = BareClient::Connect(prov, bport);
    size_t maxn = 16 << 20;
    auto* mem = static_cast<char*>(aligned_alloc(4096, maxn));
    std::memset(mem, 0x5a, maxn);
    (void)client->RegisterMemory(mem, maxn);

    // Small round trip.
    std::vector<double> rpc_us, bare_us;
    int iters = 2000;
    for (int r = 0; r < rounds; r++) {
      rpc::EchoRequest req;
      req.set_data(std::string(64, 'x'));
      rpc::EchoResponse resp;
      for (int i = 0; i < 100; i++) client->Call(peer, kEcho, req, &resp);
      uint64_t t0 = NowNanos();
      for (int i = 0; i < iters; i++) client->Call(peer, kEcho, req, &resp);
      rpc_us.push_back((NowNanos() - t0) / 1e3 / iters);
      for (int i = 0; i < 100; i++) bare->Exchange(0);
      t0 = NowNanos();
      for (int i = 0; i < iters; i++) bare->Exchange(0);
      bare_us.push_back((NowNanos() - t0) / 1e3 / iters);
    }
    double rs = Median(rpc_us), bs = Median(bare_us);
    std::printf("%-12s %-10s %11.1f us %11.1f us %8.2f %s\n", prov.c_str(), "rtt 64B", rs, bs,
                rs / bs, "<= 1.5");
    for (size_t n : sizes) {
      std::vector<double> rg, bg;
      int it = n >= (16u << 20) ? 20 : n >= (1u << 20) ? 100 : 500;
      for (int r = 0; r < rounds; r++) {
        rpc::EchoRequest req;
        rpc::EchoResponse resp;
        rpc::CallOptions o;
        o.send_payload = mem;
        o.send_len = n;
        client->Call(peer, kEcho, req, &resp, o);
        uint64_t t0 = NowNanos();
        for (int i = 0; i < it; i++) {
          auto res = client->Call(peer, kEcho, req, &resp, o);
          if (!res.status.ok()) {
            std::fprintf(stderr, "rpc call failed: %s\n", res.status.ToString().c_str());
            return 1;
          }
        }
        rg.push_back(n * it / ((NowNanos() - t0) / 1e9) / 1e9);
        bare->Exchange(n);
        t0 = NowNanos();
        for (int i = 0; i < it; i++) bare->Exchange(n);
        bg.push_back(n * it / ((NowNanos() - t0) / 1e9) / 1e9);
      }
      double rm = Median(rg), bm = Median(bg);
      char label[32];
      std::snprintf(label, sizeof label, "bulk %zuK", n >> 10);
      std::printf("%-12s %-10s %9.2f GB/s %9.2f GB/s %8.2f %s\n", prov.c_str(), label, rm, bm,
                  rm / bm, n >= (1u << 20) ? ">= 0.8" : "");
    }
    client.reset();
    bare.reset();
    free(mem);
    kill(rpid, SIGKILL);
    kill(bpid, SIGKILL);
    waitpid(rpid, nullptr, 0);
    waitpid(bpid, nullptr, 0);
    std::string rm = "rm -rf " + dir;
    if (std::system(rm.c_str()) != 0) return 1;
  }
  return 0;
}
