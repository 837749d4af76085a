// sluice-io500 --quick against a real local cluster the suite starts itself
// (mkdtemp directory, free ports; stopped, then any leftover pid killed, when
// the suite ends, even on failure): the native libsluice back end, and the
// POSIX back end on the same cluster's FUSE mount.
#include <sys/xattr.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "client/sluice_client.h"
#include "tests/common/test_util.h"

namespace sluice::io500 {
namespace {

namespace fs = std::filesystem;

using Output = test::CommandOutput;
Output Sh(const std::string& cmd) { return test::RunCommand(cmd); }

// One cluster for the suite (test::LocalClusterSuite), stopped even when a test fails.
class Io500Native : public test::LocalClusterSuite<Io500Native> {
 public:
  static test::LocalCluster::Options ClusterOptions() {
    test::LocalCluster::Options o;
    o.name = "io500native";
    return o;
  }

 protected:
  void SetUpWithCluster() override {
    dir_ = cluster().dir();
    cfg_ = cluster().config();
  }
  std::string dir_, cfg_;  // the suite cluster's directory and config
};

std::string Slurp(const std::string& path) {
  std::ifstream f(path);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

// A --quick run breaks IO500's time rules on purpose (stonewall 2 s < 300 s,
// write phases shorter than 300 s) and so is printed [INVALID]; it is valid
// otherwise when: all 12 scored phases and rnd4K ran, reads were verified,
// no phase had an error, every problem recorded (stdout and result.json) is
// one of those time rules, and a [SCORE] line with a non-zero total exists.
// Returns what is wrong (empty: valid); prints the summary lines.
std::vector<std::string> QuickRunProblems(const Output& o, const std::string& result_json) {
  std::vector<std::string> bad;
  if (o.exit_code != 0) bad.push_back("exit code " + std::to_string(o.exit_code));
  for (const char* phase : {"ior-easy-write", "mdtest-easy-write", "ior-hard-write", "mdtest-hard-write", "find",
                            "ior-easy-read", "mdtest-easy-stat", "ior-hard-read", "mdtest-hard-stat",
                            "mdtest-easy-delete", "mdtest-hard-read", "mdtest-hard-delete", "ior-rnd4K-easy-read"}) {
    if (o.text.find(std::string(" ") + phase + " ") == std::string::npos) {
      bad.push_back(std::string("no result for ") + phase);
    }
  }
  std::istringstream in(o.text);
  std::string line;
  int scores = 0;
  auto time_rule = [](const std::string& l) {
    return l.find("stonewall is 2 s; IO500 requires 300 s") != std::string::npos ||
           l.find(": runtime ") != std::string::npos || l.rfind("runtime ", 0) == 0;
  };
  while (std::getline(in, line)) {
    if (line.rfind("[SCORE ]", 0) == 0) {
      ++scores;
      if (line.find("TOTAL 0.000000") != std::string::npos) bad.push_back("zero score: " + line);
      std::printf("%s\n", line.c_str());
    }
    if (line.rfind("[RESULT]", 0) == 0 && scores == 0) std::printf("%s\n", line.c_str());
    if (line.rfind("; INVALID:", 0) == 0 && !time_rule(line)) bad.push_back("problem: " + line);
  }
  if (scores < 1) bad.push_back("no [SCORE] line");

  std::string js = Slurp(result_json);
  if (js.empty()) {
    bad.push_back("no " + result_json);
    return bad;
  }
  if (js.find("\"verify\": true") == std::string::npos) bad.push_back("reads not verified");
  int phases = 0;
  for (size_t p = js.find("\"errors\": "); p != std::string::npos; p = js.find("\"errors\": ", p + 1)) {
    ++phases;
    if (js.compare(p + 10, 2, "0,") != 0) bad.push_back("a phase has errors: " + js.substr(p, 20));
  }
  if (phases != 14) bad.push_back(std::to_string(phases) + " phases in result.json, want 14");  // 12 + timestamp + rnd4K
  for (size_t p = js.find("\"problems\": ["); p != std::string::npos; p = js.find("\"problems\": [", p + 1)) {
    size_t end = js.find(']', p);
    std::string list = js.substr(p + 13, end - p - 13);
    for (size_t q = list.find('"'); q != std::string::npos; q = list.find('"', list.find('"', q + 1) + 1)) {
      std::string item = list.substr(q + 1, list.find('"', q + 1) - q - 1);
      if (!time_rule(item)) bad.push_back("problem that is not a time rule: " + item);
    }
  }
  return bad;
}

std::string Join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += x + "\n";
  return s;
}

void ExpectQuickRunValid(const Output& o, const std::string& result_json) {
  auto bad = QuickRunProblems(o, result_json);
  EXPECT_TRUE(bad.empty()) << Join(bad) << "\n" << o.text;
}

TEST_F(Io500Native, QuickRunThroughLibsluiceIsValid) {
  client::ClientOptions co;
  co.cluster = cfg_;
  auto c = client::Client::Connect(co);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  auto d = (*c)->Mkdir("/io500", 0755);
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  Output o = Sh(std::string(SLUICE_IO500_BIN) +
                 " --quick --no-drop-caches --progress 0 --ranks 2 --target native=native:" + cfg_ +
                 ":/io500 --result-dir " + dir_ + "/res-native");
  std::printf("native target: native:%s:/io500\n", cfg_.c_str());
  ExpectQuickRunValid(o, dir_ + "/res-native/native/result.json");
  EXPECT_NE(o.text.find("native:" + cfg_ + ":/io500"), std::string::npos) << "back end not named:\n" << o.text;
  // The benchmark cleaned up after itself through libsluice.
  auto left = (*c)->ListDir("/io500");
  ASSERT_TRUE(left.ok()) << left.status().ToString();
}

// The check above fails when a byte changes between write and read through
// libsluice (the harness's --test-corrupt hook): it is not a check that
// cannot fail.
TEST_F(Io500Native, CorruptedByteMakesTheNativeRunInvalid) {
  client::ClientOptions co;
  co.cluster = cfg_;
  auto c = client::Client::Connect(co);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  auto d = (*c)->Mkdir("/io500corrupt", 0755);
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  Output o = Sh(std::string(SLUICE_IO500_BIN) +
                " --quick --no-drop-caches --progress 0 --no-rnd4k --test-corrupt mdtest-hard --target bad=native:" +
                cfg_ + ":/io500corrupt --result-dir " + dir_ + "/res-corrupt");
  auto bad = QuickRunProblems(o, dir_ + "/res-corrupt/bad/result.json");
  EXPECT_FALSE(bad.empty()) << o.text;
  EXPECT_NE(o.text.find("mdtest-hard-read"), std::string::npos) << o.text;
  std::printf("corrupt run flagged: %s", Join(bad).c_str());
}

TEST_F(Io500Native, MissingDirectoryIsNamed) {
  Output o = Sh(std::string(SLUICE_IO500_BIN) + " --quick --progress 0 --target n=native:" + cfg_ +
                 ":/no-such-dir --result-dir " + dir_ + "/res-missing");
  EXPECT_NE(o.exit_code, 0) << o.text;
  EXPECT_NE(o.text.find("/no-such-dir"), std::string::npos) << o.text;
}

// The POSIX back end on the FUSE mount of the same cluster.
TEST_F(Io500Native, QuickRunOnFuseMountIsValid) {
  std::string mnt = dir_ + "/mnt";
  fs::create_directories(mnt);
  Output m = Sh(std::string(SLUICE_BIN_DIR) + "/sluice mount " + mnt + " --config " + cfg_ + " --log " + dir_ +
                 "/fuse.log");
  ASSERT_EQ(m.exit_code, 0) << "sluice mount failed:\n" << m.text;
  struct Unmount {
    std::string mnt;
    ~Unmount() {
      if (Sh(std::string(SLUICE_BIN_DIR) + "/sluice umount " + mnt).exit_code != 0) {
        (void)Sh("fusermount3 -uz " + mnt);
      }
    }
  } unmount{mnt};
  ASSERT_TRUE(fs::create_directory(mnt + "/io500posix"));
  // With ior-hard's directory given 64 KiB chunks through the mount's
  // user.sluice.layout, as IO500 runs set striping; files kept to check it.
  Output o = Sh(std::string(SLUICE_IO500_BIN) + " --quick --no-drop-caches --progress 0 --ranks 2 --target fuse=" +
                 mnt + "/io500posix --layout ior-hard=chunk_size=64KiB --keep --result-dir " + dir_ + "/res-fuse");
  ExpectQuickRunValid(o, dir_ + "/res-fuse/fuse/result.json");
  int hard_files = 0;
  for (const auto& e : fs::recursive_directory_iterator(mnt + "/io500posix")) {
    std::string p = e.path().string();
    if (!e.is_regular_file() || p.find("/datafiles/ior-hard/") == std::string::npos) continue;
    char buf[256];
    ssize_t n = getxattr(p.c_str(), client::kLayoutXattr, buf, sizeof buf);
    ASSERT_GT(n, 0) << p;
    EXPECT_NE(std::string(buf, static_cast<size_t>(n)).find("chunk_size=65536 "), std::string::npos)
        << p << ": " << std::string(buf, static_cast<size_t>(n));
    ++hard_files;
  }
  EXPECT_EQ(hard_files, 1) << "the kept ior-hard file";
}

// --layout needs a Sluice target; elsewhere the run stops and says why.
TEST_F(Io500Native, LayoutOnAPlainDirectoryIsRefused) {
  fs::create_directories(dir_ + "/plain");
  Output o = Sh(std::string(SLUICE_IO500_BIN) + " --quick --progress 0 --layout ior-hard=chunk_size=64KiB --dir " +
                 dir_ + "/plain --result-dir " + dir_ + "/res-plain");
  EXPECT_NE(o.exit_code, 0) << o.text;
  EXPECT_NE(o.text.find("not a Sluice mount"), std::string::npos) << o.text;
  Output bad = Sh(std::string(SLUICE_IO500_BIN) + " --quick --layout mdtest=chunk_size=64KiB --dir " + dir_ + "/plain");
  EXPECT_EQ(bad.exit_code, 2) << bad.text;
}

}  // namespace
}  // namespace sluice::io500
