// Directory attributes spread over shards: nlink = 2 + subdirectories and
// the parent's mtime/ctime after every kind of entry change, on one and on
// four shards (where the directory's inode and its entries' shards differ),
// including renames of directories across parents, exchange, replacement,
// an explicit utimens, and a reopen.
#include <set>

#include "tests/server/meta/meta_test_util.h"

namespace sluice::meta {
namespace {

using testing::MetaCluster;
using testing::Root;
using testing::User;

class DirAttrTest : public ::testing::TestWithParam<uint32_t> {
 protected:
  void SetUp() override {
    dir_ = testing::MakeTempDir("dirattr");
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
  uint32_t n() const { return GetParam(); }

  uint32_t Nlink(uint64_t ino) {
    auto a = ns().GetAttr(ino);
    EXPECT_TRUE(a.ok()) << a.status().ToString();
    return a.ok() ? a->nlink() : 0;
  }
  InodeAttr Attr(uint64_t ino) {
    auto a = ns().GetAttr(ino);
    EXPECT_TRUE(a.ok()) << a.status().ToString();
    return a.ok() ? a.value() : InodeAttr();
  }
  // A name under `parent` whose dentry lives on a shard other than the
  // parent's inode (on one shard: any name).
  std::string RemoteName(uint64_t parent, const std::string& prefix) {
    for (int i = 0;; ++i) {
      std::string name = prefix + std::to_string(i);
      if (n() == 1 || DentryShard(parent, name, n()) != InodeShard(parent)) return name;
    }
  }
  // Expects every time-stamp of `dir` to have moved past `before`'s.
  void ExpectTouched(uint64_t dir, const InodeAttr& before, const char* what) {
    InodeAttr after = Attr(dir);
    EXPECT_GT(after.mtime_ns(), before.mtime_ns()) << what << ": mtime of " << dir;
    EXPECT_GT(after.ctime_ns(), before.ctime_ns()) << what << ": ctime of " << dir;
  }

  std::string dir_;
  std::unique_ptr<MetaCluster> cluster_;
  uint64_t work_ = 0;
};

TEST_P(DirAttrTest, NlinkCountsSubdirectoriesOnEveryShard) {
  EXPECT_EQ(Nlink(work_), 2u);
  const uint32_t root_before = Nlink(kRootIno);
  EXPECT_EQ(root_before, 3u);  // "w"
  // Subdirectories whose entries land on every shard; files do not count.
  for (int i = 0; i < 12; ++i) ASSERT_OK(ns().Mkdir(User(), work_, "d" + std::to_string(i), 0755));
  for (int i = 0; i < 12; ++i) ASSERT_OK(ns().Create(User(), work_, "f" + std::to_string(i), 0644, true));
  ASSERT_OK(ns().Symlink(User(), work_, "ln", "d0"));
  EXPECT_EQ(Nlink(work_), 14u);
  // Every way of reading the directory agrees.
  auto l = ns().Lookup(User(), kRootIno, "w");
  ASSERT_OK(l);
  EXPECT_EQ(l->nlink(), 14u);
  auto r = ns().Resolve(User(), "/w");
  ASSERT_OK(r);
  EXPECT_EQ(r->nlink(), 14u);
  auto dot = ns().Lookup(User(), work_, ".");
  ASSERT_OK(dot);
  EXPECT_EQ(dot->nlink(), 14u);
  auto d0 = ns().Lookup(User(), work_, "d0");
  ASSERT_OK(d0);
  auto up = ns().Lookup(User(), d0->ino(), "..");
  ASSERT_OK(up);
  EXPECT_EQ(up->nlink(), 14u);
  EXPECT_EQ(d0->nlink(), 2u);
  // Files keep their own link count.
  auto f = ns().Lookup(User(), work_, "f0");
  ASSERT_OK(f);
  EXPECT_EQ(f->nlink(), 1u);
  // rmdir gives the link back; unlink of files changes nothing.
  for (int i = 0; i < 5; ++i) ASSERT_OK(ns().Rmdir(User(), work_, "d" + std::to_string(i)));
  for (int i = 0; i < 5; ++i) ASSERT_OK(ns().Unlink(User(), work_, "f" + std::to_string(i)));
  EXPECT_EQ(Nlink(work_), 9u);
  // Failed operations leave it alone.
  EXPECT_CODE(ns().Mkdir(User(), work_, "d5", 0755), kExists);
  EXPECT_CODE(ns().Rmdir(User(), work_, "f5"), kNotDir);
  auto d5 = ns().Lookup(User(), work_, "d5");
  ASSERT_OK(d5);
  EXPECT_CODE(ns().Mkdir(User(2000, 2000), d5->ino(), "x", 0755), kPermission);
  EXPECT_EQ(Nlink(d5->ino()), 2u);
  EXPECT_EQ(Nlink(work_), 9u);
  EXPECT_EQ(Nlink(kRootIno), root_before);
  // Durable: the same after a reopen.
  ASSERT_OK(cluster_->Reopen());
  EXPECT_EQ(Nlink(work_), 9u);
  EXPECT_EQ(Nlink(kRootIno), root_before);
}

TEST_P(DirAttrTest, RenameKeepsBothParentsNlinkRight) {
  const std::string aname = RemoteName(work_, "a");
  auto a = ns().Mkdir(User(), work_, aname, 0777);
  auto b = ns().Mkdir(User(), work_, RemoteName(work_, "b"), 0777);
  ASSERT_OK(a);
  ASSERT_OK(b);
  const std::string s1 = RemoteName(a->ino(), "s"), s2 = RemoteName(b->ino(), "t");
  auto sub = ns().Mkdir(User(), a->ino(), s1, 0755);
  ASSERT_OK(sub);
  ASSERT_OK(ns().Mkdir(User(), sub->ino(), "inner", 0755));
  EXPECT_EQ(Nlink(a->ino()), 3u);
  EXPECT_EQ(Nlink(b->ino()), 2u);
  // Across parents (and shards): a loses a link, b gains one, the moved
  // directory keeps its own.
  ASSERT_OK(ns().Rename(User(), a->ino(), s1, b->ino(), s2));
  EXPECT_EQ(Nlink(a->ino()), 2u);
  EXPECT_EQ(Nlink(b->ino()), 3u);
  EXPECT_EQ(Nlink(sub->ino()), 3u);
  // Within one parent: unchanged.
  ASSERT_OK(ns().Rename(User(), b->ino(), s2, b->ino(), "renamed"));
  EXPECT_EQ(Nlink(b->ino()), 3u);
  // Replacing an empty directory in another parent: the target parent
  // keeps its count (one directory for another), the source loses one.
  auto victim = ns().Mkdir(User(), a->ino(), "victim", 0755);
  ASSERT_OK(victim);
  EXPECT_EQ(Nlink(a->ino()), 3u);
  ASSERT_OK(ns().Rename(User(), b->ino(), "renamed", a->ino(), "victim"));
  EXPECT_EQ(Nlink(a->ino()), 3u);
  EXPECT_EQ(Nlink(b->ino()), 2u);
  EXPECT_CODE(ns().GetAttr(victim->ino()), kNotFound);
  // A file replacing a file, a file moving: no change.
  ASSERT_OK(ns().Create(User(), a->ino(), "f", 0644, true));
  ASSERT_OK(ns().Create(User(), b->ino(), "g", 0644, true));
  ASSERT_OK(ns().Rename(User(), a->ino(), "f", b->ino(), "g"));
  EXPECT_EQ(Nlink(a->ino()), 3u);
  EXPECT_EQ(Nlink(b->ino()), 2u);
  // Exchange of a directory (in a) and a file (in b): the count moves.
  ASSERT_OK(ns().Rename(User(), a->ino(), "victim", b->ino(), "g", kRenameExchange));
  EXPECT_EQ(Nlink(a->ino()), 2u);
  EXPECT_EQ(Nlink(b->ino()), 3u);
  auto moved = ns().Lookup(User(), b->ino(), "g");
  ASSERT_OK(moved);
  EXPECT_EQ(moved->type(), FILE_TYPE_DIRECTORY);
  EXPECT_EQ(moved->parent(), b->ino());
  // Exchange of two directories in different parents: counts stay.
  ASSERT_OK(ns().Mkdir(User(), a->ino(), "x", 0755));
  ASSERT_OK(ns().Rename(User(), a->ino(), "x", b->ino(), "g", kRenameExchange));
  EXPECT_EQ(Nlink(a->ino()), 3u);
  EXPECT_EQ(Nlink(b->ino()), 3u);
  // A refused rename (a into its own descendant: the first subdirectory,
  // now a/x) changes nothing.
  EXPECT_CODE(ns().Rename(User(), work_, aname, moved->ino(), "loop"), kInvalid);
  EXPECT_EQ(Nlink(a->ino()), 3u);
  EXPECT_EQ(Nlink(b->ino()), 3u);
  ASSERT_OK(cluster_->Reopen());
  EXPECT_EQ(Nlink(a->ino()), 3u);
  EXPECT_EQ(Nlink(b->ino()), 3u);
}

TEST_P(DirAttrTest, ParentTimesFollowEveryEntryChange) {
  const std::string name = RemoteName(work_, "e");
  InodeAttr t = Attr(work_);
  ASSERT_OK(ns().Create(User(), work_, name, 0644, true));
  ExpectTouched(work_, t, "create");
  // An open of an existing file (no O_EXCL) is not a change.
  t = Attr(work_);
  ASSERT_OK(ns().Create(User(), work_, name, 0644, false));
  EXPECT_EQ(Attr(work_).mtime_ns(), t.mtime_ns()) << "create of an existing file";
  // Failed changes are not changes either.
  EXPECT_CODE(ns().Create(User(), work_, name, 0644, true), kExists);
  EXPECT_EQ(Attr(work_).mtime_ns(), t.mtime_ns()) << "failed create";

  t = Attr(work_);
  auto d = ns().Mkdir(User(), work_, RemoteName(work_, "dir"), 0777);
  ASSERT_OK(d);
  ExpectTouched(work_, t, "mkdir");
  // The new directory's own times are its creation's.
  EXPECT_EQ(d->mtime_ns(), d->ctime_ns());
  t = Attr(work_);
  ASSERT_OK(ns().Symlink(User(), work_, RemoteName(work_, "sym"), "target"));
  ExpectTouched(work_, t, "symlink");
  t = Attr(work_);
  auto f = ns().Lookup(User(), work_, name);
  ASSERT_OK(f);
  ASSERT_OK(ns().Link(User(), f->ino(), work_, RemoteName(work_, "hard")));
  ExpectTouched(work_, t, "link");
  // rename: both parents change, the file's own mtime does not.
  InodeAttr td = Attr(d->ino());
  t = Attr(work_);
  const int64_t file_mtime = Attr(f->ino()).mtime_ns();
  ASSERT_OK(ns().Rename(User(), work_, name, d->ino(), RemoteName(d->ino(), "moved")));
  ExpectTouched(work_, t, "rename (source parent)");
  ExpectTouched(d->ino(), td, "rename (target parent)");
  EXPECT_EQ(Attr(f->ino()).mtime_ns(), file_mtime);
  t = Attr(work_);
  ASSERT_OK(ns().Unlink(User(), work_, RemoteName(work_, "hard")));
  ExpectTouched(work_, t, "unlink");
  td = Attr(d->ino());
  ASSERT_OK(ns().Unlink(User(), d->ino(), RemoteName(d->ino(), "moved")));
  ExpectTouched(d->ino(), td, "unlink (inode on another shard)");
  t = Attr(work_);
  ASSERT_OK(ns().Rmdir(User(), work_, RemoteName(work_, "dir")));
  ExpectTouched(work_, t, "rmdir");
}

TEST_P(DirAttrTest, ExplicitMtimeIsKeptUntilTheNextChange) {
  ASSERT_OK(ns().Create(User(), work_, "a", 0644, true));
  SetAttrRequest req;
  *req.mutable_caller() = Root();
  req.set_ino(work_);
  req.set_valid(kSetMtime);
  req.set_mtime_ns(1000000000);  // 1970: older than every change so far
  auto r = ns().SetAttr(req);
  ASSERT_OK(r);
  EXPECT_EQ(r->mtime_ns(), 1000000000);
  EXPECT_EQ(Attr(work_).mtime_ns(), 1000000000);
  // chmod changes ctime, not mtime.
  const int64_t ctime = Attr(work_).ctime_ns();
  req.set_valid(kSetMode);
  req.set_mode(01777);
  ASSERT_OK(ns().SetAttr(req));
  EXPECT_EQ(Attr(work_).mtime_ns(), 1000000000);
  EXPECT_GT(Attr(work_).ctime_ns(), ctime);
  // The next entry change, on whatever shard, moves it to now.
  for (int i = 0; i < 4; ++i) {
    const int64_t before = Attr(work_).mtime_ns();
    ASSERT_OK(ns().Create(User(), work_, "b" + std::to_string(i), 0644, true));
    EXPECT_GT(Attr(work_).mtime_ns(), std::max<int64_t>(before, 1000000000));
  }
  // And a later explicit time wins again, also after a reopen.
  req.set_valid(kSetMtime);
  req.set_mtime_ns(2000000000);
  ASSERT_OK(ns().SetAttr(req));
  ASSERT_OK(cluster_->Reopen());
  EXPECT_EQ(Attr(work_).mtime_ns(), 2000000000);
  EXPECT_EQ(Attr(work_).nlink(), 2u);
}

INSTANTIATE_TEST_SUITE_P(Shards, DirAttrTest, ::testing::Values(1u, 4u),
                         [](const ::testing::TestParamInfo<uint32_t>& i) {
                           return std::to_string(i.param) + "shards";
                         });

}  // namespace
}  // namespace sluice::meta
