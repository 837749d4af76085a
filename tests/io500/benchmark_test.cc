// Whole runs of the benchmark in a temporary directory: every phase runs with
// the right amount of work, reads cover exactly what was written, find finds
// what it should, the stonewall wears out evenly, and a changed byte
// invalidates the run.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <map>

#include "tests/io500/test_dir.h"
#include "tools/io500/benchmark.h"
#include "tools/io500/fork_comm.h"
#include "tools/io500/posix_backend.h"

namespace sluice::io500 {
namespace {

Options SmallOptions() {
  Options o = QuickOptions();
  o.progress_interval = 0;
  o.drop_caches = false;  // keep the test fast; the CLI test covers the message
  o.ior_easy_block = 16ull << 20;
  o.ior_hard_segments = 300;
  o.mdtest_easy_files = 500;
  o.mdtest_hard_files = 1200;
  o.stonewall_seconds = 30;  // caps end every write phase long before this
  return o;
}

std::map<std::string, PhaseResult> ByName(const RunReport& r) {
  std::map<std::string, PhaseResult> m;
  for (const auto& p : r.phases) m[p.name] = p;
  return m;
}

Result<RunReport> RunOneRank(FileSystem* fs, const Options& o) {
  auto c = ForkComm::Spawn(1);
  if (!c.ok()) return c.status();
  auto r = RunBenchmark(fs, c.value().get(), o, "t");
  Status fin = c.value()->Finish(0);
  if (!fin.ok()) return fin;
  return r;
}

// How many of mdtest-hard's names "file.mdtest.<rank>.<i>" match *01*.
uint64_t ExpectedFound(int ranks, uint64_t files) {
  uint64_t n = 0;
  for (int r = 0; r < ranks; ++r) {
    for (uint64_t i = 0; i < files; ++i) {
      std::string name = "file.mdtest." + std::to_string(r) + "." + std::to_string(i);
      if (name.find("01") != std::string::npos) ++n;
    }
  }
  return n;
}

TEST(Benchmark, EveryPhaseRunsInOrderWithTheRightWork) {
  TempDir dir;
  PosixFileSystem fs(dir.path());
  Options o = SmallOptions();
  auto rep = RunOneRank(&fs, o);
  ASSERT_TRUE(rep.ok()) << rep.status().ToString();
  const RunReport& r = rep.value();

  ASSERT_EQ(r.phases.size(), std::size(kPhaseOrder));
  for (size_t i = 0; i < r.phases.size(); ++i) EXPECT_EQ(r.phases[i].name, kPhaseOrder[i]);
  for (const auto& p : r.phases) {
    EXPECT_EQ(p.errors, 0u) << p.name << ": " << (p.problems.empty() ? "" : p.problems[0]);
    if (p.name != "timestamp") {
      EXPECT_GT(p.score, 0) << p.name;
    }
  }
  auto m = ByName(r);
  const uint64_t easy_bytes = o.ior_easy_block;  // cap reached: 8 x 2 MiB
  EXPECT_EQ(m["ior-easy-write"].items, easy_bytes);
  EXPECT_EQ(m["ior-easy-read"].items, easy_bytes);
  EXPECT_EQ(m["ior-hard-write"].items, 300u * 47008);
  EXPECT_EQ(m["ior-hard-read"].items, 300u * 47008);
  for (const char* n : {"mdtest-easy-write", "mdtest-easy-stat", "mdtest-easy-delete"}) {
    EXPECT_EQ(m[n].items, 500u) << n;
  }
  for (const char* n : {"mdtest-hard-write", "mdtest-hard-stat", "mdtest-hard-read",
                        "mdtest-hard-delete"}) {
    EXPECT_EQ(m[n].items, 1200u) << n;
  }
  // find scans every entry: 8 dirs/files of the layout + 500 + 1200 files.
  EXPECT_GE(m["find"].items, 1700u);
  EXPECT_EQ(m["find"].detail, "found " + std::to_string(ExpectedFound(1, 1200)) + " of " +
                                  std::to_string(m["find"].items) + " entries");
  EXPECT_EQ(m["ior-rnd4K-easy-read"].group, ScoreGroup::kNone);
  EXPECT_GT(m["ior-rnd4K-easy-read"].items, 0u);
  // Score: both groups computed; the run is invalid only for the short stonewall rules.
  EXPECT_GT(r.score.bandwidth, 0);
  EXPECT_GT(r.score.metadata, 0);
  EXPECT_FALSE(r.valid);
  for (const auto& prob : r.problems) {
    EXPECT_TRUE(prob.find("stonewall") != std::string::npos ||
                prob.find("minimum of 300 s") != std::string::npos)
        << prob;
  }
  // The run directory is removed at the end.
  EXPECT_TRUE(std::filesystem::is_empty(dir.path()));
}

class Corruption : public ::testing::TestWithParam<std::pair<std::string, std::string>> {};

TEST_P(Corruption, ChangedByteFailsVerificationAndInvalidatesTheRun) {
  TempDir dir;
  PosixFileSystem fs(dir.path());
  Options o = SmallOptions();
  o.run_rnd4k = false;
  o.corrupt = GetParam().first;
  const std::string reader = GetParam().second;
  auto rep = RunOneRank(&fs, o);
  ASSERT_TRUE(rep.ok()) << rep.status().ToString();
  auto m = ByName(rep.value());
  const PhaseResult& p = m[reader];
  EXPECT_EQ(p.errors, 1u);
  EXPECT_FALSE(p.valid);
  ASSERT_FALSE(p.problems.empty());
  EXPECT_NE(p.problems[0].find("verify failed"), std::string::npos) << p.problems[0];
  EXPECT_NE(p.problems[0].find(dir.path()), std::string::npos) << p.problems[0];
  EXPECT_NE(p.problems[0].find(reader), std::string::npos) << p.problems[0];
  EXPECT_FALSE(rep.value().valid);
  bool listed = false;
  for (const auto& prob : rep.value().problems) listed |= prob.rfind(reader + ": ", 0) == 0;
  EXPECT_TRUE(listed);
  // Nothing else failed.
  for (const auto& q : rep.value().phases) {
    if (q.name != reader) {
      EXPECT_EQ(q.errors, 0u) << q.name;
    }
  }
  EXPECT_NE(FormatSummary(rep.value()).find(reader + " "), std::string::npos);
}

INSTANTIATE_TEST_SUITE_P(
    AllDataSets, Corruption,
    ::testing::Values(std::make_pair(std::string("ior-easy"), std::string("ior-easy-read")),
                      std::make_pair(std::string("ior-hard"), std::string("ior-hard-read")),
                      std::make_pair(std::string("mdtest-hard"), std::string("mdtest-hard-read"))),
    [](const auto& info) {
      std::string s = info.param.first;
      for (auto& c : s) if (c == '-') c = '_';
      return s;
    });

// A POSIX back end whose ior-easy writes take `delay_us` on this process.
class SlowWrites final : public FileSystem {
 public:
  SlowWrites(std::string root, useconds_t delay_us) : fs_(std::move(root)), delay_(delay_us) {}
  std::string Describe() const override { return fs_.Describe(); }
  Result<std::unique_ptr<File>> Open(const std::string& path, uint32_t flags,
                                     uint32_t mode) override {
    auto f = fs_.Open(path, flags, mode);
    if (!f.ok() || path.find("ior-easy/") == std::string::npos) return f;
    return std::unique_ptr<File>(new Slow(std::move(f.value()), delay_));
  }
  Result<FileStat> Stat(const std::string& p) override { return fs_.Stat(p); }
  Status Mkdir(const std::string& p, uint32_t m) override { return fs_.Mkdir(p, m); }
  Status Unlink(const std::string& p) override { return fs_.Unlink(p); }
  Status Rmdir(const std::string& p) override { return fs_.Rmdir(p); }
  Result<std::vector<DirEntry>> ReadDir(const std::string& p) override { return fs_.ReadDir(p); }
  Status SetLayout(const std::string& d, const std::string& l) override { return fs_.SetLayout(d, l); }

