// sluice cluster start|status|stop [--config FILE]
//
// Without --config: the embedded default, a local cluster on loopback under
// $SLUICE_HOME/local (default ~/.sluice/local): 1 mgmtd, 2 meta shards, 4 data
// servers each with its own directory, replication factor 2.
//
// `start` launches every server of the config that runs on this host and is
// not already running (idempotent), then waits until each is serving.
// `stop` stops exactly the processes it started (pid files, checked against
// /proc), gently first. Data stays on disk: a later `start` finds it.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <sys/statvfs.h>
#include <thread>
#include <vector>

#include "common/auth.h"
#include "common/clock.h"
#include "common/config.h"
#include "common/mgmt_client.h"

using namespace sluice;
namespace fs = std::filesystem;

namespace {

std::string SelfDir() {
  char buf[4096];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return ".";
  buf[n] = 0;
  std::string s(buf);
  return s.substr(0, s.rfind('/'));
}

std::string Home() {
  if (const char* h = std::getenv("SLUICE_HOME")) return h;
  const char* home = std::getenv("HOME");
  return std::string(home ? home : "/root") + "/.sluice";
}

const char kDefaultConfig[] = R"(# The embedded default: a local Sluice cluster on loopback.
[cluster]
name = "local"
provider = "tcp"
replication = 2
chunk_size = "1MiB"
stripe_width = 4
lease_ms = 3000
heartbeat_ms = 500
# The servers' own secret; clients use a tenant's (common/auth.h).
secret_file = "secrets/cluster.secret"

[[tenant]]
name = "default"
secret_file = "secrets/default.secret"

[mgmtd]
host = "127.0.0.1"
port = 7000

[[meta]]
id = 1
port = 7101

[[meta]]
id = 2
port = 7102

[[data]]
id = 1
port = 7201

[[data]]
id = 2
port = 7202

[[data]]
id = 3
port = 7203

[[data]]
id = 4
port = 7204
)";

struct Proc {
  std::string name;  // mgmtd, meta1, data3
  std::vector<std::string> argv;
};

std::string RunDir(const ClusterConfig& cfg) { return cfg.data_root + "/run"; }
std::string LogDir(const ClusterConfig& cfg) { return cfg.data_root + "/logs"; }

bool IsLocalHost(const std::string& host) {
  if (host.rfind("127.", 0) == 0 || host == "localhost" || host == "0.0.0.0") return true;
  // Any address of this host: try to bind it.
  return CheckPortFree(host, 0, "", "").ok();
}

std::vector<Proc> Processes(const ClusterConfig& cfg) {
  std::string bin = SelfDir();
  std::vector<Proc> out;
  if (IsLocalHost(cfg.mgmtd.host)) {
    out.push_back({"mgmtd", {bin + "/sluice-mgmtd", "--config", cfg.path}});
  }
  for (auto& m : cfg.meta) {
    if (!IsLocalHost(m.host)) continue;
    out.push_back({"meta" + std::to_string(m.id),
                   {bin + "/sluice-meta", "--config", cfg.path, "--id", std::to_string(m.id)}});
  }
  for (auto& d : cfg.data) {
    if (!IsLocalHost(d.host)) continue;
    out.push_back({"data" + std::to_string(d.id),
                   {bin + "/sluice-data", "--config", cfg.path, "--id", std::to_string(d.id)}});
  }
  return out;
}

// The pid in the pid file if that process is alive and is the binary we started.
pid_t RunningPid(const ClusterConfig& cfg, const Proc& p) {
  std::ifstream f(RunDir(cfg) + "/" + p.name + ".pid");
  pid_t pid = 0;
  if (!(f >> pid) || pid <= 0) return 0;
  std::ifstream cmd("/proc/" + std::to_string(pid) + "/cmdline");
  std::string c((std::istreambuf_iterator<char>(cmd)), std::istreambuf_iterator<char>());
  std::string exe = fs::path(p.argv[0]).filename().string();
  if (c.find(exe) == std::string::npos || c.find(cfg.path) == std::string::npos) return 0;
  return pid;
}

