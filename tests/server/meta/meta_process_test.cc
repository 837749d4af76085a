// sluice-meta as real processes on loopback: mgmtd + 2 shards from the
// build, driven through MetaClient over RPC. Namespace ops across shards,
// stale-map refusal and client refresh, SIGTERM, startup errors, acknowledged
// creates surviving kill -9, and a cross-shard rename with the coordinator
// or a participant killed at every step of the two-phase commit.
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <atomic>
#include <chrono>
#include <future>
#include <mutex>
#include <set>
#include <thread>

#include "common/clock.h"
#include "tests/server/meta/meta_proc_cluster.h"

namespace sluice::meta {
namespace {

using testing::MetaProcCluster;

#define ASSERT_OK(expr)                                      \
  do {                                                       \
    const auto& _r = (expr);                                 \
    ASSERT_TRUE(_r.ok()) << #expr << ": " << _r.status().ToString(); \
  } while (0)
#define ASSERT_ST_OK(expr)                                   \
  do {                                                       \
    ::sluice::Status _s = (expr);                            \
    ASSERT_TRUE(_s.ok()) << #expr << ": " << _s.ToString();  \
  } while (0)

Caller Root() { return MakeCaller(0, 0); }

// A name under `parent` whose dentry lives on `shard` of `n`.
std::string NameOnShard(uint64_t parent, const std::string& prefix, uint32_t shard, uint32_t n) {
  for (int i = 0;; ++i) {
    std::string name = prefix + std::to_string(i);
    if (DentryShard(parent, name, n) == shard) return name;
  }
}

std::set<std::string> ListAll(MetaClient& c, uint64_t dir, uint32_t page) {
  std::set<std::string> names;
  std::string cookie;
  for (int guard = 0; guard < 100000; ++guard) {
    auto p = c.ReadDir(Root(), dir, cookie, page);
    EXPECT_TRUE(p.ok()) << p.status().ToString();
    if (!p.ok()) break;
    for (auto& e : p->entries) EXPECT_TRUE(names.insert(e.name()).second) << "twice: " << e.name();
    cookie = p->cookie;
    if (p->eof) break;
  }
  return names;
}

// Waits (sleeping, bounded) until no shard holds a prepared transaction.
::testing::AssertionResult NoPreparedTxns(MetaProcCluster& cl, int shards, int timeout_ms = 8000) {
  rpc::RpcClient* rpc = cl.rpc();
  if (rpc == nullptr) return ::testing::AssertionFailure() << "no RPC client";
  const uint64_t deadline = NowMillis() + timeout_ms;
  std::string last;
  for (;;) {
    bool clean = true;
    for (int s = 0; s < shards; ++s) {
      RemoteShardHandle h(rpc, rpc->Resolve("127.0.0.1", cl.port(s)).value(), s);
      auto p = h.TxnListPrepared();
      if (!p.ok() || !p->empty()) {
        clean = false;
        last = "shard " + std::to_string(s) + ": " +
               (p.ok() ? std::to_string(p->size()) + " prepared" : p.status().ToString());
      }
    }
    if (clean) return ::testing::AssertionSuccess();
    if (NowMillis() > deadline) return ::testing::AssertionFailure() << last;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

TEST(MetaProcess, OpsAcrossTwoShards) {
  MetaProcCluster cl(2);
  ASSERT_TRUE(cl.StartAll());
  auto c = cl.Client();
  ASSERT_TRUE(c);
  ASSERT_EQ(c->num_shards(), 2u);

  // Directories and files on both shards.
  std::string d0 = NameOnShard(kRootIno, "dir", 0, 2), d1 = NameOnShard(kRootIno, "dir", 1, 2);
  auto a = c->Mkdir(Root(), kRootIno, d0, 0755);
  ASSERT_OK(a);
  auto b = c->Mkdir(Root(), kRootIno, d1, 0755);
  ASSERT_OK(b);
  EXPECT_EQ(InodeShard(a->ino()), 0u);
  EXPECT_EQ(InodeShard(b->ino()), 1u);
  std::set<std::string> created;
  for (int i = 0; i < 300; ++i) {
    std::string n = "f" + std::to_string(i);
    auto r = c->Create(Root(), a->ino(), n, 0644, true);
    ASSERT_OK(r);
    EXPECT_TRUE(r->created);
    created.insert(n);
  }
  // Errors cross the wire with their codes.
  EXPECT_EQ(c->Create(Root(), a->ino(), "f7", 0644, true).status().code(), Code::kExists);
  EXPECT_EQ(c->Lookup(Root(), a->ino(), "nope").status().code(), Code::kNotFound);
  EXPECT_EQ(c->Mkdir(Root(), kRootIno, std::string(256, 'x'), 0755).status().code(),
            Code::kNameTooLong);
  EXPECT_EQ(c->Create(MakeCaller(1000, 1000), a->ino(), "denied", 0644, true).status().code(),
            Code::kPermission);
  EXPECT_EQ(c->Rmdir(Root(), kRootIno, d0).code(), Code::kNotEmpty);

  // Readdir across both shards, small pages, each entry once.
  EXPECT_EQ(ListAll(*c, a->ino(), 7), created);
  EXPECT_EQ(ListAll(*c, a->ino(), 1000), created);
  auto whole = c->ReadDirAll(Root(), a->ino());  // both shards at once, over RPC
  ASSERT_TRUE(whole.ok()) << whole.status().ToString();
  std::set<std::string> names;
  for (auto& e : *whole) EXPECT_TRUE(names.insert(e.name()).second) << "twice: " << e.name();
  EXPECT_EQ(names, created);

  // Attributes, symlinks, xattrs, length reports.
  auto f = c->Lookup(Root(), a->ino(), "f1");
  ASSERT_OK(f);
  SetAttrRequest sa;
  *sa.mutable_caller() = Root();
  sa.set_ino(f->ino());
  sa.set_valid(kSetMode);
  sa.set_mode(0600);
  ASSERT_OK(c->SetAttr(sa));
  EXPECT_EQ(c->GetAttr(f->ino())->mode(), 0600u);
  auto ln = c->Symlink(Root(), b->ino(), "ln", "/some/where");
  ASSERT_OK(ln);
  EXPECT_EQ(*c->Readlink(ln->ino()), "/some/where");
  ASSERT_ST_OK(c->SetXattr(Root(), f->ino(), "user.k", "v", 0));
  EXPECT_EQ(*c->GetXattr(Root(), f->ino(), "user.k"), "v");
  EXPECT_EQ(c->ListXattr(Root(), f->ino())->size(), 1u);
  EXPECT_EQ(*c->ReportLength(f->ino(), 5000), 5000u);
  EXPECT_EQ(*c->ReportLength(f->ino(), 100), 5000u);

  // Cross-shard link and rename, then unlink of a name whose inode is elsewhere.
  std::string on1 = NameOnShard(b->ino(), "moved", InodeShard(f->ino()) ^ 1, 2);
  auto l = c->Link(Root(), f->ino(), b->ino(), "hard");
  ASSERT_OK(l);
  EXPECT_EQ(l->nlink(), 2u);
  ASSERT_ST_OK(c->Rename(Root(), a->ino(), "f2", b->ino(), on1));
  EXPECT_EQ(c->Lookup(Root(), a->ino(), "f2").status().code(), Code::kNotFound);
  auto moved = c->Lookup(Root(), b->ino(), on1);
  ASSERT_OK(moved);
  ASSERT_ST_OK(c->Unlink(Root(), b->ino(), on1));
  EXPECT_EQ(c->GetAttr(moved->ino()).status().code(), Code::kNotFound);
  ASSERT_ST_OK(c->Unlink(Root(), b->ino(), "hard"));
  EXPECT_EQ(c->GetAttr(f->ino())->nlink(), 1u);
  // A directory cannot move under itself.
  auto sub = c->Mkdir(Root(), a->ino(), "sub", 0755);
  ASSERT_OK(sub);
  EXPECT_EQ(c->Rename(Root(), kRootIno, d0, sub->ino(), "loop").code(), Code::kInvalid);

  // rmdir empties: remove everything in a, then a itself.
  for (auto& n : created) {
    if (n != "f2") ASSERT_ST_OK(c->Unlink(Root(), a->ino(), n));
  }
  ASSERT_ST_OK(c->Rmdir(Root(), a->ino(), "sub"));
  ASSERT_ST_OK(c->Rmdir(Root(), kRootIno, d0));
  EXPECT_EQ(c->Create(Root(), a->ino(), "late", 0644, true).status().code(), Code::kNotFound);
  auto fs = c->StatFs();
  ASSERT_OK(fs);
  EXPECT_GE(fs->inodes, 3u);  // root, d1, ln

  // SIGTERM stops a shard cleanly (exit 0).
  cl.shard_proc(1).Kill(SIGTERM);
  int status = cl.shard_proc(1).Wait(10000);
  ASSERT_TRUE(WIFEXITED(status)) << "status " << status;
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

// Directory nlink and parent times through the real processes, with the
// directory's inode on one shard and its entries on the other.
TEST(MetaProcess, DirectoryNlinkAndTimesAcrossShards) {
  MetaProcCluster cl(2);
  ASSERT_TRUE(cl.StartAll());
  auto c = cl.Client();
  ASSERT_TRUE(c);
  // a's inode on shard 0, b's on shard 1.
  auto a = c->Mkdir(Root(), kRootIno, NameOnShard(kRootIno, "a", 0, 2), 0755);
  auto b = c->Mkdir(Root(), kRootIno, NameOnShard(kRootIno, "b", 1, 2), 0755);
  ASSERT_OK(a);
  ASSERT_OK(b);
  ASSERT_EQ(InodeShard(a->ino()), 0u);
  ASSERT_EQ(InodeShard(b->ino()), 1u);
  EXPECT_EQ(c->GetAttr(kRootIno)->nlink(), 4u);
  // Subdirectories of a whose entries live on shard 1 (not a's inode shard) and on shard 0.
  const std::string far = NameOnShard(a->ino(), "far", 1, 2);
  const std::string near = NameOnShard(a->ino(), "near", 0, 2);
  InodeAttr before = *c->GetAttr(a->ino());
  auto sub = c->Mkdir(Root(), a->ino(), far, 0755);
  ASSERT_OK(sub);
  ASSERT_OK(c->Mkdir(Root(), a->ino(), near, 0755));
  auto after = c->GetAttr(a->ino());
  ASSERT_OK(after);
  EXPECT_EQ(after->nlink(), 4u);
  EXPECT_GT(after->mtime_ns(), before.mtime_ns());
  EXPECT_GT(after->ctime_ns(), before.ctime_ns());
  EXPECT_EQ(c->Lookup(Root(), kRootIno, NameOnShard(kRootIno, "a", 0, 2))->nlink(), 4u);
  // A file created on the far shard moves a's mtime, not its nlink.
  before = *after;
  ASSERT_OK(c->Create(Root(), a->ino(), NameOnShard(a->ino(), "file", 1, 2), 0644, true));
  after = c->GetAttr(a->ino());
  ASSERT_OK(after);
  EXPECT_EQ(after->nlink(), 4u);
  EXPECT_GT(after->mtime_ns(), before.mtime_ns());
  // Cross-shard rename of a directory: a loses a link, b gains one, and
  // both parents' times move.
  InodeAttr ta = *after, tb = *c->GetAttr(b->ino());
  ASSERT_ST_OK(c->Rename(Root(), a->ino(), far, b->ino(), NameOnShard(b->ino(), "moved", 0, 2)));
  auto a2 = c->GetAttr(a->ino());
  auto b2 = c->GetAttr(b->ino());
  ASSERT_OK(a2);
  ASSERT_OK(b2);
  EXPECT_EQ(a2->nlink(), 3u);
  EXPECT_EQ(b2->nlink(), 3u);
  EXPECT_GT(a2->mtime_ns(), ta.mtime_ns());
  EXPECT_GT(b2->mtime_ns(), tb.mtime_ns());
  EXPECT_EQ(c->GetAttr(sub->ino())->parent(), b->ino());
  // rmdir on the far shard; unlink updates the parent's times.
  ASSERT_ST_OK(c->Rmdir(Root(), b->ino(), NameOnShard(b->ino(), "moved", 0, 2)));
  EXPECT_EQ(c->GetAttr(b->ino())->nlink(), 2u);
  tb = *c->GetAttr(b->ino());
  ASSERT_OK(c->Create(Root(), b->ino(), "x", 0644, true));
  ASSERT_ST_OK(c->Unlink(Root(), b->ino(), "x"));
  EXPECT_GT(c->GetAttr(b->ino())->mtime_ns(), tb.mtime_ns());
  // Kept across a restart of both shards.
  cl.shard_proc(0).Kill(SIGKILL);
  cl.shard_proc(1).Kill(SIGKILL);
  cl.shard_proc(0).Wait(10000);
  cl.shard_proc(1).Wait(10000);
  ASSERT_TRUE(cl.StartShard(0));
  ASSERT_TRUE(cl.StartShard(1));
  auto a3 = c->GetAttr(a->ino());
  ASSERT_OK(a3);
  EXPECT_EQ(a3->nlink(), 3u);
  EXPECT_EQ(a3->mtime_ns(), a2->mtime_ns());
  EXPECT_EQ(c->GetAttr(b->ino())->nlink(), 2u);
}

// Mode-bit permissions with the caller's uid/gids, every kind of change,
// with entries on both shards: EACCES without write+search on the parent,
// without search on a path component, EPERM under the sticky bit, and the
// same operations succeeding for the owner, a group member and root.
TEST(MetaProcess, PermissionsAcrossShards) {
  MetaProcCluster cl(2);
  ASSERT_TRUE(cl.StartAll());
  auto c = cl.Client();
  ASSERT_TRUE(c);
  const Caller owner = MakeCaller(1000, 1000);
  const Caller other = MakeCaller(2000, 2000);
  Caller member = MakeCaller(3000, 3000);
  member.add_gids(1000);
  auto home = c->Mkdir(Root(), kRootIno, "home", 0755);
  ASSERT_OK(home);
  SetAttrRequest chown;
  *chown.mutable_caller() = Root();
  chown.set_ino(home->ino());
  chown.set_valid(kSetUid | kSetGid);
  chown.set_uid(1000);
  chown.set_gid(1000);
  ASSERT_OK(c->SetAttr(chown));
  const uint64_t h = home->ino();
  // Files and directories of the owner on both shards.
  std::vector<std::string> files, dirs;
  for (uint32_t s = 0; s < 2; ++s) {
    files.push_back(NameOnShard(h, "f", s, 2));
    dirs.push_back(NameOnShard(h, "d", s, 2));
    ASSERT_OK(c->Create(owner, h, files.back(), 0644, true));
    ASSERT_OK(c->Mkdir(owner, h, dirs.back(), 0755));
  }
  auto f0 = c->Lookup(owner, h, files[0]);
  ASSERT_OK(f0);
  for (uint32_t s = 0; s < 2; ++s) {
    const std::string n = NameOnShard(h, "new", s, 2);
    // No write permission on home (0755, owner 1000): every change is EACCES.
    EXPECT_EQ(c->Create(other, h, n, 0644, true).status().code(), Code::kPermission);
    EXPECT_EQ(c->Mkdir(other, h, n, 0755).status().code(), Code::kPermission);
    EXPECT_EQ(c->Symlink(other, h, n, "t").status().code(), Code::kPermission);
    EXPECT_EQ(c->Link(other, f0->ino(), h, n).status().code(), Code::kPermission);
    EXPECT_EQ(c->Unlink(other, h, files[s]).code(), Code::kPermission);
    EXPECT_EQ(c->Rmdir(other, h, dirs[s]).code(), Code::kPermission);
    EXPECT_EQ(c->Rename(other, h, files[s], h, n).code(), Code::kPermission);
    // Reading is allowed.
    EXPECT_TRUE(c->Lookup(other, h, files[s]).ok());
  }
  EXPECT_TRUE(c->ReadDir(other, h, {}, 100).ok());
  // Rename needs write on both parents: from a world-writable directory into home is EACCES.
  auto pub = c->Mkdir(Root(), kRootIno, "pub", 0777);
  ASSERT_OK(pub);
  ASSERT_OK(c->Create(other, pub->ino(), "mine", 0644, true));
  EXPECT_EQ(c->Rename(other, pub->ino(), "mine", h, "stolen").code(), Code::kPermission);
  ASSERT_ST_OK(c->Rename(owner, pub->ino(), "mine", h, "given"));
  // Search permission on each component: a 0700 directory hides its entries.
  auto priv = c->Mkdir(owner, h, NameOnShard(h, "priv", 1, 2), 0700);
  ASSERT_OK(priv);
  ASSERT_OK(c->Mkdir(owner, priv->ino(), "inner", 0777));
  EXPECT_EQ(c->Lookup(other, priv->ino(), "inner").status().code(), Code::kPermission);
  EXPECT_EQ(c->Resolve(other, "/home/" + NameOnShard(h, "priv", 1, 2) + "/inner").status().code(),
            Code::kPermission);
  ASSERT_OK(c->Resolve(owner, "/home/" + NameOnShard(h, "priv", 1, 2) + "/inner"));
  // Group bits apply to the caller's supplementary groups.
  auto grp = c->Mkdir(owner, h, "grp", 0770);
  ASSERT_OK(grp);
  for (uint32_t s = 0; s < 2; ++s) {
    const std::string n = NameOnShard(grp->ino(), "g", s, 2);
    EXPECT_EQ(c->Create(other, grp->ino(), n, 0644, true).status().code(), Code::kPermission);
    ASSERT_OK(c->Create(member, grp->ino(), n, 0644, true));
    ASSERT_ST_OK(c->Unlink(member, grp->ino(), n));
  }
  // Sticky directory: others' entries can be neither removed nor renamed
  // away (EPERM); the entry's owner, the directory's owner and root can.
  auto tmp = c->Mkdir(Root(), kRootIno, "tmp", 01777);
  ASSERT_OK(tmp);
  for (uint32_t s = 0; s < 2; ++s) {
    const std::string f = NameOnShard(tmp->ino(), "o", s, 2);
    const std::string d = NameOnShard(tmp->ino(), "od", s, 2);
    ASSERT_OK(c->Create(owner, tmp->ino(), f, 0666, true));
    ASSERT_OK(c->Mkdir(owner, tmp->ino(), d, 0777));
    EXPECT_EQ(c->Unlink(other, tmp->ino(), f).code(), Code::kNotPermitted);
    EXPECT_EQ(c->Rename(other, tmp->ino(), f, tmp->ino(), "x" + f).code(), Code::kNotPermitted);
    EXPECT_EQ(c->Rmdir(other, tmp->ino(), d).code(), Code::kNotPermitted);
    ASSERT_ST_OK(c->Rename(owner, tmp->ino(), f, tmp->ino(), "x" + f));
    ASSERT_ST_OK(c->Unlink(owner, tmp->ino(), "x" + f));
    ASSERT_ST_OK(c->Rmdir(Root(), tmp->ino(), d));
  }
  // The owner and root succeed where others were refused.
  for (uint32_t s = 0; s < 2; ++s) {
    ASSERT_ST_OK(c->Unlink(owner, h, files[s]));
    ASSERT_ST_OK(c->Rmdir(owner, h, dirs[s]));
    ASSERT_OK(c->Create(Root(), h, NameOnShard(h, "byroot", s, 2), 0644, true));
  }
  EXPECT_EQ(c->GetAttr(h)->nlink(), 4u);  // priv, grp
  // A chmod is seen at once by the shard that cached the directory for its
  // permission checks (the directory's shard tells the others to forget it).
  auto open = c->Mkdir(Root(), kRootIno, NameOnShard(kRootIno, "open", 0, 2), 0777);
  ASSERT_OK(open);
  ASSERT_EQ(InodeShard(open->ino()), 0u);
  ASSERT_OK(c->Create(other, open->ino(), NameOnShard(open->ino(), "w", 1, 2), 0644, true));
  SetAttrRequest chmod;
  *chmod.mutable_caller() = Root();
  chmod.set_ino(open->ino());
  chmod.set_valid(kSetMode);
  chmod.set_mode(0755);
  ASSERT_OK(c->SetAttr(chmod));
  EXPECT_EQ(c->Create(other, open->ino(), NameOnShard(open->ino(), "x", 1, 2), 0644, true).status().code(),
            Code::kPermission);
  EXPECT_EQ(c->Unlink(other, open->ino(), NameOnShard(open->ino(), "w", 1, 2)).code(), Code::kPermission);
}

// Many lookups in flight at once over the wire (LookupBatch RPCs and single
// pipelined Lookups): every result equals what Lookup returns, in order.
TEST(MetaProcess, LookupManyAcrossShards) {
  MetaProcCluster cl(2);
  ASSERT_TRUE(cl.StartAll());
  auto c = cl.Client();
  ASSERT_TRUE(c);
  auto d = c->Mkdir(Root(), kRootIno, "d", 0755);
  ASSERT_OK(d);
  ASSERT_OK(c->Mkdir(Root(), d->ino(), "sub", 0755));
  ASSERT_OK(c->Symlink(Root(), d->ino(), "ln", std::string(4000, 't')));  // a large attribute
  std::vector<LookupItem> items;
  for (int i = 0; i < 100; ++i) {
    const std::string n = "f" + std::to_string(i);
    if (i < 90) ASSERT_OK(c->Create(Root(), d->ino(), n, 0644, true));
    items.push_back({d->ino(), n});
  }
  for (int i = 0; i < 40; ++i) items.push_back({d->ino(), "ln"});  // 40 x 4 KB of targets
  items.push_back({d->ino(), "sub"});
  items.push_back({d->ino(), "."});
  items.push_back({d->ino(), std::string(256, 'y')});
  for (size_t max_batch : {size_t{1}, kMaxLookupBatch}) {
    SCOPED_TRACE("max_batch " + std::to_string(max_batch));
    uint64_t l0, r0, l1, r1;
    c->LookupCounts(&l0, &r0);
    auto got = c->LookupMany(Root(), items, max_batch);
    c->LookupCounts(&l1, &r1);
    ASSERT_EQ(got.size(), items.size());
    for (size_t i = 0; i < items.size(); ++i) {
      auto want = c->Lookup(Root(), items[i].parent, items[i].name);
      ASSERT_EQ(got[i].status().code(), want.status().code()) << i << ": " << got[i].status().ToString();
      if (want.ok()) {
        EXPECT_EQ(got[i]->ino(), want->ino()) << i;
        EXPECT_EQ(got[i]->nlink(), want->nlink()) << i;
        EXPECT_EQ(got[i]->symlink_target(), want->symlink_target()) << i;
      }
    }
    EXPECT_EQ(got[95].status().code(), Code::kNotFound);
    EXPECT_EQ(got[141]->nlink(), 3u);
    EXPECT_EQ(got[142].status().code(), Code::kNameTooLong);
    // One RPC per lookup, or batches of up to 32 per shard (the invalid name never left).
    EXPECT_EQ(l1 - l0, items.size() - 1);
    if (max_batch == 1) {
      EXPECT_EQ(r1 - r0, items.size() - 1);
    } else {
      EXPECT_LE(r1 - r0, (items.size() - 1) / kMaxLookupBatch + 2);
    }
  }
}

TEST(MetaProcess, StaleMapRefusedAndClientRefreshes) {
  MetaProcCluster cl(2);
  ASSERT_TRUE(cl.StartAll());
  rpc::ClientOptions co;
  co.fabric.provider = cl.provider();
  auto rpc = rpc::RpcClient::Create(co);
  ASSERT_OK(rpc);
  rpc::Peer shard0 = (*rpc)->Resolve("127.0.0.1", cl.port(0)).value();
  GetAttrRequest req;
  req.set_ino(kRootIno);
  GetAttrResponse resp;
  // The shard learns the map when it registers; each registration bumps it
  // past the bootstrap version 1, so with both shards registered it is >= 3.
  uint64_t known = 0;
  for (uint64_t deadline = NowMillis() + 5000; NowMillis() < deadline;) {
    auto r = (*rpc)->Call(shard0, MetaMethod("GetAttr"), req, &resp, rpc::CallOptions{5000, 0});
    ASSERT_TRUE(r.status.ok()) << r.status.ToString();
    known = r.map_version;
    if (known >= 3) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_GE(known, 3u);
  auto stale = (*rpc)->Call(shard0, MetaMethod("GetAttr"), req, &resp, rpc::CallOptions{5000, 1});
  EXPECT_EQ(stale.status.code(), Code::kStaleMap) << stale.status.ToString();
  EXPECT_NE(stale.status.message().find("map version 1"), std::string::npos) << stale.status.message();
  // A request built against the version the shard reports is served (the
  // map may still move between the two calls: then ask again).
  bool served = false;
  for (int i = 0; i < 20 && !served; ++i) {
    auto now = (*rpc)->Call(shard0, MetaMethod("GetAttr"), req, &resp, rpc::CallOptions{5000, 0});
    ASSERT_TRUE(now.status.ok()) << now.status.ToString();
    auto current =
        (*rpc)->Call(shard0, MetaMethod("GetAttr"), req, &resp, rpc::CallOptions{5000, now.map_version});
    served = current.status.ok();
    if (!served) {
      EXPECT_EQ(current.status.code(), Code::kStaleMap) << current.status.ToString();
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
  EXPECT_TRUE(served);

  // A client holding an old map: restart shard 1 (a new incarnation bumps
  // the map); once shard 0 knows, the client is refused, refreshes, succeeds.
  auto c = cl.Client();
  ASSERT_TRUE(c);
  const uint64_t v0 = c->map_version();
  cl.shard_proc(1).Kill(SIGTERM);
  int status = cl.shard_proc(1).Wait(10000);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "shard 1 on SIGTERM: " << status;
  ASSERT_TRUE(cl.StartShard(1));
  bool bumped = false;
  for (uint64_t deadline = NowMillis() + 5000; NowMillis() < deadline && !bumped;) {
    auto r = (*rpc)->Call(shard0, MetaMethod("GetAttr"), req, &resp, rpc::CallOptions{5000, 0});
    bumped = r.status.ok() && r.map_version > v0;
    if (!bumped) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_TRUE(bumped) << "shard 0 never learned a map newer than " << v0;
  const uint64_t refreshes = c->stats().map_refreshes.load();
  ASSERT_OK(c->GetAttr(kRootIno));
  EXPECT_GT(c->stats().map_refreshes.load(), refreshes);
  EXPECT_GT(c->map_version(), v0);
}

TEST(MetaProcess, StartupErrorsNameTheConfigField) {
  MetaProcCluster cl(2);
  // Port in use: hold shard 1's port.
  test::TempDir scratch;
  {
    test::Child holder = test::Child::Spawn(MetaProcCluster::Guarded({test::BinDir() + "/sluice-meta", "--config", cl.config(), "--id", "1"}),
                                            scratch.path() + "/first.log");
    ASSERT_TRUE(test::WaitForText(scratch.path() + "/first.log", "serving on"));
    std::string log = scratch.path() + "/second.log";
    test::Child second = test::Child::Spawn(MetaProcCluster::Guarded({test::BinDir() + "/sluice-meta", "--config", cl.config(), "--id", "1"}), log);
    int st = second.Wait(10000);
    ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 1) << st;
    EXPECT_TRUE(test::WaitForText(log, "[[meta]] id=1 port", 1000));
    EXPECT_TRUE(test::WaitForText(log, cl.config(), 1000));
  }
  // Unknown id.
  {
    std::string log = scratch.path() + "/id.log";
    test::Child c = test::Child::Spawn(MetaProcCluster::Guarded({test::BinDir() + "/sluice-meta", "--config", cl.config(), "--id", "9"}), log);
    int st = c.Wait(10000);
    ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 1) << st;
    EXPECT_TRUE(test::WaitForText(log, "no [[meta]] entry with id = 9", 1000));
  }
  // Unwritable dir (a file where the directory should be), unless root can write anyway.
  {
    std::string cfg = scratch.path() + "/bad.toml";
    std::ofstream(scratch.path() + "/blocker") << "x";
    std::ofstream f(cfg);
    f << "[cluster]\nreplication = 1\n[mgmtd]\nport = " << test::FreePort() << "\n[[meta]]\nid = 1\nport = " << test::FreePort()
      << "\ndir = \"" << scratch.path() << "/blocker/meta\"\n[[data]]\nid = 1\nport = " << test::FreePort() << "\n";
    f.close();
    std::string log = scratch.path() + "/dir.log";
    test::Child c = test::Child::Spawn(MetaProcCluster::Guarded({test::BinDir() + "/sluice-meta", "--config", cfg, "--id", "1"}), log);
    int st = c.Wait(10000);
    ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 1) << st;
    EXPECT_TRUE(test::WaitForText(log, "[[meta]] id=1 dir", 1000));
  }
}

TEST(MetaProcess, AcknowledgedCreatesSurviveKill9) {
  MetaProcCluster cl(2);
  ASSERT_TRUE(cl.StartAll());
  auto setup = cl.Client();
  ASSERT_TRUE(setup);
  auto d = setup->Mkdir(Root(), kRootIno, "d", 0755);
  ASSERT_OK(d);
  // Writers fail fast (no resend) so that only real acknowledgements count.
  // One client (one RPC endpoint) per writer thread: several threads calling
  // a peer through one RpcClient while it is killed can crash the caller in
  // the transport (common/: RpcClient::FailPeer removes the peer's address
  // from the AV while another thread may be posting a send to it).
  constexpr int kWriters = 4;
  std::vector<std::unique_ptr<MetaClient>> ws;
  for (int t = 0; t < kWriters; ++t) {
    ws.push_back(cl.Client(/*unavailable_retry_ms=*/0));
    ASSERT_TRUE(ws.back());
  }
  std::mutex mu;
  std::vector<std::string> acked;
  std::atomic<bool> stop{false};
  std::vector<std::thread> writers;
  for (int t = 0; t < kWriters; ++t) {
    writers.emplace_back([&, t] {
      for (int i = 0; !stop; ++i) {
        std::string n = "w" + std::to_string(t) + "-" + std::to_string(i);
        if (ws[t]->Create(Root(), d->ino(), n, 0644, true).ok()) {
          std::lock_guard<std::mutex> l(mu);
          acked.push_back(n);
        }
      }
    });
  }
  auto acked_count = [&] {
    std::lock_guard<std::mutex> l(mu);
    return acked.size();
  };
  for (uint64_t deadline = NowMillis() + 20000; acked_count() < 400 && NowMillis() < deadline;) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_GE(acked_count(), 400u);
  // Kill both shards with creates in flight; the writers stop issuing new
  // ones at the same moment (see below why).
  stop = true;
  cl.shard_proc(1).Kill(9);
  cl.shard_proc(0).Kill(9);
  cl.shard_proc(1).Wait();
  cl.shard_proc(0).Wait();
  for (auto& t : writers) t.join();
  ASSERT_TRUE(cl.StartShard(0));
  ASSERT_TRUE(cl.StartShard(1));

  auto c = cl.Client();
  ASSERT_TRUE(c);
  int on_shard[2] = {0, 0};
  for (auto& n : acked) {
    auto r = c->Lookup(Root(), d->ino(), n);
    ASSERT_TRUE(r.ok()) << "acknowledged create of " << n << " lost: " << r.status().ToString();
    on_shard[InodeShard(r->ino())]++;
  }
  EXPECT_GT(on_shard[0], 0);
  EXPECT_GT(on_shard[1], 0);
  auto all = ListAll(*c, d->ino(), 500);
  EXPECT_GE(all.size(), acked.size());
  // The writers' clients are not reused and stop before the kill: an RpcClient
  // that calls a server while it is down crashes in libfabric's fi_send
  // (transport problem in common/, reported).
}

// A file on shard 0 renamed to a name on shard 1: two participants, so the
// coordinator's steps are 1 intent, 2-3 prepares, 4 commit point, 5-6
// participant commits, 7 intent deleted.
struct RenameFixture {
  std::string src, dst;
  uint64_t ino = 0;
};

RenameFixture SetupRename(MetaClient& c, int round) {
  RenameFixture f;
  f.src = NameOnShard(kRootIno, "src" + std::to_string(round) + "-", 0, 2);
  f.dst = NameOnShard(kRootIno, "dst" + std::to_string(round) + "-", 1, 2);
  auto r = c.Create(Root(), kRootIno, f.src, 0644, true);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  if (r.ok()) f.ino = r->attr.ino();
  return f;
}

// Exactly the old namespace (src -> ino, no dst) or exactly the new one.
void CheckRenameOutcome(MetaClient& c, const RenameFixture& f, bool done) {
  auto s = c.Lookup(Root(), kRootIno, f.src);
  auto d = c.Lookup(Root(), kRootIno, f.dst);
  if (done) {
    EXPECT_EQ(s.status().code(), Code::kNotFound) << s.status().ToString();
    ASSERT_TRUE(d.ok()) << d.status().ToString();
    EXPECT_EQ(d->ino(), f.ino);
  } else {
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    EXPECT_EQ(s->ino(), f.ino);
    EXPECT_EQ(d.status().code(), Code::kNotFound) << d.status().ToString();
  }
  auto a = c.GetAttr(f.ino);
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  EXPECT_EQ(a->nlink(), 1u);
}

TEST(MetaProcess, CrossShardRenameCoordinatorKilledAtEachStep) {
  MetaProcCluster cl(2);
  ASSERT_TRUE(cl.StartAll());
  auto c = cl.Client();
  ASSERT_TRUE(c);
  const int kCommitPoint = 4, kLastStep = 7;
  for (int k = 1; k <= kLastStep; ++k) {
    SCOPED_TRACE("coordinator killed after step " + std::to_string(k));
    RenameFixture f = SetupRename(*c, k);
    ASSERT_NE(f.ino, 0u);
    // Restart shard 0 armed to die after step k.
    cl.shard_proc(0).Kill(SIGTERM);
    cl.shard_proc(0).Wait();
    ASSERT_TRUE(cl.StartShard(0, {"--crash-at", "step:" + std::to_string(k)}));
    auto once = cl.Client(/*unavailable_retry_ms=*/0);
    ASSERT_TRUE(once);
    auto rename = std::async(std::launch::async, [&] {
      return once->Rename(Root(), kRootIno, f.src, kRootIno, f.dst);
    });
    int st = cl.shard_proc(0).Wait(15000);
    ASSERT_TRUE(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL) << "shard 0 was not killed: " << st;
    ASSERT_TRUE(cl.StartShard(0));
    Status rs = rename.get();
    EXPECT_FALSE(rs.ok()) << "the rename cannot be acknowledged by a killed coordinator";
    ASSERT_TRUE(NoPreparedTxns(cl, 2)) << "recovery did not finish";
    CheckRenameOutcome(*c, f, k >= kCommitPoint);
  }
  // Still a working namespace.
  ASSERT_OK(c->Create(Root(), kRootIno, "after", 0644, true));
}

// The coordinator calls the participant while it is down (abort, recovery):
// the calls fail, nothing crashes, and recovery finishes once it is back.
TEST(MetaProcess, CrossShardRenameParticipantKilledAfterPrepare) {
  MetaProcCluster cl(2);
  ASSERT_TRUE(cl.StartAll());
  auto c = cl.Client();
  ASSERT_TRUE(c);
  auto once = cl.Client(0);  // no resends: the rename's own outcome
  ASSERT_TRUE(once);
  // Shard 1 dies right after its prepare is durable: the coordinator aborts;
  // the restarted shard holds the prepare until recovery undoes it.
  RenameFixture f = SetupRename(*c, 100);
  cl.shard_proc(1).Kill(SIGTERM);
  cl.shard_proc(1).Wait();
  ASSERT_TRUE(cl.StartShard(1, {"--crash-at", "prepare"}));
  Status rs = once->Rename(Root(), kRootIno, f.src, kRootIno, f.dst);
  EXPECT_FALSE(rs.ok());
  int st = cl.shard_proc(1).Wait(15000);
  ASSERT_TRUE(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL) << st;
  ASSERT_TRUE(cl.StartShard(1));
  ASSERT_TRUE(NoPreparedTxns(cl, 2));
  CheckRenameOutcome(*c, f, false);
  // The keys are free again: the same rename now succeeds.
  ASSERT_ST_OK(c->Rename(Root(), kRootIno, f.src, kRootIno, f.dst));
  CheckRenameOutcome(*c, f, true);
}

// Shard 1 dies when the commit decision arrives: the rename is acknowledged
// (the decision is durable) and the restarted shard applies it.
// The coordinator's recovery calls the participant while it is down.
TEST(MetaProcess, CrossShardRenameParticipantKilledBeforeApplyingCommit) {
  MetaProcCluster cl(2);
  ASSERT_TRUE(cl.StartAll());
  auto c = cl.Client();
  ASSERT_TRUE(c);
  auto once = cl.Client(0);
  ASSERT_TRUE(once);
  RenameFixture f = SetupRename(*c, 200);
  cl.shard_proc(1).Kill(SIGTERM);
  cl.shard_proc(1).Wait();
  ASSERT_TRUE(cl.StartShard(1, {"--crash-at", "decide"}));
  Status rs = once->Rename(Root(), kRootIno, f.src, kRootIno, f.dst);
  EXPECT_TRUE(rs.ok()) << rs.ToString();
  int st = cl.shard_proc(1).Wait(15000);
  ASSERT_TRUE(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL) << st;
  ASSERT_TRUE(cl.StartShard(1));
  ASSERT_TRUE(NoPreparedTxns(cl, 2));
  CheckRenameOutcome(*c, f, true);
}

}  // namespace
}  // namespace sluice::meta