 private:
  class Slow final : public File {
   public:
    Slow(std::unique_ptr<File> f, useconds_t d) : f_(std::move(f)), d_(d) {}
    Result<size_t> Pread(void* b, size_t l, uint64_t o) override { return f_->Pread(b, l, o); }
    Status Pwrite(const void* b, size_t l, uint64_t o) override {
      ::usleep(d_);
      return f_->Pwrite(b, l, o);
    }
    Status Fsync() override { return f_->Fsync(); }
    Status Close() override { return f_->Close(); }

   private:
    std::unique_ptr<File> f_;
    useconds_t d_;
  };
  PosixFileSystem fs_;
  useconds_t delay_;
};

TEST(Benchmark, StonewallWearsOutEveryRankToTheSamePoint) {
  TempDir dir;
  Options o = SmallOptions();
  o.stonewall_seconds = 1;
  o.ior_easy_transfer = 64 << 10;
  o.ior_easy_block = 64ull << 20;  // 1024 transfers: never reached in 1 s at these delays
  o.run_rnd4k = false;
  o.mdtest_easy_files = 50;
  o.mdtest_hard_files = 50;
  o.ior_hard_segments = 50;
  auto c = ForkComm::Spawn(2);
  ASSERT_TRUE(c.ok());
  // Rank 1 writes 4x slower than rank 0, so it has far fewer transfers at the stonewall.
  SlowWrites fs(dir.path(), c.value()->rank() == 0 ? 5000 : 20000);
  auto rep = RunBenchmark(&fs, c.value().get(), o, "t");
  if (c.value()->rank() != 0) {
    Status st = c.value()->Finish(rep.ok() ? 0 : 1);
    (void)st;
  }
  ASSERT_TRUE(c.value()->Finish(0).ok());
  ASSERT_TRUE(rep.ok()) << rep.status().ToString();
  auto m = ByName(rep.value());
  const PhaseResult& w = m["ior-easy-write"];
  const uint64_t t = o.ior_easy_transfer;
  ASSERT_EQ(w.items % (2 * t), 0u);
  const uint64_t per_rank = w.items / (2 * t);
  EXPECT_GT(per_rank, 50u);     // ~1 s / 5 ms on rank 0, minus overhead
  EXPECT_LT(per_rank, 1024u);   // the stonewall, not the cap, ended new work
  // At the stonewall rank 1 had done about a quarter of rank 0's transfers;
  // after wear-out both did per_rank.
  EXPECT_LT(w.items_at_stonewall, w.items * 3 / 4);
  EXPECT_GE(w.stonewall_hit_seconds, 1.0);
  EXPECT_GT(w.seconds, 1.5);  // wear-out took rank 1 well past the stonewall
  EXPECT_EQ(m["ior-easy-read"].items, w.items);  // reads cover exactly what was written
  EXPECT_EQ(m["ior-easy-read"].errors, 0u);
}

// A Comm that says every rank is on its own node (as with one MPI rank per
// client node), so IOR's -C -Q 1 makes rank r read rank r+1's file.
class OneRankPerNode final : public Comm {
 public:
  explicit OneRankPerNode(Comm* inner) : inner_(inner) {}
  int rank() const override { return inner_->rank(); }
  int size() const override { return inner_->size(); }
  bool node_leader() const override { return true; }
  int ranks_per_node() const override { return 1; }
  std::string Describe() const override { return "one rank per node"; }
  Status Barrier() override { return inner_->Barrier(); }
  Result<std::vector<uint64_t>> AllGather(uint64_t v) override { return inner_->AllGather(v); }
  Result<std::vector<std::string>> GatherStrings(const std::string& s) override {
    return inner_->GatherStrings(s);
  }

