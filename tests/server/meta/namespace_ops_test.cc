// Every namespace operation's success and error paths, run against a
// one-shard and a four-shard cluster (the same test, two back ends).
#include <set>
#include <thread>

#include "tests/server/meta/meta_test_util.h"

namespace sluice::meta {
namespace {

using testing::MetaCluster;
using testing::Root;
using testing::User;

class NamespaceOpsTest : public ::testing::TestWithParam<uint32_t> {
 protected:
  void SetUp() override {
    dir_ = testing::MakeTempDir("ops");
    cluster_ = std::make_unique<MetaCluster>(dir_, GetParam());
    // A world-writable work directory for the unprivileged user.
    auto w = ns().Mkdir(Root(), kRootIno, "w", 0777);
    ASSERT_TRUE(w.ok()) << w.status().ToString();
    work_ = w->ino();
  }
  void TearDown() override {
    cluster_.reset();
    std::filesystem::remove_all(dir_);
  }
  ShardRouter& ns() { return cluster_->ns(); }

  std::string dir_;
  std::unique_ptr<MetaCluster> cluster_;
  uint64_t work_ = 0;
};

TEST_P(NamespaceOpsTest, RootExists) {
  auto r = ns().GetAttr(kRootIno);
  ASSERT_OK(r);
  EXPECT_EQ(r->type(), FILE_TYPE_DIRECTORY);
  EXPECT_EQ(r->mode(), 0755u);
  auto dot = ns().Lookup(User(), kRootIno, "..");
  ASSERT_OK(dot);
  EXPECT_EQ(dot->ino(), kRootIno);
}

TEST_P(NamespaceOpsTest, CreateLookupGetattr) {
  auto c = ns().Create(User(), work_, "f", 0640, true);
  ASSERT_OK(c);
  EXPECT_TRUE(c->created);
  EXPECT_EQ(c->attr.type(), FILE_TYPE_REGULAR);
  EXPECT_EQ(c->attr.mode(), 0640u);
  EXPECT_EQ(c->attr.uid(), 1000u);
  EXPECT_EQ(c->attr.gid(), 1000u);
  EXPECT_EQ(c->attr.nlink(), 1u);
  // The inode lives on the shard of its dentry.
  EXPECT_EQ(InodeShard(c->attr.ino()), DentryShard(work_, "f", GetParam()));
  auto l = ns().Lookup(User(), work_, "f");
  ASSERT_OK(l);
  EXPECT_EQ(l->ino(), c->attr.ino());
  auto g = ns().GetAttr(c->attr.ino());
  ASSERT_OK(g);
  EXPECT_EQ(g->mode(), 0640u);
  // O_CREAT without O_EXCL opens the existing file.
  auto again = ns().Create(User(), work_, "f", 0600, false);
  ASSERT_OK(again);
  EXPECT_FALSE(again->created);
  EXPECT_EQ(again->attr.ino(), c->attr.ino());
  EXPECT_CODE(ns().Create(User(), work_, "f", 0600, true), kExists);
}

TEST_P(NamespaceOpsTest, CreateErrors) {
  EXPECT_CODE(ns().Lookup(User(), work_, "missing"), kNotFound);
  EXPECT_CODE(ns().Create(User(), 0x777777, "x", 0644, true), kNotFound);
  auto f = ns().Create(User(), work_, "file", 0644, true);
  ASSERT_OK(f);
  EXPECT_CODE(ns().Create(User(), f->attr.ino(), "x", 0644, true), kNotDir);
  EXPECT_CODE(ns().Mkdir(User(), f->attr.ino(), "x", 0755), kNotDir);
  EXPECT_CODE(ns().Lookup(User(), f->attr.ino(), "x"), kNotDir);
  auto d = ns().Mkdir(User(), work_, "dir", 0755);
  ASSERT_OK(d);
  EXPECT_CODE(ns().Create(User(), work_, "dir", 0644, false), kIsDir);
  EXPECT_CODE(ns().Mkdir(User(), work_, "dir", 0755), kExists);
  EXPECT_CODE(ns().Mkdir(User(), work_, "file", 0755), kExists);
  EXPECT_CODE(ns().Create(User(), work_, "a/b", 0644, true), kInvalid);
  EXPECT_CODE(ns().Create(User(), work_, std::string("a\0b", 3), 0644, true), kInvalid);
  EXPECT_CODE(ns().Create(User(), work_, "", 0644, true), kNotFound);
}

TEST_P(NamespaceOpsTest, NameLengthLimit) {
  std::string ok(255, 'n');
  ASSERT_OK(ns().Create(User(), work_, ok, 0644, true));
  ASSERT_OK(ns().Lookup(User(), work_, ok));
  std::string too_long(256, 'n');
  auto r = ns().Create(User(), work_, too_long, 0644, true);
  EXPECT_CODE(r, kNameTooLong);
  EXPECT_NE(r.status().message().find("256"), std::string::npos) << r.status().ToString();
  EXPECT_CODE(ns().Mkdir(User(), work_, too_long, 0755), kNameTooLong);
  EXPECT_CODE(ns().Lookup(User(), work_, too_long), kNameTooLong);
  EXPECT_CODE(ns().Symlink(User(), work_, too_long, "t"), kNameTooLong);
  EXPECT_CODE(ns().Rename(User(), work_, ok, work_, too_long), kNameTooLong);
  EXPECT_CODE(ns().Symlink(User(), work_, "l", std::string(4096, 't')), kNameTooLong);
}

TEST_P(NamespaceOpsTest, EveryByteButSlashAndNul) {
  // One name per byte value, plus one name holding all of them (split to fit 255 bytes).
  std::set<std::string> want;
  for (int b = 1; b < 256; ++b) {
    if (b == '/') continue;
    std::string name = "x" + std::string(1, static_cast<char>(b)) + "y";
    want.insert(name);
  }
  std::string all;
  for (int b = 1; b < 256; ++b) {
    if (b != '/') all.push_back(static_cast<char>(b));
  }
  want.insert(all.substr(0, 127));
  want.insert(all.substr(127));
  want.insert(std::string(1, '\xff'));
  want.insert(" ");
  want.insert("...");
  for (const auto& n : want) {
    auto r = ns().Create(User(), work_, n, 0644, true);
    ASSERT_TRUE(r.ok()) << PrintableName(n) << ": " << r.status().ToString();
  }
  for (const auto& n : want) ASSERT_OK(ns().Lookup(User(), work_, n));
  std::set<std::string> got;
  std::string cookie;
  for (;;) {
    auto page = ns().ReadDir(User(), work_, cookie, 37);
    ASSERT_OK(page);
    for (auto& e : page->entries) EXPECT_TRUE(got.insert(e.name()).second) << "listed twice";
    cookie = page->cookie;
    if (page->eof) break;
  }
  EXPECT_EQ(got, want);
  for (const auto& n : want) ASSERT_OK(ns().Unlink(User(), work_, n));
  EXPECT_TRUE(cluster_->RawEntries(work_).empty());
}

TEST_P(NamespaceOpsTest, MkdirRmdir) {
  auto d = ns().Mkdir(User(), work_, "d", 0750);
  ASSERT_OK(d);
  EXPECT_EQ(d->type(), FILE_TYPE_DIRECTORY);
  EXPECT_EQ(d->nlink(), 2u);
  EXPECT_EQ(d->parent(), work_);
  auto dd = ns().Lookup(User(), d->ino(), "..");
  ASSERT_OK(dd);
  EXPECT_EQ(dd->ino(), work_);
  // Children spread over shards; any of them keeps the directory.
  for (int i = 0; i < 20; ++i) ASSERT_OK(ns().Create(User(), d->ino(), "c" + std::to_string(i), 0644, true));
  auto st = ns().Rmdir(User(), work_, "d");
  EXPECT_CODE(st, kNotEmpty);
  EXPECT_NE(st.message().find("not empty"), std::string::npos) << st.ToString();
  for (int i = 0; i < 19; ++i) ASSERT_OK(ns().Unlink(User(), d->ino(), "c" + std::to_string(i)));
  EXPECT_CODE(ns().Rmdir(User(), work_, "d"), kNotEmpty);
  ASSERT_OK(ns().Unlink(User(), d->ino(), "c19"));
  ASSERT_OK(ns().Rmdir(User(), work_, "d"));
  EXPECT_CODE(ns().Lookup(User(), work_, "d"), kNotFound);
  EXPECT_CODE(ns().GetAttr(d->ino()), kNotFound);
  // A removed directory takes no new entries, on any shard.
  for (int i = 0; i < 8; ++i) EXPECT_CODE(ns().Create(Root(), d->ino(), "late" + std::to_string(i), 0644, true), kNotFound);
  EXPECT_CODE(ns().Rmdir(User(), work_, "d"), kNotFound);
  auto f = ns().Create(User(), work_, "f", 0644, true);
  ASSERT_OK(f);
  EXPECT_CODE(ns().Rmdir(User(), work_, "f"), kNotDir);
  EXPECT_CODE(ns().Unlink(Root(), kRootIno, "w"), kIsDir);
  EXPECT_CODE(ns().Rmdir(User(), work_, "."), kInvalid);
  EXPECT_CODE(ns().Rmdir(User(), work_, ".."), kNotEmpty);
}

TEST_P(NamespaceOpsTest, UnlinkAndHardLinks) {
  auto f = ns().Create(User(), work_, "f", 0644, true);
  ASSERT_OK(f);
  auto sub = ns().Mkdir(User(), work_, "sub", 0755);
  ASSERT_OK(sub);
  // Several links: with 4 shards some land on another shard than the inode.
  for (int i = 0; i < 6; ++i) {
    auto l = ns().Link(User(), f->attr.ino(), sub->ino(), "l" + std::to_string(i));
    ASSERT_OK(l);
    EXPECT_EQ(l->nlink(), static_cast<uint32_t>(2 + i));
  }
  EXPECT_CODE(ns().Link(User(), f->attr.ino(), sub->ino(), "l0"), kExists);
  EXPECT_CODE(ns().Link(User(), sub->ino(), work_, "dirlink"), kNotPermitted);
  EXPECT_CODE(ns().Link(User(), f->attr.ino(), 0x123456, "x"), kNotFound);
  auto after = ns().GetAttr(f->attr.ino());
  ASSERT_OK(after);
  EXPECT_EQ(after->nlink(), 7u);
  // Each unlink answers with the inode as it left it (local or through the
  // coordinator when the link lives on another shard than the inode).
  InodeAttr victim;
  ASSERT_OK(ns().Unlink(User(), work_, "f", &victim));
  EXPECT_EQ(victim.ino(), f->attr.ino());
  EXPECT_EQ(victim.nlink(), 6u);
  EXPECT_EQ(victim.type(), FILE_TYPE_REGULAR);
  EXPECT_CODE(ns().Unlink(User(), work_, "f"), kNotFound);
  for (int i = 0; i < 5; ++i) {
    ASSERT_OK(ns().Unlink(User(), sub->ino(), "l" + std::to_string(i), &victim));
    EXPECT_EQ(victim.nlink(), static_cast<uint32_t>(5 - i)) << "l" << i;
    EXPECT_EQ(victim.ino(), f->attr.ino());
  }
  auto one = ns().GetAttr(f->attr.ino());
  ASSERT_OK(one);
  EXPECT_EQ(one->nlink(), 1u);
  ASSERT_OK(ns().Unlink(User(), sub->ino(), "l5", &victim));
  EXPECT_EQ(victim.nlink(), 0u) << "the last name: the inode is gone";
  EXPECT_EQ(victim.ino(), f->attr.ino());
  EXPECT_EQ(victim.size(), f->attr.size());
  EXPECT_CODE(ns().GetAttr(f->attr.ino()), kNotFound);
  auto fs = ns().StatFs();
  ASSERT_OK(fs);
  EXPECT_EQ(fs->inodes, 3u);  // root, w, sub
  EXPECT_EQ(fs->dentries, 2u);
}

TEST_P(NamespaceOpsTest, SymlinkReadlink) {
  std::string target = "../some/where\x01\xff";
  auto s = ns().Symlink(User(), work_, "ln", target);
  ASSERT_OK(s);
  EXPECT_EQ(s->type(), FILE_TYPE_SYMLINK);
  EXPECT_EQ(s->size(), target.size());
  auto t = ns().Readlink(s->ino());
  ASSERT_OK(t);
  EXPECT_EQ(t.value(), target);
  auto f = ns().Create(User(), work_, "f", 0644, true);
  ASSERT_OK(f);
  EXPECT_CODE(ns().Readlink(f->attr.ino()), kInvalid);
  EXPECT_CODE(ns().Symlink(User(), work_, "ln", "x"), kExists);
  EXPECT_CODE(ns().Symlink(User(), work_, "empty", ""), kNotFound);
  ASSERT_OK(ns().Unlink(User(), work_, "ln"));
  EXPECT_CODE(ns().Readlink(s->ino()), kNotFound);
}

TEST_P(NamespaceOpsTest, SetAttr) {
  auto f = ns().Create(User(), work_, "f", 0644, true);
  ASSERT_OK(f);
  uint64_t ino = f->attr.ino();
  SetAttrRequest req;
  *req.mutable_caller() = User();
  req.set_ino(ino);
  req.set_valid(kSetMode | kSetSize | kSetAtime | kSetMtime);
  req.set_mode(0600);
  req.set_size(12345);
  req.set_atime_ns(111);
  req.set_mtime_ns(222);
  auto r = ns().SetAttr(req);
  ASSERT_OK(r);
  EXPECT_EQ(r->mode(), 0600u);
  EXPECT_EQ(r->size(), 12345u);
  EXPECT_EQ(r->atime_ns(), 111);
  EXPECT_EQ(r->mtime_ns(), 222);
  EXPECT_GT(r->ctime_ns(), f->attr.ctime_ns() - 1);
  // Non-owner: chmod is EPERM, truncate without write permission is EACCES.
  SetAttrRequest other = req;
  *other.mutable_caller() = User(2000, 2000);
  other.set_valid(kSetMode);
  EXPECT_CODE(ns().SetAttr(other), kNotPermitted);
  other.set_valid(kSetSize);
  EXPECT_CODE(ns().SetAttr(other), kPermission);
  other.set_valid(kSetMtime);
  other.set_mtime_ns(kTimeNow);
  EXPECT_CODE(ns().SetAttr(other), kPermission);
  // chown: only root; chgrp by owner to a group they are in.
  SetAttrRequest own = req;
  own.set_valid(kSetUid);
  own.set_uid(2000);
  EXPECT_CODE(ns().SetAttr(own), kNotPermitted);
  *own.mutable_caller() = Root();
  auto chown = ns().SetAttr(own);
  ASSERT_OK(chown);
  EXPECT_EQ(chown->uid(), 2000u);
  // Directory truncate.
  SetAttrRequest dreq;
  *dreq.mutable_caller() = Root();
  dreq.set_ino(work_);
  dreq.set_valid(kSetSize);
  EXPECT_CODE(ns().SetAttr(dreq), kIsDir);
  dreq.set_ino(0x999999);
  EXPECT_CODE(ns().SetAttr(dreq), kNotFound);
}

TEST_P(NamespaceOpsTest, PermissionBits) {
  auto priv = ns().Mkdir(User(), work_, "private", 0700);
  ASSERT_OK(priv);
  ASSERT_OK(ns().Create(User(), priv->ino(), "secret", 0600, true));
  Caller other = User(2000, 2000);
  EXPECT_CODE(ns().Lookup(other, priv->ino(), "secret"), kPermission);
  EXPECT_CODE(ns().Create(other, priv->ino(), "x", 0644, true), kPermission);
  EXPECT_CODE(ns().Mkdir(other, priv->ino(), "x", 0755), kPermission);
  EXPECT_CODE(ns().Unlink(other, priv->ino(), "secret"), kPermission);
  EXPECT_CODE(ns().ReadDir(other, priv->ino(), {}, 10), kPermission);
  EXPECT_CODE(ns().ReadDirAll(other, priv->ino()), kPermission);
  EXPECT_CODE(ns().Rename(other, priv->ino(), "secret", work_, "stolen"), kPermission);
  EXPECT_CODE(ns().Rmdir(other, work_, "private") , kNotEmpty);
  // Group bits apply to group members.
  auto grp = ns().Mkdir(User(), work_, "grp", 0770);
  ASSERT_OK(grp);
  Caller member = MakeCaller(3000, 3000);
  member.add_gids(1000);
  ASSERT_OK(ns().Create(member, grp->ino(), "ok", 0644, true));
  EXPECT_CODE(ns().Create(other, grp->ino(), "no", 0644, true), kPermission);
  // Read-only directory: search allowed, create refused, root bypasses.
  auto ro = ns().Mkdir(User(), work_, "ro", 0555);
  ASSERT_OK(ro);
  EXPECT_CODE(ns().Create(User(), ro->ino(), "x", 0644, true), kPermission);
  ASSERT_OK(ns().Create(Root(), ro->ino(), "x", 0644, true));
  ASSERT_OK(ns().Lookup(other, ro->ino(), "x"));
  // xattrs follow file read/write bits.
  auto f = ns().Lookup(User(), priv->ino(), "secret");
  ASSERT_OK(f);
  EXPECT_CODE(ns().GetXattr(other, f->ino(), "user.a"), kPermission);
  EXPECT_CODE(ns().SetXattr(other, f->ino(), "user.a", "v", 0), kPermission);
  // Sticky directory: others may not remove what they do not own.
  auto tmp = ns().Mkdir(Root(), work_, "tmp", 01777);
  ASSERT_OK(tmp);
  ASSERT_OK(ns().Create(User(), tmp->ino(), "mine", 0644, true));
  EXPECT_CODE(ns().Unlink(other, tmp->ino(), "mine"), kNotPermitted);
  ASSERT_OK(ns().Unlink(User(), tmp->ino(), "mine"));
}

TEST_P(NamespaceOpsTest, Xattrs) {
  auto f = ns().Create(User(), work_, "f", 0644, true);
  ASSERT_OK(f);
  uint64_t ino = f->attr.ino();
  EXPECT_CODE(ns().GetXattr(User(), ino, "user.a"), kNoData);
  ASSERT_OK(ns().SetXattr(User(), ino, "user.a", std::string("v\0al", 4), 0));
  ASSERT_OK(ns().SetXattr(User(), ino, "user.b", "", kXattrCreate));
  EXPECT_CODE(ns().SetXattr(User(), ino, "user.b", "x", kXattrCreate), kExists);
  EXPECT_CODE(ns().SetXattr(User(), ino, "user.c", "x", kXattrReplace), kNoData);
  ASSERT_OK(ns().SetXattr(User(), ino, "user.b", "new", kXattrReplace));
  auto a = ns().GetXattr(User(), ino, "user.a");
  ASSERT_OK(a);
  EXPECT_EQ(a.value(), std::string("v\0al", 4));
  auto list = ns().ListXattr(User(), ino);
  ASSERT_OK(list);
  EXPECT_EQ(list.value(), (std::vector<std::string>{"user.a", "user.b"}));
  ASSERT_OK(ns().RemoveXattr(User(), ino, "user.a"));
  EXPECT_CODE(ns().RemoveXattr(User(), ino, "user.a"), kNoData);
  EXPECT_CODE(ns().SetXattr(User(), ino, std::string(256, 'k'), "v", 0), kRange);
  EXPECT_CODE(ns().SetXattr(User(), ino, "user.big", std::string(65537, 'v'), 0), kTooBig);
  EXPECT_CODE(ns().GetXattr(User(), 0x5555, "user.a"), kNotFound);
  // Removing the file removes its attributes.
  ASSERT_OK(ns().Unlink(User(), work_, "f"));
  EXPECT_CODE(ns().ListXattr(User(), ino), kNotFound);
}

TEST_P(NamespaceOpsTest, ReportLengthKeepsMaximum) {
  auto f = ns().Create(User(), work_, "f", 0644, true);
  ASSERT_OK(f);
  uint64_t ino = f->attr.ino();
  auto a = ns().ReportLength(ino, 1000);
  ASSERT_OK(a);
  EXPECT_EQ(a.value(), 1000u);
  auto b = ns().ReportLength(ino, 10);
  ASSERT_OK(b);
  EXPECT_EQ(b.value(), 1000u);
  ASSERT_OK(ns().ReportLength(ino, 5000));
  auto g = ns().GetAttr(ino);
  ASSERT_OK(g);
  EXPECT_EQ(g->size(), 5000u);
  EXPECT_CODE(ns().ReportLength(work_, 1), kIsDir);
  EXPECT_CODE(ns().ReportLength(0x4242, 1), kNotFound);
  auto fs = ns().StatFs();
  ASSERT_OK(fs);
  EXPECT_EQ(fs->bytes, 5000u);
}

TEST_P(NamespaceOpsTest, LayoutInheritedAndSettable) {
  auto d = ns().Mkdir(User(), work_, "data", 0755);
  ASSERT_OK(d);
  auto f0 = ns().Create(User(), d->ino(), "before", 0644, true);
  ASSERT_OK(f0);
  EXPECT_EQ(f0->attr.layout().chunk_size(), kDefaultChunkSize);
  EXPECT_EQ(f0->attr.layout().stripe_width(), 1u);
  FileLayout l;
  l.set_chunk_size(4 << 20);
  l.set_stripe_width(3);
  for (uint32_t c : {10, 11, 12, 13, 14}) l.add_chain_ids(c);
  EXPECT_CODE(ns().SetDirLayout(User(2000, 2000), d->ino(), l), kNotPermitted);
  ASSERT_OK(ns().SetDirLayout(User(), d->ino(), l));
  std::set<uint32_t> first_chains;
  for (int i = 0; i < 20; ++i) {
    auto f = ns().Create(User(), d->ino(), "f" + std::to_string(i), 0644, true);
    ASSERT_OK(f);
    const FileLayout& fl = f->attr.layout();
    EXPECT_EQ(fl.chunk_size(), 4u << 20);
    EXPECT_EQ(fl.stripe_width(), 3u);
    ASSERT_EQ(fl.chain_ids_size(), 3);
    for (uint32_t c : fl.chain_ids()) EXPECT_TRUE(c >= 10 && c <= 14);
    first_chains.insert(fl.chain_ids(0));
  }
  EXPECT_GT(first_chains.size(), 1u) << "files should start on different chains";
  // Subdirectories inherit the default; the earlier file kept its layout.
  auto sub = ns().Mkdir(User(), d->ino(), "sub", 0755);
  ASSERT_OK(sub);
  EXPECT_EQ(sub->layout().chunk_size(), 4u << 20);
  auto again = ns().GetAttr(f0->attr.ino());
  ASSERT_OK(again);
  EXPECT_EQ(again->layout().chunk_size(), kDefaultChunkSize);
  // Bounds.
  FileLayout bad = l;
  bad.set_chunk_size(32 * 1024);
  EXPECT_CODE(ns().SetDirLayout(User(), d->ino(), bad), kInvalid);
  bad.set_chunk_size(128u << 20);
  EXPECT_CODE(ns().SetDirLayout(User(), d->ino(), bad), kInvalid);
  bad.set_chunk_size(3 << 20);
  EXPECT_CODE(ns().SetDirLayout(User(), d->ino(), bad), kInvalid);
  bad = l;
  bad.set_stripe_width(6);
  EXPECT_CODE(ns().SetDirLayout(User(), d->ino(), bad), kInvalid);
  EXPECT_CODE(ns().SetDirLayout(User(), f0->attr.ino(), l), kNotDir);
}

TEST_P(NamespaceOpsTest, SurvivesReopen) {
  auto d = ns().Mkdir(User(), work_, "d", 0755);
  ASSERT_OK(d);
  std::set<uint64_t> inos;
  for (int i = 0; i < 50; ++i) {
    auto f = ns().Create(User(), d->ino(), "f" + std::to_string(i), 0644, true);
    ASSERT_OK(f);
    inos.insert(f->attr.ino());
  }
  ASSERT_OK(ns().SetXattr(User(), d->ino(), "user.k", "v", 0));
  ASSERT_OK(cluster_->Reopen());
  for (int i = 0; i < 50; ++i) ASSERT_OK(ns().Lookup(User(), d->ino(), "f" + std::to_string(i)));
  auto x = ns().GetXattr(User(), d->ino(), "user.k");
  ASSERT_OK(x);
  EXPECT_EQ(x.value(), "v");
  // Inode numbers are never reused after a restart.
  for (int i = 0; i < 50; ++i) {
    auto f = ns().Create(User(), d->ino(), "g" + std::to_string(i), 0644, true);
    ASSERT_OK(f);
    EXPECT_TRUE(inos.insert(f->attr.ino()).second) << "inode number reused: " << f->attr.ino();
  }
}

TEST_P(NamespaceOpsTest, RmdirNeverRacesCreate) {
  // One thread keeps creating in a directory while another removes it. At
  // the end, either the directory exists with every created file, or it is
  // gone and no shard holds an entry of it.
  for (int round = 0; round < 20; ++round) {
    std::string name = "r" + std::to_string(round);
    auto d = ns().Mkdir(User(), work_, name, 0755);
    ASSERT_OK(d);
    std::atomic<bool> stop{false};
    std::atomic<int> created{0};
    std::thread creator([&] {
      for (int i = 0; i < 50 && !stop; ++i) {
        auto r = cluster_->ns().Create(User(), d->ino(), "c" + std::to_string(i), 0644, true);
        if (r.ok()) created++;
        if (!r.ok()) break;
      }
    });
    Status st;
    for (int i = 0; i < 50; ++i) {
      st = ns().Rmdir(User(), work_, name);
      if (st.ok()) break;
      ASSERT_EQ(st.code(), Code::kNotEmpty) << st.ToString();
      // Empty it as we go so that rmdir eventually can win.
      auto page = ns().ReadDir(User(), d->ino(), {}, 1000);
      if (page.ok()) {
        for (auto& e : page->entries) (void)ns().Unlink(User(), d->ino(), e.name());
      }
    }
    stop = true;
    creator.join();
    auto raw = cluster_->RawEntries(d->ino());
    if (st.ok()) {
      EXPECT_TRUE(raw.empty()) << "orphan entries in removed dir: " << raw.size();
      EXPECT_CODE(ns().GetAttr(d->ino()), kNotFound);
    } else {
      ASSERT_OK(ns().GetAttr(d->ino()));
    }
  }
}

// Many lookups at once (batched per shard): each result is what Lookup
// returns for that item, in order, errors included.
TEST_P(NamespaceOpsTest, LookupManyMatchesLookup) {
  auto d = ns().Mkdir(User(), work_, "many", 0755);
  ASSERT_OK(d);
  auto priv = ns().Mkdir(User(), work_, "priv", 0700);
  ASSERT_OK(priv);
  ASSERT_OK(ns().Create(User(), priv->ino(), "hidden", 0644, true));
  ASSERT_OK(ns().Mkdir(User(), d->ino(), "sub", 0755));
  for (int i = 0; i < 70; ++i) ASSERT_OK(ns().Create(User(), d->ino(), "f" + std::to_string(i), 0644, true));
  std::vector<LookupItem> items;
  for (int i = 0; i < 80; ++i) items.push_back({d->ino(), "f" + std::to_string(i)});  // 70..79 missing
  items.push_back({d->ino(), "sub"});
  items.push_back({d->ino(), "."});
  items.push_back({d->ino(), ".."});
  items.push_back({d->ino(), std::string(300, 'x')});
  items.push_back({priv->ino(), "hidden"});
  items.push_back({0x7777777, "nodir"});
  for (const Caller& caller : {User(), User(2000, 2000)}) {
    for (size_t max_batch : {size_t{1}, size_t{7}, kMaxLookupBatch}) {
      SCOPED_TRACE("uid " + std::to_string(caller.uid()) + ", max_batch " + std::to_string(max_batch));
      auto got = ns().LookupMany(caller, items, max_batch);
      ASSERT_EQ(got.size(), items.size());
      for (size_t i = 0; i < items.size(); ++i) {
        auto want = ns().Lookup(caller, items[i].parent, items[i].name);
        ASSERT_EQ(got[i].status().code(), want.status().code()) << i << ": " << got[i].status().ToString();
        if (want.ok()) {
          EXPECT_EQ(got[i]->ino(), want->ino()) << i;
          EXPECT_EQ(got[i]->nlink(), want->nlink()) << i;
        }
      }
      EXPECT_TRUE(got[10].ok());
      EXPECT_CODE(got[75], kNotFound);
      EXPECT_EQ(got[80]->type(), FILE_TYPE_DIRECTORY);
      EXPECT_EQ(got[81]->nlink(), 3u);  // "." of many: its subdirectory counted
      EXPECT_EQ(got[82]->ino(), work_);
      EXPECT_CODE(got[83], kNameTooLong);
      if (caller.uid() == 1000) {
        EXPECT_TRUE(got[84].ok());
      } else {
        EXPECT_CODE(got[84], kPermission);
      }
      EXPECT_FALSE(got[85].ok());
    }
  }
  EXPECT_TRUE(ns().LookupMany(User(), {}).empty());
}

INSTANTIATE_TEST_SUITE_P(Shards, NamespaceOpsTest, ::testing::Values(1u, 4u),
                         [](const ::testing::TestParamInfo<uint32_t>& i) {
                           return std::to_string(i.param) + "shards";
                         });

}  // namespace
}  // namespace sluice::meta
