#include "tests/common/test_util.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

namespace sluice::test {

uint16_t FreePort() {
  // Ports from a random start so parallel tests rarely probe the same ones.
  static std::mt19937 rng(static_cast<unsigned>(getpid() * 2654435761u));
  for (int attempt = 0; attempt < 1000; attempt++) {
    uint16_t port = static_cast<uint16_t>(20000 + rng() % 30000);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int ok = bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
    close(fd);
    if (ok == 0) return port;
  }
  return 0;
}

TempDir::TempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string tmpl = std::string(base ? base : "/tmp") + "/sluice-test-XXXXXX";
  char* p = mkdtemp(tmpl.data());
  path_ = p ? p : "";
}

TempDir::~TempDir() {
  std::error_code ec;
  if (!path_.empty() && !std::getenv("SLUICE_KEEP_TMP")) std::filesystem::remove_all(path_, ec);
}

Child Child::Spawn(const std::vector<std::string>& argv, const std::string& log_path) {
  Child c;
  // Everything the child needs is made before fork: after it, only
  // async-signal-safe calls (the test may have other threads).
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  const pid_t parent = getpid();
  pid_t pid = fork();
  if (pid == 0) {
    // Die with the test, even when it is SIGKILLed (a ctest timeout) and no
    // destructor runs. If the parent died before prctl, it is already gone:
    // the child was reparented and getppid() no longer names it.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);
    if (!log_path.empty()) {
      int fd = open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      if (fd >= 0) {
        dup2(fd, 1);
        dup2(fd, 2);
        close(fd);
      }
    }
    execv(args[0], args.data());
    _exit(127);
  }
  c.pid_ = pid;
  return c;
}

Child& Child::operator=(Child&& o) noexcept {
  if (this != &o) {
    Kill();
    pid_ = o.pid_;
    o.pid_ = -1;
  }
  return *this;
}

Child::~Child() { Kill(); }

void Child::Kill(int sig) {
  if (pid_ <= 0) return;
  kill(pid_, sig);
  if (sig == SIGKILL) {
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }
}

int Child::Wait(int timeout_ms) {
  if (pid_ <= 0) return -1;
  auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < end) {
    int st = 0;
    pid_t r = waitpid(pid_, &st, WNOHANG);
    if (r == pid_) {
      pid_ = -1;
      return st;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return -1;
}

bool WaitForText(const std::string& path, const std::string& text, int timeout_ms) {
  auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < end) {
    FILE* f = fopen(path.c_str(), "r");
    if (f) {
      std::string all;
      char buf[4096];
      size_t n;
      while ((n = fread(buf, 1, sizeof buf, f)) > 0) all.append(buf, n);
      fclose(f);
      if (all.find(text) != std::string::npos) return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

std::string BinDir() {
  const char* env = std::getenv("SLUICE_BIN_DIR");
  if (env) return env;
  char buf[4096];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return "build/bin";
  buf[n] = 0;
  return std::filesystem::path(buf).parent_path().string();
}

CommandOutput RunCommand(const std::string& cmd) {
  CommandOutput out;
  FILE* p = ::popen((cmd + " 2>&1").c_str(), "r");
  if (p == nullptr) return out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.text.append(buf, n);
  int st = ::pclose(p);
  out.exit_code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return out;
}

bool LocalCluster::Start(const Options& o, std::string* error) {
  if (dir().empty()) {
    *error = "could not create a temporary directory";
    return false;
  }
  config_ = dir() + "/cluster.toml";
  if (!o.tenants.empty()) {
    std::filesystem::create_directories(dir() + "/secrets");
    std::vector<std::string> names = o.tenants;
    names.push_back("_cluster");
    for (const auto& t : names) {
      std::ofstream s(SecretFile(t));
      s << "secret-of-" << t << "-" << std::random_device{}() << std::random_device{}() << "\n";
      s.close();
      chmod(SecretFile(t).c_str(), 0600);
    }
  }
  {
    std::ofstream f(config_);
    f << "[cluster]\nname = \"" << o.name << "\"\nreplication = " << o.replication
      << "\nlease_ms = " << o.lease_ms << "\nheartbeat_ms = " << o.heartbeat_ms << "\ndata_root = \"" << dir()
      << "\"\n"
      << o.extra_cluster_toml << "\n";
    if (!o.tenants.empty()) f << "secret_file = \"" << SecretFile("_cluster") << "\"\n";
    f << "[mgmtd]\nport = " << FreePort() << "\n";
    for (const auto& t : o.tenants) {
      f << "[[tenant]]\nname = \"" << t << "\"\nsecret_file = \"" << SecretFile(t) << "\"\n";
    }
    for (int i = 1; i <= o.meta_servers; ++i) f << "[[meta]]\nid = " << i << "\nport = " << FreePort() << "\n";
    for (int i = 1; i <= o.data_servers; ++i) f << "[[data]]\nid = " << i << "\nport = " << FreePort() << "\n";
    if (!f) {
      *error = "could not write " + config_;
      return false;
    }
  }
  started_ = true;
  // The servers outlive `sluice cluster start` (detached); tie them to this
  // test so a test killed by a timeout leaves nothing running.
  setenv("SLUICE_EXIT_WITH_PID", std::to_string(getpid()).c_str(), /*overwrite=*/0);
  CommandOutput out = Cli("cluster start");
  // Start is idempotent: a second call waits for what the first launched
  // (a port taken between FreePort() and bind shows up here, named).
  if (out.exit_code != 0) out = Cli("cluster start");
  if (out.exit_code != 0) {
    *error = "sluice cluster start --config " + config_ + " failed:\n" + out.text;
    return false;
  }
  return true;
}

void LocalCluster::Stop() {
  if (!started_) return;
  started_ = false;
  (void)Cli("cluster stop");
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir() + "/run", ec)) {
    std::ifstream p(e.path());
    pid_t pid = 0;
    if (p >> pid && pid > 0) kill(pid, SIGKILL);
  }
}

void SuiteCluster::Start(const LocalCluster::Options& options) {
  cluster_ = std::make_unique<LocalCluster>();
  error_.clear();
  if (!cluster_->Start(options, &error_)) {
    cluster_.reset();  // stops whatever did start
    if (error_.empty()) error_ = "LocalCluster::Start failed without a message";
  }
}

void SuiteCluster::Stop() { cluster_.reset(); }

std::string LocalCluster::SecretFile(const std::string& tenant) const {
  return dir() + "/secrets/" + tenant + ".secret";
}

CommandOutput LocalCluster::Cli(const std::string& args) const {
  std::string cmd = BinDir() + "/sluice " + args;
  return RunCommand(cmd + " --config " + config_);
}

}  // namespace sluice::test
