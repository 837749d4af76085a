// rename within and across shards, replacing targets, NOREPLACE/EXCHANGE,
// EINVAL on moving a directory into its own subtree, and no cycle under
// concurrent renames.
#include <chrono>
#include <random>
#include <set>
#include <thread>

#include "tests/server/meta/meta_test_util.h"

namespace sluice::meta {
namespace {

using testing::MetaCluster;
using testing::Root;
using testing::User;

class RenameTest : public ::testing::TestWithParam<uint32_t> {
 protected:
  void SetUp() override {
    dir_ = testing::MakeTempDir("rename");
    cluster_ = std::make_unique<MetaCluster>(dir_, GetParam());
    auto w = ns().Mkdir(Root(), kRootIno, "w", 0777);
    ASSERT_TRUE(w.ok()) << w.status().ToString();
    work_ = w->ino();
  }
  void TearDown() override {
    cluster_.reset();
    std::filesystem::remove_all(dir_);
  }
  ShardRouter& ns() { return cluster_->ns(); }
  uint64_t MkdirOrDie(uint64_t parent, const std::string& name) {
    auto r = ns().Mkdir(User(), parent, name, 0755);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? r->ino() : 0;
  }
  uint64_t CreateOrDie(uint64_t parent, const std::string& name) {
    auto r = ns().Create(User(), parent, name, 0644, true);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? r->attr.ino() : 0;
  }
  uint64_t InoOf(uint64_t parent, const std::string& name) {
    auto r = ns().Lookup(User(), parent, name);
    return r.ok() ? r->ino() : 0;
  }
  // No shard holds a prepared transaction and no intent is left.
  void ExpectQuiet() {
    for (uint32_t s = 0; s < cluster_->n(); ++s) {
      EXPECT_TRUE(cluster_->store(s).PreparedTxns().empty()) << "shard " << s;
    }
    auto intents = cluster_->store(0).ListIntents();
    ASSERT_OK(intents);
    EXPECT_TRUE(intents->empty());
  }

