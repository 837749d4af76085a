// A server for RPC tests and the transport benchmark:
//   echo_server PROVIDER HOST PORT [WORKERS]
// Serves sluice.rpc.Echo/Echo (echo, sleep, fail on request, echo the payload
// back) and prints "READY" once serving.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <csignal>
#include <thread>

#include "common/crc32c.h"
#include "common/rpc.h"

using namespace sluice;

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: %s PROVIDER HOST PORT [WORKERS]\n", argv[0]);
    return 2;
  }
  rpc::ServerOptions opts;
  opts.fabric.provider = argv[1];
  opts.fabric.host = argv[2];
  opts.fabric.port = static_cast<uint16_t>(std::atoi(argv[3]));
  if (argc > 4) opts.workers = std::atoi(argv[4]);
  auto server = rpc::RpcServer::Create(opts);
  if (!server.ok()) {
    std::fprintf(stderr, "echo_server: %s\n", server.status().ToString().c_str());
    return 1;
  }
  (*server)->Register<rpc::EchoRequest, rpc::EchoResponse>(
      "sluice.rpc.Echo/Echo",
      [](rpc::CallContext& ctx, const rpc::EchoRequest& req, rpc::EchoResponse* resp) -> Status {
        if (req.sleep_ms()) std::this_thread::sleep_for(std::chrono::milliseconds(req.sleep_ms()));
        if (req.fail_code()) {
          return Status(static_cast<Code>(req.fail_code()), "failed on request: " + req.data());
        }
        resp->set_data(req.data());
        auto p = ctx.request_payload();
        resp->set_bulk_len(p.size());
        if (req.want_crc()) resp->set_crc(Crc32c(p.data(), p.size()));
        if (req.bulk() && !p.empty()) ctx.SetResponsePayload(p.data(), p.size());
        return Status::Ok();
      });
  Status st = (*server)->Start();
  if (!st.ok()) {
    std::fprintf(stderr, "echo_server: %s\n", st.ToString().c_str());
    return 1;
  }
  std::printf("READY\n");
  std::fflush(stdout);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  int sig;
  sigwait(&set, &sig);
  return 0;
}
