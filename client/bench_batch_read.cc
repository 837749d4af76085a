// bench_batch_read: the loader's read pattern through libsluice — batches of
// samples at shuffled offsets of one packed file, one Client::BatchRead per
// batch — into reused memory (what the loader's BufferRecycler gives it)
// against a fresh mapping per batch (what it did before), in the same run.
//
//   bench_batch_read --cluster CFG [--mib 512] [--sample 114660] [--batch 100] [--rounds 3]
//
// Writes /bench_batch_read.bin (kept for later runs) on the cluster, then
// alternates the two modes for --rounds rounds, each reading every sample
// once in a fresh shuffled order, and prints medians of samples/s and of
// this process's CPU time per sample, with the ratios.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "client/sluice_client.h"

using namespace sluice;

namespace {

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

double CpuSeconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

struct Round {
  double samples_per_s = 0;
  double cpu_us_per_sample = 0;
};

}  // namespace

int main(int argc, char** argv) {
  std::string cluster;
  uint64_t mib = 512, sample = 114660;
  int batch = 100, rounds = 3;
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    auto next = [&]() -> const char* {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "bench_batch_read: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--cluster") cluster = next();
    else if (a == "--mib") mib = std::strtoull(next(), nullptr, 10);
    else if (a == "--sample") sample = std::strtoull(next(), nullptr, 10);
    else if (a == "--batch") batch = std::atoi(next());
    else if (a == "--rounds") rounds = std::atoi(next());
    else {
      std::fprintf(stderr,
                   "usage: bench_batch_read --cluster CFG [--mib N] [--sample BYTES] [--batch N] [--rounds N]\n");
      return 2;
    }
  }
  if (cluster.empty() || sample == 0 || batch <= 0 || rounds <= 0) {
    std::fprintf(stderr, "bench_batch_read: --cluster CFG is required; sizes must be positive\n");
    return 2;
  }
  client::ClientOptions o;
  o.cluster = cluster;
  auto c = client::Client::Connect(o);
  if (!c.ok()) {
    std::fprintf(stderr, "bench_batch_read: %s\n", c.status().ToString().c_str());
    return 1;
  }
  client::Client& cl = **c;
  const std::string path = "/bench_batch_read.bin";
  const uint64_t n = (mib << 20) / sample;
  if (n < static_cast<uint64_t>(batch)) {
    std::fprintf(stderr, "bench_batch_read: --mib %llu holds fewer samples than one batch\n",
                 static_cast<unsigned long long>(mib));
    return 2;
  }
  {
    auto f = cl.Open(path, O_RDWR | O_CREAT);
    if (!f.ok()) {
      std::fprintf(stderr, "bench_batch_read: open %s: %s\n", path.c_str(), f.status().ToString().c_str());
      return 1;
    }
    if ((*f)->Size() < n * sample) {
      std::vector<char> buf(8 << 20);
      for (size_t k = 0; k < buf.size(); k++) buf[k] = static_cast<char>(k * 131 + 7);
      for (uint64_t off = 0; off < n * sample; off += buf.size()) {
        auto w = (*f)->Pwrite(buf.data(), buf.size(), off);
        if (!w.ok()) {
          std::fprintf(stderr, "bench_batch_read: write: %s\n", w.status().ToString().c_str());
          return 1;
        }
      }
    }
    Status st = (*f)->Close();
    if (!st.ok()) {
      std::fprintf(stderr, "bench_batch_read: close: %s\n", st.ToString().c_str());
      return 1;
    }
  }
  auto f = cl.Open(path, O_RDONLY);
  if (!f.ok()) {
    std::fprintf(stderr, "bench_batch_read: %s\n", f.status().ToString().c_str());
    return 1;
  }
  const size_t bytes = static_cast<size_t>(batch) * sample;
  void* reused = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (reused == MAP_FAILED) return 1;
  std::memset(reused, 0, bytes);
  std::vector<uint64_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::mt19937_64 rng(42);
  std::vector<client::BatchReadItem> items(static_cast<size_t>(batch));

  auto run = [&](bool fresh) -> Round {
    std::shuffle(order.begin(), order.end(), rng);
    uint64_t done = 0;
    double t0 = Now(), c0 = CpuSeconds();
    for (uint64_t k = 0; k + batch <= n; k += batch) {
      char* base = static_cast<char*>(reused);
      if (fresh) {
        void* m = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED) std::exit(1);
        base = static_cast<char*>(m);
      }
      for (int i = 0; i < batch; i++) {
        items[i].file = f->get();
        items[i].offset = order[k + i] * sample;
        items[i].length = sample;
        items[i].dest = base + static_cast<size_t>(i) * sample;
      }
      Status st = cl.BatchRead(items);
      for (auto& it : items) {
        if (st.ok() && !it.status.ok()) st = it.status;
      }
      if (!st.ok()) {
        std::fprintf(stderr, "bench_batch_read: %s\n", st.ToString().c_str());
        std::exit(1);
      }
      if (fresh) munmap(base, bytes);
      done += static_cast<uint64_t>(batch);
    }
    double t = Now() - t0;
    return Round{static_cast<double>(done) / t, (CpuSeconds() - c0) / static_cast<double>(done) * 1e6};
  };

  std::printf("bench_batch_read: %llu samples of %llu bytes, %d per BatchRead, %d rounds\n",
              static_cast<unsigned long long>(n), static_cast<unsigned long long>(sample), batch, rounds);
  std::vector<double> rs, rc, fs, fc, ratio_s, ratio_c;
  for (int r = 0; r < rounds; r++) {
    Round a = run(false), b = run(true);
    std::printf("round %d: reused %.0f samples/s %.1f us CPU/sample; fresh mapping %.0f samples/s %.1f us CPU/sample\n",
                r + 1, a.samples_per_s, a.cpu_us_per_sample, b.samples_per_s, b.cpu_us_per_sample);
    rs.push_back(a.samples_per_s);
    rc.push_back(a.cpu_us_per_sample);
    fs.push_back(b.samples_per_s);
    fc.push_back(b.cpu_us_per_sample);
    ratio_s.push_back(a.samples_per_s / b.samples_per_s);
    ratio_c.push_back(a.cpu_us_per_sample / b.cpu_us_per_sample);
  }
  std::printf("\nmedians             reused memory   fresh mapping   reused/fresh\n");
  std::printf("samples/s           %13.0f   %13.0f   %11.2fx\n", Median(rs), Median(fs), Median(ratio_s));
  std::printf("MB/s                %13.0f   %13.0f\n", Median(rs) * static_cast<double>(sample) / 1e6,
              Median(fs) * static_cast<double>(sample) / 1e6);
  std::printf("client CPU us/sample%13.1f   %13.1f   %11.2fx\n", Median(rc), Median(fc), Median(ratio_c));
  munmap(reused, bytes);
  return 0;
}