  std::string dir_;
  std::unique_ptr<MetaCluster> cluster_;
  uint64_t work_ = 0;
};

TEST_P(RenameTest, FileWithinAndAcrossDirectories) {
  uint64_t a = MkdirOrDie(work_, "a");
  uint64_t b = MkdirOrDie(work_, "b");
  // Many names so that, with 4 shards, some renames cross shards and some do not.
  for (int i = 0; i < 16; ++i) {
    std::string n = "f" + std::to_string(i);
    uint64_t ino = CreateOrDie(a, n);
    ASSERT_OK(ns().Rename(User(), a, n, a, n + ".renamed"));
    EXPECT_EQ(InoOf(a, n), 0u);
    EXPECT_EQ(InoOf(a, n + ".renamed"), ino);
    ASSERT_OK(ns().Rename(User(), a, n + ".renamed", b, n));
    EXPECT_EQ(InoOf(a, n + ".renamed"), 0u);
    EXPECT_EQ(InoOf(b, n), ino);
    auto attr = ns().GetAttr(ino);
    ASSERT_OK(attr);
    EXPECT_EQ(attr->nlink(), 1u);
  }
  // A renamed file whose inode now lives on another shard than its dentry
  // can still be unlinked (through the coordinator).
  for (int i = 0; i < 16; ++i) ASSERT_OK(ns().Unlink(User(), b, "f" + std::to_string(i)));
  auto fs = ns().StatFs();
  ASSERT_OK(fs);
  EXPECT_EQ(fs->inodes, 4u);  // root, w, a, b
  EXPECT_EQ(fs->dentries, 3u);
  ExpectQuiet();
}

TEST_P(RenameTest, ErrorsAndNoOps) {
  uint64_t a = MkdirOrDie(work_, "a");
  uint64_t f = CreateOrDie(work_, "f");
  EXPECT_CODE(ns().Rename(User(), work_, "missing", work_, "x"), kNotFound);
  EXPECT_CODE(ns().Rename(User(), 0x424242, "f", work_, "x"), kNotFound);
  EXPECT_CODE(ns().Rename(User(), work_, "f", f, "x"), kNotDir);
  EXPECT_CODE(ns().Rename(User(), work_, "f", work_, "a"), kIsDir);
  EXPECT_CODE(ns().Rename(User(), work_, "a", work_, "f"), kNotDir);
  EXPECT_CODE(ns().Rename(User(), work_, "f", work_, "x", 3), kInvalid);
  EXPECT_CODE(ns().Rename(User(), work_, "f", work_, "x", 8), kInvalid);
  // Same name and hard links to the same inode: nothing happens.
  ASSERT_OK(ns().Rename(User(), work_, "f", work_, "f"));
  ASSERT_OK(ns().Link(User(), f, a, "f2"));
  ASSERT_OK(ns().Rename(User(), work_, "f", a, "f2"));
  EXPECT_EQ(InoOf(work_, "f"), f);
  EXPECT_EQ(InoOf(a, "f2"), f);
  ExpectQuiet();
}

TEST_P(RenameTest, ReplaceTarget) {
  uint64_t d1 = MkdirOrDie(work_, "d1");
  uint64_t d2 = MkdirOrDie(work_, "d2");
  uint64_t src = CreateOrDie(d1, "src");
  uint64_t victim = CreateOrDie(d2, "victim");
  ASSERT_OK(ns().Rename(User(), d1, "src", d2, "victim"));
  EXPECT_EQ(InoOf(d2, "victim"), src);
  EXPECT_CODE(ns().GetAttr(victim), kNotFound);
  // A replaced file with another link survives with nlink - 1.
  uint64_t linked = CreateOrDie(d1, "linked");
  ASSERT_OK(ns().Link(User(), linked, d1, "linked2"));
  uint64_t mover = CreateOrDie(d2, "mover");
  ASSERT_OK(ns().Rename(User(), d2, "mover", d1, "linked"));
  auto l = ns().GetAttr(linked);
  ASSERT_OK(l);
  EXPECT_EQ(l->nlink(), 1u);
  EXPECT_EQ(InoOf(d1, "linked"), mover);
  // Directories replace empty directories only.
  uint64_t full = MkdirOrDie(work_, "full");
  CreateOrDie(full, "x");
  uint64_t empty = MkdirOrDie(work_, "empty");
  EXPECT_CODE(ns().Rename(User(), work_, "empty", work_, "full"), kNotEmpty);
  EXPECT_EQ(InoOf(work_, "empty"), empty);
  ASSERT_OK(ns().Rename(User(), work_, "full", work_, "empty"));
  EXPECT_EQ(InoOf(work_, "empty"), full);
  EXPECT_EQ(InoOf(work_, "full"), 0u);
  EXPECT_CODE(ns().GetAttr(empty), kNotFound);
  // The replaced directory is fenced: it takes no new entries.
  EXPECT_CODE(ns().Create(Root(), empty, "late", 0644, true), kNotFound);
  ExpectQuiet();
}

// rename(2) changes the renamed inode's ctime (Linux does), not its mtime;
// an exchange changes both inodes'.
TEST_P(RenameTest, RenameChangesTheInodesCtime) {
  uint64_t a = MkdirOrDie(work_, "ca");
  uint64_t b = MkdirOrDie(work_, "cb");
  for (int i = 0; i < 8; ++i) {  // with 4 shards, inodes on other shards than both dentries
    std::string n = "c" + std::to_string(i);
    uint64_t ino = CreateOrDie(a, n);
    uint64_t other = CreateOrDie(b, n);
    auto before = ns().GetAttr(ino);
    auto other_before = ns().GetAttr(other);
    ASSERT_OK(before);
    ASSERT_OK(other_before);
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    ASSERT_OK(ns().Rename(User(), a, n, a, n + ".r"));
    auto after = ns().GetAttr(ino);
    ASSERT_OK(after);
    EXPECT_GT(after->ctime_ns(), before->ctime_ns()) << n;
    EXPECT_EQ(after->mtime_ns(), before->mtime_ns()) << n;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    ASSERT_OK(ns().Rename(User(), a, n + ".r", b, n, kRenameExchange));
    auto x = ns().GetAttr(ino);
    auto y = ns().GetAttr(other);
    ASSERT_OK(x);
    ASSERT_OK(y);
    EXPECT_GT(x->ctime_ns(), after->ctime_ns()) << n;
    EXPECT_GT(y->ctime_ns(), other_before->ctime_ns()) << n;
  }
  ExpectQuiet();
}

TEST_P(RenameTest, NoReplaceAndExchange) {
  uint64_t d1 = MkdirOrDie(work_, "d1");
  uint64_t d2 = MkdirOrDie(work_, "d2");
  uint64_t x = CreateOrDie(d1, "x");
  uint64_t y = MkdirOrDie(d2, "y");
  EXPECT_CODE(ns().Rename(User(), d1, "x", d2, "y", kRenameNoReplace), kExists);
  ASSERT_OK(ns().Rename(User(), d1, "x", d2, "z", kRenameNoReplace));
  EXPECT_EQ(InoOf(d2, "z"), x);
  // Exchange a file and a directory across directories.
  ASSERT_OK(ns().Rename(User(), d2, "z", work_, "d1", kRenameExchange));
  EXPECT_EQ(InoOf(d2, "z"), d1);
  EXPECT_EQ(InoOf(work_, "d1"), x);
  auto moved = ns().GetAttr(d1);
  ASSERT_OK(moved);
  EXPECT_EQ(moved->parent(), d2) << "exchanged directory's parent pointer";
  EXPECT_CODE(ns().Rename(User(), d2, "nothing", d2, "y", kRenameExchange), kNotFound);
  EXPECT_CODE(ns().Rename(User(), d2, "y", d2, "nothing", kRenameExchange), kNotFound);
  // Exchanging a directory into its own subtree is refused.
  uint64_t inner = MkdirOrDie(y, "inner");
  (void)inner;
  EXPECT_CODE(ns().Rename(User(), d2, "y", y, "inner", kRenameExchange), kInvalid);
  // NOREPLACE onto the same inode (the same name, or a hard link) is EEXIST,
  // as on Linux, where a plain rename does nothing.
  uint64_t f = CreateOrDie(d1, "f");
  ASSERT_OK(ns().Link(User(), f, d1, "f2"));
  EXPECT_CODE(ns().Rename(User(), d1, "f", d1, "f", kRenameNoReplace), kExists);
  EXPECT_CODE(ns().Rename(User(), d1, "f", d1, "f2", kRenameNoReplace), kExists);
  ASSERT_OK(ns().Rename(User(), d1, "f", d1, "f2", 0));
  EXPECT_EQ(InoOf(d1, "f"), f) << "rename onto a hard link of the same inode changes nothing";
  ExpectQuiet();
}

TEST_P(RenameTest, MovingADirectoryNeedsWriteOnIt) {
  uint64_t a = MkdirOrDie(work_, "a");
  uint64_t b = MkdirOrDie(work_, "b");
  auto ro = ns().Mkdir(User(), a, "ro", 0555);
  ASSERT_OK(ro);
  // Same parent: only the parent's bits matter.
  ASSERT_OK(ns().Rename(User(), a, "ro", a, "ro2"));
  // Another parent: write on the directory itself is needed (its ".." changes).
  EXPECT_CODE(ns().Rename(User(), a, "ro2", b, "ro"), kPermission);
  ASSERT_OK(ns().Rename(Root(), a, "ro2", b, "ro"));
  EXPECT_EQ(InoOf(b, "ro"), ro->ino());
  ExpectQuiet();
}

// Error precedence as on Linux for an unprivileged caller: the structural
// mistakes (EINVAL, ENOTEMPTY) and the same-inode no-op come before
// permission and sticky-bit checks, which come before the target's type.
TEST_P(RenameTest, ErrorOrderForUnprivilegedCallers) {
  const Caller other = MakeCaller(2000, 2000);
  auto tmp = ns().Mkdir(Root(), work_, "tmp", 01777);  // sticky, world-writable
  ASSERT_OK(tmp);
  auto f = ns().Create(User(), tmp->ino(), "f", 0644, true);
  ASSERT_OK(f);
  ASSERT_OK(ns().Link(User(), f->attr.ino(), tmp->ino(), "f2"));
  // Another user renaming a name onto a link of the same inode in a sticky
  // directory: nothing to do, so no EPERM.
  ASSERT_OK(ns().Rename(other, tmp->ino(), "f", tmp->ino(), "f2"));
  // A directory moved under itself by someone who may not write there:
  // EINVAL, not EACCES.
  auto ro = ns().Mkdir(User(), work_, "ro", 0555);
  ASSERT_OK(ro);
  auto inner = ns().Mkdir(Root(), ro->ino(), "inner", 0755);
  ASSERT_OK(inner);
  EXPECT_CODE(ns().Rename(other, work_, "ro", inner->ino(), "x"), kInvalid);
  // Permission comes before the target's type: a file onto a directory in a
  // directory the caller may not write is EACCES, not EISDIR.
  auto d = ns().Mkdir(Root(), ro->ino(), "d", 0755);
  ASSERT_OK(d);
  auto g = ns().Create(User(), work_, "g", 0644, true);
  ASSERT_OK(g);
  EXPECT_CODE(ns().Rename(User(), work_, "g", ro->ino(), "d"), kPermission);
  EXPECT_CODE(ns().Rename(Root(), work_, "g", ro->ino(), "d"), kIsDir);
  ExpectQuiet();
}

TEST_P(RenameTest, IntoOwnDescendantIsInvalid) {
  uint64_t a = MkdirOrDie(work_, "a");
  uint64_t b = MkdirOrDie(a, "b");
  uint64_t c = MkdirOrDie(b, "c");
  EXPECT_CODE(ns().Rename(User(), work_, "a", c, "a"), kInvalid);
  EXPECT_CODE(ns().Rename(User(), work_, "a", a, "self"), kInvalid);
  EXPECT_CODE(ns().Rename(User(), a, "b", b, "b2"), kInvalid);
  // Moving a subtree up and sideways is fine; parents follow.
  ASSERT_OK(ns().Rename(User(), b, "c", work_, "c"));
  auto cattr = ns().GetAttr(c);
  ASSERT_OK(cattr);
  EXPECT_EQ(cattr->parent(), work_);
  auto dotdot = ns().Lookup(User(), c, "..");
  ASSERT_OK(dotdot);
  EXPECT_EQ(dotdot->ino(), work_);
  ASSERT_OK(ns().Rename(User(), work_, "a", c, "a"));
  auto resolved = ns().Resolve(User(), "/w/c/a/b");
  ASSERT_OK(resolved);
  EXPECT_EQ(resolved->ino(), b);
  ExpectQuiet();
}

// Walks up from `ino` to the root via parent pointers; false on a cycle.
bool ReachesRoot(ShardRouter& ns, uint64_t ino) {
  for (int i = 0; i < 1000; ++i) {
    if (ino == kRootIno) return true;
    auto a = ns.GetAttr(ino);
    if (!a.ok()) return false;
    ino = a->parent();
  }
  return false;
}

TEST_P(RenameTest, ConcurrentRenamesNeverMakeACycle) {
  // Threads move directories into each other at random; the rename lock
  // must keep every directory reachable from the root. Seeded and printed.
  const uint32_t seed = static_cast<uint32_t>(::testing::UnitTest::GetInstance()->random_seed()) + 7;
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::vector<uint64_t> dirs;
  for (int i = 0; i < 6; ++i) dirs.push_back(MkdirOrDie(work_, "d" + std::to_string(i)));
  std::atomic<int> ok{0}, invalid{0};
  auto worker = [&](uint32_t tseed) {
    std::mt19937 rng(tseed);
    for (int i = 0; i < 40; ++i) {
      size_t s = rng() % dirs.size(), t = rng() % dirs.size();
      if (s == t) continue;
      auto sattr = cluster_->ns().GetAttr(dirs[s]);
      if (!sattr.ok()) continue;
      // Find the current name of dirs[s] under its parent.
      std::string name = "d" + std::to_string(s);
      Status st = cluster_->ns().Rename(User(), sattr->parent(), name, dirs[t], name);
      if (st.ok()) ok++;
      if (st.code() == Code::kInvalid) invalid++;
    }
  };
  std::thread t1(worker, seed), t2(worker, seed * 31 + 1);
  t1.join();
  t2.join();
  for (uint64_t d : dirs) EXPECT_TRUE(ReachesRoot(ns(), d)) << "directory " << d << " is in a cycle";
  EXPECT_GT(ok.load(), 0);
  EXPECT_GT(invalid.load(), 0) << "expected some renames refused as cycles";
  ExpectQuiet();
}

TEST_P(RenameTest, RenameIntoDirectoryBeingRemoved) {
  // rename into a directory and rmdir of it, concurrently: either the rmdir
  // wins (rename fails ENOENT) or the rename wins (rmdir ENOTEMPTY); never
  // an entry in a removed directory.
  for (int round = 0; round < 10; ++round) {
    std::string dn = "t" + std::to_string(round);
    uint64_t target = MkdirOrDie(work_, dn);
    CreateOrDie(work_, "m" + std::to_string(round));
    Status rename_st, rmdir_st;
    std::thread t1([&] {
      rename_st = cluster_->ns().Rename(User(), work_, "m" + std::to_string(round), target, "m");
    });
    std::thread t2([&] { rmdir_st = cluster_->ns().Rmdir(User(), work_, dn); });
    t1.join();
    t2.join();
    ASSERT_FALSE(rename_st.ok() && rmdir_st.ok())
        << "both succeeded: " << rename_st.ToString() << " / " << rmdir_st.ToString();
    if (rmdir_st.ok()) {
      EXPECT_TRUE(cluster_->RawEntries(target).empty());
      EXPECT_EQ(rename_st.code(), Code::kNotFound) << rename_st.ToString();
    } else {
      EXPECT_EQ(rmdir_st.code(), Code::kNotEmpty) << rmdir_st.ToString();
      EXPECT_NE(InoOf(target, "m"), 0u);
    }
  }
  ExpectQuiet();
}

INSTANTIATE_TEST_SUITE_P(Shards, RenameTest, ::testing::Values(1u, 4u),
                         [](const ::testing::TestParamInfo<uint32_t>& i) {
                           return std::to_string(i.param) + "shards";
                         });

}  // namespace
}  // namespace sluice::meta
