// MetaStore and TxnCoordinator details below the router: placement hash
// stability, routing checks, the participant-unreachable path of 2PC, and
// recovery re-driving a decision.
#include <chrono>
#include <set>
#include <thread>

#include "tests/server/meta/meta_test_util.h"

namespace sluice::meta {
namespace {

using testing::MetaCluster;
using testing::Root;
using testing::User;

TEST(PlacementTest, DentryHashIsStable) {
  // Placement is on disk: these values must never change.
  EXPECT_EQ(DentryHash(1, "a"), DentryHash(1, "a"));
  EXPECT_NE(DentryHash(1, "a"), DentryHash(2, "a"));
  EXPECT_NE(DentryHash(1, "a"), DentryHash(1, "b"));
  static const uint64_t kGolden[] = {DentryHash(1, ""), DentryHash(1, "a"),
                                     DentryHash(0x1234567890abcdefull, "sample_0.jpg")};
  // Recompute by hand (FNV-1a 64 + murmur3 fmix64) to pin the definition.
  auto ref = [](uint64_t parent, std::string_view name) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (int i = 0; i < 8; ++i) h = (h ^ ((parent >> (8 * i)) & 0xff)) * 0x100000001b3ull;
    for (unsigned char c : name) h = (h ^ c) * 0x100000001b3ull;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 33;
    return h;
  };
  EXPECT_EQ(kGolden[0], ref(1, ""));
  EXPECT_EQ(kGolden[1], ref(1, "a"));
  EXPECT_EQ(kGolden[2], ref(0x1234567890abcdefull, "sample_0.jpg"));
  EXPECT_EQ(kGolden[0], 0x4a3a3a4ba6523826ull);
  EXPECT_EQ(kGolden[1], 0xdea13a43162696b9ull);
  EXPECT_EQ(kGolden[2], 0x39d3fa4f3e2f1a10ull);
  // Spread: 40,000 names of one directory over 4 shards, each within 5% of fair.
  int count[4] = {0, 0, 0, 0};
  for (int i = 0; i < 40000; ++i) count[DentryShard(77, "f" + std::to_string(i), 4)]++;
  for (int c : count) EXPECT_NEAR(c, 10000, 500);
}

TEST(PlacementTest, InodeNumbersCarryTheShard) {
  EXPECT_EQ(InodeShard(MakeIno(3, 99)), 3u);
  EXPECT_EQ(MakeIno(3, 99) & kInoLocalMask, 99u);
  EXPECT_EQ(InodeShard(kRootIno), 0u);
}

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::MakeTempDir("store");
    cluster_ = std::make_unique<MetaCluster>(dir_, 3);
  }
  void TearDown() override {
    cluster_.reset();
    std::filesystem::remove_all(dir_);
  }
  std::string dir_;
  std::unique_ptr<MetaCluster> cluster_;
};

TEST_F(StoreTest, RefusesKeysOfOtherShards) {
  std::string name;
  for (int i = 0;; ++i) {
    name = "n" + std::to_string(i);
    if (DentryShard(kRootIno, name, 3) == 1) break;
  }
  auto st = cluster_->store(0).Create(Root(), kRootIno, name, 0644, true);
  EXPECT_CODE(st, kInvalid);
  EXPECT_NE(st.status().message().find("belongs to shard 1"), std::string::npos) << st.status().ToString();
  EXPECT_CODE(cluster_->store(2).GetAttr(kRootIno), kInvalid);
  ASSERT_OK(cluster_->store(1).Create(Root(), kRootIno, name, 0644, true));
}

TEST_F(StoreTest, OpenRejectsBadShardIds) {
  MetaStoreOptions o;
  o.shard_id = 3;
  o.num_shards = 3;
  EXPECT_CODE(MetaStore::Open(dir_ + "/bad", o), kInvalid);
  // A shard reopened under another identity or cluster size is refused.
  cluster_.reset();
  o.shard_id = 1;
  o.num_shards = 4;
  auto r = MetaStore::Open(dir_ + "/shard1", o);
  EXPECT_CODE(r, kInvalid);
  EXPECT_NE(r.status().message().find("shard 1 of 3"), std::string::npos) << r.status().ToString();
  o.shard_id = 2;
  o.num_shards = 3;
  EXPECT_CODE(MetaStore::Open(dir_ + "/shard1", o), kInvalid);
  o.shard_id = 1;
  EXPECT_OK(MetaStore::Open(dir_ + "/shard1", o));
}

