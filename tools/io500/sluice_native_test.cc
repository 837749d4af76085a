// sluice-io500 --quick against a real local cluster the suite starts itself
// (mkdtemp directory, free ports; stopped, then any leftover pid killed, when
// the suite ends, even on failure): the native libsluice back end, and the
// POSIX back end on the same cluster's FUSE mount.
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "client/sluice_client.h"

namespace sluice::io500 {
namespace {

namespace fs = std::filesystem;

uint16_t FreePort() {
  int s = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  getsockname(s, reinterpret_cast<sockaddr*>(&a), &len);
  close(s);
  return ntohs(a.sin_port);
}

struct Output {
  int exit_code = -1;
  std::string text;
};

Output Sh(const std::string& cmd) {
  Output out;
  FILE* p = ::popen((cmd + " 2>&1").c_str(), "r");
  if (p == nullptr) return out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), p)) > 0) out.text.append(buf, n);
  int st = ::pclose(p);
  out.exit_code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return out;
}

std::string g_dir, g_cfg;

class Io500Native : public ::testing::Test {
 public:
  static void SetUpTestSuite() {
    char tmpl[] = "/tmp/sluice-io500n-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    g_dir = tmpl;
    g_cfg = g_dir + "/cluster.toml";
    std::ofstream f(g_cfg);
    f << "[cluster]\nname = \"io500native\"\nreplication = 2\nlease_ms = 1500\nheartbeat_ms = 300\n"
      << "data_root = \"" << g_dir << "\"\n[mgmtd]\nport = " << FreePort() << "\n";
    for (int i = 1; i <= 2; ++i) f << "[[meta]]\nid = " << i << "\nport = " << FreePort() << "\n";
    for (int i = 1; i <= 4; ++i) f << "[[data]]\nid = " << i << "\nport = " << FreePort() << "\n";
    f.close();
    std::string start = std::string(SLUICE_BIN_DIR) + "/sluice cluster start --config " + g_cfg;
    Output o = Sh(start);
    if (o.exit_code != 0) o = Sh(start);  // start is idempotent; a second call waits for the first
    ASSERT_EQ(o.exit_code, 0) << "cluster start failed:\n" << o.text;
  }
  static void TearDownTestSuite() {
    if (g_dir.empty()) return;
    (void)Sh(std::string(SLUICE_BIN_DIR) + "/sluice cluster stop --config " + g_cfg);
    std::error_code ec;
    for (auto& e : fs::directory_iterator(g_dir + "/run", ec)) {
      std::ifstream p(e.path());
      pid_t pid = 0;
      if (p >> pid && pid > 0) kill(pid, SIGKILL);
    }
    fs::remove_all(g_dir, ec);
  }
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
  co.cluster = g_cfg;
  auto c = client::Client::Connect(co);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  auto d = (*c)->Mkdir("/io500", 0755);
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  Output o = Sh(std::string(SLUICE_IO500_BIN) +
                 " --quick --no-drop-caches --progress 0 --ranks 2 --target native=native:" + g_cfg +
                 ":/io500 --result-dir " + g_dir + "/res-native");
  std::printf("native target: native:%s:/io500\n", g_cfg.c_str());
  ExpectQuickRunValid(o, g_dir + "/res-native/native/result.json");
  EXPECT_NE(o.text.find("native:" + g_cfg + ":/io500"), std::string::npos) << "back end not named:\n" << o.text;
  // The benchmark cleaned up after itself through libsluice.
  auto left = (*c)->ListDir("/io500");
  ASSERT_TRUE(left.ok()) << left.status().ToString();
}

// The check above fails when a byte changes between write and read through
// libsluice (the harness's --test-corrupt hook): it is not a check that
// cannot fail.
TEST_F(Io500Native, CorruptedByteMakesTheNativeRunInvalid) {
  client::ClientOptions co;
  co.cluster = g_cfg;
  auto c = client::Client::Connect(co);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  auto d = (*c)->Mkdir("/io500corrupt", 0755);
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  Output o = Sh(std::string(SLUICE_IO500_BIN) +
                " --quick --no-drop-caches --progress 0 --no-rnd4k --test-corrupt mdtest-hard --target bad=native:" +
                g_cfg + ":/io500corrupt --result-dir " + g_dir + "/res-corrupt");
  auto bad = QuickRunProblems(o, g_dir + "/res-corrupt/bad/result.json");
  EXPECT_FALSE(bad.empty()) << o.text;
  EXPECT_NE(o.text.find("mdtest-hard-read"), std::string::npos) << o.text;
  std::printf("corrupt run flagged: %s", Join(bad).c_str());
}

TEST_F(Io500Native, MissingDirectoryIsNamed) {
  Output o = Sh(std::string(SLUICE_IO500_BIN) + " --quick --progress 0 --target n=native:" + g_cfg +
                 ":/no-such-dir --result-dir " + g_dir + "/res-missing");
  EXPECT_NE(o.exit_code, 0) << o.text;
  EXPECT_NE(o.text.find("/no-such-dir"), std::string::npos) << o.text;
}

// The POSIX back end on the FUSE mount of the same cluster.
TEST_F(Io500Native, QuickRunOnFuseMountIsValid) {
  std::string mnt = g_dir + "/mnt";
  fs::create_directories(mnt);
  Output m = Sh(std::string(SLUICE_BIN_DIR) + "/sluice mount " + mnt + " --config " + g_cfg + " --log " + g_dir +
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
  Output o = Sh(std::string(SLUICE_IO500_BIN) + " --quick --no-drop-caches --progress 0 --ranks 2 --target fuse=" +
                 mnt + "/io500posix --result-dir " + g_dir + "/res-fuse");
  ExpectQuickRunValid(o, g_dir + "/res-fuse/fuse/result.json");
}

}  // namespace
}  // namespace sluice::io500
