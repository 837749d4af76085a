// bench_data_rpc: one sluice-data server through the whole RPC path
// (DataClient -> libfabric -> DataService -> ChunkStore -> io_uring O_DIRECT)
// against fio --ioengine=io_uring --direct=1 on the same disk, same run.
//
//   bench_data_rpc [--dir=/var/tmp] [--provider=tcp] [--mib=512] [--seconds=3]
//                  [--rounds=3] [--threads=4] [--write-depth=4] [--sync=1]
//                  [--server-log=FILE]
//
// Starts sluice-mgmtd and one sluice-data (replication 1) from this binary's
// directory on a fresh directory under --dir, then runs --rounds rounds of
//   1 MiB sequential write of a new file (fresh slots): threads x write-depth
//     writes in flight, as the client's write-behind keeps several chunk
//     writes of a file in flight;
//   fio writing a fresh file at the same depth, without and with fdatasync
//     (one synchronous writer per write in flight, --fdatasync=1);
//   1 MiB sequential read of that file (threads x BatchRead of 4 chunks) and
//     fio at the same depth;
//   4 KiB random reads of it (threads x BatchRead of 32 ranges) and fio at
//     the same depth;
// and prints the medians over rounds of each figure, of the per-round ratios
// and of the CPU time per MiB (per IO at 4 KiB): sluice-data plus this client
// process, against fio's. With --sync=1 (the server default) every write is
// durable before it is acknowledged (data fdatasync + RocksDB WAL sync, group
// committed across concurrent writes).
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "common/data_client.h"

using namespace sluice;

namespace {

struct Args {
  std::string dir = "/var/tmp";
  std::string provider = "tcp";
  uint64_t mib = 512;
  int seconds = 3;
  int rounds = 3;
  int threads = 4;
  int write_depth = 4;
  bool sync = true;
  std::string server_log;  // where to keep the data server's log
};

uint16_t FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  close(fd);
  return ntohs(a.sin_port);
}

pid_t Spawn(const std::vector<std::string>& argv, const std::string& log) {
  pid_t pid = fork();
  if (pid == 0) {
    int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    dup2(fd, 1);
    dup2(fd, 2);
    std::vector<char*> v;
    for (auto& s : argv) v.push_back(const_cast<char*>(s.c_str()));
    v.push_back(nullptr);
    execv(v[0], v.data());
    _exit(127);
  }
  return pid;
}