pid_t Launch(const ClusterConfig& cfg, const Proc& p) {
  std::string log = LogDir(cfg) + "/" + p.name + ".log";
  pid_t pid = fork();
  if (pid == 0) {
    setsid();
    int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    int nul = open("/dev/null", O_RDONLY);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
    }
    if (nul >= 0) dup2(nul, 0);
    std::vector<char*> a;
    for (auto& s : p.argv) a.push_back(const_cast<char*>(s.c_str()));
    a.push_back(nullptr);
    execv(a[0], a.data());
    std::fprintf(stderr, "cannot run %s: %s\n", a[0], std::strerror(errno));
    _exit(127);
  }
  std::ofstream(RunDir(cfg) + "/" + p.name + ".pid") << pid << "\n";
  return pid;
}

std::string Human(uint64_t b) {
  const char* u[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(b);
  int i = 0;
  while (v >= 1024 && i < 4) {
    v /= 1024;
    i++;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, i ? "%.1f %s" : "%.0f %s", v, u[i]);
  return buf;
}

Result<mgmt::ClusterMap> FetchMap(const ClusterConfig& cfg, uint32_t timeout_ms) {
  rpc::ClientOptions co;
  co.fabric.provider = cfg.provider;
  co.peer_timeout_ms = 1000;
  // The operator on a server host can read the cluster's secret; anyone
  // else asks as a tenant.
  auto cred = auth::ClusterCredential(cfg);
  if (!cred.ok()) cred = auth::ClientCredential(cfg, "", "");
  if (!cred.ok()) return cred.status();
  co.credential = *cred;
  auto c = rpc::RpcClient::Create(co);
  if (!c.ok()) return c.status();
  auto peer = (*c)->Resolve(cfg.mgmtd.host, cfg.mgmtd.port);
  if (!peer.ok()) return peer.status();
  MapClient mc(c->get(), *peer);
  return mc.Refresh(timeout_ms);
}

// What is not serving yet, or empty when everything is.
std::string NotServing(const mgmt::ClusterMap& m) {
  std::string out;
  for (auto& s : m.servers()) {
    if (s.state() != mgmt::ONLINE) {
      out += std::string(s.kind() == mgmt::META ? " meta" : " data") + std::to_string(s.id());
    }
  }
  for (auto& t : m.targets()) {
    if (t.state() != mgmt::SERVING) out += " target" + std::to_string(t.id());
  }
  return out;
}

void PrintStatus(const ClusterConfig& cfg, const mgmt::ClusterMap& m) {
  std::printf("cluster '%s'  map version %llu  provider %s  replication %u  chunk %s  stripe %u\n",
              m.cluster_name().c_str(), static_cast<unsigned long long>(m.version()), m.provider().c_str(),
              m.replication(), Human(m.chunk_size()).c_str(), m.stripe_width());
  std::printf("config %s  data under %s\n\n", cfg.path.c_str(), cfg.data_root.c_str());
  std::printf("%-8s %-6s %-22s %-8s %s\n", "SERVER", "KIND", "ADDRESS", "STATE", "DETAIL");
  std::printf("%-8s %-6s %-22s %-8s %s\n", "mgmtd", "mgmt",
              (cfg.mgmtd.host + ":" + std::to_string(cfg.mgmtd.port)).c_str(), "online", "");
  for (auto& s : m.servers()) {
    std::string detail = s.kind() == mgmt::META ? "shard " + std::to_string(s.shard()) : "";
    if (s.kind() == mgmt::DATA) {
      detail = "targets";
      for (uint32_t t : s.targets()) detail += " " + std::to_string(t);
    }
    std::printf("%-8s %-6s %-22s %-8s %s\n", (std::string(s.kind() == mgmt::META ? "meta" : "data") + std::to_string(s.id())).c_str(),
                s.kind() == mgmt::META ? "meta" : "data", (s.host() + ":" + std::to_string(s.port())).c_str(),
                s.state() == mgmt::ONLINE ? "online" : "offline", detail.c_str());
  }
  std::printf("\n%-8s %-8s %-9s %-10s %-10s %s\n", "TARGET", "SERVER", "STATE", "USED", "FREE", "PATH");
  uint64_t used = 0, cap = 0;
  for (auto& t : m.targets()) {
    const char* st = t.state() == mgmt::SERVING ? "serving" : t.state() == mgmt::SYNCING ? "syncing"
                     : t.state() == mgmt::OFFLINE_T ? "offline" : "new";
    uint64_t free = t.capacity_bytes() > t.used_bytes() ? t.capacity_bytes() - t.used_bytes() : 0;
    used += t.used_bytes();
    cap += t.capacity_bytes();
    std::printf("%-8u %-8u %-9s %-10s %-10s %s\n", t.id(), t.server_id(), st, Human(t.used_bytes()).c_str(),
                Human(free).c_str(), t.path().c_str());
  }
  std::printf("\n%-6s %-24s %s\n", "CHAIN", "MEMBERS (head first)", "CONFIGURED");
  for (auto& c : m.chains()) {
    std::string mem, conf;
    for (uint32_t t : c.members()) mem += std::to_string(t) + " ";
    for (uint32_t t : c.configured()) conf += std::to_string(t) + " ";
    bool degraded = c.members_size() < c.configured_size();
    std::printf("%-6u %-24s %s%s\n", c.id(), mem.c_str(), conf.c_str(), degraded ? " (degraded)" : "");
  }
  std::printf("\ncapacity: %s used, %s free\n", Human(used).c_str(),
              Human(cap > used ? cap - used : 0).c_str());
}

int Start(const ClusterConfig& cfg) {
  std::error_code ec;
  fs::create_directories(RunDir(cfg), ec);
  fs::create_directories(LogDir(cfg), ec);
  if (ec) {
    std::fprintf(stderr, "sluice cluster: cannot create %s: %s\n", RunDir(cfg).c_str(), ec.message().c_str());
    return 1;
  }
  // Check everything first, so a bad config starts nothing.
  std::vector<Proc> procs = Processes(cfg);
  std::vector<Proc> to_start;
  for (auto& p : procs) {
    if (RunningPid(cfg, p)) continue;
    if (access(p.argv[0].c_str(), X_OK) != 0) {
      std::fprintf(stderr, "sluice cluster: %s is missing; build first (scripts/build.sh)\n", p.argv[0].c_str());
      return 1;
    }
    to_start.push_back(p);
  }
  for (auto& p : to_start) {
    Status st;
    if (p.name == "mgmtd") {
      st = CheckPortFree(cfg.mgmtd.host, cfg.mgmtd.port, cfg.path, "[mgmtd] port");
      if (st.ok()) st = CheckWritableDir(cfg.mgmtd.dir, cfg.path, "[mgmtd] dir");
    } else if (p.name.rfind("meta", 0) == 0) {
      auto* m = cfg.FindMeta(std::stoul(p.name.substr(4)));
      st = CheckPortFree(m->host, m->port, cfg.path, "[[meta]] id=" + std::to_string(m->id) + " port");
      if (st.ok()) st = CheckWritableDir(m->dir, cfg.path, "[[meta]] id=" + std::to_string(m->id) + " dir");
    } else {
      auto* d = cfg.FindData(std::stoul(p.name.substr(4)));
      st = CheckPortFree(d->host, d->port, cfg.path, "[[data]] id=" + std::to_string(d->id) + " port");
      for (size_t i = 0; st.ok() && i < d->targets.size(); i++) {
        st = CheckWritableDir(d->targets[i], cfg.path,
                              "[[data]] id=" + std::to_string(d->id) + " targets[" + std::to_string(i) + "]");
      }
    }
    if (!st.ok()) {
      std::fprintf(stderr, "sluice cluster: %s\n", st.message().c_str());
      return 1;
    }
  }
  if (to_start.empty()) {
    std::printf("sluice cluster: every server of %s is already running\n", cfg.path.c_str());
  }
  std::vector<std::pair<std::string, pid_t>> launched;
  for (auto& p : to_start) {
    if (p.name == "mgmtd") launched.emplace_back(p.name, Launch(cfg, p));
  }
  for (auto& p : to_start) {
    if (p.name != "mgmtd") launched.emplace_back(p.name, Launch(cfg, p));
  }
  // Wait until every server is online and every target serving.
  uint64_t deadline = NowMillis() + 30000;
  std::string missing = "mgmtd";
  Result<mgmt::ClusterMap> m = Status(Code::kUnavailable, "not asked yet");
  while (NowMillis() < deadline) {
    for (auto& [name, pid] : launched) {
      int st;
      if (waitpid(pid, &st, WNOHANG) == pid) {
        std::fprintf(stderr, "sluice cluster: %s exited during start; its log %s/%s.log says:\n", name.c_str(),
                     LogDir(cfg).c_str(), name.c_str());
        std::string tail = "tail -n 5 '" + LogDir(cfg) + "/" + name + ".log' >&2";
        (void)std::system(tail.c_str());
        return 1;
      }
    }
    m = FetchMap(cfg, 1000);
    if (m.ok()) {
      missing = NotServing(*m);
      if (missing.empty()) break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  if (!missing.empty()) {
    std::fprintf(stderr, "sluice cluster: not serving after 30 s:%s; logs are in %s\n", missing.c_str(),
                 LogDir(cfg).c_str());
    return 1;
  }
  std::printf("sluice cluster '%s' is serving: mgmtd at %s:%u, %zu meta shards, %zu data servers\n",
              cfg.name.c_str(), cfg.mgmtd.host.c_str(), cfg.mgmtd.port, cfg.meta.size(), cfg.data.size());
  std::printf("  config %s\n  data   %s\n  logs   %s\n", cfg.path.c_str(), cfg.data_root.c_str(),
              LogDir(cfg).c_str());
  return 0;
}

int Stop(const ClusterConfig& cfg) {
  std::vector<Proc> procs = Processes(cfg);
  // Data and meta first, mgmtd last (so their last words are heard).
  std::vector<std::pair<Proc, pid_t>> running;
  for (auto it = procs.rbegin(); it != procs.rend(); ++it) {
    pid_t pid = RunningPid(cfg, *it);
    if (pid) running.emplace_back(*it, pid);
    else fs::remove(RunDir(cfg) + "/" + it->name + ".pid");
  }
  for (auto& [p, pid] : running) kill(pid, SIGTERM);
  uint64_t deadline = NowMillis() + 10000;
  for (auto& [p, pid] : running) {
    while (NowMillis() < deadline && kill(pid, 0) == 0) {
      // Reap if it is our child (it is not, after setsid+exit of the starter).
      waitpid(pid, nullptr, WNOHANG);
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    if (kill(pid, 0) == 0) {
      std::fprintf(stderr, "sluice cluster: %s (pid %d) did not stop in 10 s; killing it\n", p.name.c_str(), pid);
      kill(pid, SIGKILL);
    }
    fs::remove(RunDir(cfg) + "/" + p.name + ".pid");
  }
  std::printf("sluice cluster '%s': stopped %zu servers; data kept in %s\n", cfg.name.c_str(), running.size(),
              cfg.data_root.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string action, config;
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    if (a == "--config" && i + 1 < argc) config = argv[++i];
    else if (action.empty()) action = a;
    else {
      std::fprintf(stderr, "sluice cluster: unexpected argument '%s'\n", a.c_str());
      return 2;
    }
  }
  if (action != "start" && action != "status" && action != "stop") {
    std::fprintf(stderr, "usage: sluice cluster start|status|stop [--config FILE]\n");
    return 2;
  }
  if (config.empty()) {
    std::string dir = Home() + "/local";
    std::error_code ec;
    fs::create_directories(dir, ec);
    config = dir + "/cluster.toml";
    if (!fs::exists(config)) {
      // A fresh embedded cluster: its secrets first, readable by this user only.
      fs::create_directories(dir + "/secrets", ec);
      fs::permissions(dir + "/secrets", fs::perms::owner_all, ec);
      for (const char* f : {"/secrets/cluster.secret", "/secrets/default.secret"}) {
        Status st = auth::CreateSecretFile(dir + f);
        if (!st.ok()) {
          std::fprintf(stderr, "sluice cluster: %s\n", st.message().c_str());
          return 1;
        }
      }
      std::ofstream(config) << kDefaultConfig;
    }
  }
  config = fs::absolute(config).lexically_normal().string();
  auto cfg = LoadClusterConfig(config);
  if (!cfg.ok()) {
    std::fprintf(stderr, "sluice cluster: %s\n", cfg.status().message().c_str());
    return 1;
  }
  if (action == "start") return Start(*cfg);
  if (action == "stop") return Stop(*cfg);
  auto m = FetchMap(*cfg, 3000);
  if (!m.ok()) {
    std::fprintf(stderr, "sluice cluster: mgmtd at %s:%u does not answer (%s); is the cluster started?\n",
                 cfg->mgmtd.host.c_str(), cfg->mgmtd.port, m.status().message().c_str());
    return 1;
  }
  PrintStatus(*cfg, *m);
  return 0;
}
