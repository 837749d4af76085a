// ReadBuffers: registered buffers up to the limit, reused after release,
// heap buffers (unregistered) beyond it or when registration fails.
#include <gtest/gtest.h>

#include <set>
#include <vector>

#include "client/read_buffers.h"

namespace sluice::client {
namespace {

TEST(ReadBuffers, RegistersUpToTheLimitThenLendsHeapMemory) {
  std::vector<std::pair<void*, size_t>> registered;
  auto pool = std::make_shared<ReadBuffers>(1 << 20, 2, [&](void* p, size_t n) {
    registered.emplace_back(p, n);
    return Status::Ok();
  });
  auto a = pool->Get(1 << 20);
  auto b = pool->Get(4096);
  auto c = pool->Get(1 << 20);
  EXPECT_TRUE(a.registered());
  EXPECT_TRUE(b.registered());
  EXPECT_FALSE(c.registered()) << "a third buffer must not be registered with a limit of 2";
  ASSERT_EQ(registered.size(), 2u);
  EXPECT_EQ(registered[0].second, size_t{1} << 20);
  std::set<void*> regs = {registered[0].first, registered[1].first};
  EXPECT_TRUE(regs.count(a.data()) && regs.count(b.data()));
  EXPECT_FALSE(regs.count(c.data()));
  c.data()[(1 << 20) - 1] = 1;  // the heap buffer holds the requested length

  // Released buffers are lent again, and nothing more is registered.
  char* first = a.data();
  a = ReadBuffers::Lease();
  auto d = pool->Get(100);
  EXPECT_EQ(d.data(), first);
  EXPECT_EQ(pool->registered_count(), 2u);
  EXPECT_EQ(registered.size(), 2u);
}

TEST(ReadBuffers, LargerThanABufferIsHeap) {
  int calls = 0;
  auto pool = std::make_shared<ReadBuffers>(4096, 4, [&](void*, size_t) {
    calls++;
    return Status::Ok();
  });
  auto big = pool->Get(8192);
  EXPECT_FALSE(big.registered());
  EXPECT_EQ(big.size(), 8192u);
  EXPECT_EQ(calls, 0);
}

TEST(ReadBuffers, RegistrationFailureFallsBackAndIsNotRetried) {
  int calls = 0;
  auto pool = std::make_shared<ReadBuffers>(4096, 4, [&](void*, size_t) {
    calls++;
    return Status(Code::kNoSpace, "fi_mr_reg: out of resources");
  });
  auto a = pool->Get(4096);
  auto b = pool->Get(4096);
  EXPECT_FALSE(a.registered());
  EXPECT_FALSE(b.registered());
  EXPECT_NE(a.data(), nullptr);
  EXPECT_EQ(calls, 1);
}

TEST(ReadBuffers, LeaseOutlivesThePoolHandle) {
  ReadBuffers::Lease kept;
  {
    auto pool = std::make_shared<ReadBuffers>(4096, 1, [](void*, size_t) { return Status::Ok(); });
    kept = pool->Get(4096);
  }
  ASSERT_TRUE(kept.registered());
  kept.data()[4095] = 7;  // still mapped: the lease keeps the pool alive
  EXPECT_EQ(kept.data()[4095], 7);
}

}  // namespace
}  // namespace sluice::client
