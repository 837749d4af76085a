#include "tools/io500/cli.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <memory>

#include "tools/io500/backend.h"
#include "tools/io500/benchmark.h"
#include "tools/io500/fork_comm.h"
#ifdef SLUICE_IO500_HAVE_MPI
#include "tools/io500/mpi_comm.h"
#endif

namespace sluice::io500 {
namespace {

const char kUsage[] =
    "usage: sluice-io500 [options] --dir PATH\n"
    "       sluice-io500 [options] --target NAME=SPEC [--target NAME=SPEC ...]\n"
    "\n"
    "Runs the IO500 phases (ior-easy/hard, mdtest-easy/hard, find, rnd4K) against\n"
    "each target in turn and prints result_summary.txt-style results; with several\n"
    "targets, also a side-by-side table with ratios to the first target.\n"
    "SPEC is a directory (POSIX back end), posix:DIR, or native:CONFIG:DIR.\n"
    "\n"
    "  --ranks N               N processes on this node (fork; default 1)\n"
    "  --mpi                   ranks are MPI processes (start under mpirun)\n"
    "  --quick                 CI-sized run: 2 s stonewall, small caps (seconds)\n"
    "  --stonewall S           write-phase stonewall in seconds (IO500: 300)\n"
    "  --ior-easy-mib M        cap on ior-easy data per rank in MiB\n"
    "  --ior-hard-segments K   cap on ior-hard segments per rank\n"
    "  --mdtest-easy-files N   cap on mdtest-easy files per rank\n"
    "  --mdtest-hard-files N   cap on mdtest-hard files per rank\n"
    "  --no-rnd4k              skip the unscored ior-rnd4K-easy-read phase\n"
    "  --result-dir DIR        where results go (default ./io500-results/<UTC time>)\n"
    "  --no-drop-caches        do not drop the page cache between phases\n"
    "  --progress S            seconds between progress lines (default 10; 0 = off)\n"
    "  --seed X                data pattern seed (default: from the start time)\n"
    "  --keep                  keep the benchmark files\n"
    "  --layout SET=LAYOUT     Sluice layout of ior-easy's or ior-hard's directory,\n"
    "                          e.g. --layout ior-hard='chunk_size=64KiB' (on a\n"
    "                          mount: the user.sluice.layout attribute)\n"
    "  --no-verify             do not compare read data (diagnostics only; marks\n"
    "                          the run invalid)\n"
    "  --test-corrupt SET      test hook: change a byte of SET (ior-easy, ior-hard,\n"
    "                          mdtest-hard) between its write and read phases\n";

struct Target {
  std::string name;
  std::string spec;
};

struct Args {
  Options opt;
  std::vector<Target> targets;
  int ranks = 1;
  bool mpi = false;
  std::string result_dir;
};

bool ParseU64(const char* s, uint64_t* out) {
  char* end = nullptr;
  errno = 0;
  unsigned long long v = std::strtoull(s, &end, 10);
  if (errno != 0 || end == s || *end != '\0') return false;
  *out = v;
  return true;
}

// Returns an error message, or "" on success.
std::string ParseArgs(int argc, char** argv, Args* a) {
  // --quick first, so explicit caps given with it win.
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--quick") == 0) a->opt = QuickOptions();
  }
  for (int i = 1; i < argc; ++i) {
    std::string k = argv[i];
    auto need = [&](const char** v) {
      if (i + 1 >= argc) return false;
      *v = argv[++i];
      return true;
    };
    const char* v = nullptr;
    uint64_t n = 0;
    if (k == "--quick") continue;
    if (k == "-h" || k == "--help") return "help";
    if (k == "--mpi") { a->mpi = true; continue; }
    if (k == "--keep") { a->opt.keep_files = true; continue; }
    if (k == "--no-rnd4k") { a->opt.run_rnd4k = false; continue; }
    if (k == "--no-drop-caches") { a->opt.drop_caches = false; continue; }
    if (k == "--no-verify") { a->opt.verify = false; continue; }
    if (!need(&v)) return "missing value after " + k;
    if (k == "--dir") {
      a->targets.push_back({"target", v});
    } else if (k == "--target") {
      std::string s = v;
      size_t eq = s.find('=');
      if (eq == std::string::npos || eq == 0 || eq + 1 == s.size()) {
        return "--target wants NAME=SPEC, e.g. local=/tmp/x; got '" + s + "'";
      }
      a->targets.push_back({s.substr(0, eq), s.substr(eq + 1)});
    } else if (k == "--result-dir") {
      a->result_dir = v;
    } else if (k == "--test-corrupt") {
      a->opt.corrupt = v;
      if (a->opt.corrupt != "ior-easy" && a->opt.corrupt != "ior-hard" &&
          a->opt.corrupt != "mdtest-hard") {
        return "--test-corrupt wants ior-easy, ior-hard or mdtest-hard";
      }
    } else if (k == "--layout") {
      std::string l = v;
      size_t eq = l.find('=');
      std::string set = eq == std::string::npos ? "" : l.substr(0, eq);
      if (set == "ior-easy") {
        a->opt.ior_easy_layout = l.substr(eq + 1);
      } else if (set == "ior-hard") {
        a->opt.ior_hard_layout = l.substr(eq + 1);
      } else {
        return "--layout wants ior-easy=LAYOUT or ior-hard=LAYOUT, e.g. ior-hard='chunk_size=64KiB'; got '" + l + "'";
      }
    } else if (k == "--progress") {
      a->opt.progress_interval = std::atof(v);
    } else if (!ParseU64(v, &n)) {
      return "bad number '" + std::string(v) + "' after " + k;
    } else if (k == "--ranks") {
      if (n < 1 || n > 4096) return "--ranks must be 1..4096";
      a->ranks = static_cast<int>(n);
    } else if (k == "--stonewall") {
      if (n < 1) return "--stonewall must be at least 1 second";
      a->opt.stonewall_seconds = static_cast<int>(n);
    } else if (k == "--ior-easy-mib") {
      a->opt.ior_easy_block = n << 20;
    } else if (k == "--ior-hard-segments") {
      a->opt.ior_hard_segments = n;
    } else if (k == "--mdtest-easy-files") {
      a->opt.mdtest_easy_files = n;
    } else if (k == "--mdtest-hard-files") {
      a->opt.mdtest_hard_files = n;
    } else if (k == "--seed") {
      a->opt.seed = n;
    } else {
      return "unknown option " + k;
    }
  }
  if (a->targets.empty()) return "give --dir PATH or at least one --target NAME=SPEC";
  if (a->opt.ior_easy_block < a->opt.ior_easy_transfer) {
    return "--ior-easy-mib must be at least one 2 MiB transfer";
  }
  if (a->mpi && a->ranks != 1) return "--ranks is for fork mode; with --mpi use mpirun -np N";
  return "";
}

Status WriteFile(const std::string& path, const std::string& text) {
  FILE* f = std::fopen(path.c_str(), "w");
  if (f == nullptr) return Status::FromErrno(errno, "open " + path);
  bool ok = std::fwrite(text.data(), 1, text.size(), f) == text.size();
  if (std::fclose(f) != 0) ok = false;
  if (!ok) return Status::FromErrno(errno ? errno : EIO, "write " + path);
  return Status::Ok();
}

Status MakeDirs(const std::string& path) {
  std::string cur;
  size_t pos = 0;
  while (pos != std::string::npos) {
    pos = path.find('/', pos + 1);
    cur = path.substr(0, pos);
    if (cur.empty()) continue;
    if (::mkdir(cur.c_str(), 0755) != 0 && errno != EEXIST) {
      return Status::FromErrno(errno, "mkdir " + cur);
    }
  }
  return Status::Ok();
}

bool HasErrors(const RunReport& r) {
  for (const auto& p : r.phases) {
    if (p.errors > 0) return true;
  }
  return false;
}

int RunAll(const Args& a, Comm* comm) {
  const bool root = comm->rank() == 0;
  std::string result_dir = a.result_dir;
  if (result_dir.empty()) {
    time_t t = std::time(nullptr);
    struct tm tm;
    gmtime_r(&t, &tm);
    char buf[64];
    std::strftime(buf, sizeof(buf), "io500-results/%Y.%m.%d-%H.%M.%S", &tm);
    result_dir = buf;
  }
  std::vector<RunReport> reports;
  int rc = 0;
  for (const auto& t : a.targets) {
    auto fs = MakeFileSystem(t.spec);
    // Every rank must agree to run, or none does (no rank waits forever).
    auto bad = comm->AllGather(fs.ok() ? 0 : 1);
    if (!bad.ok()) {
      std::fprintf(stderr, "rank %d: %s\n", comm->rank(), bad.status().ToString().c_str());
      return 1;
    }
    uint64_t failed = 0;
    for (uint64_t b : bad.value()) failed += b;
    if (failed > 0) {
      // Rank 0 reports its own error; another rank reports only when rank 0
      // could open the target (so the same message is not printed N times).
      if (!fs.ok() && (root || bad.value()[0] == 0)) {
        std::fprintf(stderr, "sluice-io500: rank %d: target %s: %s\n", comm->rank(),
                     t.name.c_str(), fs.status().ToString().c_str());
      }
      if (root) rc = 1;  // the other ranks carry on to the next target and exit 0
      continue;
    }
    auto rep = RunBenchmark(fs.value().get(), comm, a.opt, t.name);
    if (!rep.ok()) {
      std::fprintf(stderr, "sluice-io500: rank %d: target %s: %s\n", comm->rank(), t.name.c_str(),
                   rep.status().ToString().c_str());
      return 1;
    }
    if (!root) continue;
    const RunReport& r = rep.value();
    std::string summary = FormatSummary(r);
    std::printf("\n%s", summary.c_str());
    for (const auto& p : r.problems) std::printf("; INVALID: %s\n", p.c_str());
    std::string dir = result_dir + "/" + t.name;
    Status st = MakeDirs(dir);
    if (st.ok()) st = WriteFile(dir + "/result_summary.txt", summary);
    if (st.ok()) st = WriteFile(dir + "/result.json", FormatJson(r));
    if (!st.ok()) {
      std::fprintf(stderr, "sluice-io500: writing results: %s\n", st.ToString().c_str());
      rc = 1;
    } else {
      std::printf("; results in %s/{result_summary.txt,result.json}\n", dir.c_str());
    }
    std::fflush(stdout);
    if (HasErrors(r) && rc == 0) rc = 3;
    reports.push_back(r);
  }
  if (root && reports.size() > 1) {
    std::string table = FormatComparison(reports);
    std::printf("\n%s", table.c_str());
    Status st = WriteFile(result_dir + "/comparison.txt", table);
    if (!st.ok()) std::fprintf(stderr, "sluice-io500: %s\n", st.ToString().c_str());
  }
  std::fflush(stdout);
  return rc;
}

}  // namespace