// A handle whose TxnDecide fails while `down` is set: a participant that
// cannot be reached between the phases.
class FlakyHandle : public LocalShardHandle {
 public:
  using LocalShardHandle::LocalShardHandle;
  Status TxnDecide(uint64_t txid, bool commit) override {
    if (down) return Status(Code::kUnavailable, "shard " + std::to_string(shard_id()) + " is down");
    return LocalShardHandle::TxnDecide(txid, commit);
  }
  bool down = false;
};

TEST_F(StoreTest, CommitReachesAnUnreachableParticipantThroughRecovery) {
  // A coordinator over flaky handles to the same stores.
  std::vector<std::unique_ptr<FlakyHandle>> flaky;
  std::vector<ShardHandle*> hs;
  for (uint32_t s = 0; s < 3; ++s) {
    flaky.push_back(std::make_unique<FlakyHandle>(&cluster_->store(s)));
    hs.push_back(flaky.back().get());
  }
  TxnCoordinator coord(&cluster_->store(0), hs);
  ShardRouter& ns = cluster_->ns();
  // Source and target entries on different shards.
  std::string src, dst;
  for (int i = 0; src.empty() || dst.empty(); ++i) {
    std::string n = "x" + std::to_string(i);
    uint32_t s = DentryShard(kRootIno, n, 3);
    if (s == 1 && src.empty()) src = n;
    if (s == 2 && dst.empty()) dst = n;
  }
  auto f = ns.Create(Root(), kRootIno, src, 0644, true);
  ASSERT_OK(f);
  flaky[2]->down = true;
  RenameRequest req;
  *req.mutable_caller() = Root();
  req.set_old_parent(kRootIno);
  req.set_old_name(src);
  req.set_new_parent(kRootIno);
  req.set_new_name(dst);
  // Committed (the decision is durable) although shard 2 has not applied it.
  ASSERT_OK(coord.Rename(req));
  EXPECT_CODE(ns.Lookup(Root(), kRootIno, src), kNotFound);
  EXPECT_CODE(ns.Lookup(Root(), kRootIno, dst), kNotFound);
  EXPECT_EQ(cluster_->store(2).PreparedTxns().size(), 1u);
  // The held key refuses other changes meanwhile.
  EXPECT_CODE(cluster_->store(2).Create(Root(), kRootIno, dst, 0644, true), kBusy);
  // Recovery while the shard is still down keeps the intent...
  EXPECT_CODE(coord.Recover(), kUnavailable);
  auto intents = cluster_->store(0).ListIntents();
  ASSERT_OK(intents);
  EXPECT_EQ(intents->size(), 1u);
  // ...and finishes the rename once it is back.
  flaky[2]->down = false;
  ASSERT_OK(coord.Recover());
  auto got = ns.Lookup(Root(), kRootIno, dst);
  ASSERT_OK(got);
  EXPECT_EQ(got->ino(), f->attr.ino());
  EXPECT_TRUE(cluster_->store(2).PreparedTxns().empty());
  intents = cluster_->store(0).ListIntents();
  ASSERT_OK(intents);
  EXPECT_TRUE(intents->empty());
}

TEST_F(StoreTest, PrepareRefusalAbortsEverywhere) {
  // Link onto an existing name: the participant owning the name refuses
  // (EEXIST) and the other participant's prepare is rolled back.
  auto f = cluster_->ns().Create(Root(), kRootIno, "file", 0644, true);
  ASSERT_OK(f);
  std::string taken;
  for (int i = 0;; ++i) {
    taken = "t" + std::to_string(i);
    if (DentryShard(kRootIno, taken, 3) != InodeShard(f->attr.ino())) break;
  }
  ASSERT_OK(cluster_->ns().Create(Root(), kRootIno, taken, 0644, true));
  EXPECT_CODE(cluster_->ns().Link(Root(), f->attr.ino(), kRootIno, taken), kExists);
  for (uint32_t s = 0; s < 3; ++s) EXPECT_TRUE(cluster_->store(s).PreparedTxns().empty());
  auto a = cluster_->ns().GetAttr(f->attr.ino());
  ASSERT_OK(a);
  EXPECT_EQ(a->nlink(), 1u);
  // Nothing is left held.
  SetAttrRequest req;
  *req.mutable_caller() = Root();
  req.set_ino(f->attr.ino());
  req.set_valid(kSetMode);
  req.set_mode(0600);
  EXPECT_OK(cluster_->store(InodeShard(f->attr.ino())).SetAttr(req));
}

