// ChunkStore throughput against fio on the same disk, in the same run.
//
//   bench_chunk_store [--dir=/var/tmp] [--size-mb=2048] [--seconds=5]
//                     [--threads=4] [--batch-1m=4] [--batch-4k=16] [--repeats=3]
//                     [--sync]
//
// Workloads (fio with --ioengine=io_uring --direct=1 and matching block size
// and queue depth; the store with `threads` callers each submitting batches
// of `batch` requests, so up to threads*batch IOs are in flight):
//   1 MiB sequential writes of size-mb (fresh 1 MiB chunks / a fresh file)
//   1 MiB sequential reads of the same
//   4 KiB random reads over the same data for `seconds`
// Each round runs every workload on both sides (alternating who goes first);
// prints every round and the ratio of the medians, store / fio. The store runs without
// fdatasync per write unless --sync (fio --direct=1 does not fsync either).
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "common/crc32c.h"
#include "server/data/chunk_store.h"
#include "server/data/crc32c_block.h"

using namespace sluice;
using namespace sluice::data;

namespace {

struct Figures {
  double bytes_per_sec = 0;
  double iops = 0;
  double cpu_us_per_op = 0;  // user + system CPU per IO
};

double CpuSeconds() {
  rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// Pulls "bw_bytes" and "iops" of the "read" or "write" section of fio's JSON.
Figures ParseFio(const std::string& json, const char* section) {
  Figures f;
  std::string key = std::string("\"") + section + "\" : {";
  size_t at = json.find(key);
  if (at == std::string::npos) return f;
  auto num = [&](const char* name, size_t from) {
    size_t p = json.find(std::string("\"") + name + "\" : ", from);
    return p == std::string::npos ? 0.0 : std::atof(json.c_str() + p + std::strlen(name) + 5);
  };
  f.bytes_per_sec = num("bw_bytes", at);
  f.iops = num("iops", at);
  // The job's CPU: usr_cpu/sys_cpu are percent of job_runtime (ms).
  size_t job = json.find("\"job_runtime\"");
  double runtime_s = num("job_runtime", 0) / 1e3;
  double cpu = (num("usr_cpu", job) + num("sys_cpu", job)) / 100 * runtime_s;
  double ops = f.iops * runtime_s;
  if (ops > 0) f.cpu_us_per_op = cpu / ops * 1e6;
  return f;
}

Figures RunFio(const std::string& args, const char* section) {
  std::string cmd = "fio --output-format=json --ioengine=io_uring --direct=1 " + args + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) {
    std::perror("popen fio");
    std::exit(1);
  }
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  int rc = pclose(p);
  Figures f = ParseFio(out, section);
  if (rc != 0 || f.bytes_per_sec == 0) {
    std::fprintf(stderr, "fio failed (%s):\n%s\n", cmd.c_str(), out.c_str());
    std::exit(1);
  }
  return f;
}

Figures Median(std::vector<Figures> v) {
  std::sort(v.begin(), v.end(),
            [](const Figures& a, const Figures& b) { return a.bytes_per_sec < b.bytes_per_sec; });
  return v[v.size() / 2];
}

template <typename Fn>
void Parallel(int threads, Fn fn) {
  std::vector<std::thread> ts;
  for (int t = 0; t < threads; t++) ts.emplace_back(fn, t);
  for (auto& t : ts) t.join();
}

void Check(const Status& st, const char* what) {
  if (!st.ok()) {
    std::fprintf(stderr, "%s: %s\n", what, st.ToString().c_str());
    std::exit(1);
  }
}

void Print(const char* name, const Figures& fio, const Figures& store, bool iops, double target) {
  double a = iops ? fio.iops : fio.bytes_per_sec / 1e6;
  double b = iops ? store.iops : store.bytes_per_sec / 1e6;
  double ratio = b / a;
  std::printf("%-26s %12.0f %-5s %12.0f %-5s %7.2fx   (target >= %.2fx: %s)   "
              "CPU/IO: fio %.1f us, store %.1f us\n",
              name, a, iops ? "IOPS" : "MB/s", b, iops ? "IOPS" : "MB/s", ratio, target,
              ratio >= target ? "met" : "NOT met", fio.cpu_us_per_op, store.cpu_us_per_op);
}

}  // namespace

