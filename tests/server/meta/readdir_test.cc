// readdir across shards: paging, resumable cookies, exactly-once listing of
// a 100,000-entry directory spread over 4 shards.
#include <set>
#include <unordered_set>

#include "tests/server/meta/meta_test_util.h"

namespace sluice::meta {
namespace {

using testing::MetaCluster;
using testing::Root;
using testing::User;

TEST(ReadDirTest, HundredThousandEntriesListedExactlyOnce) {
  std::string dir = testing::MakeTempDir("readdir");
  {
    // WAL sync off for speed: this test is about listing, not durability.
    MetaCluster c(dir, 4, /*sync=*/false);
    auto d = c.ns().Mkdir(Root(), kRootIno, "big", 0755);
    ASSERT_OK(d);
    const int kEntries = 100000;
    // Insert straight into each owning shard (what the router does).
    for (int i = 0; i < kEntries; ++i) {
      std::string name = "sample_" + std::to_string(i) + ".jpg";
      auto r = c.ns().ShardForName(d->ino(), name)->Create(Root(), d->ino(), name, 0644, true);
      ASSERT_TRUE(r.ok()) << r.status().ToString();
    }
    // Every shard holds a fair share.
    for (uint32_t s = 0; s < 4; ++s) {
      auto fs = c.store(s).StatFs();
      ASSERT_OK(fs);
      EXPECT_GT(fs->dentries, kEntries / 4 * 0.9) << "shard " << s;
    }
    std::unordered_set<std::string> seen;
    seen.reserve(kEntries);
    std::vector<std::string> order;  // as paging returned them
    std::string cookie;
    int pages = 0;
    // Page sizes vary so that page ends fall everywhere, also on shard ends.
    const uint32_t sizes[] = {1000, 1, 4097, 250, 25000};
    for (;;) {
      auto page = c.ns().ReadDir(User(), d->ino(), cookie, sizes[pages % 5]);
      ASSERT_OK(page);
      ASSERT_LE(page->entries.size(), sizes[pages % 5]);
      for (auto& e : page->entries) {
        ASSERT_TRUE(seen.insert(e.name()).second) << "listed twice: " << e.name();
        ASSERT_EQ(e.type(), FILE_TYPE_REGULAR);
        order.push_back(e.name());
      }
      ++pages;
      cookie = page->cookie;
      if (page->eof) break;
      ASSERT_LT(pages, 100000) << "listing does not end";
    }
    EXPECT_EQ(seen.size(), static_cast<size_t>(kEntries));
    for (int i = 0; i < kEntries; i += 997) {
      EXPECT_TRUE(seen.count("sample_" + std::to_string(i) + ".jpg"));
    }
    // The whole directory at once (the shards read concurrently): the same
    // entries in the same order.
    auto all = c.ns().ReadDirAll(User(), d->ino());
    ASSERT_OK(all);
    ASSERT_EQ(all->size(), order.size());
    for (size_t i = 0; i < order.size(); ++i) ASSERT_EQ((*all)[i].name(), order[i]) << "entry " << i;
    // A cookie resumes the same listing after a restart.
    auto first = c.ns().ReadDir(User(), d->ino(), {}, 60000);
    ASSERT_OK(first);
    std::string mid = first->cookie;
    ASSERT_OK(c.Reopen());
    size_t rest = 0;
    cookie = mid;
    for (;;) {
      auto page = c.ns().ReadDir(User(), d->ino(), cookie, 30000);
      ASSERT_OK(page);
      rest += page->entries.size();
      cookie = page->cookie;
      if (page->eof) break;
    }
    EXPECT_EQ(first->entries.size() + rest, static_cast<size_t>(kEntries));
  }
  std::filesystem::remove_all(dir);
}

TEST(ReadDirTest, ResumesAfterEntriesAreRemovedBetweenPages) {
  std::string dir = testing::MakeTempDir("readdir3");
  {
    MetaCluster c(dir, 3, /*sync=*/false);
    auto d = c.ns().Mkdir(Root(), kRootIno, "d", 0755);
    ASSERT_OK(d);
    for (int i = 0; i < 300; ++i) ASSERT_OK(c.ns().Create(Root(), d->ino(), "e" + std::to_string(i), 0644, true));
    std::set<std::string> seen, removed;
    std::string cookie;
    for (;;) {
      auto page = c.ns().ReadDir(Root(), d->ino(), cookie, 40);
      ASSERT_OK(page);
      for (auto& e : page->entries) {
        ASSERT_EQ(removed.count(e.name()), 0u) << "listed a removed entry " << e.name();
        ASSERT_TRUE(seen.insert(e.name()).second) << "listed twice " << e.name();
      }
      cookie = page->cookie;
      if (page->eof) break;
      // Remove the entry the cookie points at and a few not listed yet.
      ASSERT_OK(c.ns().Unlink(Root(), d->ino(), page->entries.back().name()));
      for (int i = 0; i < 300; i += 37) {
        std::string n = "e" + std::to_string(i);
        if (!seen.count(n) && !removed.count(n) && c.ns().Unlink(Root(), d->ino(), n).ok()) removed.insert(n);
      }
    }
    EXPECT_EQ(seen.size() + removed.size(), 300u);
  }
  std::filesystem::remove_all(dir);
}

TEST(ReadDirTest, ErrorsAndEmptyDirectory) {
  std::string dir = testing::MakeTempDir("readdir2");
  {
    MetaCluster c(dir, 3);
    auto d = c.ns().Mkdir(Root(), kRootIno, "e", 0755);
    ASSERT_OK(d);
    auto page = c.ns().ReadDir(User(), d->ino(), {}, 10);
    ASSERT_OK(page);
    EXPECT_TRUE(page->entries.empty());
    EXPECT_TRUE(page->eof);
    auto f = c.ns().Create(Root(), d->ino(), "f", 0644, true);
    ASSERT_OK(f);
    EXPECT_CODE(c.ns().ReadDir(User(), f->attr.ino(), {}, 10), kNotDir);
    EXPECT_CODE(c.ns().ReadDir(User(), 0x31337, {}, 10), kNotFound);
    EXPECT_CODE(c.ns().ReadDir(User(), d->ino(), "ab", 10), kInvalid);
    EXPECT_CODE(c.ns().ReadDir(User(), d->ino(), std::string("\0\0\0\x09", 4), 10), kInvalid);
  }
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace sluice::meta
