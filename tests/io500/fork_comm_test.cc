// ForkComm: barrier, all-gather and string gather across forked ranks, and a
// dead peer turns into an error instead of a hang.
#include <gtest/gtest.h>

#include <unistd.h>

#include "tools/io500/fork_comm.h"

namespace sluice::io500 {
namespace {

TEST(ForkComm, BarrierAndGatherAcrossFourRanks) {
  auto c = ForkComm::Spawn(4);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  ForkComm& comm = *c.value();
  bool ok = true;
  for (int round = 0; round < 50 && ok; ++round) {
    auto all = comm.AllGather(static_cast<uint64_t>(comm.rank() * 100 + round));
    ok = all.ok() && all->size() == 4;
    for (int r = 0; ok && r < 4; ++r) ok = (*all)[r] == static_cast<uint64_t>(r * 100 + round);
    auto sum = comm.AllSum(1);
    ok = ok && sum.ok() && *sum == 4;
    auto mx = comm.AllMaxDouble(comm.rank() * 0.5);
    ok = ok && mx.ok() && *mx == 1.5;
  }
  auto msgs = comm.GatherStrings(comm.rank() == 2 ? "rank two failed" : "");
  ok = ok && msgs.ok();
  if (comm.rank() != 0) {
    ok = ok && msgs->empty();
    Status st = comm.Finish(ok ? 0 : 1);  // never returns in a child
    (void)st;
  }
  ASSERT_TRUE(ok);
  ASSERT_EQ(msgs->size(), 4u);
  EXPECT_EQ((*msgs)[2], "rank two failed");
  EXPECT_EQ((*msgs)[1], "");
  EXPECT_TRUE(comm.Finish(0).ok());  // every child exited 0, i.e. saw the right values
}

TEST(ForkComm, DeadPeerFailsTheBarrier) {
  auto c = ForkComm::Spawn(3);
  ASSERT_TRUE(c.ok());
  ForkComm& comm = *c.value();
  if (comm.rank() == 2) {
    Status st = comm.Finish(7);  // leaves without joining the barrier
    (void)st;
  }
  Status st = comm.Barrier();
  if (comm.rank() == 1) {
    // Rank 0 fails and stops coordinating: rank 1 must see EOF, not hang.
    Status st2 = comm.Finish(st.ok() ? 0 : 3);
    (void)st2;
  }
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find("rank 2"), std::string::npos) << st.ToString();
  Status fin = comm.Finish(0);
  EXPECT_FALSE(fin.ok());
  EXPECT_NE(fin.message().find("rank 2 (exit 7)"), std::string::npos) << fin.ToString();
}

}  // namespace
}  // namespace sluice::io500
