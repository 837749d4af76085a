// Parameters of one sluice-io500 run. Defaults are IO500's standard ones;
// QuickOptions() shrinks them for CI.
#pragma once

#include <cstdint>
#include <string>

namespace sluice::io500 {

struct Options {
  // Write phases run until this many seconds, then wear out (IOR -D / mdtest -W).
  // IO500 requires 300; anything less marks the run invalid.
  int stonewall_seconds = 300;

  // ior-easy: file per process, sequential transfers (-t 2m -b 9920000m -F -e).
  uint64_t ior_easy_transfer = 2ull << 20;
  uint64_t ior_easy_block = 9920000ull << 20;  // max bytes per rank
  // ior-hard: one shared file, interleaved (-t 47008 -b 47008 -s 10000000).
  uint64_t ior_hard_transfer = 47008;
  uint64_t ior_hard_segments = 10000000;
  // mdtest-easy: empty files, a directory per rank (-n 1000000 -u -L -F -N 1).
  uint64_t mdtest_easy_files = 1000000;
  // mdtest-hard: one shared directory, 3901-byte files (-n 1000000 -w 3901 -e 3901 -F -N 1).
  uint64_t mdtest_hard_files = 1000000;
  uint64_t mdtest_hard_bytes = 3901;
  // Unscored ior-rnd4K-easy-read: random 4 KiB reads of the ior-easy files.
  bool run_rnd4k = true;
  uint64_t rnd4k_size = 4096;

  // Drop the page cache before every phase when we may (root, or a writable
  // /proc/sys/vm/drop_caches). The result says whether it happened.
  bool drop_caches = true;
  // Seconds between progress lines on rank 0 (stderr). 0 = phase start/end only.
  double progress_interval = 10;
  // Seed of the data pattern (IOR -G); 0 = derived from the start time.
  uint64_t seed = 0;
  // Keep the data directory after the run instead of deleting it.
  bool keep_files = false;
  bool quick = false;
  // Compare every byte read with what was written (IOR -R). Off only for
  // diagnostics (--no-verify, e.g. against fio); the run is then invalid.
  bool verify = true;

  // Test hook: between the write and the read phases rank 0 changes one byte
  // of the named data set ("ior-easy", "ior-hard" or "mdtest-hard"); the
  // matching read phase must then fail verification and invalidate the run.
  std::string corrupt;

  // Sluice layouts for the data directories, set by rank 0 before the first
  // phase (--layout ior-hard='chunk_size=64KiB'), as IO500 runs on other
  // parallel file systems set striping per directory. Empty: inherited.
  std::string ior_easy_layout;
  std::string ior_hard_layout;
};

// A CI-sized run: a 2 s stonewall and small caps, so it takes seconds.
inline Options QuickOptions() {
  Options o;
  o.quick = true;
  o.stonewall_seconds = 2;
  o.ior_easy_block = 64ull << 20;
  o.ior_hard_segments = 1000;
  o.mdtest_easy_files = 2000;
  o.mdtest_hard_files = 2000;
  o.progress_interval = 1;
  return o;
}

}  // namespace sluice::io500