int main(int argc, char** argv) {
  std::string base = "/var/tmp";
  uint64_t size_mb = 2048;
  int seconds = 5, threads = 4, batch_1m = 4, batch_4k = 16, repeats = 3;
  bool sync = false;
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    auto val = [&](const char* k) -> const char* {
      size_t n = std::strlen(k);
      return a.compare(0, n, k) == 0 ? argv[i] + n : nullptr;
    };
    if (auto v = val("--dir=")) base = v;
    else if (auto v = val("--size-mb=")) size_mb = std::strtoull(v, nullptr, 10);
    else if (auto v = val("--seconds=")) seconds = std::atoi(v);
    else if (auto v = val("--threads=")) threads = std::atoi(v);
    else if (auto v = val("--batch-1m=")) batch_1m = std::atoi(v);
    else if (auto v = val("--batch-4k=")) batch_4k = std::atoi(v);
    else if (auto v = val("--repeats=")) repeats = std::max(1, std::atoi(v));
    else if (a == "--sync") sync = true;
    else {
      std::fprintf(stderr, "unknown argument %s (see the comment at the top of %s)\n", argv[i],
                   __FILE__);
      return 2;
    }
  }
  std::string tmpl = base + "/sluice-bench-XXXXXX";
  if (!mkdtemp(tmpl.data())) {
    std::perror(("mkdtemp under " + base).c_str());
    return 1;
  }
  const std::string dir = tmpl;
  const std::string fio_file = dir + "/fio.dat";
  const int qd_1m = threads * batch_1m, qd_4k = threads * batch_4k;
  const uint64_t chunks = size_mb;

  ChunkStoreOptions o;
  o.dir = dir + "/store";
  o.sync_writes = sync;
  o.io_rings = threads;
  o.ring_depth = 128;
  o.buffer_arena_bytes = size_t(threads) * batch_1m * (1u << 20) * 2 + (64u << 20);
  auto opened = ChunkStore::Open(o);
  Check(opened.status(), "open store");
  ChunkStore& store = **opened;
  std::printf("dir %s (%s), %llu MiB, store: %s, %s, sync_writes=%d; %d threads x batch %d "
              "(1 MiB) / %d (4 KiB)\n",
              dir.c_str(), base.c_str(), static_cast<unsigned long long>(size_mb),
              store.direct_io() ? "O_DIRECT" : "BUFFERED (O_DIRECT refused)",
              store.fixed_buffers() ? "registered buffers" : "unregistered buffers", sync, threads,
              batch_1m, batch_4k);
  std::fflush(stdout);
  const std::string common = " --filename=" + fio_file + " --size=" + std::to_string(size_mb) + "M";

  std::vector<IoBuffer> src;
  std::vector<uint32_t> crcs;
  for (int t = 0; t < threads; t++) {
    src.push_back(store.AllocateBuffer(1 << 20));
    std::mt19937 rng(t);
    for (size_t i = 0; i < (1u << 20); i++) src.back().data()[i] = static_cast<uint8_t>(rng());
    crcs.push_back(Crc32c(src.back().data(), 1 << 20));
  }
  auto store_write = [&]() {
    std::atomic<uint64_t> next{0};
    double c0 = CpuSeconds();
    double t0 = Now();
    Parallel(threads, [&](int t) {
      std::vector<WriteRequest> reqs;
      for (;;) {
        uint64_t first = next.fetch_add(batch_1m);
        if (first >= chunks) break;
        reqs.clear();
        for (uint64_t c = first; c < std::min<uint64_t>(chunks, first + batch_1m); c++) {
          WriteRequest w;
          w.chunk = {1, c};
          w.data = std::span<const uint8_t>(src[t].data(), 1 << 20);
          w.crc = crcs[t];
          w.chunk_size = 1 << 20;
          reqs.push_back(w);
        }
        for (auto& r : store.BatchWrite(reqs)) Check(r.status(), "write");
      }
    });
    double dt = Now() - t0;
    return Figures{chunks * double(1 << 20) / dt, chunks / dt, (CpuSeconds() - c0) / chunks * 1e6};
  };
  auto store_read = [&]() {
    std::atomic<uint64_t> next{0};
    std::atomic<uint64_t> bytes{0};
    double c0 = CpuSeconds();
    double t0 = Now();
    Parallel(threads, [&](int t) {
      std::vector<ReadRequest> reqs;
      for (;;) {
        uint64_t first = next.fetch_add(batch_1m);
        if (first >= chunks) break;
        reqs.clear();
        for (uint64_t c = first; c < std::min<uint64_t>(chunks, first + batch_1m); c++) {
          reqs.push_back({{1, c}, 0, 1 << 20});
        }
        for (auto& r : store.BatchRead(reqs)) {
          Check(r.status, "read");
          bytes += r.length;
        }
      }
    });
    double dt = Now() - t0;
    return Figures{bytes / dt, chunks / dt, (CpuSeconds() - c0) / chunks * 1e6};
  };
  auto store_randread = [&]() {
    std::atomic<uint64_t> ops{0};
    double c0 = CpuSeconds();
    double t0 = Now();
    double deadline = t0 + seconds;
    Parallel(threads, [&](int t) {
      std::mt19937_64 rng(1000 + t + 7 * ops.load());
      std::vector<ReadRequest> reqs(batch_4k);
      uint64_t mine = 0;
      while (Now() < deadline) {
        for (auto& r : reqs) {
          uint64_t block = rng() % (chunks * 256);
          r = {{1, block / 256}, static_cast<uint32_t>(block % 256) * 4096, 4096};
        }
        for (auto& r : store.BatchRead(reqs)) {
          Check(r.status, "random read");
          if (r.length != 4096) {
            std::fprintf(stderr, "short random read\n");
            std::exit(1);
          }
        }
        mine += reqs.size();
      }
      ops += mine;
    });
    double dt = Now() - t0;
    return Figures{ops * 4096.0 / dt, ops / dt, (CpuSeconds() - c0) / ops * 1e6};
  };
  const std::string fio_w_args = "--name=w --rw=write --bs=1M --iodepth=" + std::to_string(qd_1m) +
                                 (sync ? " --fdatasync=1" : "") + common;
  const std::string fio_r_args = "--name=r --rw=read --bs=1M --iodepth=" + std::to_string(qd_1m) + common;
  const std::string fio_rr_args = "--name=rr --rw=randread --bs=4k --iodepth=" +
                                  std::to_string(qd_4k) + " --time_based --runtime=" +
                                  std::to_string(seconds) + common;

  // Rounds alternate which side goes first; the machine is shared, so each
  // figure is the median over rounds and every round's pair is printed.
  std::vector<Figures> fw, sw, fr, sr, frr, srr;
  for (int round = 0; round < repeats; round++) {
    bool fio_first = round % 2 == 0;
    auto pair = [&](auto fio_fn, auto store_fn, std::vector<Figures>& fv, std::vector<Figures>& sv) {
      if (fio_first) {
        fv.push_back(fio_fn());
        sv.push_back(store_fn());
      } else {
        sv.push_back(store_fn());
        fv.push_back(fio_fn());
      }
    };
    // The first round's writes lay out both data sets before any read.
    pair([&] { return RunFio(fio_w_args, "write"); }, store_write, fw, sw);
    pair([&] { return RunFio(fio_r_args, "read"); }, store_read, fr, sr);
    pair([&] { return RunFio(fio_rr_args, "read"); }, store_randread, frr, srr);
    std::printf("round %d: write %.0f / %.0f MB/s, read %.0f / %.0f MB/s, 4k %.0f / %.0f IOPS "
                "(fio / store)\n",
                round + 1, fw.back().bytes_per_sec / 1e6, sw.back().bytes_per_sec / 1e6,
                fr.back().bytes_per_sec / 1e6, sr.back().bytes_per_sec / 1e6, frr.back().iops,
                srr.back().iops);
    std::fflush(stdout);
  }
  Figures fio_w = Median(fw), st_w = Median(sw), fio_r = Median(fr), st_r = Median(sr),
          fio_rr = Median(frr), st_rr = Median(srr);

  std::printf("\nmedian of %d rounds\n%-26s %18s %18s %8s\n", repeats, "workload", "fio io_uring direct", "ChunkStore", "ratio");
  Print(("1 MiB seq write QD" + std::to_string(qd_1m)).c_str(), fio_w, st_w, false, 0.85);
  Print(("1 MiB seq read QD" + std::to_string(qd_1m)).c_str(), fio_r, st_r, false, 0.85);
  Print(("4 KiB rand read QD" + std::to_string(qd_4k)).c_str(), fio_rr, st_rr, true, 0.70);
  const ChunkStoreStats& s = store.stats();
  {
    // CPU context: every byte read or written is checksummed.
    std::vector<uint8_t> buf(1 << 20, 7);
    uint32_t acc = 0;
    double t0 = Now();
    for (int i = 0; i < 100; i++) {
      for (size_t o = 0; o < buf.size(); o += 4096) acc ^= Crc32c(buf.data() + o, 4096);
    }
    double t1 = Now();
    for (int i = 0; i < 100; i++) {
      for (size_t o = 0; o < buf.size(); o += 4096) acc ^= Crc32cBlock4K(buf.data() + o);
    }
    double t2 = Now();
    std::printf("CRC32C per 4 KiB block on this CPU: common/ single stream %.1f GB/s, "
                "interleaved (used) %.1f GB/s%s\n",
                100 * 1.048576e-3 / (t1 - t0), 100 * 1.048576e-3 / (t2 - t1), acc == 1 ? " " : "");
  }
  std::printf("store stats: %llu reads, %llu updates, %llu corrupt, %llu read retries\n",
              static_cast<unsigned long long>(s.reads.load()),
              static_cast<unsigned long long>(s.updates.load()),
              static_cast<unsigned long long>(s.corrupt_reads.load()),
              static_cast<unsigned long long>(s.read_retries.load()));
  opened = Status(Code::kCancelled, "closed");
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  return 0;
}
