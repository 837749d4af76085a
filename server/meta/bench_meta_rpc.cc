// Benchmark: namespace operations per second through MetaClient (RPC over
// loopback) against 1, 2 and 4 sluice-meta shard processes, in one shared
// directory and in one directory per client thread, and in the same run the
// same operations on the local file system (ext4) through the kernel.
//
//   bench_meta_rpc [--threads T] [--files F] [--shards 1,2,4] [--dir /path/on/ext4]
//                  [--provider tcp] [--bin DIR] [--repeat R] [--workers W]
//                  [--stat-rounds K] [--depth D] [--phases create,stat,...] [--cpu]
//
// Each run measures ext4 and then every shard count, one after the other,
// and prints their ratios; with --repeat R (default 3) the summary gives
// the median over the R runs of each ratio (the machine is shared and noisy:
// a ratio taken within one run compares like with like).
//
// Each configuration starts its own sluice-mgmtd and shards (from --bin,
// default: this program's directory) in a fresh directory under --dir, and
// stops them (SIGTERM, by PID) afterwards; --workers sets each shard's
// handler threads (sluice-meta --workers, default 16). T client threads share one
// MetaClient, as the threads of a training job share libsluice.
//
// ops: create (exclusive; ext4: open O_CREAT|O_EXCL + close); stat (lookup
// of a name in its directory, one call at a time per thread, every file K
// times; ext4: stat(2) of the path); stat-pipe (the same lookups with D in
// flight per thread: MetaClient::LookupMany, one RPC per lookup, no cache;
// compared with the same ext4 stat); stat-batch (the same, the lookups of
// one shard sent 32 to an RPC); readdir (entries per second;
// every thread lists its directory, the shared one in the shared case);
// unlink. Sluice syncs its WAL before acknowledging a change (group
// commit); ext4 does not fsync. The ratio is Sluice / ext4.
//
// --cpu adds, per phase, the CPU time the client process and the shard
// processes spent per operation (from /proc; 10 ms ticks, so short phases
// are coarse) and the wall time per operation per thread.
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <functional>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/config.h"
#include "common/meta/meta_client.h"
#include "common/meta/remote_shard_handle.h"

