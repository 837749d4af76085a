// The sluice-io500 program: several ranks, several targets side by side,
// result files, exit codes.
#include <gtest/gtest.h>

#include <sys/wait.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

#include "tests/io500/test_dir.h"

namespace sluice::io500 {
namespace {

struct Output {
  int exit_code = -1;
  std::string text;  // stdout + stderr
};

Output RunTool(const std::string& args) {
  std::string cmd = std::string(SLUICE_IO500_BIN) + " " + args + " 2>&1";
  Output out;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (p == nullptr) return out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), p)) > 0) out.text.append(buf, n);
  int st = ::pclose(p);
  out.exit_code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return out;
}

std::string Slurp(const std::string& path) {
  std::ifstream f(path);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

int Count(const std::string& text, const std::string& what) {
  int n = 0;
  for (size_t p = text.find(what); p != std::string::npos; p = text.find(what, p + 1)) ++n;
  return n;
}

TEST(Cli, ThreeRanksTwoTargetsSideBySide) {
  TempDir a, b, res;
  Output o = RunTool("--quick --no-drop-caches --ranks 3 --no-rnd4k --progress 0 --mdtest-easy-files 300 "
                 "--mdtest-hard-files 300 --ior-hard-segments 100 --ior-easy-mib 8 "
                 "--target local=" + a.path() + " --target other=posix:" + b.path() +
                 " --result-dir " + res.path());
  ASSERT_EQ(o.exit_code, 0) << o.text;
  EXPECT_NE(o.text.find("3 processes on one node (fork)"), std::string::npos) << o.text;
  EXPECT_NE(o.text.find("drop caches: no (disabled by --no-drop-caches)"), std::string::npos)
      << o.text;
  EXPECT_EQ(Count(o.text, "[SCORE ] Bandwidth"), 2) << o.text;
  // The comparison table: one row per phase, a ratio column.
  EXPECT_NE(o.text.find("other/local"), std::string::npos) << o.text;
  EXPECT_NE(o.text.find("\nmdtest-hard-delete   kIOPS"), std::string::npos) << o.text;
  EXPECT_NE(o.text.find("\nSCORE total"), std::string::npos) << o.text;
  EXPECT_EQ(Slurp(res.path() + "/comparison.txt").find("phase"), 0u);
  for (const char* t : {"local", "other"}) {
    std::string json = Slurp(res.path() + "/" + t + "/result.json");
    EXPECT_NE(json.find("\"ranks\": 3,"), std::string::npos) << json;
    EXPECT_EQ(Count(json, "\"errors\": 0,"), 13) << json;  // 12 scored phases + timestamp
    // 3 ranks x 300 files, each phase of mdtest-hard.
    EXPECT_EQ(Count(json, "\"items\": 900,"), 4 + 3) << json;  // 4 hard + 3 easy phases
    // find over 3 ranks: of the names file.mdtest.<r>.<i> (r < 3, i < 300) only i = 101
    // and i = 201 contain "01", so 3 x 2 files match (and are newer and 3901 bytes).
    EXPECT_NE(json.find("\"detail\": \"found 6 of "), std::string::npos) << json;
    std::string sum = Slurp(res.path() + "/" + t + "/result_summary.txt");
    EXPECT_EQ(Count(sum, "[RESULT]"), 12) << sum;
    EXPECT_EQ(sum.rfind("[SCORE ] Bandwidth"), sum.rfind('\n', sum.size() - 2) + 1) << sum;
  }
}

TEST(Cli, VerifyFailureExitsThreeAndIsReported) {
  TempDir a, res;
  Output o = RunTool("--quick --no-drop-caches --ranks 2 --no-rnd4k --progress 0 --mdtest-easy-files 100 "
                 "--mdtest-hard-files 100 --ior-hard-segments 50 --ior-easy-mib 4 "
                 "--test-corrupt ior-easy --dir " + a.path() + " --result-dir " + res.path());
  EXPECT_EQ(o.exit_code, 3) << o.text;
  EXPECT_NE(o.text.find("verify failed: posix:" + a.path()), std::string::npos) << o.text;
  std::string sum = Slurp(res.path() + "/target/result_summary.txt");
  EXPECT_NE(sum.find("ior-easy-read"), std::string::npos);
  EXPECT_NE(sum.substr(sum.find("ior-easy-read")).find("[INVALID]"), std::string::npos) << sum;
}

TEST(Cli, UsageErrorsExitTwo) {
  EXPECT_EQ(RunTool("").exit_code, 2);
  EXPECT_EQ(RunTool("--dir /tmp --ranks 0").exit_code, 2);
  EXPECT_EQ(RunTool("--target nameonly").exit_code, 2);
  Output o = RunTool("--dir /nonexistent/io500 --quick");
  EXPECT_EQ(o.exit_code, 1) << o.text;
  EXPECT_NE(o.text.find("/nonexistent/io500"), std::string::npos) << o.text;
}

}  // namespace
}  // namespace sluice::io500

namespace sluice::io500 {
namespace {

TEST(Cli, UnavailableTargetIsReportedOnceAndTheOthersStillRun) {
  TempDir a, res;
  Output o = RunTool("--quick --no-drop-caches --ranks 2 --no-rnd4k --progress 0 --mdtest-easy-files 50 "
                     "--mdtest-hard-files 50 --ior-hard-segments 20 --ior-easy-mib 2 "
                     "--target native=native:cluster.toml:/io500 --target local=" + a.path() +
                     " --result-dir " + res.path());
  EXPECT_EQ(o.exit_code, 1) << o.text;
  // No cluster behind the native target: reported once, naming the config.
  EXPECT_EQ(Count(o.text, "cannot read cluster config cluster.toml"), 1) << o.text;
  EXPECT_EQ(Count(o.text, "[SCORE ] Bandwidth"), 1) << o.text;
  EXPECT_EQ(Count(o.text, "ranks failed"), 0) << o.text;
  EXPECT_NE(Slurp(res.path() + "/local/result.json").find("\"ranks\": 2,"), std::string::npos);
}

}  // namespace
}  // namespace sluice::io500
