// bench_client_io: 1 MiB sequential write and read of a large file and 4 KiB
// random reads through the native API (libsluice), a FUSE mount of the same
// cluster, and a local ext4 directory, in one run; prints the ratios.
//
//   bench_client_io --cluster CFG --mount DIR --local DIR [--size-gib N] [--rand-ops N]
//
// The ext4 baseline writes with fsync at the end and drops its page cache
// (fadvise DONTNEED) before reading, so that it reads the disk, not memory.
// The FUSE file is opened fresh for reading (the mount drops cached pages on
// open). client/bench_client_io.sh starts a cluster and a mount and runs this.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "client/sluice_client.h"

using namespace sluice;
using namespace sluice::client;

namespace {

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

struct Row {
  double seq_write = 0, seq_read = 0, rand_iops = 0;  // bytes/s, bytes/s, ops/s
};

[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "bench_client_io: %s\n", what.c_str());
  std::exit(1);
}

void Fill(std::vector<char>& buf, uint64_t seed) {
  std::mt19937_64 r(seed);
  for (size_t i = 0; i + 8 <= buf.size(); i += 8) {
    uint64_t v = r();
    std::memcpy(buf.data() + i, &v, 8);
  }
}

// Offsets for the random reads: the same for every back end.
std::vector<uint64_t> RandomOffsets(uint64_t size, size_t n) {
  std::mt19937_64 r(42);
  std::vector<uint64_t> v(n);
  for (auto& o : v) o = (r() % (size / 4096)) * 4096;
  return v;
}

Row BenchPosix(const std::string& dir, uint64_t size, const std::vector<uint64_t>& offs, bool drop_cache) {
  Row row;
  std::string path = dir + "/bench_client_io.dat";
  std::vector<char> buf(1 << 20);
  Fill(buf, 1);
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) Die("open " + path + ": " + std::strerror(errno));
  double t0 = Now();
  for (uint64_t off = 0; off < size; off += buf.size()) {
    if (pwrite(fd, buf.data(), buf.size(), static_cast<off_t>(off)) != static_cast<ssize_t>(buf.size())) {
      Die("write " + path + ": " + std::strerror(errno));
    }
  }
  if (fsync(fd) != 0) Die("fsync " + path);
  if (close(fd) != 0) Die("close " + path + ": " + std::strerror(errno));
  row.seq_write = static_cast<double>(size) / (Now() - t0);

  fd = open(path.c_str(), O_RDONLY);
  if (fd < 0) Die("open " + path);
  if (drop_cache) posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
  t0 = Now();
  for (uint64_t off = 0; off < size; off += buf.size()) {
    ssize_t n = pread(fd, buf.data(), buf.size(), static_cast<off_t>(off));
    if (n != static_cast<ssize_t>(buf.size())) Die("read " + path + ": short or failed");
  }
  row.seq_read = static_cast<double>(size) / (Now() - t0);
  close(fd);

  fd = open(path.c_str(), O_RDONLY);
  if (drop_cache) posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
  t0 = Now();
  for (uint64_t o : offs) {
    if (pread(fd, buf.data(), 4096, static_cast<off_t>(o)) != 4096) Die("random read " + path);
  }
  row.rand_iops = static_cast<double>(offs.size()) / (Now() - t0);
  close(fd);
  unlink(path.c_str());
  return row;
}

