// Benchmark: namespace operations per second through MetaClient (RPC over
// loopback) against 1, 2 and 4 sluice-meta shard processes, in one shared
// directory and in one directory per client thread, and in the same run the
// same operations on the local file system (ext4) through the kernel.
//
//   bench_meta_rpc [--threads T] [--files F] [--shards 1,2,4] [--dir /path/on/ext4]
//                  [--provider tcp] [--bin DIR] [--repeat R] [--workers W]
//
// With --repeat R every configuration runs R times (a fresh cluster each
// time) and each column keeps its best: the machine is shared, and the best
// of R is the least disturbed measurement.
//
// Each configuration starts its own sluice-mgmtd and shards (from --bin,
// default: this program's directory) in a fresh directory under --dir, and
// stops them (SIGTERM, by PID) afterwards; --workers sets each shard's
// handler threads (sluice-meta --workers, default 16). T client threads share one
// MetaClient, as the threads of a training job share libsluice.
//
// ops: create (exclusive; ext4: open O_CREAT|O_EXCL + close), stat (lookup
// of a name in its directory; ext4: stat(2) of the path), readdir (entries
// per second; every thread lists its directory, the shared one in the
// shared case), unlink. Sluice syncs its WAL before acknowledging a change
// (group commit); ext4 does not fsync. The ratio is Sluice / ext4.
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
#include <functional>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/config.h"
#include "server/meta/meta_client.h"
#include "server/meta/remote_shard_handle.h"

