// Micro-benchmark: namespace operations per second on MetaStore directly
// (in-process cluster of 1, 2 and 4 shards, every change WAL-synced), in one
// shared directory and in one directory per thread, against the same
// operations on local ext4 through the kernel, measured in the same run.
//
//   bench_meta_store [--threads T] [--files F] [--dir /path/on/ext4] [--repeat R]
// With --repeat R every configuration runs R times and each column keeps its best.
//
// ops: create (O_CREAT|O_EXCL; ext4: open+close), stat (lookup of a name
// in its directory; ext4: stat(2) of the path), getattr (by inode number;
// ext4: fstatat in an open directory), readdir (entries returned
// per second, every thread lists its directory), unlink.
// ext4 does not fsync its creates; Sluice syncs its WAL before every
// acknowledgement (group commit shares syncs between threads). The printed
// ratio is Sluice / ext4. A second ext4 row fsyncs the directory after each
// create and unlink (durable like Sluice) for reference.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <algorithm>
#include <cstring>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "server/meta/local_shard_handle.h"
#include "server/meta/meta_store.h"
#include "common/meta/shard_router.h"
#include "server/meta/txn_coordinator.h"

namespace sluice::meta {
namespace {

struct Rates {
  double create = 0, stat = 0, getattr = 0, readdir = 0, unlink = 0;
  double group_commit = 0;  // writes per WAL sync (Sluice only)
};

double Seconds(std::chrono::steady_clock::time_point a, std::chrono::steady_clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

// Runs fn(thread) on `threads` threads at once; returns elapsed seconds.
double RunThreads(int threads, const std::function<void(int)>& fn) {
  std::atomic<int> ready{0};
  std::atomic<bool> go{false};
  std::vector<std::thread> ts;
  for (int t = 0; t < threads; ++t) {
    ts.emplace_back([&, t] {
      ready++;
      while (!go.load()) std::this_thread::yield();
      fn(t);
    });
  }
  while (ready.load() < threads) std::this_thread::yield();
  auto start = std::chrono::steady_clock::now();
  go = true;
  for (auto& t : ts) t.join();
  return Seconds(start, std::chrono::steady_clock::now());
}

std::string FileName(int t, int i) { return "file." + std::to_string(t) + "." + std::to_string(i); }

void Die(const std::string& what) {
  std::fprintf(stderr, "bench_meta_store: %s\n", what.c_str());
  std::exit(1);
}

Rates BenchSluice(const std::string& base, uint32_t shards, bool shared, int threads, int files) {
  std::string dir = base + "/sluice-" + std::to_string(shards) + (shared ? "-shared" : "-perthread");
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  std::vector<std::unique_ptr<MetaStore>> stores;
  std::vector<std::unique_ptr<LocalShardHandle>> handles;
  std::vector<ShardHandle*> hs;
  for (uint32_t s = 0; s < shards; ++s) {
    MetaStoreOptions o;
    o.shard_id = s;
    o.num_shards = shards;
    o.sync = true;
    o.rocksdb_statistics = true;
    auto r = MetaStore::Open(dir + "/shard" + std::to_string(s), o);
    if (!r.ok()) Die(r.status().ToString());
    stores.push_back(std::move(r).value());
    handles.push_back(std::make_unique<LocalShardHandle>(stores.back().get()));
    hs.push_back(handles.back().get());
  }
  for (auto& s : stores) s->SetPeers(hs);
  TxnCoordinator coord(stores[0].get(), hs);
  handles[0]->set_coordinator(&coord);
  ShardRouter ns(hs, handles[0].get());
  Caller caller = MakeCaller(1000, 1000);
  Caller root = MakeCaller(0, 0);

  std::vector<uint64_t> dirs(threads);
  auto top = ns.Mkdir(root, kRootIno, "bench", 0777);
  if (!top.ok()) Die(top.status().ToString());
  for (int t = 0; t < threads; ++t) {
    if (shared) {
      dirs[t] = top->ino();
    } else {
      auto d = ns.Mkdir(caller, top->ino(), "t" + std::to_string(t), 0755);
      if (!d.ok()) Die(d.status().ToString());
      dirs[t] = d->ino();
    }
  }
  uint64_t writes0 = 0, syncs0 = 0;
  for (auto& s : stores) {
    writes0 += s->stats().writes.load();
    syncs0 += s->WalSyncs();
  }
  Rates r;
  const double n = static_cast<double>(threads) * files;
  std::vector<std::vector<uint64_t>> inos(threads, std::vector<uint64_t>(files));
  r.create = n / RunThreads(threads, [&](int t) {
    for (int i = 0; i < files; ++i) {
      auto c = ns.Create(caller, dirs[t], FileName(t, i), 0644, true);
      if (!c.ok()) Die(c.status().ToString());
      inos[t][i] = c->attr.ino();
    }
  });
  uint64_t writes1 = 0, syncs1 = 0;
  for (auto& s : stores) {
    writes1 += s->stats().writes.load();
    syncs1 += s->WalSyncs();
  }
  r.group_commit = syncs1 > syncs0 ? double(writes1 - writes0) / double(syncs1 - syncs0) : 0;
  r.stat = n / RunThreads(threads, [&](int t) {
    for (int i = 0; i < files; ++i) {
      auto a = ns.Lookup(caller, dirs[t], FileName(t, i));
      if (!a.ok()) Die(a.status().ToString());
    }
  });
  r.getattr = n / RunThreads(threads, [&](int t) {
    for (int i = 0; i < files; ++i) {
      auto a = ns.GetAttr(inos[t][i]);
      if (!a.ok()) Die(a.status().ToString());
    }
  });
  std::atomic<uint64_t> listed{0};
  double secs = RunThreads(threads, [&](int t) {
    std::string cookie;
    for (;;) {
      auto page = ns.ReadDir(caller, dirs[t], cookie, 1024);
      if (!page.ok()) Die(page.status().ToString());
      listed += page->entries.size();
      cookie = page->cookie;
      if (page->eof) break;
    }
  });
  r.readdir = double(listed.load()) / secs;
  r.unlink = n / RunThreads(threads, [&](int t) {
    for (int i = 0; i < files; ++i) {
      Status st = ns.Unlink(caller, dirs[t], FileName(t, i));
      if (!st.ok()) Die(st.ToString());
    }
  });
  handles.clear();
  stores.clear();
  std::filesystem::remove_all(dir);
  return r;
}

Rates BenchExt4(const std::string& base, bool shared, int threads, int files) {
  std::string dir = base + "/ext4" + (shared ? "-shared" : "-perthread");
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  std::vector<std::string> dirs(threads);
  for (int t = 0; t < threads; ++t) {
    dirs[t] = shared ? dir : dir + "/t" + std::to_string(t);
    if (!shared && mkdir(dirs[t].c_str(), 0755) != 0) Die("mkdir " + dirs[t] + ": " + strerror(errno));
  }
  Rates r;
  const double n = static_cast<double>(threads) * files;
  r.create = n / RunThreads(threads, [&](int t) {
    for (int i = 0; i < files; ++i) {
      std::string p = dirs[t] + "/" + FileName(t, i);
      int fd = open(p.c_str(), O_CREAT | O_EXCL | O_WRONLY, 0644);
      if (fd < 0) Die("create " + p + ": " + strerror(errno));
      close(fd);
    }
  });
  r.stat = n / RunThreads(threads, [&](int t) {
    struct stat st;
    for (int i = 0; i < files; ++i) {
      std::string p = dirs[t] + "/" + FileName(t, i);
      if (stat(p.c_str(), &st) != 0) Die("stat " + p + ": " + strerror(errno));
    }
  });
  // getattr of a known file: fstatat relative to an open directory (one
  // dcache lookup, no path walk), the closest kernel analogue of FUSE getattr.
  r.getattr = n / RunThreads(threads, [&](int t) {
    int dfd = open(dirs[t].c_str(), O_RDONLY | O_DIRECTORY);
    if (dfd < 0) Die("open " + dirs[t]);
    struct stat st;
    for (int i = 0; i < files; ++i) {
      std::string name = FileName(t, i);
      if (fstatat(dfd, name.c_str(), &st, 0) != 0) Die("fstatat " + name + ": " + strerror(errno));
    }
    close(dfd);
  });
  std::atomic<uint64_t> listed{0};
  double secs = RunThreads(threads, [&](int t) {
    DIR* d = opendir(dirs[t].c_str());
    if (!d) Die("opendir " + dirs[t]);
    uint64_t k = 0;
    while (struct dirent* e = readdir(d)) {
      if (e->d_name[0] != '.') k++;
    }
    closedir(d);
    listed += k;
  });
  r.readdir = double(listed.load()) / secs;
  r.unlink = n / RunThreads(threads, [&](int t) {
    for (int i = 0; i < files; ++i) {
      std::string p = dirs[t] + "/" + FileName(t, i);
      if (unlink(p.c_str()) != 0) Die("unlink " + p + ": " + strerror(errno));
    }
  });
  std::filesystem::remove_all(dir);
  return r;
}

// Best of `repeat` runs, column by column (this machine is shared and noisy).
Rates Best(int repeat, const std::function<Rates()>& run) {
  Rates best;
  for (int i = 0; i < repeat; ++i) {
    Rates r = run();
    best.create = std::max(best.create, r.create);
    best.stat = std::max(best.stat, r.stat);
    best.getattr = std::max(best.getattr, r.getattr);
    best.readdir = std::max(best.readdir, r.readdir);
    best.unlink = std::max(best.unlink, r.unlink);
    best.group_commit = std::max(best.group_commit, r.group_commit);
  }
  return best;
}

// Durable creates and unlinks on ext4: fsync of the directory after each one
// (what an acknowledged-is-durable create costs through the kernel).
Rates BenchExt4Durable(const std::string& base, bool shared, int threads, int files) {
  std::string dir = base + "/ext4-durable" + (shared ? "-shared" : "-perthread");
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  std::vector<std::string> dirs(threads);
  for (int t = 0; t < threads; ++t) {
    dirs[t] = shared ? dir : dir + "/t" + std::to_string(t);
    if (!shared && mkdir(dirs[t].c_str(), 0755) != 0) Die("mkdir " + dirs[t] + ": " + strerror(errno));
  }
  Rates r;
  const double n = static_cast<double>(threads) * files;
  auto run = [&](bool create) {
    return n / RunThreads(threads, [&](int t) {
      int dfd = open(dirs[t].c_str(), O_RDONLY | O_DIRECTORY);
      if (dfd < 0) Die("open " + dirs[t]);
      for (int i = 0; i < files; ++i) {
        std::string name = FileName(t, i);
        if (create) {
          int fd = openat(dfd, name.c_str(), O_CREAT | O_EXCL | O_WRONLY, 0644);
          if (fd < 0) Die("create " + name + ": " + strerror(errno));
          close(fd);
        } else if (unlinkat(dfd, name.c_str(), 0) != 0) {
          Die("unlink " + name + ": " + strerror(errno));
        }
        if (fsync(dfd) != 0) Die("fsync " + dirs[t] + ": " + strerror(errno));
      }
      close(dfd);
    });
  };
  r.create = run(true);
  r.unlink = run(false);
  std::filesystem::remove_all(dir);
  return r;
}

void Print(const char* label, const Rates& r, const Rates* base) {
  std::printf("%-18s %9.0f %9.0f %9.0f %12.0f %9.0f", label, r.create, r.stat, r.getattr,
              r.readdir, r.unlink);
  if (base) {
    std::printf("  x%.2f x%.2f x%.2f x%.2f x%.2f", r.create / base->create, r.stat / base->stat,
                r.getattr / base->getattr, r.readdir / base->readdir, r.unlink / base->unlink);
    if (r.group_commit > 0) std::printf("   %.1f writes/sync", r.group_commit);
  }
  std::printf("\n");
}

}  // namespace
}  // namespace sluice::meta

int main(int argc, char** argv) {
  using namespace sluice::meta;
  int threads = 4, files = 2000, repeat = 1;
  std::string base = "/tmp";
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--threads") threads = std::atoi(argv[i + 1]);
    else if (a == "--files") files = std::atoi(argv[i + 1]);
    else if (a == "--dir") base = argv[i + 1];
    else if (a == "--repeat") repeat = std::atoi(argv[i + 1]);
    else Die("unknown flag " + a + " (flags: --threads T --files F --dir D --repeat R)");
  }
  if (threads < 1 || files < 1 || repeat < 1) Die("--threads, --files and --repeat must be positive");
  std::string work = base + "/bench-meta-" + std::to_string(getpid());
  std::filesystem::create_directories(work);
  std::printf("bench_meta_store: %d threads x %d files, best of %d, work dir %s, %u cores\n",
              threads, files, repeat, work.c_str(), std::thread::hardware_concurrency());
  std::printf("Sluice = MetaStore in-process (WAL synced per change); ext4 = syscalls, no fsync\n");
  std::printf("ops/s                 create      stat   getattr readdir(e/s)    unlink  ratio vs ext4 (same columns)\n");
  for (bool shared : {true, false}) {
    std::printf("-- %s\n", shared ? "one shared directory" : "one directory per thread");
    Rates ext4 = Best(repeat, [&] { return BenchExt4(work, shared, threads, files); });
    Print("ext4 (kernel)", ext4, nullptr);
    Rates durable = Best(repeat, [&] { return BenchExt4Durable(work, shared, threads, files); });
    std::printf("%-18s %9.0f %9s %9s %12s %9.0f\n", "ext4 + fsync(dir)", durable.create, "-", "-",
                "-", durable.unlink);
    for (uint32_t shards : {1u, 2u, 4u}) {
      Rates r = Best(repeat, [&] { return BenchSluice(work, shards, shared, threads, files); });
      std::string label = "sluice " + std::to_string(shards) + " shard" + (shards > 1 ? "s" : "");
      Print(label.c_str(), r, &ext4);
    }
  }
  // Group commit: synced creates on one shard from more and more threads.
  std::printf("-- group commit (1 shard, shared dir, %d creates per thread)\n", files / 2);
  double single = 0;
  for (int t : {1, 2, 4, 8, 16}) {
    Rates r = BenchSluice(work, 1, true, t, std::max(1, files / 2));
    if (t == 1) single = r.create;
    std::printf("%3d threads: %8.0f creates/s  %5.1f writes per WAL sync  x%.2f vs 1 thread\n", t,
                r.create, r.group_commit, r.create / single);
  }
  std::filesystem::remove_all(work);
  return 0;
}