TEST_F(StoreTest, HostilePrepareIsRefused) {
  TxnPrepareRecord rec;
  rec.set_txid(5);
  TxnOp* op = rec.add_ops();
  op->set_kind(TxnOp::PUT_DENTRY);
  op->set_parent(kRootIno);
  op->set_name("a/b");
  op->set_ino(MakeIno(0, 100));
  op->set_type(FILE_TYPE_REGULAR);
  EXPECT_CODE(cluster_->store(0).TxnPrepare(rec), kInvalid);
  op->set_name("ok");
  op->set_type(static_cast<FileType>(9));
  uint32_t owner = DentryShard(kRootIno, "ok", 3);
  EXPECT_CODE(cluster_->store(owner).TxnPrepare(rec), kProtocol);
  op->set_type(FILE_TYPE_REGULAR);
  op->set_ino(MakeIno(7, 1));
  EXPECT_CODE(cluster_->store(owner).TxnPrepare(rec), kProtocol);
  op->set_kind(static_cast<TxnOp::Kind>(42));
  EXPECT_CODE(cluster_->store(owner).TxnPrepare(rec), kProtocol);
  EXPECT_TRUE(cluster_->store(owner).PreparedTxns().empty());
}

TEST(FenceTest, CollectedFencesStillRefuseEntriesInRemovedDirectories) {
  std::string dir = testing::MakeTempDir("fence");
  {
    MetaCluster c(dir, 3, /*sync=*/false, /*dir_cache_ms=*/0);
    auto d = c.ns().Mkdir(Root(), kRootIno, "d", 0755);
    ASSERT_OK(d);
    ASSERT_OK(c.ns().Rmdir(Root(), kRootIno, "d"));
    // Fresh fences are kept by a long age...
    for (uint32_t s = 0; s < 3; ++s) {
      auto kept = c.store(s).CollectFences(600000);
      ASSERT_OK(kept);
      EXPECT_EQ(kept.value(), 0u);
    }
    // ...and collected by a zero age: one per shard.
    for (uint32_t s = 0; s < 3; ++s) {
      auto gone = c.store(s).CollectFences(0);
      ASSERT_OK(gone);
      EXPECT_EQ(gone.value(), 1u) << "shard " << s;
    }
    // The removed directory still takes no entries: its inode is gone.
    for (int i = 0; i < 9; ++i) EXPECT_CODE(c.ns().Create(Root(), d->ino(), "x" + std::to_string(i), 0644, true), kNotFound);
    EXPECT_TRUE(c.RawEntries(d->ino()).empty());
  }
  std::filesystem::remove_all(dir);
}

// Parent directories read from another shard are cached for
// remote_dir_cache_ms, but a chmod/chown tells every shard to drop its copy
// before it is acknowledged: it is seen everywhere at once, cache or not.
TEST(DirCacheTest, ChmodOfParentIsSeenByEveryShard) {
  for (uint32_t ttl : {0u, 60000u}) {
    SCOPED_TRACE("remote_dir_cache_ms " + std::to_string(ttl));
    std::string dir = testing::MakeTempDir("dircache");
    {
      MetaCluster c(dir, 4, /*sync=*/false, ttl);
      auto d = c.ns().Mkdir(Root(), kRootIno, "d", 0777);
      ASSERT_OK(d);
      Caller other = User(2000, 2000);
      // Warm every shard's view of d.
      for (int i = 0; i < 32; ++i) ASSERT_OK(c.ns().Create(other, d->ino(), "w" + std::to_string(i), 0644, true));
      SetAttrRequest req;
      *req.mutable_caller() = Root();
      req.set_ino(d->ino());
      req.set_valid(kSetMode);
      req.set_mode(0755);
      ASSERT_OK(c.ns().SetAttr(req));
      for (int i = 0; i < 32; ++i) {
        EXPECT_CODE(c.ns().Create(other, d->ino(), "x" + std::to_string(i), 0644, true), kPermission);
      }
      // And a chown back to the user lets them in again, everywhere.
      req.set_valid(kSetUid);
      req.set_uid(2000);
      ASSERT_OK(c.ns().SetAttr(req));
      for (int i = 0; i < 32; ++i) ASSERT_OK(c.ns().Create(other, d->ino(), "y" + std::to_string(i), 0644, true));
    }
    std::filesystem::remove_all(dir);
  }
}

}  // namespace
}  // namespace sluice::meta
