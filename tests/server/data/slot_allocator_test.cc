#include "server/data/slot_allocator.h"

#include <gtest/gtest.h>

#include <random>
#include <set>

namespace sluice::data {
namespace {

TEST(SlotAllocator, AllocatesLowestFreeSlotFirst) {
  SlotAllocator a("t", 4);
  EXPECT_EQ(a.Allocate(), 0u);
  EXPECT_EQ(a.Allocate(), 1u);
  EXPECT_EQ(a.Allocate(), 2u);
  ASSERT_TRUE(a.Free(1).ok());
  ASSERT_TRUE(a.Free(0).ok());
  EXPECT_EQ(a.Allocate(), 0u);
  EXPECT_EQ(a.Allocate(), 1u);
  EXPECT_EQ(a.Allocate(), 3u);
  EXPECT_EQ(a.Allocate(), std::nullopt);
  EXPECT_EQ(a.used_count(), 4u);
  a.Grow(6);
  EXPECT_EQ(a.Allocate(), 4u);
  EXPECT_EQ(a.free_count(), 1u);
}

TEST(SlotAllocator, DoubleFreeAndOutOfRangeAreErrors) {
  SlotAllocator a("target 1 class 1M", 2);
  EXPECT_EQ(a.Free(0).code(), Code::kInternal);
  auto s = a.Allocate();
  ASSERT_TRUE(s.has_value());
  ASSERT_TRUE(a.Free(*s).ok());
  Status st = a.Free(*s);
  EXPECT_EQ(st.code(), Code::kInternal);
  EXPECT_NE(st.message().find("target 1 class 1M"), std::string::npos) << st.ToString();
  EXPECT_EQ(a.Free(7).code(), Code::kInternal);
}

TEST(SlotAllocator, RebuildFromRecordsMarksUsedAndDetectsSharing) {
  SlotAllocator a("t", 8);
  ASSERT_TRUE(a.MarkUsed(0).ok());
  ASSERT_TRUE(a.MarkUsed(5).ok());
  EXPECT_EQ(a.MarkUsed(5).code(), Code::kCorrupt);  // two records, one slot
  EXPECT_EQ(a.MarkUsed(8).code(), Code::kCorrupt);  // beyond the file
  std::set<uint64_t> got;
  while (auto s = a.Allocate()) got.insert(*s);
  EXPECT_EQ(got, (std::set<uint64_t>{1, 2, 3, 4, 6, 7}));
}

TEST(SlotAllocator, RandomAllocFreeNeverHandsOutAUsedSlot) {
  std::mt19937_64 rng(42);
  SlotAllocator a("t", 0);
  std::set<uint64_t> held;
  for (int step = 0; step < 20000; step++) {
    if (held.empty() || rng() % 3 != 0) {
      auto s = a.Allocate();
      if (!s) {
        a.Grow(a.slot_count() + 16);
        s = a.Allocate();
      }
      ASSERT_TRUE(s.has_value());
      ASSERT_TRUE(held.insert(*s).second) << "slot " << *s << " handed out twice";
    } else {
      auto it = held.begin();
      std::advance(it, rng() % held.size());
      ASSERT_TRUE(a.Free(*it).ok());
      held.erase(it);
    }
    ASSERT_EQ(a.used_count(), held.size());
  }
}

}  // namespace
}  // namespace sluice::data