bool WaitText(const std::string& path, const std::string& text, int ms) {
  for (int i = 0; i < ms / 20; i++) {
    std::ifstream f(path);
    std::stringstream ss;
    ss << f.rdbuf();
    if (ss.str().find(text) != std::string::npos) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

std::string BinDir() {
  char buf[4096];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  buf[n > 0 ? n : 0] = 0;
  return std::filesystem::path(buf).parent_path().string();
}

// CPU seconds used so far by this process (all threads) and by `server`.
struct Cpu {
  double self = 0, server = 0;
  double operator-(const Cpu& o) const { return (self - o.self) + (server - o.server); }
};
Cpu CpuNow(pid_t server) {
  Cpu c;
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  c.self = ru.ru_utime.tv_sec + ru.ru_stime.tv_sec + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
  std::ifstream f("/proc/" + std::to_string(server) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  size_t p = stat.rfind(')');  // fields after the command name
  if (p != std::string::npos) {
    std::istringstream in(stat.substr(p + 2));
    std::string field;
    double ticks = 0;
    for (int i = 3; i <= 15 && (in >> field); i++) {
      if (i == 14 || i == 15) ticks += std::atof(field.c_str());  // utime, stime
    }
    c.server = ticks / static_cast<double>(sysconf(_SC_CLK_TCK));
  }
  return c;
}

// One measured phase: rate (bytes/s or IO/s), CPU seconds, bytes or IOs moved.
struct Phase {
  double rate = 0, cpu_s = 0, amount = 0;
};
struct Round {
  Phase write, read, rand, fio_write, fio_sync, fio_read, fio_rand;
};

// Runs fio; returns its bandwidth (bytes/s, or IOPS for random reads), the
// CPU it used and the bytes (or IOs) it moved.
Phase Fio(const std::string& args) {
  std::string cmd = "fio --output-format=json --ioengine=io_uring --direct=1 --group_reporting " + args + " 2>/dev/null";
  rusage before{}, after{};
  getrusage(RUSAGE_CHILDREN, &before);
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return {};
  std::string out;
  char b[4096];
  size_t n;
  while ((n = fread(b, 1, sizeof b, p)) > 0) out.append(b, n);
  pclose(p);
  getrusage(RUSAGE_CHILDREN, &after);
  auto secs = [](const rusage& r) {
    return r.ru_utime.tv_sec + r.ru_stime.tv_sec + (r.ru_utime.tv_usec + r.ru_stime.tv_usec) / 1e6;
  };
  // Tiny extraction: the job's "read" or "write" block, bw_bytes and iops.
  auto field = [&](const std::string& section, const std::string& key) -> double {
    size_t s = out.find("\"" + section + "\" : {");
    if (s == std::string::npos) return 0;
    size_t k = out.find("\"" + key + "\" : ", s);
    if (k == std::string::npos) return 0;
    return std::atof(out.c_str() + k + key.size() + 5);
  };
  bool write = args.find("--rw=write") != std::string::npos;
  bool random = args.find("--rw=randread") != std::string::npos;
  std::string sec = write ? "write" : "read";
  Phase ph;
  ph.rate = random ? field(sec, "iops") : field(sec, "bw_bytes");
  ph.cpu_s = secs(after) - secs(before);
  ph.amount = random ? field(sec, "total_ios") : field(sec, "io_bytes");
  return ph;
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; i++) {
    std::string s = argv[i];
    auto val = [&](const char* k) -> const char* {
      size_t n = std::strlen(k);
      return s.compare(0, n, k) == 0 ? s.c_str() + n : nullptr;
    };
    if (auto v = val("--dir=")) a.dir = v;
    else if (auto v = val("--provider=")) a.provider = v;
    else if (auto v = val("--mib=")) a.mib = std::strtoull(v, nullptr, 10);
    else if (auto v = val("--seconds=")) a.seconds = std::atoi(v);
    else if (auto v = val("--rounds=")) a.rounds = std::max(1, std::atoi(v));
    else if (auto v = val("--threads=")) a.threads = std::atoi(v);
    else if (auto v = val("--write-depth=")) a.write_depth = std::max(1, std::atoi(v));
    else if (auto v = val("--sync=")) a.sync = std::atoi(v) != 0;
    else if (auto v = val("--server-log=")) a.server_log = v;
    else {
      std::fprintf(stderr, "usage: bench_data_rpc [--dir=D] [--provider=P] [--mib=N] [--seconds=S] [--rounds=R] [--threads=T] [--write-depth=D] [--sync=0|1] [--server-log=FILE]\n");
      return 2;
    }
  }
  std::string tmpl = a.dir + "/sluice-bench-rpc-XXXXXX";
  if (!mkdtemp(tmpl.data())) {
    std::perror(("mkdtemp under " + a.dir).c_str());
    return 1;
  }
  std::string dir = tmpl;
  uint16_t mport = FreePort(), dport = FreePort(), meta_port = FreePort();
  std::ofstream(dir + "/cluster.toml")
      << "[cluster]\nname = \"bench\"\nprovider = \"" << a.provider << "\"\nreplication = 1\n"
      << "lease_ms = 3000\nheartbeat_ms = 500\n[mgmtd]\nhost = \"127.0.0.1\"\nport = " << mport
      << "\ndir = \"" << dir << "/mgmtd\"\n[[meta]]\nid = 1\nhost = \"127.0.0.1\"\nport = " << meta_port
      << "\ndir = \"" << dir << "/meta\"\n[[data]]\nid = 1\nhost = \"127.0.0.1\"\nport = " << dport
      << "\ntargets = [\"" << dir << "/target\"]\n";
  std::string bin = BinDir();
  pid_t mgmtd = Spawn({bin + "/sluice-mgmtd", "--config", dir + "/cluster.toml"}, dir + "/mgmtd.log");
  if (!WaitText(dir + "/mgmtd.log", "serving on", 10000)) {
    std::fprintf(stderr, "sluice-mgmtd did not start; see %s/mgmtd.log\n", dir.c_str());
    return 1;
  }
  pid_t data = Spawn({bin + "/sluice-data", "--config", dir + "/cluster.toml", "--id", "1", "--sync-writes",
                      a.sync ? "1" : "0", "--arena-mib", "256"},
                     dir + "/data.log");
  auto cleanup = [&] {
    kill(data, SIGTERM);
    waitpid(data, nullptr, 0);
    kill(mgmtd, SIGTERM);
    waitpid(mgmtd, nullptr, 0);
    std::error_code ec;
    if (!a.server_log.empty()) {
      std::filesystem::copy_file(dir + "/data.log", a.server_log, std::filesystem::copy_options::overwrite_existing, ec);
    }
    std::filesystem::remove_all(dir, ec);
  };
  if (!WaitText(dir + "/data.log", "registered with mgmtd", 15000)) {
    std::fprintf(stderr, "sluice-data did not register; see %s/data.log\n", dir.c_str());
    cleanup();
    return 1;
  }
  DataClientOptions o;
  o.provider = a.provider;
  o.mgmtd_port = mport;
  auto client = DataClient::Create(o);
  if (!client.ok()) {
    std::fprintf(stderr, "client: %s\n", client.status().ToString().c_str());
    cleanup();
    return 1;
  }
  DataClient* c = client->get();
  uint32_t chain = 0;
  for (int i = 0; i < 200 && chain == 0; i++) {
    auto m = c->RefreshMap();
    if (m.ok() && m->chains_size() > 0 && m->chains(0).members_size() > 0) chain = m->chains(0).id();
    if (!chain) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }

  const uint32_t kMiB = 1u << 20;
  const uint64_t chunks = a.mib;
  const int T = a.threads;
  const int D = a.write_depth;
  // Registered, page-aligned buffers: 4 MiB (or write-depth MiB) per thread.
  size_t per_thread = std::max(4, D) * size_t{kMiB};
  void* mem = nullptr;
  if (posix_memalign(&mem, 4096, per_thread * T) != 0) return 1;
  char* buf = static_cast<char*>(mem);
  std::mt19937_64 rng(1);
  for (size_t i = 0; i < per_thread * T; i += 8) {
    uint64_t v = rng();
    std::memcpy(buf + i, &v, 8);
  }
  Status reg = c->RegisterMemory(buf, per_thread * T);
  if (!reg.ok()) std::fprintf(stderr, "note: RegisterMemory: %s (bounce buffers)\n", reg.ToString().c_str());

  std::printf("bench_data_rpc: dir %s, provider %s, %llu MiB, %d threads x %d writes in flight, server sync_writes=%d\n",
              dir.c_str(), a.provider.c_str(), static_cast<unsigned long long>(a.mib), T, D, a.sync);

  // Interleaved rounds (the machine is shared: load swings between a sluice
  // phase and its fio twin are what make single figures noisy). Round r
  // writes file inode r+1 (fresh slots, as fio writes a fresh file), reads
  // it back, random-reads it; fio does the same on a fresh file right after.
  std::atomic<int> errors{0};
  const std::string fio_file = dir + "/fio.dat";
  const std::string qd = std::to_string(T * D);
  std::vector<Round> rounds;
  for (int r = 0; r < a.rounds; r++) {
    Round R;
    const uint64_t inode = r + 1;
    // 1 MiB sequential write: T x D writers, each with one write in flight
    // (DataClient::Write blocks; the client library's write-behind does the
    // same with its IO threads), taking the next chunk index in turn.
    std::atomic<uint64_t> next{0}, write_ns{0};
    Cpu c0 = CpuNow(data);
    auto t0 = NowNanos();
    std::vector<std::thread> ths;
    for (int t = 0; t < T * D; t++) {
      ths.emplace_back([&, t] {
        for (uint64_t i; (i = next++) < chunks;) {
          ChunkWrite w;
          w.chain_id = chain;
          w.inode = inode;
          w.index = i;
          w.data = buf + (t % T) * per_thread + (t / T) * size_t{kMiB};
          w.length = kMiB;
          w.chunk_size = kMiB;
          uint64_t w0 = NowNanos();
          auto res = c->Write(w);
          write_ns += NowNanos() - w0;
          if (!res.ok() && errors++ == 0) std::fprintf(stderr, "write: %s\n", res.status().ToString().c_str());
        }
      });
    }
    for (auto& th : ths) th.join();
    ths.clear();
    R.write = {chunks * kMiB / ((NowNanos() - t0) / 1e9), CpuNow(data) - c0};

    std::filesystem::remove(fio_file);
    R.fio_write = Fio("--name=b --filename=" + fio_file + " --size=" + std::to_string(a.mib) +
                      "M --rw=write --bs=1M --iodepth=" + qd);
    // One synchronous writer per write in flight, each on its own slice.
    std::string slice = std::to_string(std::max<uint64_t>(1, a.mib / (T * D))) + "M";
    std::filesystem::remove(fio_file);
    R.fio_sync = Fio("--name=b --filename=" + fio_file + " --size=" + slice + " --offset_increment=" + slice +
                     " --rw=write --bs=1M --iodepth=1 --fdatasync=1 --numjobs=" + qd);

    // 1 MiB sequential read, 4 chunks per BatchRead landing contiguously.
    next = 0;
    c0 = CpuNow(data);
    t0 = NowNanos();
    for (int t = 0; t < T; t++) {
      ths.emplace_back([&, t] {
        for (uint64_t i; (i = next.fetch_add(4)) < chunks;) {
          std::vector<ReadOp> ops;
          for (uint64_t k = i; k < std::min(i + 4, chunks); k++) {
            ReadOp op;
            op.chain_id = chain;
            op.inode = inode;
            op.index = k;
            op.length = kMiB;
            op.dest = buf + t * per_thread + (k - i) * kMiB;
            ops.push_back(op);
          }
          Status st = c->BatchRead(ops);
          for (auto& op : ops) {
            if ((!st.ok() || !op.status.ok() || op.bytes != kMiB) && errors++ == 0) {
              std::fprintf(stderr, "read: %s\n", op.status.ToString().c_str());
            }
          }
        }
      });
    }
    for (auto& th : ths) th.join();
    ths.clear();
    R.read = {chunks * kMiB / ((NowNanos() - t0) / 1e9), CpuNow(data) - c0};
    R.fio_read = Fio("--name=b --filename=" + fio_file + " --size=" + std::to_string(a.mib) +
                     "M --rw=read --bs=1M --iodepth=" + std::to_string(4 * T));

    // 4 KiB random reads, 32 per BatchRead per thread, for --seconds.
    std::atomic<uint64_t> ios{0};
    std::atomic<bool> stop{false};
    c0 = CpuNow(data);
    t0 = NowNanos();
    for (int t = 0; t < T; t++) {
      ths.emplace_back([&, t] {
        std::mt19937_64 g(100 + t + 1000 * r);
        std::vector<ReadOp> ops(32);
        while (!stop) {
          for (int k = 0; k < 32; k++) {
            ReadOp& op = ops[k];
            op = ReadOp{};
            op.chain_id = chain;
            op.inode = inode;
            op.index = g() % chunks;
            op.offset = static_cast<uint32_t>(g() % (kMiB / 4096)) * 4096;
            op.length = 4096;
            op.dest = buf + t * per_thread + k * 4096;
          }
          Status st = c->BatchRead(ops);
          for (auto& op : ops) {
            if ((!st.ok() || !op.status.ok()) && errors++ == 0) {
              std::fprintf(stderr, "4k read: %s\n", op.status.ToString().c_str());
            }
          }
          ios += 32;
        }
      });
    }
    std::this_thread::sleep_for(std::chrono::seconds(a.seconds));
    stop = true;
    for (auto& th : ths) th.join();
    ths.clear();
    R.rand = {ios / ((NowNanos() - t0) / 1e9), CpuNow(data) - c0, static_cast<double>(ios.load())};
    R.fio_rand = Fio("--name=b --filename=" + fio_file + " --size=" + std::to_string(a.mib) +
                     "M --rw=randread --bs=4k --time_based --runtime=" + std::to_string(a.seconds) +
                     " --iodepth=" + std::to_string(32 * T));
    std::filesystem::remove(fio_file);
    std::printf("round %d: write %.0f/%.0f/%.0f MB/s (sluice/fio/fio fdatasync; %.1f ms per sluice write), "
                "read %.0f/%.0f MB/s, 4k %.0f/%.0f IOPS\n",
                r + 1, R.write.rate / 1e6, R.fio_write.rate / 1e6, R.fio_sync.rate / 1e6,
                write_ns.load() / 1e6 / static_cast<double>(chunks), R.read.rate / 1e6, R.fio_read.rate / 1e6,
                R.rand.rate, R.fio_rand.rate);
    std::fflush(stdout);
    rounds.push_back(R);
  }
  cleanup();

  auto median = [&](auto get) {
    std::vector<double> v;
    for (const Round& R : rounds) v.push_back(get(R));
    std::sort(v.begin(), v.end());
    return v.empty() ? 0.0 : v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
  };
  auto ratio = [](double x, double y) { return y > 0 ? x / y : 0.0; };
  // CPU per MiB (per IO for 4 KiB): sluice server + client process, fio.
  auto row = [&](const char* name, const char* unit, double scale, auto sl, auto fi, double ops_per_unit) {
    double ms = median([&](const Round& R) { return sl(R).rate; });
    double mf = median([&](const Round& R) { return fi(R).rate; });
    double mr = median([&](const Round& R) { return ratio(sl(R).rate, fi(R).rate); });
    double cs = median([&](const Round& R) { return sl(R).cpu_s * 1e6 / (sl(R).amount / ops_per_unit); });
    double cf = median([&](const Round& R) { return fi(R).cpu_s * 1e6 / (fi(R).amount / ops_per_unit); });
    std::printf("%-32s %9.0f %-4s %9.0f %-4s %6.2f %8.1f /%6.1f us\n", name, ms / scale, unit, mf / scale, unit, mr,
                cs, cf);
  };
  const double bytes = static_cast<double>(chunks) * kMiB;
  for (Round& R : rounds) {
    R.write.amount = R.read.amount = bytes;
    R.fio_write.amount = R.fio_sync.amount = R.fio_read.amount = bytes;
  }
  std::printf("\nmedians of %d rounds          %14s %14s %6s %s\n", a.rounds, "sluice (RPC)", "fio", "ratio",
              "CPU per MiB|IO, sluice (server+client) / fio");
  row("1 MiB seq write (fio no sync)", "MB/s", 1e6, [](const Round& R) { return R.write; },
      [](const Round& R) { return R.fio_write; }, kMiB);
  row("1 MiB seq write (fio fdatasync)", "MB/s", 1e6, [](const Round& R) { return R.write; },
      [](const Round& R) { return R.fio_sync; }, kMiB);
  row("1 MiB seq read", "MB/s", 1e6, [](const Round& R) { return R.read; },
      [](const Round& R) { return R.fio_read; }, kMiB);
  row("4 KiB random read", "IOPS", 1, [](const Round& R) { return R.rand; },
      [](const Round& R) { return R.fio_rand; }, 1);
  std::printf("errors: %d\n", errors.load());
  free(mem);
  return errors.load() == 0 ? 0 : 1;
}