Row BenchNative(Client* c, uint64_t size, const std::vector<uint64_t>& offs, double* batch_iops) {
  Row row;
  std::string path = "/bench_client_io_native.dat";
  std::vector<char> buf(1 << 20);
  Fill(buf, 1);
  auto f = c->Open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (!f.ok()) Die(f.status().ToString());
  double t0 = Now();
  for (uint64_t off = 0; off < size; off += buf.size()) {
    auto w = (*f)->Pwrite(buf.data(), buf.size(), off);
    if (!w.ok()) Die(w.status().ToString());
  }
  Status s = (*f)->Close();
  if (!s.ok()) Die(s.ToString());
  row.seq_write = static_cast<double>(size) / (Now() - t0);

  auto r = c->Open(path, O_RDONLY);
  if (!r.ok()) Die(r.status().ToString());
  t0 = Now();
  for (uint64_t off = 0; off < size; off += buf.size()) {
    auto n = (*r)->Read(buf.data(), buf.size());
    if (!n.ok() || *n != buf.size()) Die("native read: " + (n.ok() ? std::string("short") : n.status().ToString()));
  }
  row.seq_read = static_cast<double>(size) / (Now() - t0);

  t0 = Now();
  for (uint64_t o : offs) {
    auto n = (*r)->Pread(buf.data(), 4096, o);
    if (!n.ok() || *n != 4096) Die("native random read");
  }
  row.rand_iops = static_cast<double>(offs.size()) / (Now() - t0);

  // The loader's way: many 4 KiB reads in one BatchRead, 256 at a time.
  std::vector<char> many(256 * 4096);
  t0 = Now();
  for (size_t i = 0; i < offs.size(); i += 256) {
    std::vector<BatchReadItem> items;
    for (size_t k = i; k < std::min(offs.size(), i + 256); ++k) {
      BatchReadItem it;
      it.file = r->get();
      it.offset = offs[k];
      it.length = 4096;
      it.dest = many.data() + (k - i) * 4096;
      items.push_back(it);
    }
    Status bs = c->BatchRead(items);
    if (!bs.ok()) Die(bs.ToString());
    for (auto& it : items) {
      if (!it.status.ok() || it.bytes != 4096) Die("batch read item: " + it.status.ToString());
    }
  }
  *batch_iops = static_cast<double>(offs.size()) / (Now() - t0);
  (void)(*r)->Close();
  (void)c->Unlink(path);
  return row;
}

void Print(const char* name, const Row& r, const Row& base) {
  std::printf("%-14s %10.0f %8.2fx %10.0f %8.2fx %10.0f %8.2fx\n", name, r.seq_write / 1e6,
              r.seq_write / base.seq_write, r.seq_read / 1e6, r.seq_read / base.seq_read, r.rand_iops,
              r.rand_iops / base.rand_iops);
}

}  // namespace

int main(int argc, char** argv) {
  std::string cluster, mount, local;
  double size_gib = 2;
  size_t rand_ops = 4000;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto val = [&]() -> std::string {
      if (i + 1 >= argc) Die(a + " needs a value");
      return argv[++i];
    };
    if (a == "--cluster") cluster = val();
    else if (a == "--mount") mount = val();
    else if (a == "--local") local = val();
    else if (a == "--size-gib") size_gib = std::atof(val().c_str());
    else if (a == "--rand-ops") rand_ops = static_cast<size_t>(std::atol(val().c_str()));
    else Die("unknown argument " + a + "\nusage: bench_client_io --cluster CFG --mount DIR --local DIR [--size-gib N] [--rand-ops N]");
  }
  if (mount.empty() || local.empty()) Die("--mount and --local are required");
  uint64_t size = static_cast<uint64_t>(size_gib * (1 << 30)) / (1 << 20) * (1 << 20);
  auto offs = RandomOffsets(size, rand_ops);

  ClientOptions o;
  o.cluster = cluster;
  if (const char* ra = std::getenv("SLUICE_READ_AHEAD_MIB")) o.read_ahead_bytes = std::atol(ra) << 20;
  if (const char* rw = std::getenv("SLUICE_READ_AHEAD_WINDOWS")) o.read_ahead_windows = std::atol(rw);
  auto c = Client::Connect(o);
  if (!c.ok()) Die(c.status().ToString());

  std::printf("file %.2f GiB, 1 MiB sequential IO, %zu random 4 KiB reads (QD1)\n", size / double(1 << 30), rand_ops);
  Row ext4 = BenchPosix(local, size, offs, true);
  double batch_iops = 0;
  Row native = BenchNative(c->get(), size, offs, &batch_iops);
  Row fuse = BenchPosix(mount, size, offs, false);
  std::printf("\n%-14s %10s %9s %10s %9s %10s %9s\n", "", "write MB/s", "vs ext4", "read MB/s", "vs ext4",
              "4K IOPS", "vs ext4");
  Print("local ext4", ext4, ext4);
  Print("native", native, ext4);
  Print("fuse", fuse, ext4);
  std::printf("\nnative BatchRead of 256 x 4 KiB: %.0f IOPS (%.1fx native QD1)\n", batch_iops,
              batch_iops / native.rand_iops);
  std::printf("fuse / native: write %.2fx, read %.2fx, 4K random %.2fx   (target: 1 MiB >= 0.70x)\n",
              fuse.seq_write / native.seq_write, fuse.seq_read / native.seq_read, fuse.rand_iops / native.rand_iops);
  std::printf("native sequential read %.2f GB/s (target >= 1 GB/s)\n", native.seq_read / 1e9);
  return 0;
}