std::string FormatComparison(const std::vector<RunReport>& reports) {
  std::string out;
  char buf[128];
  std::snprintf(buf, sizeof(buf), "%-20s %-6s", "phase", "unit");
  out += buf;
  for (const auto& r : reports) {
    std::snprintf(buf, sizeof(buf), " %14s", r.target.substr(0, 14).c_str());
    out += buf;
  }
  for (size_t i = 1; i < reports.size(); ++i) {
    std::string h = reports[i].target.substr(0, 6) + "/" + reports[0].target.substr(0, 6);
    std::snprintf(buf, sizeof(buf), " %14s", h.c_str());
    out += buf;
  }
  out += "\n";
  auto row = [&](const std::string& name, const char* unit, auto get) {
    std::snprintf(buf, sizeof(buf), "%-20s %-6s", name.c_str(), unit);
    out += buf;
    for (const auto& r : reports) {
      std::snprintf(buf, sizeof(buf), " %14.4f", get(r));
      out += buf;
    }
    double base = get(reports[0]);
    for (size_t i = 1; i < reports.size(); ++i) {
      double v = get(reports[i]);
      if (base > 0) {
        std::snprintf(buf, sizeof(buf), " %13.2fx", v / base);
      } else {
        std::snprintf(buf, sizeof(buf), " %14s", "-");
      }
      out += buf;
    }
    out += "\n";
  };
  for (const auto& p : reports[0].phases) {
    if (!p.ran || p.name == "timestamp") continue;
    const char* unit = p.name.rfind("ior", 0) == 0 ? "GiB/s" : "kIOPS";
    row(p.name, unit, [&](const RunReport& r) {
      for (const auto& q : r.phases) {
        if (q.name == p.name) return q.score;
      }
      return 0.0;
    });
  }
  row("SCORE bandwidth", "GiB/s", [](const RunReport& r) { return r.score.bandwidth; });
  row("SCORE metadata", "kIOPS", [](const RunReport& r) { return r.score.metadata; });
  row("SCORE total", "", [](const RunReport& r) { return r.score.total; });
  for (const auto& r : reports) {
    out += "; " + r.target + " = " + r.backend + (r.valid ? "" : " [INVALID]") + "\n";
  }
  return out;
}