 private:
  Comm* inner_;
};

TEST(Benchmark, ReadsComeFromTheNextNodeLikeIorReorderTasks) {
  TempDir dir;
  Options o = SmallOptions();
  o.run_rnd4k = false;
  o.corrupt = "ior-easy";  // changes a byte of rank 0's file
  auto c = ForkComm::Spawn(2);
  ASSERT_TRUE(c.ok());
  OneRankPerNode comm(c.value().get());
  PosixFileSystem fs(dir.path());
  auto rep = RunBenchmark(&fs, &comm, o, "t");
  if (c.value()->rank() != 0) {
    Status st = c.value()->Finish(rep.ok() ? 0 : 1);
    (void)st;
  }
  ASSERT_TRUE(c.value()->Finish(0).ok());
  ASSERT_TRUE(rep.ok()) << rep.status().ToString();
  auto m = ByName(rep.value());
  const PhaseResult& p = m["ior-easy-read"];
  ASSERT_EQ(p.errors, 1u);
  ASSERT_FALSE(p.problems.empty());
  // Rank 1 (one node on from rank 0) read rank 0's file and found the change.
  EXPECT_EQ(p.problems[0].rfind("rank 1: ", 0), 0u) << p.problems[0];
  EXPECT_NE(p.problems[0].find("ior_file_easy.00000000"), std::string::npos) << p.problems[0];
  EXPECT_NE(p.problems[0].find("(written by rank 0)"), std::string::npos) << p.problems[0];
  // Everything else verified across ranks.
  EXPECT_EQ(m["ior-hard-read"].errors, 0u);
  EXPECT_EQ(m["mdtest-hard-read"].errors, 0u);
  EXPECT_EQ(m["mdtest-hard-read"].items, 2 * o.mdtest_hard_files);
  EXPECT_EQ(m["find"].detail, "found " + std::to_string(ExpectedFound(2, o.mdtest_hard_files)) +
                                  " of " + std::to_string(m["find"].items) + " entries");
}

}  // namespace
}  // namespace sluice::io500