namespace sluice::meta {
namespace {

// The phases, in the order they run.
enum Phase { kCreate, kStat, kStatPipe, kStatBatch, kReaddir, kUnlink, kPhases };
const char* const kPhaseNames[kPhases] = {"create",     "stat",    "stat-pipe",
                                          "stat-batch", "readdir", "unlink"};

struct Result1 {
  double rate[kPhases] = {};       // ops (readdir: entries) per second
  double client_us[kPhases] = {};  // client process CPU per op
  double server_us[kPhases] = {};  // shard processes' CPU per op (summed)
  double wall_us[kPhases] = {};    // wall time per op per thread
  double per_rpc[kPhases] = {};    // lookups per lookup RPC (stat phases)
};

[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "bench_meta_rpc: %s\n", what.c_str());
  std::exit(1);
}

// Runs fn(t) on `threads` threads released together; returns elapsed seconds.
double RunThreads(int threads, const std::function<void(int)>& fn) {
  std::mutex mu;
  std::condition_variable cv;
  int ready = 0;
  bool go = false;
  std::vector<std::thread> ts;
  for (int t = 0; t < threads; ++t) {
    ts.emplace_back([&, t] {
      {
        std::unique_lock<std::mutex> l(mu);
        ready++;
        cv.notify_all();
        cv.wait(l, [&] { return go; });
      }
      fn(t);
    });
  }
  std::chrono::steady_clock::time_point start;
  {
    std::unique_lock<std::mutex> l(mu);
    cv.wait(l, [&] { return ready == threads; });
    go = true;
    start = std::chrono::steady_clock::now();
  }
  cv.notify_all();
  for (auto& t : ts) t.join();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

std::string FileName(int t, int i) { return "file." + std::to_string(t) + "." + std::to_string(i); }

// CPU seconds (user + system) a process has used so far.
double CpuSeconds(pid_t pid) {
  std::ifstream f(pid == 0 ? std::string("/proc/self/stat") : "/proc/" + std::to_string(pid) + "/stat");
  std::string all((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  size_t p = all.rfind(')');
  if (p == std::string::npos) return 0;
  std::istringstream in(all.substr(p + 2));
  std::string field;
  unsigned long long utime = 0, stime = 0;
  // Fields after the command: state(3) ... utime(14) stime(15).
  for (int i = 3; i <= 15 && (in >> field); ++i) {
    if (i == 14) utime = std::strtoull(field.c_str(), nullptr, 10);
    if (i == 15) stime = std::strtoull(field.c_str(), nullptr, 10);
  }
  return static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

// Times one phase of `ops` operations on `threads` threads and the CPU the
// client and the servers spent on it.
class PhaseTimer {
 public:
  explicit PhaseTimer(std::vector<pid_t> servers) : servers_(std::move(servers)) {}
  void Run(Result1* r, Phase ph, double ops, int threads, const std::function<void(int)>& fn) {
    const double c0 = CpuSeconds(0);
    double s0 = 0;
    for (pid_t p : servers_) s0 += CpuSeconds(p);
    const double secs = RunThreads(threads, fn);
    double s1 = 0;
    for (pid_t p : servers_) s1 += CpuSeconds(p);
    r->rate[ph] = ops / secs;
    r->client_us[ph] = (CpuSeconds(0) - c0) * 1e6 / ops;
    r->server_us[ph] = (s1 - s0) * 1e6 / ops;
    r->wall_us[ph] = secs * 1e6 * threads / ops;
  }

 private:
  std::vector<pid_t> servers_;
};

uint16_t FreePort() {
  // Bind port 0 and keep what the kernel chose (released right away).
  for (int attempt = 0; attempt < 100; ++attempt) {
    uint16_t p = static_cast<uint16_t>(20000 + (std::rand() % 40000));
    if (CheckPortFree("127.0.0.1", p, "", "").ok()) return p;
  }
  Die("no free port found");
}

bool WaitForText(const std::string& path, const std::string& text, int timeout_ms) {
  for (int waited = 0; waited < timeout_ms; waited += 50) {
    std::ifstream f(path);
    std::stringstream ss;
    ss << f.rdbuf();
    if (ss.str().find(text) != std::string::npos) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

// mgmtd + N shard processes; stopped by PID on destruction.
class LocalCluster {
 public:
  LocalCluster(const std::string& dir, const std::string& bin, const std::string& provider,
               int shards, int workers)
      : dir_(dir) {
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    config_ = dir + "/cluster.toml";
    mgmtd_port_ = FreePort();
    std::ofstream f(config_);
    f << "[cluster]\nprovider = \"" << provider << "\"\nreplication = 1\nheartbeat_ms = 500\n"
      << "[mgmtd]\nhost = \"127.0.0.1\"\nport = " << mgmtd_port_ << "\n";
    for (int i = 1; i <= shards; ++i) {
      f << "[[meta]]\nid = " << i << "\nhost = \"127.0.0.1\"\nport = " << FreePort() << "\n";
    }
    f << "[[data]]\nid = 1\nhost = \"127.0.0.1\"\nport = " << FreePort() << "\n";
    f.close();
    Spawn({bin + "/sluice-mgmtd", "--config", config_}, dir + "/mgmtd.log");
    for (int i = 1; i <= shards; ++i) {
      Spawn({bin + "/sluice-meta", "--config", config_, "--id", std::to_string(i), "--workers",
             std::to_string(workers)},
            dir + "/meta" + std::to_string(i) + ".log");
    }
    if (!WaitForText(dir + "/mgmtd.log", "serving on", 15000)) Die("mgmtd did not start; see " + dir + "/mgmtd.log");
    for (int i = 1; i <= shards; ++i) {
      std::string log = dir + "/meta" + std::to_string(i) + ".log";
      if (!WaitForText(log, "serving on", 15000)) Die("sluice-meta " + std::to_string(i) + " did not start; see " + log);
    }
  }
  ~LocalCluster() {
    for (pid_t p : pids_) kill(p, SIGTERM);
    for (pid_t p : pids_) {
      int st = 0;
      for (int waited = 0; waited < 10000; waited += 20) {
        if (waitpid(p, &st, WNOHANG) == p) {
          p = -1;
          break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
      if (p > 0) {
        kill(p, SIGKILL);
        waitpid(p, &st, 0);
      }
    }
    std::filesystem::remove_all(dir_);
  }
  // The shard processes (not mgmtd), for CPU accounting.
  std::vector<pid_t> shard_pids() const { return {pids_.begin() + 1, pids_.end()}; }
  MetaClientOptions ClientOptions(const std::string& provider) const {
    MetaClientOptions o;
    o.provider = provider;
    o.mgmtd_host = "127.0.0.1";
    o.mgmtd_port = mgmtd_port_;
    return o;
  }

 private:
  void Spawn(const std::vector<std::string>& argv, const std::string& log) {
    pid_t pid = fork();
    if (pid < 0) Die("fork: " + std::string(std::strerror(errno)));
    if (pid == 0) {
      int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      if (fd >= 0) {
        dup2(fd, 1);
        dup2(fd, 2);
      }
      std::vector<char*> args;
      for (auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
      args.push_back(nullptr);
      execv(args[0], args.data());
      std::fprintf(stderr, "exec %s: %s\n", args[0], std::strerror(errno));
      _exit(127);
    }
    pids_.push_back(pid);
  }

  std::string dir_;
  std::string config_;
  uint16_t mgmtd_port_ = 0;
  std::vector<pid_t> pids_;
};

struct Params {
  int threads = 8, files = 500, stat_rounds = 3, depth = 128;
  bool run[kPhases] = {true, true, true, true, true, true};  // --phases (create always runs)
};

Result1 BenchSluice(MetaClient& c, const std::vector<pid_t>& servers, const std::string& tag,
                    bool shared, const Params& pr) {
  const int threads = pr.threads, files = pr.files;
  const Caller root = MakeCaller(0, 0);
  std::vector<uint64_t> dirs(threads);
  if (shared) {
    auto d = c.Mkdir(root, kRootIno, tag + "-shared", 0777);
    if (!d.ok()) Die("mkdir: " + d.status().ToString());
    std::fill(dirs.begin(), dirs.end(), d->ino());
  } else {
    for (int t = 0; t < threads; ++t) {
      auto d = c.Mkdir(root, kRootIno, tag + "-t" + std::to_string(t), 0777);
      if (!d.ok()) Die("mkdir: " + d.status().ToString());
      dirs[t] = d->ino();
    }
  }
  Result1 r;
  PhaseTimer timer(servers);
  const double n = static_cast<double>(threads) * files;
  std::atomic<int> errors{0};
  std::string first_error;
  std::mutex err_mu;
  auto fail = [&](const Status& st) {
    if (errors++ == 0) {
      std::lock_guard<std::mutex> l(err_mu);
      first_error = st.ToString();
    }
  };
  timer.Run(&r, kCreate, n, threads, [&](int t) {
    for (int i = 0; i < files; ++i) {
      auto x = c.Create(root, dirs[t], FileName(t, i), 0644, true);
      if (!x.ok()) fail(x.status());
    }
  });
  auto counted = [&](Phase ph, const std::function<void()>& run) {
    uint64_t l0, r0, l1, r1;
    c.LookupCounts(&l0, &r0);
    run();
    c.LookupCounts(&l1, &r1);
    r.per_rpc[ph] = r1 > r0 ? static_cast<double>(l1 - l0) / static_cast<double>(r1 - r0) : 0;
  };
  if (pr.run[kStat]) counted(kStat, [&] {
    timer.Run(&r, kStat, n * pr.stat_rounds, threads, [&](int t) {
      for (int k = 0; k < pr.stat_rounds; ++k) {
        for (int i = 0; i < files; ++i) {
          auto x = c.Lookup(root, dirs[t], FileName(t, i));
          if (!x.ok()) fail(x.status());
        }
      }
    });
  });
  // D lookups in flight per thread: one RPC each, then batched per shard.
  for (Phase ph : {kStatPipe, kStatBatch}) {
    if (!pr.run[ph]) continue;
    const size_t max_batch = ph == kStatPipe ? 1 : kMaxLookupBatch;
    counted(ph, [&] { timer.Run(&r, ph, n * pr.stat_rounds, threads, [&](int t) {
      std::vector<LookupItem> batch;
      for (int k = 0; k < pr.stat_rounds; ++k) {
        for (int i = 0; i < files; i += pr.depth) {
          batch.clear();
          for (int j = i; j < std::min(files, i + pr.depth); ++j) batch.push_back({dirs[t], FileName(t, j)});
          for (auto& x : c.LookupMany(root, batch, max_batch)) {
            if (!x.ok()) fail(x.status());
          }
        }
      }
    }); });
  }
  std::atomic<uint64_t> listed{0};
  const uint64_t expect_listed = shared ? static_cast<uint64_t>(threads) * threads * files
                                        : static_cast<uint64_t>(threads) * files;
  if (pr.run[kReaddir]) timer.Run(&r, kReaddir, static_cast<double>(expect_listed), threads, [&](int t) {
    std::string cookie;
    for (;;) {
      auto p = c.ReadDir(root, dirs[t], cookie, kMaxWireDirEntries);
      if (!p.ok()) {
        fail(p.status());
        return;
      }
      listed += p->entries.size();
      if (p->eof) return;
      cookie = p->cookie;
    }
  });
  if (pr.run[kReaddir] && listed.load() != expect_listed) {
    Die("readdir listed " + std::to_string(listed.load()) + " entries, expected " +
        std::to_string(expect_listed));
  }
  timer.Run(&r, kUnlink, n, threads, [&](int t) {
    for (int i = 0; i < files; ++i) {
      Status st = c.Unlink(root, dirs[t], FileName(t, i));
      if (!st.ok()) fail(st);
    }
  });
  if (errors.load() > 0) Die(std::to_string(errors.load()) + " operations failed; first: " + first_error);
  return r;
}

Result1 BenchExt4(const std::string& base, bool shared, const Params& pr) {
  const int threads = pr.threads, files = pr.files;
  std::string dir = base + "/ext4-" + (shared ? "shared" : "perthread");
  std::filesystem::remove_all(dir);
  std::vector<std::string> dirs(threads);
  for (int t = 0; t < threads; ++t) {
    dirs[t] = shared ? dir : dir + "/t" + std::to_string(t);
    std::filesystem::create_directories(dirs[t]);
  }
  Result1 r;
  PhaseTimer timer({});
  const double n = static_cast<double>(threads) * files;
  timer.Run(&r, kCreate, n, threads, [&](int t) {
    for (int i = 0; i < files; ++i) {
      std::string p = dirs[t] + "/" + FileName(t, i);
      int fd = open(p.c_str(), O_CREAT | O_EXCL | O_WRONLY, 0644);
      if (fd < 0) Die("create " + p + ": " + std::strerror(errno));
      close(fd);
    }
  });
  timer.Run(&r, kStat, n * pr.stat_rounds, threads, [&](int t) {
    struct stat st;
    for (int k = 0; k < pr.stat_rounds; ++k) {
      for (int i = 0; i < files; ++i) {
        std::string p = dirs[t] + "/" + FileName(t, i);
        if (stat(p.c_str(), &st) != 0) Die("stat " + p + ": " + std::strerror(errno));
      }
    }
  });
  // The kernel has no pipelined stat: the pipelined lookups compare with stat(2).
  for (Phase ph : {kStatPipe, kStatBatch}) {
    r.rate[ph] = r.rate[kStat];
    r.client_us[ph] = r.client_us[kStat];
    r.wall_us[ph] = r.wall_us[kStat];
  }
  std::atomic<uint64_t> listed{0};
  const double expect = shared ? n * threads : n;
  timer.Run(&r, kReaddir, expect, threads, [&](int t) {
    DIR* d = opendir(dirs[t].c_str());
    if (!d) Die("opendir " + dirs[t] + ": " + std::strerror(errno));
    uint64_t k = 0;
    while (dirent* e = readdir(d)) {
      if (e->d_name[0] != '.') k++;
    }
    closedir(d);
    listed += k;
  });
  if (static_cast<double>(listed.load()) != expect) Die("ext4 readdir listed the wrong number of entries");
  timer.Run(&r, kUnlink, n, threads, [&](int t) {
    for (int i = 0; i < files; ++i) {
      std::string p = dirs[t] + "/" + FileName(t, i);
      if (unlink(p.c_str()) != 0) Die("unlink " + p + ": " + std::strerror(errno));
    }
  });
  std::filesystem::remove_all(dir);
  return r;
}

double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t m = v.size() / 2;
  return v.size() % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}

void PrintHeader(const char* what) {
  std::printf("%-18s", what);
  for (int p = 0; p < kPhases; ++p) std::printf(" %11s", kPhaseNames[p]);
  std::printf("\n");
}

void PrintRates(const std::string& label, const Result1& r, const Result1* base) {
  std::printf("%-18s", label.c_str());
  for (int p = 0; p < kPhases; ++p) std::printf(" %11.0f", r.rate[p]);
  if (base) {
    std::printf("   ");
    for (int p = 0; p < kPhases; ++p) std::printf(" x%.2f", r.rate[p] / base->rate[p]);
  }
  std::printf("\n");
  std::fflush(stdout);
}

std::string SelfDir() {
  char buf[4096];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return ".";
  buf[n] = 0;
  return std::filesystem::path(buf).parent_path().string();
}

int Main(int argc, char** argv) {
  Params pr;
  int repeat = 3, workers = 16;
  bool cpu = false;
  std::string base = std::filesystem::temp_directory_path().string();
  std::string provider = "tcp";
  std::string bin = SelfDir();
  std::vector<int> shard_counts = {1, 2, 4};
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) Die(a + " needs a value");
      return argv[++i];
    };
    if (a == "--threads") {
      pr.threads = std::max(1, std::atoi(next().c_str()));
    } else if (a == "--files") {
      pr.files = std::max(1, std::atoi(next().c_str()));
    } else if (a == "--stat-rounds") {
      pr.stat_rounds = std::max(1, std::atoi(next().c_str()));
    } else if (a == "--depth") {
      pr.depth = std::max(1, std::atoi(next().c_str()));
    } else if (a == "--workers") {
      workers = std::max(1, std::atoi(next().c_str()));
    } else if (a == "--repeat") {
      repeat = std::max(1, std::atoi(next().c_str()));
    } else if (a == "--phases") {
      std::fill(std::begin(pr.run), std::end(pr.run), false);
      pr.run[kCreate] = pr.run[kUnlink] = true;  // the files must come and go
      std::stringstream ss(next());
      std::string item;
      while (std::getline(ss, item, ',')) {
        bool known = false;
        for (int p = 0; p < kPhases; ++p) {
          if (item == kPhaseNames[p]) pr.run[p] = known = true;
        }
        if (!known) Die("--phases: unknown phase '" + item + "'");
      }
    } else if (a == "--cpu") {
      cpu = true;
    } else if (a == "--dir") {
      base = next();
    } else if (a == "--provider") {
      provider = next();
    } else if (a == "--bin") {
      bin = next();
    } else if (a == "--shards") {
      shard_counts.clear();
      std::stringstream ss(next());
      std::string item;
      while (std::getline(ss, item, ',')) shard_counts.push_back(std::max(1, std::atoi(item.c_str())));
    } else {
      std::fprintf(stderr,
                   "usage: bench_meta_rpc [--threads T] [--files F] [--shards 1,2,4] [--dir D] "
                   "[--provider P] [--bin DIR] [--repeat R] [--workers W] [--stat-rounds K] "
                   "[--depth D] [--phases create,stat,...] [--cpu]\n");
      return 2;
    }
  }
  std::srand(static_cast<unsigned>(getpid()));
  std::string work = base + "/bench-meta-rpc-" + std::to_string(getpid());
  std::filesystem::create_directories(work);
  std::printf("bench_meta_rpc: %d client threads x %d files (stat: %d rounds; stat-pipe: %d in "
              "flight per thread), %d runs, provider %s, %d workers per shard, work dir %s, %u cores\n",
              pr.threads, pr.files, pr.stat_rounds, pr.depth, repeat, provider.c_str(), workers,
              work.c_str(), std::thread::hardware_concurrency());
  std::printf("Sluice = MetaClient over RPC to sluice-meta processes (WAL synced per change); "
              "ext4 = syscalls, no fsync\n");
  // results[shared][config][run]; config 0 = ext4, then each shard count.
  std::vector<std::vector<Result1>> results[2];
  for (auto& r : results) r.assign(shard_counts.size() + 1, {});
  for (int k = 0; k < repeat; ++k) {
    for (int shared : {1, 0}) {
      std::printf("-- run %d of %d, %s (ops/s; ratio vs ext4 of this run)\n", k + 1, repeat,
                  shared ? "one shared directory" : "one directory per thread");
      PrintHeader("");
      Result1 ext4 = BenchExt4(work, shared, pr);
      results[shared][0].push_back(ext4);
      PrintRates("ext4 (kernel)", ext4, nullptr);
      for (size_t si = 0; si < shard_counts.size(); ++si) {
        const int s = shard_counts[si];
        LocalCluster cluster(work + "/cluster-" + std::to_string(s), bin, provider, s, workers);
        auto client = MetaClient::Open(cluster.ClientOptions(provider));
        if (!client.ok()) Die(client.status().ToString());
        Result1 r = BenchSluice(**client, cluster.shard_pids(), shared ? "shared" : "per", shared, pr);
        results[shared][si + 1].push_back(r);
        PrintRates("sluice " + std::to_string(s) + (s == 1 ? " shard" : " shards"), r, &ext4);
      }
    }
  }
  std::printf("== medians over %d runs\n", repeat);
  for (int shared : {1, 0}) {
    std::printf("-- %s: ops/s (median) and Sluice/ext4 ratio (median of the per-run ratios)\n",
                shared ? "one shared directory" : "one directory per thread");
    PrintHeader("");
    for (size_t ci = 0; ci <= shard_counts.size(); ++ci) {
      const auto& runs = results[shared][ci];
      Result1 med;
      std::vector<double> ratio[kPhases];
      for (int p = 0; p < kPhases; ++p) {
        std::vector<double> v;
        for (size_t k = 0; k < runs.size(); ++k) {
          v.push_back(runs[k].rate[p]);
          ratio[p].push_back(runs[k].rate[p] / results[shared][0][k].rate[p]);
        }
        med.rate[p] = Median(v);
      }
      std::string label = ci == 0 ? "ext4 (kernel)"
                                  : "sluice " + std::to_string(shard_counts[ci - 1]) +
                                        (shard_counts[ci - 1] == 1 ? " shard" : " shards");
      std::printf("%-18s", label.c_str());
      for (int p = 0; p < kPhases; ++p) std::printf(" %11.0f", med.rate[p]);
      if (ci > 0) {
        std::printf("   ");
        for (int p = 0; p < kPhases; ++p) std::printf(" x%.2f", Median(ratio[p]));
      }
      std::printf("\n");
    }
    if (cpu) {
      std::printf("   per op (median): client CPU us / shards' CPU us / wall us per thread\n");
      for (size_t ci = 0; ci <= shard_counts.size(); ++ci) {
        const auto& runs = results[shared][ci];
        std::string label = ci == 0 ? "ext4 (kernel)"
                                    : "sluice " + std::to_string(shard_counts[ci - 1]) +
                                          (shard_counts[ci - 1] == 1 ? " shard" : " shards");
        std::printf("%-18s", label.c_str());
        for (int p = 0; p < kPhases; ++p) {
          std::vector<double> c, sv, w;
          for (auto& r : runs) {
            c.push_back(r.client_us[p]);
            sv.push_back(r.server_us[p]);
            w.push_back(r.wall_us[p]);
          }
          std::printf(" %5.1f/%4.1f/%5.0f", Median(c), Median(sv), Median(w));
        }
        std::printf("\n");
        if (ci > 0) {
          std::vector<double> a, b;
          for (auto& r : runs) {
            a.push_back(r.per_rpc[kStat]);
            b.push_back(r.per_rpc[kStatBatch]);
          }
          std::printf("%-18s lookups per RPC: stat %.1f, stat-batch %.1f\n", "", Median(a), Median(b));
        }
      }
    }
  }
  std::filesystem::remove_all(work);
  return 0;
}

}  // namespace
}  // namespace sluice::meta

int main(int argc, char** argv) { return sluice::meta::Main(argc, argv); }
