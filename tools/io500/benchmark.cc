#include "tools/io500/benchmark.h"

#include <fcntl.h>
#include <unistd.h>

#include <cinttypes>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <functional>
#include <map>
#include <memory>
#include <numeric>
#include <optional>

#include "common/clock.h"
#include "tools/io500/data_pattern.h"
#include "tools/io500/progress.h"

namespace sluice::io500 {
namespace {

constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;

std::string Fmt(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
std::string Fmt(const char* fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(buf, sizeof(buf), fmt, ap);
  va_end(ap);
  return buf;
}

std::string HumanBytes(double b) {
  if (b >= kGiB) return Fmt("%.2f GiB", b / kGiB);
  if (b >= 1024.0 * 1024) return Fmt("%.1f MiB", b / (1024.0 * 1024));
  return Fmt("%.0f KiB", b / 1024.0);
}

// An aligned I/O buffer (O_DIRECT-friendly alignment, not required).
class Buffer {
 public:
  explicit Buffer(size_t len) : len_(len) {
    void* p = nullptr;
    if (posix_memalign(&p, 4096, len == 0 ? 1 : len) != 0) std::abort();
    p_ = static_cast<uint8_t*>(p);
  }
  ~Buffer() { std::free(p_); }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  uint8_t* data() { return p_; }
  size_t size() const { return len_; }

 private:
  uint8_t* p_;
  size_t len_;
};

// A deterministic permutation of [0, n): i -> (i * a + c) mod n with gcd(a, n) = 1.
class Permutation {
 public:
  Permutation(uint64_t n, uint64_t seed) : n_(n == 0 ? 1 : n) {
    a_ = (0x9E3779B97F4A7C15ull ^ seed) % n_;
    if (a_ == 0) a_ = 1;
    while (std::gcd(a_, n_) != 1) a_ = (a_ + 1) % n_ == 0 ? 1 : a_ + 1;
    c_ = (seed * 0x2545F4914F6CDD1Dull) % n_;
  }
  uint64_t operator()(uint64_t i) const {
    return static_cast<uint64_t>((static_cast<unsigned __int128>(i) * a_ + c_) % n_);
  }

 private:
  uint64_t n_, a_, c_;
};

std::string VerifyError(const std::string& path, const DataPattern& pat, const uint8_t* buf,
                        uint64_t buf_offset, uint64_t bad, uint64_t object, int writer) {
  return Fmt("verify failed: %s offset %" PRIu64 ": expected 0x%02x, read 0x%02x (written by rank %d)",
             path.c_str(), bad, pat.ExpectedByte(bad, object), buf[bad - buf_offset], writer);
}

// How a phase's per-rank loop ends.
enum class Bound {
  kCount,      // after exactly `count` items (the read, stat and delete phases)
  kStonewall,  // at `count` or the stonewall, then wear-out (the write phases and rnd4K)
};

// What a loop phase is, apart from the work of one item.
struct PhaseSpec {
  const char* name;
  ScoreGroup group;
  uint64_t count;           // items per rank: the cap (kStonewall) or exactly this many
  Bound bound;
  const char* unit;         // what an item is called in progress lines
  uint64_t item_bytes;      // the phase's items are summed as count * item_bytes
  bool name_errors;         // prefix the rank's error with the phase name when it ends
                            // (mdtest items' errors do not name the phase; IOR's do)
};

PhaseSpec Ior(const char* name, uint64_t count, Bound bound, const char* unit, uint64_t bytes,
              ScoreGroup group = ScoreGroup::kBandwidth) {
  return {name, group, count, bound, unit, bytes, false};
}

PhaseSpec Mdtest(const char* name, uint64_t count, Bound bound) {
  return {name, ScoreGroup::kMetadata, count, bound, "files", 1, true};
}

class Run {
 public:
  Run(FileSystem* fs, Comm* comm, const Options& opt, const std::string& target)
      : fs_(fs),
        comm_(comm),
        opt_(opt),
        rank_(comm->rank()),
        n_(comm->size()),
        progress_(comm->rank() == 0, opt.progress_interval) {
    report_.version = kVersion;
    report_.target = target;
    report_.backend = fs->Describe();
    report_.ranks = comm->Describe();
    report_.nranks = comm->size();
  }

  Result<RunReport> Execute();

 private:
  // ---- helpers -----------------------------------------------------------
  const DataPattern& Pattern(int writer) {
    auto it = patterns_.find(writer);
    if (it == patterns_.end()) {
      it = patterns_.emplace(writer, std::make_unique<DataPattern>(opt_.seed, writer)).first;
    }
    return *it->second;
  }
  // Ok, or kCorrupt naming the first byte of buf (bytes [offset, offset + len) of
  // `object` in `path`, written by `writer`) that differs from what was written.
  // Ok also when verification is off.
  Status Verified(const DataPattern& pat, const uint8_t* buf, size_t len, uint64_t offset,
                  uint64_t object, const std::string& path, int writer) const {
    if (!opt_.verify) return Status::Ok();
    auto bad = pat.FirstMismatch(buf, len, offset, object);
    if (!bad) return Status::Ok();
    return Status(Code::kCorrupt, VerifyError(Shown(path), pat, buf, offset, *bad, object, writer));
  }
  // A path as the user knows it: the back end's root plus the relative path.
  std::string Shown(const std::string& rel) const { return fs_->Describe() + "/" + rel; }
  // Whose data this rank reads back. IOR -C -Q k: the rank k nodes further
  // on (rank + k * tasks per node) mod N, so on one node a rank reads its own
  // file; mdtest -N 1: the next rank.
  int IorReadsFrom(int node_shift) const {
    return static_cast<int>((rank_ + static_cast<int64_t>(node_shift) * comm_->ranks_per_node()) % n_);
  }
  int MdtestReadsFrom() const { return (rank_ + 1) % n_; }
  std::string Data(const std::string& rel) const { return run_dir_ + "/datafiles/" + rel; }
  std::string EasyFile(int r) const { return Data(Fmt("ior-easy/ior_file_easy.%08d", r)); }
  std::string HardFile() const { return Data("ior-hard/file"); }
  std::string EasyTree(int r) const {
    return Data(Fmt("mdtest-easy/test-dir.0-0/mdtest_tree.%d.0", r));
  }
  std::string EasyItem(int r, uint64_t i) const {
    return EasyTree(r) + Fmt("/file.mdtest.%d.%" PRIu64, r, i);
  }
  std::string HardDir() const { return Data("mdtest-hard/test-dir.0-0/mdtest_tree.0"); }
  std::string HardItem(int r, uint64_t i) const {
    return HardDir() + Fmt("/file.mdtest.%d.%" PRIu64, r, i);
  }

  // Records the first local error of a phase (later ones are counted only).
  void Fail(Status* err, const Status& st) {
    if (!st.ok() && err->ok()) *err = st;
  }

  Status DropCaches();
  // Starts a phase: drops caches, barrier, timer.
  Status BeginPhase(const std::string& name);
  // Ends a phase: barrier, timer; gathers errors; prints the [RESULT] line.
  Status EndPhase(PhaseResult* p, const Status& local_err);

  // ---- loop phases: everything but the items' work -------------------------
  struct LoopOutcome {
    uint64_t done = 0;         // this rank's count after wear-out
    uint64_t target = 0;       // the count every rank reached (wear-out: the global max)
    double hit_seconds = 0;    // when this rank stopped for the stonewall
    uint64_t at_stonewall = 0; // this rank's count when it stopped
  };
  // One loop phase under way on this rank.
  struct Phase {
    explicit Phase(const PhaseSpec& s) : spec(s) {
      result.name = s.name;
      result.group = s.group;
    }
    // Items per rank, equal on every rank (after RunLoop).
    uint64_t per_rank() const { return loop.target; }
    PhaseSpec spec;
    PhaseResult result;
    Status err;                  // this rank's first error; stops its loop
    std::unique_ptr<File> file;  // IOR: the phase's one file, closed by FinishPhase
    std::string path;            // its path
    bool written = false;        // opened for writing: fsync before close (IOR -e)
    LoopOutcome loop;
  };
  // Caches dropped, start barrier and timer, the progress header.
  Status StartPhase(Phase* ph, const std::string& description);
  // IOR: opens the phase's file (timed). An error stays in ph->err, named
  // after the phase unless !name_error.
  void OpenPhaseFile(Phase* ph, const std::string& path, uint32_t flags, bool name_error = true);
  // Runs op(0), op(1), ... on this rank, stopping at the first error: exactly
  // spec.count items, or (kStonewall) until spec.count or the stonewall, and
  // then (IOR stoneWallingWearOut / mdtest wear-out) on until every rank has
  // done as many as the rank that did most (collective).
  Status RunLoop(Phase* ph, const std::function<Status(uint64_t)>& op);
  // Fsync (if written and no error) and close of the phase's file, inside the
  // timed region; the stonewall fields (kStonewall); the items of all ranks;
  // end barrier, timer, errors and the [RESULT] line (EndPhase). Collective.
  Status FinishPhase(Phase* ph, std::string detail = "");
  // IOR -R: reads the transfer at `off` of the phase's file into buf and
  // verifies it as `pat`'s (object 0). Errors name the phase.
  Status ReadTransfer(Phase* ph, Buffer* buf, uint64_t off, const DataPattern& pat, int writer);
  // mdtest -T: stats rank+1's `files` items (`item` names them), each must be
  // a regular file of `size` bytes (`what`, for the error).
  using ItemPath = std::string (Run::*)(int, uint64_t) const;
  Status MdtestStat(const char* name, uint64_t files, ItemPath item, uint64_t size,
                    const std::string& what);
  // mdtest -r: unlinks rank+1's `files` items.
  Status MdtestDelete(const char* name, uint64_t files, ItemPath item);

  Status IorEasyWrite();
  Status MdtestEasyWrite();
  Status Timestamp();
  Status IorHardWrite();
  Status MdtestHardWrite();
  Status Find();
  Status Corrupt();
  Status IorEasyRead();
  Status MdtestEasyStat();
  Status IorHardRead();
  Status MdtestHardStat();
  Status MdtestEasyDelete();
  Status MdtestHardRead();
  Status MdtestHardDelete();
  Status IorRnd4kEasyRead();

  FileSystem* fs_;
  Comm* comm_;
  Options opt_;
  int rank_;
  int n_;
  Progress progress_;
  RunReport report_;
  std::string run_dir_;
  std::map<int, std::unique_ptr<DataPattern>> patterns_;
  bool can_drop_ = false;
  uint64_t phase_start_ns_ = 0;
  timespec timestamp_{};

  // What the write phases left behind, per rank (equal on all ranks after wear-out).
  uint64_t easy_transfers_ = 0;
  uint64_t hard_segments_ = 0;
  uint64_t md_easy_files_ = 0;
  uint64_t md_hard_files_ = 0;
};

Status Run::DropCaches() {
  if (!can_drop_) return Status::Ok();
  if (comm_->node_leader()) {
    ::sync();
    int fd = ::open("/proc/sys/vm/drop_caches", O_WRONLY | O_CLOEXEC);
    if (fd >= 0) {
      if (::write(fd, "3", 1) != 1) {
        std::fprintf(stderr, "warning: writing /proc/sys/vm/drop_caches failed\n");
      }
      ::close(fd);
    }
  }
  return Status::Ok();
}

Status Run::BeginPhase(const std::string& name) {
  SLUICE_RETURN_IF_ERROR(DropCaches());
  SLUICE_RETURN_IF_ERROR(comm_->Barrier().Prefix("before " + name));
  phase_start_ns_ = NowNanos();
  return Status::Ok();
}

Status Run::EndPhase(PhaseResult* p, const Status& local_err) {
  SLUICE_RETURN_IF_ERROR(comm_->Barrier().Prefix("end of " + p->name));
  p->seconds = (NowNanos() - phase_start_ns_) / 1e9;
  p->ran = true;
  // Every rank learns how many ranks failed; rank 0 collects their messages.
  SLUICE_ASSIGN_OR_RETURN(uint64_t failed, comm_->AllSum(local_err.ok() ? 0 : 1));
  p->errors = failed;
  if (failed > 0) {
    p->valid = false;
    SLUICE_ASSIGN_OR_RETURN(auto msgs,
                            comm_->GatherStrings(local_err.ok() ? "" : local_err.ToString()));
    for (size_t r = 0; r < msgs.size(); ++r) {
      if (msgs[r].empty()) continue;
      std::string line = Fmt("rank %zu: ", r) + msgs[r];
      std::fprintf(stderr, "[%s] %s\n", p->name.c_str(), line.c_str());
      p->problems.push_back(line);
    }
  }
  if (p->name.rfind("ior", 0) == 0) {
    p->score = p->items / p->seconds / kGiB;
  } else if (p->group != ScoreGroup::kNone) {
    p->score = p->items / p->seconds / 1000;
  }
  if (rank_ == 0) {
    std::printf("%s %20s %15f %s : time %.3f seconds%s\n",
                p->group == ScoreGroup::kNone ? "[      ]" : "[RESULT]", p->name.c_str(), p->score,
                p->name.rfind("ior", 0) == 0 ? "GiB/s" : "kIOPS", p->seconds,
                failed > 0 || !PhaseRuleProblems(*p, opt_.stonewall_seconds).empty()
                    ? " [INVALID]"
                    : "");
    std::fflush(stdout);
  }
  report_.phases.push_back(*p);
  return Status::Ok();
}

Status Run::StartPhase(Phase* ph, const std::string& description) {
  SLUICE_RETURN_IF_ERROR(BeginPhase(ph->spec.name));
  const bool stonewalled = ph->spec.bound == Bound::kStonewall;
  progress_.Begin(ph->spec.name, description, ph->spec.count,
                  stonewalled ? opt_.stonewall_seconds : 0, ph->spec.unit);
  return Status::Ok();
}

void Run::OpenPhaseFile(Phase* ph, const std::string& path, uint32_t flags, bool name_error) {
  ph->path = path;
  ph->written = (flags & kOpenWrite) != 0;
  auto fr = fs_->Open(path, flags);
  if (fr.ok()) {
    ph->file = std::move(fr.value());
  } else {
    Fail(&ph->err, name_error ? fr.status().Prefix(ph->spec.name) : fr.status());
  }
}

Status Run::RunLoop(Phase* ph, const std::function<Status(uint64_t)>& op) {
  LoopOutcome& o = ph->loop;
  Status* err = &ph->err;
  uint64_t i = 0;
  const uint64_t deadline =
      phase_start_ns_ + static_cast<uint64_t>(opt_.stonewall_seconds) * 1000000000ull;
  // op(i) for i up to `end`; with `stonewall`, also stops at the deadline.
  auto run_to = [&](uint64_t end, bool stonewall) {
    while (i < end && err->ok()) {
      if (stonewall && NowNanos() >= deadline) break;
      Fail(err, op(i));
      if (!err->ok()) break;
      ++i;
      progress_.Tick(i);
    }
  };
  const uint64_t limit = ph->spec.count;
  if (ph->spec.bound == Bound::kCount) {
    run_to(limit, false);
    o.done = i;
    o.target = limit;
    return Status::Ok();
  }
  run_to(limit, true);
  o.at_stonewall = i;
  o.hit_seconds = (NowNanos() - phase_start_ns_) / 1e9;
  const bool hit = i < limit && err->ok();  // stopped by the stonewall, not the cap
  SLUICE_ASSIGN_OR_RETURN(o.target, comm_->AllMax(i));
  if (hit || o.target > i) progress_.WearOut(i, o.target);
  run_to(o.target, false);
  o.done = i;
  return Status::Ok();
}

Status Run::FinishPhase(Phase* ph, std::string detail) {
  PhaseResult& p = ph->result;
  if (ph->file) {
    if (ph->written && ph->err.ok()) Fail(&ph->err, ph->file->Fsync().Prefix(p.name));
    Fail(&ph->err, ph->file->Close().Prefix(p.name));
  }
  if (ph->spec.bound == Bound::kStonewall) {
    SLUICE_ASSIGN_OR_RETURN(p.stonewall_hit_seconds, comm_->AllMaxDouble(ph->loop.hit_seconds));
    SLUICE_ASSIGN_OR_RETURN(p.items_at_stonewall, comm_->AllSum(ph->loop.at_stonewall));
  }
  SLUICE_ASSIGN_OR_RETURN(uint64_t total, comm_->AllSum(ph->loop.done));
  p.items = total * ph->spec.item_bytes;
  p.detail = std::move(detail);
  return EndPhase(&p, ph->spec.name_errors ? ph->err.Prefix(p.name) : ph->err);
}

Status Run::ReadTransfer(Phase* ph, Buffer* buf, uint64_t off, const DataPattern& pat,
                         int writer) {
  const uint64_t t = buf->size();
  auto n = ph->file->Pread(buf->data(), t, off);
  if (!n.ok()) return n.status().Prefix(ph->spec.name);
  if (*n != t) {
    return Status(Code::kIo, Fmt("%s: short read of %s at %" PRIu64 ": %zu of %" PRIu64 " bytes",
                                 ph->spec.name, ph->path.c_str(), off, *n, t));
  }
  return Verified(pat, buf->data(), t, off, 0, ph->path, writer).Prefix(ph->spec.name);
}

// ---- ior-easy ---------------------------------------------------------------

Status Run::IorEasyWrite() {
  const uint64_t t = opt_.ior_easy_transfer;
  Phase ph(Ior("ior-easy-write", opt_.ior_easy_block / t, Bound::kStonewall, "transfers", t));
  SLUICE_RETURN_IF_ERROR(StartPhase(
      &ph, Fmt("file per process, %s transfers, fsync on close, stonewall %d s",
               HumanBytes(t).c_str(), opt_.stonewall_seconds)));
  // This phase has always reported a failed open without its name.
  OpenPhaseFile(&ph, EasyFile(rank_), kOpenWrite | kOpenCreate | kOpenTruncate,
                /*name_error=*/false);
  Buffer buf(t);
  const DataPattern& pat = Pattern(rank_);
  pat.Fill(buf.data(), t, 0, 0);
  const bool restamp = t % DataPattern::kPeriod == 0;
  SLUICE_RETURN_IF_ERROR(RunLoop(&ph, [&](uint64_t i) -> Status {
    if (restamp) {
      pat.Restamp(buf.data(), t, i * t, 0);
    } else {
      pat.Fill(buf.data(), t, i * t, 0);
    }
    return ph.file->Pwrite(buf.data(), t, i * t).Prefix(ph.spec.name);
  }));
  easy_transfers_ = ph.per_rank();
  return FinishPhase(&ph, Fmt("%" PRIu64 " x %s per rank", ph.per_rank(), HumanBytes(t).c_str()));
}

Status Run::IorEasyRead() {
  const uint64_t t = opt_.ior_easy_transfer;
  Phase ph(Ior("ior-easy-read", easy_transfers_, Bound::kCount, "transfers", t));
  const int w = IorReadsFrom(1);
  SLUICE_RETURN_IF_ERROR(StartPhase(
      &ph, Fmt("rank 0 reads and verifies the file of rank %d (IOR -C -Q 1): %" PRIu64 " x %s",
               w, easy_transfers_, HumanBytes(t).c_str())));
  const DataPattern& pat = Pattern(w);
  Buffer buf(t);
  OpenPhaseFile(&ph, EasyFile(w), kOpenRead);
  SLUICE_RETURN_IF_ERROR(
      RunLoop(&ph, [&](uint64_t i) { return ReadTransfer(&ph, &buf, i * t, pat, w); }));
  return FinishPhase(&ph, Fmt("%" PRIu64 " x %s per rank", easy_transfers_, HumanBytes(t).c_str()));
}

Status Run::IorRnd4kEasyRead() {
  const uint64_t bs = opt_.rnd4k_size;
  const uint64_t blocks = easy_transfers_ * opt_.ior_easy_transfer / bs;
  Phase ph(Ior("ior-rnd4K-easy-read", blocks, Bound::kStonewall, "reads", bs, ScoreGroup::kNone));
  const int w = IorReadsFrom(2);
  SLUICE_RETURN_IF_ERROR(StartPhase(
      &ph, Fmt("random %s reads of rank %d's ior-easy file (%" PRIu64
               " blocks, IOR -z -C -Q 2), stonewall %d s",
               HumanBytes(bs).c_str(), w, blocks, opt_.stonewall_seconds)));
  const DataPattern& pat = Pattern(w);
  Buffer buf(bs);
  Permutation perm(blocks, opt_.seed + static_cast<uint64_t>(rank_));
  OpenPhaseFile(&ph, EasyFile(w), kOpenRead);
  // Not ReadTransfer: a failed read has always been reported without the
  // phase's name here, and a short one without the byte counts.
  SLUICE_RETURN_IF_ERROR(RunLoop(&ph, [&](uint64_t i) -> Status {
    const uint64_t off = perm(i) * bs;
    auto n = ph.file->Pread(buf.data(), bs, off);
    if (!n.ok()) return n.status();
    if (*n != bs) {
      return Status(Code::kIo, Fmt("%s: short read of %s at %" PRIu64, ph.spec.name,
                                   ph.path.c_str(), off));
    }
    return Verified(pat, buf.data(), bs, off, 0, ph.path, w).Prefix(ph.spec.name);
  }));
  return FinishPhase(&ph, Fmt("%" PRIu64 " random reads per rank", ph.per_rank()));
}

// ---- ior-hard ---------------------------------------------------------------

Status Run::IorHardWrite() {
  const uint64_t t = opt_.ior_hard_transfer;
  Phase ph(Ior("ior-hard-write", opt_.ior_hard_segments, Bound::kStonewall, "segments", t));
  SLUICE_RETURN_IF_ERROR(StartPhase(
      &ph, Fmt("one shared file, interleaved %" PRIu64 "-byte transfers, stonewall %d s", t,
               opt_.stonewall_seconds)));
  OpenPhaseFile(&ph, HardFile(), kOpenWrite | kOpenCreate);
  Buffer buf(t);
  const DataPattern& pat = Pattern(rank_);
  SLUICE_RETURN_IF_ERROR(RunLoop(&ph, [&](uint64_t s) -> Status {
    uint64_t off = (s * n_ + rank_) * t;
    pat.Fill(buf.data(), t, off, 0);
    return ph.file->Pwrite(buf.data(), t, off).Prefix(ph.spec.name);
  }));
  hard_segments_ = ph.per_rank();
  return FinishPhase(&ph, Fmt("%" PRIu64 " segments of %" PRIu64 " bytes per rank",
                              ph.per_rank(), t));
}

Status Run::IorHardRead() {
  const uint64_t t = opt_.ior_hard_transfer;
  Phase ph(Ior("ior-hard-read", hard_segments_, Bound::kCount, "segments", t));
  const int w = IorReadsFrom(1);
  SLUICE_RETURN_IF_ERROR(StartPhase(
      &ph, Fmt("rank 0 reads and verifies rank %d's %" PRIu64 " segments of %" PRIu64
               " bytes (IOR -C -Q 1)",
               w, hard_segments_, t)));
  const DataPattern& pat = Pattern(w);
  Buffer buf(t);
  OpenPhaseFile(&ph, HardFile(), kOpenRead);
  SLUICE_RETURN_IF_ERROR(RunLoop(
      &ph, [&](uint64_t s) { return ReadTransfer(&ph, &buf, (s * n_ + w) * t, pat, w); }));
  return FinishPhase(&ph, Fmt("%" PRIu64 " segments per rank", hard_segments_));
}

// ---- mdtest -----------------------------------------------------------------

Status Run::MdtestEasyWrite() {
  Phase ph(Mdtest("mdtest-easy-write", opt_.mdtest_easy_files, Bound::kStonewall));
  // Tree creation is not part of the file-create rate (as in mdtest). An error
  // here skips the rank's loop.
  if (rank_ == 0) {
    Fail(&ph.err, fs_->MkdirIfMissing(Data("mdtest-easy")));
    Fail(&ph.err, fs_->MkdirIfMissing(Data("mdtest-easy/test-dir.0-0")));
  }
  SLUICE_RETURN_IF_ERROR(comm_->Barrier());
  Fail(&ph.err, fs_->MkdirIfMissing(EasyTree(rank_)));
  SLUICE_RETURN_IF_ERROR(StartPhase(
      &ph, Fmt("empty files, a directory per rank, stonewall %d s", opt_.stonewall_seconds)));
  SLUICE_RETURN_IF_ERROR(RunLoop(&ph, [&](uint64_t i) -> Status {
    SLUICE_ASSIGN_OR_RETURN(auto f, fs_->Open(EasyItem(rank_, i), kOpenWrite | kOpenCreate));
    return f->Close();
  }));
  md_easy_files_ = ph.per_rank();
  return FinishPhase(&ph, Fmt("%" PRIu64 " files per rank", ph.per_rank()));
}

Status Run::Timestamp() {
  PhaseResult p;
  p.name = "timestamp";
  p.group = ScoreGroup::kNone;
  SLUICE_RETURN_IF_ERROR(comm_->Barrier());
  phase_start_ns_ = NowNanos();
  Status err;
  std::string path = run_dir_ + "/timestampfile";
  if (rank_ == 0) {
    auto f = fs_->Open(path, kOpenWrite | kOpenCreate | kOpenTruncate);
    if (!f.ok()) Fail(&err, f.status());
    else Fail(&err, f.value()->Close());
  }
  SLUICE_RETURN_IF_ERROR(comm_->Barrier());
  // Every rank reads the reference time (what find's -newer compares with).
  auto st = fs_->Stat(path);
  if (st.ok()) timestamp_ = st->mtime; else Fail(&err, st.status());
  return EndPhase(&p, err.Prefix(p.name));
}

Status Run::MdtestHardWrite() {
  const uint64_t sz = opt_.mdtest_hard_bytes;
  Phase ph(Mdtest("mdtest-hard-write", opt_.mdtest_hard_files, Bound::kStonewall));
  if (rank_ == 0) {
    Fail(&ph.err, fs_->MkdirIfMissing(Data("mdtest-hard")));
    Fail(&ph.err, fs_->MkdirIfMissing(Data("mdtest-hard/test-dir.0-0")));
    Fail(&ph.err, fs_->MkdirIfMissing(HardDir()));
  }
  SLUICE_RETURN_IF_ERROR(StartPhase(
      &ph, Fmt("%" PRIu64 "-byte files in one shared directory, stonewall %d s", sz,
               opt_.stonewall_seconds)));
  Buffer buf(sz);
  const DataPattern& pat = Pattern(rank_);
  SLUICE_RETURN_IF_ERROR(RunLoop(&ph, [&](uint64_t i) -> Status {
    SLUICE_ASSIGN_OR_RETURN(auto f, fs_->Open(HardItem(rank_, i), kOpenWrite | kOpenCreate));
    pat.Fill(buf.data(), sz, 0, i);
    Status st = f->Pwrite(buf.data(), sz, 0);
    Status cl = f->Close();
    return st.ok() ? cl : st;
  }));
  md_hard_files_ = ph.per_rank();
  return FinishPhase(&ph, Fmt("%" PRIu64 " files per rank", ph.per_rank()));
}

Status Run::MdtestStat(const char* name, uint64_t files, ItemPath item, uint64_t size,
                       const std::string& what) {
  Phase ph(Mdtest(name, files, Bound::kCount));
  const int w = MdtestReadsFrom();
  SLUICE_RETURN_IF_ERROR(StartPhase(&ph, Fmt("stat rank+1's %" PRIu64 " files", files)));
  SLUICE_RETURN_IF_ERROR(RunLoop(&ph, [&](uint64_t i) -> Status {
    std::string path = (this->*item)(w, i);
    SLUICE_ASSIGN_OR_RETURN(FileStat st, fs_->Stat(path));
    if (!st.is_regular || st.size != size) {
      return Status(Code::kCorrupt, Fmt("stat %s: expected %s, got size %" PRIu64, path.c_str(),
                                        what.c_str(), st.size));
    }
    return Status::Ok();
  }));
  return FinishPhase(&ph);
}

Status Run::MdtestDelete(const char* name, uint64_t files, ItemPath item) {
  Phase ph(Mdtest(name, files, Bound::kCount));
  const int w = MdtestReadsFrom();
  SLUICE_RETURN_IF_ERROR(StartPhase(&ph, Fmt("unlink rank+1's %" PRIu64 " files", files)));
  SLUICE_RETURN_IF_ERROR(RunLoop(&ph, [&](uint64_t i) { return fs_->Unlink((this->*item)(w, i)); }));
  return FinishPhase(&ph);
}

Status Run::MdtestEasyStat() {
  return MdtestStat("mdtest-easy-stat", md_easy_files_, &Run::EasyItem, 0, "an empty regular file");
}

Status Run::MdtestHardStat() {
  return MdtestStat("mdtest-hard-stat", md_hard_files_, &Run::HardItem, opt_.mdtest_hard_bytes,
                    Fmt("a %" PRIu64 "-byte regular file", opt_.mdtest_hard_bytes));
}

Status Run::MdtestEasyDelete() {
  SLUICE_RETURN_IF_ERROR(MdtestDelete("mdtest-easy-delete", md_easy_files_, &Run::EasyItem));
  // Directory removal is not part of the rate (mdtest times it separately).
  Status st = fs_->Rmdir(EasyTree(rank_));
  if (!st.ok()) std::fprintf(stderr, "rank %d: cleanup: %s\n", rank_, st.ToString().c_str());
  return Status::Ok();
}

Status Run::MdtestHardRead() {
  const uint64_t sz = opt_.mdtest_hard_bytes;
  Phase ph(Mdtest("mdtest-hard-read", md_hard_files_, Bound::kCount));
  const int w = MdtestReadsFrom();
  SLUICE_RETURN_IF_ERROR(StartPhase(
      &ph, Fmt("open, read and verify %" PRIu64 " bytes of rank+1's %" PRIu64 " files", sz,
               md_hard_files_)));
  Buffer buf(sz + 1);
  const DataPattern& pat = Pattern(w);
  SLUICE_RETURN_IF_ERROR(RunLoop(&ph, [&](uint64_t i) -> Status {
    std::string path = HardItem(w, i);
    SLUICE_ASSIGN_OR_RETURN(auto f, fs_->Open(path, kOpenRead));
    auto n = f->Pread(buf.data(), sz, 0);
    Status cl = f->Close();
    if (!n.ok()) return n.status();
    if (*n != sz) {
      return Status(Code::kIo, Fmt("read %s: got %zu of %" PRIu64 " bytes", path.c_str(), *n, sz));
    }
    SLUICE_RETURN_IF_ERROR(Verified(pat, buf.data(), sz, 0, i, path, w));
    return cl;
  }));
  return FinishPhase(&ph);
}

Status Run::MdtestHardDelete() {
  return MdtestDelete("mdtest-hard-delete", md_hard_files_, &Run::HardItem);
}

// ---- find -------------------------------------------------------------------

Status Run::Find() {
  PhaseResult p;
  p.name = "find";
  p.group = ScoreGroup::kMetadata;
  SLUICE_RETURN_IF_ERROR(BeginPhase(p.name));
  progress_.Begin(p.name,
                  "files newer than the timestamp file, size 3901 bytes, name *01* (rate = "
                  "entries scanned / time)",
                  0, 0, "entries");
  Status err;
  uint64_t scanned = 0, found = 0;
  const uint64_t want = opt_.mdtest_hard_bytes;
  auto newer = [&](const timespec& t) {
    return t.tv_sec > timestamp_.tv_sec ||
           (t.tv_sec == timestamp_.tv_sec && t.tv_nsec > timestamp_.tv_nsec);
  };
  // Every rank lists every directory; entry k of a directory is examined by
  // rank k % n (name first, stat only if the name matches, as pfind does).
  std::vector<std::string> stack{run_dir_ + "/datafiles"};
  while (!stack.empty() && err.ok()) {
    std::string dir = stack.back();
    stack.pop_back();
    auto entries = fs_->ReadDir(dir);
    if (!entries.ok()) { Fail(&err, entries.status()); break; }
    uint64_t k = 0;
    for (const auto& e : entries.value()) {
      std::string path = dir + "/" + e.name;
      bool is_dir = e.type == DirEntry::Type::kDir;
      if (e.type == DirEntry::Type::kUnknown) {
        auto st = fs_->Stat(path);
        if (!st.ok()) { Fail(&err, st.status()); break; }
        is_dir = st->is_dir;
      }
      if (is_dir) stack.push_back(path);
      if (static_cast<int>(k++ % n_) != rank_) continue;
      ++scanned;
      progress_.Tick(scanned);
      if (is_dir || e.name.find("01") == std::string::npos) continue;
      auto st = fs_->Stat(path);
      if (!st.ok()) { Fail(&err, st.status()); break; }
      if (st->is_regular && st->size == want && newer(st->mtime)) ++found;
    }
  }
  SLUICE_ASSIGN_OR_RETURN(p.items, comm_->AllSum(scanned));
  SLUICE_ASSIGN_OR_RETURN(uint64_t total_found, comm_->AllSum(found));
  p.detail = Fmt("found %" PRIu64 " of %" PRIu64 " entries", total_found, p.items);
  if (total_found == 0) {
    p.problems.push_back("find found no file, which is likely invalid (as the official tool says)");
  }
  return EndPhase(&p, err.Prefix(p.name));
}

// ---- test hook --------------------------------------------------------------

Status Run::Corrupt() {
  Status err;
  if (rank_ == 0 && !opt_.corrupt.empty()) {
    std::string path;
    uint64_t off = 0;
    if (opt_.corrupt == "ior-easy") {
      path = EasyFile(0);
      off = std::min<uint64_t>(12345, easy_transfers_ * opt_.ior_easy_transfer - 1);
    } else if (opt_.corrupt == "ior-hard") {
      path = HardFile();
      off = 12345 % opt_.ior_hard_transfer;  // inside rank 0's first segment
    } else if (opt_.corrupt == "mdtest-hard") {
      path = HardItem(0, 0);
      off = 100 % opt_.mdtest_hard_bytes;
    } else {
      err = Status(Code::kInvalid, "unknown --test-corrupt data set '" + opt_.corrupt + "'");
    }
    if (err.ok()) {
      auto f = fs_->Open(path, kOpenRead | kOpenWrite);
      if (!f.ok()) {
        err = f.status();
      } else {
        uint8_t b = 0;
        auto n = f.value()->Pread(&b, 1, off);
        if (!n.ok() || *n != 1) {
          err = n.ok() ? Status(Code::kIo, "test hook: nothing to corrupt in " + path) : n.status();
        } else {
          b ^= 0x5a;
          err = f.value()->Pwrite(&b, 1, off);
          if (err.ok()) err = f.value()->Close();
          std::fprintf(stderr, "[test-hook] changed byte %" PRIu64 " of %s\n", off,
                       Shown(path).c_str());
        }
      }
    }
  }
  SLUICE_RETURN_IF_ERROR(comm_->Barrier());
  if (!err.ok()) report_.problems.push_back("test hook: " + err.ToString());
  return Status::Ok();
}

// ---- the run ----------------------------------------------------------------

Result<RunReport> Run::Execute() {
  // Everyone agrees on the start time (directory name) and the data seed.
  uint64_t now = static_cast<uint64_t>(std::time(nullptr));
  SLUICE_ASSIGN_OR_RETURN(auto times, comm_->AllGather(now));
  const uint64_t start = times[0];
  if (opt_.seed == 0) opt_.seed = start * 2654435761ull + 271;
  report_.options = opt_;
  {
    time_t t = static_cast<time_t>(start);
    struct tm tm;
    gmtime_r(&t, &tm);
    char buf[64];
    std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
    report_.start_time = buf;
    std::strftime(buf, sizeof(buf), "%Y.%m.%d-%H.%M.%S", &tm);
    run_dir_ = std::string("sluice-io500.") + buf;
  }
  // Page-cache dropping: only where we may.
  if (!opt_.drop_caches) {
    report_.drop_caches = "no (disabled by --no-drop-caches)";
  } else if (::access("/proc/sys/vm/drop_caches", W_OK) == 0) {
    can_drop_ = true;
    report_.drop_caches = "yes (sync + echo 3 > /proc/sys/vm/drop_caches before every phase)";
  } else {
    report_.drop_caches = "no (/proc/sys/vm/drop_caches is not writable: run as root to drop)";
  }
  SLUICE_ASSIGN_OR_RETURN(uint64_t all_can, comm_->AllMin(can_drop_ ? 1 : 0));
  if (can_drop_ && all_can == 0) report_.drop_caches += "; not permitted on every node";

  Status setup;
  if (rank_ == 0) {
    setup = fs_->Mkdir(run_dir_);
    if (setup.ok()) setup = fs_->Mkdir(run_dir_ + "/datafiles");
    if (setup.ok()) setup = fs_->Mkdir(run_dir_ + "/datafiles/ior-easy");
    if (setup.ok()) setup = fs_->Mkdir(run_dir_ + "/datafiles/ior-hard");
    if (setup.ok() && !opt_.ior_easy_layout.empty()) {
      setup = fs_->SetLayout(run_dir_ + "/datafiles/ior-easy", opt_.ior_easy_layout);
    }
    if (setup.ok() && !opt_.ior_hard_layout.empty()) {
      setup = fs_->SetLayout(run_dir_ + "/datafiles/ior-hard", opt_.ior_hard_layout);
    }
  }
  SLUICE_ASSIGN_OR_RETURN(uint64_t setup_failed, comm_->AllMax(setup.ok() ? 0 : 1));
  if (setup_failed) {
    return setup.ok() ? Status(Code::kIo, "rank 0 could not create the run directory")
                      : setup.Prefix("creating the run directory on " + fs_->Describe());
  }
  if (rank_ == 0) {
    std::printf("IO500 version %s (standard)\n", kVersion);
    std::printf("; target %s (%s), %s, drop caches: %s\n", report_.target.c_str(),
                report_.backend.c_str(), report_.ranks.c_str(), report_.drop_caches.c_str());
    std::fflush(stdout);
  }

  SLUICE_RETURN_IF_ERROR(IorEasyWrite());
  SLUICE_RETURN_IF_ERROR(MdtestEasyWrite());
  SLUICE_RETURN_IF_ERROR(Timestamp());
  SLUICE_RETURN_IF_ERROR(IorHardWrite());
  SLUICE_RETURN_IF_ERROR(MdtestHardWrite());
  SLUICE_RETURN_IF_ERROR(Find());
  SLUICE_RETURN_IF_ERROR(Corrupt());
  SLUICE_RETURN_IF_ERROR(IorEasyRead());
  SLUICE_RETURN_IF_ERROR(MdtestEasyStat());
  SLUICE_RETURN_IF_ERROR(IorHardRead());
  SLUICE_RETURN_IF_ERROR(MdtestHardStat());
  SLUICE_RETURN_IF_ERROR(MdtestEasyDelete());
  SLUICE_RETURN_IF_ERROR(MdtestHardRead());
  SLUICE_RETURN_IF_ERROR(MdtestHardDelete());
  if (opt_.run_rnd4k) SLUICE_RETURN_IF_ERROR(IorRnd4kEasyRead());

  SLUICE_RETURN_IF_ERROR(comm_->Barrier());
  if (rank_ == 0 && !opt_.keep_files) {
    Status st = fs_->RemoveTree(run_dir_);
    if (!st.ok()) std::fprintf(stderr, "cleanup of %s: %s\n", run_dir_.c_str(), st.ToString().c_str());
  }
  SLUICE_RETURN_IF_ERROR(comm_->Barrier());
  FinalizeReport(&report_);
  return report_;
}

}  // namespace

Result<RunReport> RunBenchmark(FileSystem* fs, Comm* comm, const Options& options,
                               const std::string& target_name) {
  Run run(fs, comm, options, target_name);
  return run.Execute();
}

}  // namespace sluice::io500