int RunCli(int argc, char** argv) {
  Args a;
  std::string err = ParseArgs(argc, argv, &a);
  if (err == "help") {
    std::fputs(kUsage, stdout);
    return 0;
  }
  if (!err.empty()) {
    std::fprintf(stderr, "sluice-io500: %s\n\n%s", err.c_str(), kUsage);
    return 2;
  }
  if (a.mpi) {
#ifdef SLUICE_IO500_HAVE_MPI
    auto comm = MpiComm::Init(&argc, &argv);
    if (!comm.ok()) {
      std::fprintf(stderr, "sluice-io500: %s\n", comm.status().ToString().c_str());
      return 1;
    }
    int rc = RunAll(a, comm.value().get());
    // All ranks agree on the exit code.
    auto all = comm.value()->AllMax(static_cast<uint64_t>(rc));
    return all.ok() ? static_cast<int>(*all) : 1;
#else
    std::fprintf(stderr, "sluice-io500: built without MPI (CMake did not find it); use --ranks N\n");
    return 2;
#endif
  }
  auto comm = ForkComm::Spawn(a.ranks);
  if (!comm.ok()) {
    std::fprintf(stderr, "sluice-io500: %s\n", comm.status().ToString().c_str());
    return 1;
  }
  int rc = RunAll(a, comm.value().get());
  Status fin = comm.value()->Finish(rc);  // children exit here
  if (!fin.ok()) {
    std::fprintf(stderr, "sluice-io500: %s\n", fin.ToString().c_str());
    if (rc == 0) rc = 1;
  }
  return rc;
}

}  // namespace sluice::io500
