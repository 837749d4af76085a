// kill -9 in the middle of cross-shard rename and rmdir: for every step k of
// the two-phase commit, a driver process runs the operation over 3 on-disk
// shards and SIGKILLs itself after step k; this test then reopens the
// shards, runs recovery and checks the namespace is exactly the old one
// (killed before the commit point) or exactly the new one (at or after it).
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/server/meta/crash_scenarios.h"

namespace sluice::meta {
namespace {

using testing::CrashNames;
using testing::MetaCluster;
using testing::Root;

// Runs the driver; returns the wait status.
int RunDriver(const std::string& dir, const std::string& scenario, int k) {
  pid_t pid = fork();
  if (pid == 0) {
    execl(META_CRASH_DRIVER, META_CRASH_DRIVER, dir.c_str(), scenario.c_str(),
          std::to_string(k).c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return status;
}

uint64_t InoOr0(ShardRouter& ns, uint64_t parent, const std::string& name) {
  auto r = ns.Lookup(Root(), parent, name);
  return r.ok() ? r->ino() : 0;
}

void CheckRenameDir(MetaCluster& c, const CrashNames& n, bool done, uint64_t moved) {
  ShardRouter& ns = c.ns();
  if (!done) {
    EXPECT_EQ(InoOr0(ns, n.a, n.dir_src), moved);
    EXPECT_EQ(InoOr0(ns, n.b, n.dir_dst), 0u);
  } else {
    EXPECT_EQ(InoOr0(ns, n.a, n.dir_src), 0u);
    EXPECT_EQ(InoOr0(ns, n.b, n.dir_dst), moved);
  }
  auto attr = ns.GetAttr(moved);
  ASSERT_OK(attr);
  EXPECT_EQ(attr->parent(), done ? n.b : n.a) << "parent pointer disagrees with the dentry";
  EXPECT_NE(InoOr0(ns, moved, "child"), 0u);
  // Both parents' link counts move with the entry (a holds dir_src and e).
  EXPECT_EQ(ns.GetAttr(n.a)->nlink(), done ? 3u : 4u);
  EXPECT_EQ(ns.GetAttr(n.b)->nlink(), done ? 3u : 2u);
}

void CheckRenameReplace(MetaCluster& c, const CrashNames& n, bool done, uint64_t f, uint64_t h) {
  ShardRouter& ns = c.ns();
  auto hattr = ns.GetAttr(h);
  ASSERT_OK(hattr);
  EXPECT_EQ(InoOr0(ns, n.c, n.h), h);
  if (!done) {
    EXPECT_EQ(InoOr0(ns, n.a, n.f_src), f);
    EXPECT_EQ(InoOr0(ns, n.b, n.g_dst), h);
    EXPECT_EQ(hattr->nlink(), 2u);
  } else {
    EXPECT_EQ(InoOr0(ns, n.a, n.f_src), 0u);
    EXPECT_EQ(InoOr0(ns, n.b, n.g_dst), f);
    EXPECT_EQ(hattr->nlink(), 1u);
  }
}

void CheckRmdir(MetaCluster& c, const CrashNames& n, bool done, uint64_t e) {
  ShardRouter& ns = c.ns();
  EXPECT_EQ(ns.GetAttr(n.a)->nlink(), done ? 3u : 4u);
  if (!done) {
    EXPECT_EQ(InoOr0(ns, n.a, n.e), e);
    ASSERT_OK(ns.GetAttr(e));
    // Not fenced any more: entries can be added on every shard.
    for (int i = 0; i < 6; ++i) EXPECT_OK(ns.Create(Root(), e, "x" + std::to_string(i), 0644, true));
  } else {
    EXPECT_EQ(InoOr0(ns, n.a, n.e), 0u);
    EXPECT_CODE(ns.GetAttr(e), kNotFound);
    for (int i = 0; i < 6; ++i) EXPECT_CODE(ns.Create(Root(), e, "x" + std::to_string(i), 0644, true), kNotFound);
  }
}

class CrashTest : public ::testing::TestWithParam<std::string> {};

TEST_P(CrashTest, KillAtEveryStep) {
  const std::string scenario = GetParam();
  const int participants = static_cast<int>(testing::CrashParticipants(scenario));
  const int commit_point = participants + 2;
  const int last_step = 2 * participants + 3;
  // k = last_step + 1: never killed (the driver completes).
  for (int k = 1; k <= last_step + 1; ++k) {
    SCOPED_TRACE(scenario + " killed after step " + std::to_string(k));
    std::string dir = testing::MakeTempDir("crash");
    CrashNames names;
    uint64_t moved = 0, f = 0, h = 0, e = 0;
    uint64_t inodes_before = 0;
    {
      // Setup without WAL sync (not under test); the driver and the checker sync.
      MetaCluster c(dir, testing::kCrashShards, /*sync=*/false);
      ASSERT_OK(testing::SetupCrashNamespace(c.ns()));
      auto n = testing::ResolveNames(c.ns());
      ASSERT_OK(n);
      names = n.value();
      moved = InoOr0(c.ns(), names.a, names.dir_src);
      f = InoOr0(c.ns(), names.a, names.f_src);
      h = InoOr0(c.ns(), names.c, names.h);
      e = InoOr0(c.ns(), names.a, names.e);
      auto fs = c.ns().StatFs();
      ASSERT_OK(fs);
      inodes_before = fs->inodes;
    }
    int status = RunDriver(dir, scenario, k);
    if (k <= last_step) {
      ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
          << "driver was not killed (status " << status << ")";
    } else {
      ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "driver status " << status;
    }
    {
      MetaCluster c(dir, testing::kCrashShards);
      // Before recovery the participants killed between the phases still hold their prepare.
      ASSERT_OK(c.coordinator().Recover());
      for (uint32_t s = 0; s < testing::kCrashShards; ++s) {
        EXPECT_TRUE(c.store(s).PreparedTxns().empty()) << "shard " << s << " still prepared";
      }
      auto intents = c.store(0).ListIntents();
      ASSERT_OK(intents);
      EXPECT_TRUE(intents->empty());
      const bool done = k >= commit_point;
      auto fs = c.ns().StatFs();
      ASSERT_OK(fs);
      if (scenario == "rename_dir") {
        CheckRenameDir(c, names, done, moved);
        EXPECT_EQ(fs->inodes, inodes_before);
      } else if (scenario == "rename_replace") {
        CheckRenameReplace(c, names, done, f, h);
        EXPECT_EQ(fs->inodes, inodes_before);
      } else {
        EXPECT_EQ(fs->inodes, inodes_before - (done ? 1 : 0));
        CheckRmdir(c, names, done, e);
      }
      // Nothing is left held: a further cross-shard change goes through.
      EXPECT_OK(c.ns().Rename(Root(), names.b, names.g_dst, names.c, "after"));
    }
    std::filesystem::remove_all(dir);
  }
}

// Every acknowledged create survives kill -9 of the shard process: a driver
// creates files from 3 threads over 3 shards and reports each acknowledged
// name; it is SIGKILLed from outside after 300 acknowledgements, and every
// reported name must be there after reopening. (A process kill keeps the
// page cache; the WAL fsync itself is covered by RocksDB's guarantees, not
// by this test.)
TEST(CrashTest, AcknowledgedCreatesSurviveKill9) {
  std::string dir = testing::MakeTempDir("stream");
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  pid_t pid = fork();
  if (pid == 0) {
    dup2(fds[1], 1);
    close(fds[0]);
    execl(META_CRASH_DRIVER, META_CRASH_DRIVER, dir.c_str(), "create_stream", "3",
          static_cast<char*>(nullptr));
    _exit(127);
  }
  close(fds[1]);
  std::vector<std::string> acked;
  std::string buf;
  char chunk[4096];
  while (acked.size() < 300) {
    ssize_t n = read(fds[0], chunk, sizeof(chunk));
    if (n <= 0) break;
    buf.append(chunk, static_cast<size_t>(n));
    size_t nl;
    while ((nl = buf.find('\n')) != std::string::npos) {
      std::string line = buf.substr(0, nl);
      buf.erase(0, nl + 1);
      size_t sp = line.find(' ');
      acked.push_back("s" + line.substr(0, sp) + "." + line.substr(sp + 1));
    }
  }
  kill(pid, SIGKILL);
  int status = 0;
  waitpid(pid, &status, 0);
  close(fds[0]);
  ASSERT_TRUE(WIFSIGNALED(status)) << "driver ended on its own, status " << status;
  ASSERT_GE(acked.size(), 300u);
  {
    MetaCluster c(dir, testing::kCrashShards);
    ASSERT_OK(c.coordinator().Recover());
    for (const auto& name : acked) EXPECT_OK(c.ns().Lookup(Root(), kRootIno, name));
    // Every entry on disk has its inode (no half-applied create).
    auto raw = c.RawEntries(kRootIno);
    EXPECT_GE(raw.size(), acked.size());
    for (const auto& name : raw) EXPECT_OK(c.ns().Lookup(Root(), kRootIno, name));
    auto fs = c.ns().StatFs();
    ASSERT_OK(fs);
    EXPECT_EQ(fs->inodes, raw.size() + 1);  // + root
    EXPECT_EQ(fs->dentries, raw.size());
  }
  std::filesystem::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(Scenarios, CrashTest,
                         ::testing::Values("rename_dir", "rename_replace", "rmdir"),
                         [](const ::testing::TestParamInfo<std::string>& i) { return i.param; });

// A participant restarted with a prepared transaction keeps its keys held
// (kBusy to others) until the coordinator decides; a prepared txn the
// coordinator has no intent for (a prepare that arrived after its abort) is
// aborted by Recover().
TEST(CrashTest, PreparedKeysStayHeldUntilDecided) {
  std::string dir = testing::MakeTempDir("held");
  {
    MetaCluster c(dir, testing::kCrashShards);
    ASSERT_OK(testing::SetupCrashNamespace(c.ns()));
    auto n = testing::ResolveNames(c.ns());
    ASSERT_OK(n);
    auto f = c.ns().Lookup(Root(), n->a, n->f_src);
    ASSERT_OK(f);
    const uint64_t txid = MakeIno(0, 1u << 30);  // coordinator shard 0, never allocated
    TxnPrepareRecord rec;
    rec.set_txid(txid);
    rec.set_coordinator_shard(0);
    TxnOp* op = rec.add_ops();
    op->set_kind(TxnOp::DELETE_DENTRY);
    op->set_parent(n->a);
    op->set_name(n->f_src);
    op->set_expect_ino(f->ino());
    ASSERT_OK(c.store(1).TxnPrepare(rec));
    c.ReopenWithoutRecovery();
    EXPECT_EQ(c.store(1).PreparedTxns(), std::vector<uint64_t>{txid});
    EXPECT_CODE(c.handle(1)->Unlink(Root(), n->a, n->f_src), kBusy);
    ASSERT_OK(c.coordinator().Recover());
    EXPECT_TRUE(c.store(1).PreparedTxns().empty());
    EXPECT_OK(c.ns().Unlink(Root(), n->a, n->f_src));
  }
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace sluice::meta
