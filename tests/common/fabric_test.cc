// Two endpoints in one process exchange a message and move bytes by RMA,
// on every provider available here.
#include "common/fabric.h"

#include <gtest/gtest.h>

#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <mutex>

#include "tests/common/test_util.h"

namespace sluice::net {
namespace {

struct Waiter {
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  Status status;
  size_t len = 0;
  Operation op;
  Waiter() {
    op.done = [this](Status s, size_t n) {
      std::lock_guard<std::mutex> l(mu);
      status = s;
      len = n;
      done = true;
      cv.notify_all();
    };
  }
  bool Wait(int ms = 5000) {
    std::unique_lock<std::mutex> l(mu);
    return cv.wait_for(l, std::chrono::milliseconds(ms), [&] { return done; });
  }
};

class FabricTest : public ::testing::TestWithParam<std::string> {};

TEST_P(FabricTest, SendRecvAndRma) {
  uint16_t port = test::FreePort();
  FabricOptions so{GetParam(), "127.0.0.1", port};
  auto server = Endpoint::Open(so);
  ASSERT_TRUE(server.ok()) << server.status().ToString();
  auto client = Endpoint::Open(FabricOptions{GetParam(), "", 0});
  ASSERT_TRUE(client.ok()) << client.status().ToString();
  (*server)->Start();
  (*client)->Start();

  std::vector<char> sbuf(1 << 20), cbuf(1 << 20);
  auto smr = (*server)->Register(sbuf.data(), sbuf.size());
  auto cmr = (*client)->Register(cbuf.data(), cbuf.size());
  ASSERT_TRUE(smr.ok() && cmr.ok());

  Waiter recv;
  ASSERT_TRUE((*server)->PostRecv(sbuf.data(), 4096, smr->desc(), &recv.op).ok());

  auto raw = (*client)->Resolve("127.0.0.1", port);
  ASSERT_TRUE(raw.ok()) << raw.status().ToString();
  auto dest = (*client)->Insert(*raw);
  ASSERT_TRUE(dest.ok());
  // The client tells the server its address and a region to read.
  std::string name = (*client)->name();
  for (size_t i = 0; i < cbuf.size(); i++) cbuf[i] = static_cast<char>(i * 7 + 3);
  uint64_t desc[3] = {cmr->RemoteAddr(cbuf.data() + 65536), 512 * 1024, cmr->key()};
  std::memcpy(cbuf.data(), desc, sizeof desc);
  std::memcpy(cbuf.data() + sizeof desc, name.data(), name.size());
  Waiter send;
  ASSERT_TRUE((*client)->PostSend(*dest, cbuf.data(), sizeof desc + name.size(), cmr->desc(),
                                  &send.op).ok());
  ASSERT_TRUE(send.Wait());
  ASSERT_TRUE(send.status.ok()) << send.status.ToString();
  ASSERT_TRUE(recv.Wait());
  ASSERT_EQ(recv.len, sizeof desc + name.size());

  uint64_t got[3];
  std::memcpy(got, sbuf.data(), sizeof got);
  auto back = (*server)->Insert(std::string(sbuf.data() + sizeof got, recv.len - sizeof got));
  ASSERT_TRUE(back.ok());
  Waiter rd;
  ASSERT_TRUE((*server)->PostRead(*back, sbuf.data() + 4096, got[1], smr->desc(), got[0], got[2],
                                  &rd.op).ok());
  ASSERT_TRUE(rd.Wait());
  ASSERT_TRUE(rd.status.ok()) << rd.status.ToString();
  EXPECT_EQ(0, std::memcmp(sbuf.data() + 4096, cbuf.data() + 65536, got[1]));

  // And write back into a different part of the client's region.
  Waiter wr;
  ASSERT_TRUE((*server)->PostWrite(*back, sbuf.data() + 4096, 1000, smr->desc(), got[0] + got[1],
                                   got[2], &wr.op).ok());
  ASSERT_TRUE(wr.Wait());
  ASSERT_TRUE(wr.status.ok()) << wr.status.ToString();
  EXPECT_EQ(0, std::memcmp(cbuf.data() + 65536 + 512 * 1024, cbuf.data() + 65536, 1000));
}

INSTANTIATE_TEST_SUITE_P(Providers, FabricTest, ::testing::Values("tcp", "shm", "tcp;ofi_rxm"),
                         [](const auto& info) {
                           std::string n = info.param;
                           for (auto& c : n) if (!isalnum(static_cast<unsigned char>(c))) c = '_';
                           return n;
                         });

TEST(FabricErrors, UnknownProviderNamesIt) {
  auto ep = Endpoint::Open(FabricOptions{"nosuchprov", "", 0});
  ASSERT_FALSE(ep.ok());
  EXPECT_NE(ep.status().message().find("nosuchprov"), std::string::npos) << ep.status().ToString();
}

// shm servers get a new region per incarnation; the stable "host:port" name
// leads clients to whichever incarnation runs now, and only one may run.
TEST(FabricShm, StableNameFollowsTheServerAcrossRestarts) {
  uint16_t port = test::FreePort();
  FabricOptions so{"shm", "127.0.0.1", port};
  auto first = Endpoint::Open(so);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  auto second = Endpoint::Open(so);
  ASSERT_FALSE(second.ok());
  EXPECT_NE(second.status().message().find("in use"), std::string::npos) << second.status().ToString();

  auto client = Endpoint::Open(FabricOptions{"shm", "", 0});
  ASSERT_TRUE(client.ok()) << client.status().ToString();
  auto raw = (*client)->Resolve("127.0.0.1", port);
  ASSERT_TRUE(raw.ok()) << raw.status().ToString();
  auto a1 = (*client)->Insert(*raw);
  ASSERT_TRUE(a1.ok()) << a1.status().ToString();
  std::string name1 = (*first)->name();
  first->reset();

  auto restarted = Endpoint::Open(so);
  ASSERT_TRUE(restarted.ok()) << restarted.status().ToString();
  EXPECT_NE((*restarted)->name(), name1);
  auto a2 = (*client)->Insert(*raw);
  ASSERT_TRUE(a2.ok()) << a2.status().ToString();
  EXPECT_NE(*a1, *a2) << "the stable name must lead to the new incarnation";

  // And the new incarnation receives what the client sends to it.
  (*restarted)->Start();
  (*client)->Start();
  std::vector<char> sbuf(4096), cbuf(4096, 'x');
  auto smr = (*restarted)->Register(sbuf.data(), sbuf.size());
  auto cmr = (*client)->Register(cbuf.data(), cbuf.size());
  ASSERT_TRUE(smr.ok() && cmr.ok());
  Waiter recv, send;
  ASSERT_TRUE((*restarted)->PostRecv(sbuf.data(), sbuf.size(), smr->desc(), &recv.op).ok());
  ASSERT_TRUE((*client)->PostSend(*a2, cbuf.data(), 100, cmr->desc(), &send.op).ok());
  ASSERT_TRUE(recv.Wait());
  EXPECT_EQ(recv.len, 100u);
  EXPECT_EQ(sbuf[99], 'x');
}

}  // namespace
}  // namespace sluice::net