namespace sluice::meta {
namespace {

struct Rates {
  double create = 0, stat = 0, readdir = 0, unlink = 0;
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

Rates BenchSluice(MetaClient& c, const std::string& tag, bool shared, int threads, int files) {
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
  Rates r;
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
  r.create = n / RunThreads(threads, [&](int t) {
    for (int i = 0; i < files; ++i) {
      auto x = c.Create(root, dirs[t], FileName(t, i), 0644, true);
      if (!x.ok()) fail(x.status());
    }
  });
  r.stat = n / RunThreads(threads, [&](int t) {
    for (int i = 0; i < files; ++i) {
      auto x = c.Lookup(root, dirs[t], FileName(t, i));
      if (!x.ok()) fail(x.status());
    }
  });
  std::atomic<uint64_t> listed{0};
  double secs = RunThreads(threads, [&](int t) {
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
  const uint64_t expect_listed = shared ? static_cast<uint64_t>(threads) * threads * files
                                        : static_cast<uint64_t>(threads) * files;
  if (listed.load() != expect_listed) {
    Die("readdir listed " + std::to_string(listed.load()) + " entries, expected " +
        std::to_string(expect_listed));
  }
  r.readdir = static_cast<double>(listed.load()) / secs;
  r.unlink = n / RunThreads(threads, [&](int t) {
    for (int i = 0; i < files; ++i) {
      Status st = c.Unlink(root, dirs[t], FileName(t, i));
      if (!st.ok()) fail(st);
    }
  });
  if (errors.load() > 0) Die(std::to_string(errors.load()) + " operations failed; first: " + first_error);
  return r;
}

Rates BenchExt4(const std::string& base, bool shared, int threads, int files) {
  std::string dir = base + "/ext4-" + (shared ? "shared" : "perthread");
  std::filesystem::remove_all(dir);
  std::vector<std::string> dirs(threads);
  for (int t = 0; t < threads; ++t) {
    dirs[t] = shared ? dir : dir + "/t" + std::to_string(t);
    std::filesystem::create_directories(dirs[t]);
  }
  Rates r;
  const double n = static_cast<double>(threads) * files;
  r.create = n / RunThreads(threads, [&](int t) {
    for (int i = 0; i < files; ++i) {
      std::string p = dirs[t] + "/" + FileName(t, i);
      int fd = open(p.c_str(), O_CREAT | O_EXCL | O_WRONLY, 0644);
      if (fd < 0) Die("create " + p + ": " + std::strerror(errno));
      close(fd);
    }
  });
  r.stat = n / RunThreads(threads, [&](int t) {
    struct stat st;
    for (int i = 0; i < files; ++i) {
      std::string p = dirs[t] + "/" + FileName(t, i);
      if (stat(p.c_str(), &st) != 0) Die("stat " + p + ": " + std::strerror(errno));
    }
  });
  std::atomic<uint64_t> listed{0};
  double secs = RunThreads(threads, [&](int t) {
    DIR* d = opendir(dirs[t].c_str());
    if (!d) Die("opendir " + dirs[t] + ": " + std::strerror(errno));
    uint64_t k = 0;
    while (dirent* e = readdir(d)) {
      if (e->d_name[0] != '.') k++;
    }
    closedir(d);
    listed += k;
  });
  r.readdir = static_cast<double>(listed.load()) / secs;
  r.unlink = n / RunThreads(threads, [&](int t) {
    for (int i = 0; i < files; ++i) {
      std::string p = dirs[t] + "/" + FileName(t, i);
      if (unlink(p.c_str()) != 0) Die("unlink " + p + ": " + std::strerror(errno));
    }
  });
  std::filesystem::remove_all(dir);
  return r;
}

void KeepBest(Rates* best, const Rates& r) {
  best->create = std::max(best->create, r.create);
  best->stat = std::max(best->stat, r.stat);
  best->readdir = std::max(best->readdir, r.readdir);
  best->unlink = std::max(best->unlink, r.unlink);
}

void PrintRow(const char* label, const Rates& r, const Rates* base) {
  std::printf("%-18s %10.0f %10.0f %12.0f %10.0f", label, r.create, r.stat, r.readdir, r.unlink);
  if (base) {
    std::printf("   x%.2f x%.2f x%.2f x%.2f", r.create / base->create, r.stat / base->stat,
                r.readdir / base->readdir, r.unlink / base->unlink);
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
  int threads = 8, files = 500, repeat = 1, workers = 16;
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
      threads = std::max(1, std::atoi(next().c_str()));
    } else if (a == "--files") {
      files = std::max(1, std::atoi(next().c_str()));
    } else if (a == "--workers") {
      workers = std::max(1, std::atoi(next().c_str()));
    } else if (a == "--repeat") {
      repeat = std::max(1, std::atoi(next().c_str()));
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
                   "[--provider P] [--bin DIR] [--repeat R] [--workers W]\n");
      return 2;
    }
  }
  std::srand(static_cast<unsigned>(getpid()));
  std::string work = base + "/bench-meta-rpc-" + std::to_string(getpid());
  std::filesystem::create_directories(work);
  std::printf("bench_meta_rpc: %d client threads x %d files, best of %d, provider %s, work dir %s, "
              "%u cores\n",
              threads, files, repeat, provider.c_str(), work.c_str(), std::thread::hardware_concurrency());
  std::printf("Sluice = MetaClient over RPC to sluice-meta processes (WAL synced per change); "
              "ext4 = syscalls, no fsync\n");
  std::printf("%-18s %10s %10s %12s %10s   %s\n", "ops/s", "create", "stat", "readdir(e/s)",
              "unlink", "ratio vs ext4 (same columns)");
  for (bool shared : {true, false}) {
    std::printf("-- %s\n", shared ? "one shared directory" : "one directory per thread");
    Rates ext4;
    for (int k = 0; k < repeat; ++k) KeepBest(&ext4, BenchExt4(work, shared, threads, files));
    PrintRow("ext4 (kernel)", ext4, nullptr);
    for (int s : shard_counts) {
      Rates best;
      for (int k = 0; k < repeat; ++k) {
        LocalCluster cluster(work + "/cluster-" + std::to_string(s), bin, provider, s, workers);
        auto client = MetaClient::Open(cluster.ClientOptions(provider));
        if (!client.ok()) Die(client.status().ToString());
        KeepBest(&best, BenchSluice(**client, shared ? "shared" : "per", shared, threads, files));
      }
      std::string label = "sluice " + std::to_string(s) + (s == 1 ? " shard" : " shards");
      PrintRow(label.c_str(), best, &ext4);
    }
  }
  std::filesystem::remove_all(work);
  return 0;
}

}  // namespace
}  // namespace sluice::meta

int main(int argc, char** argv) { return sluice::meta::Main(argc, argv); }
