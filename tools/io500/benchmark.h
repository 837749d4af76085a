// One IO500 run against one target: every phase in IO500's order, with its
// parameters, on every rank.
#pragma once

#include <string>

#include "common/status.h"
#include "tools/io500/backend.h"
#include "tools/io500/comm.h"
#include "tools/io500/options.h"
#include "tools/io500/report.h"

namespace sluice::io500 {

inline constexpr const char* kVersion = "sluice-io500-0.1 (io500-isc23 phases)";

// Phase names in the order they run.
inline constexpr const char* kPhaseOrder[] = {
    "ior-easy-write",     "mdtest-easy-write", "timestamp",         "ior-hard-write",
    "mdtest-hard-write",  "find",              "ior-easy-read",     "mdtest-easy-stat",
    "ior-hard-read",      "mdtest-hard-stat",  "mdtest-easy-delete", "mdtest-hard-read",
    "mdtest-hard-delete", "ior-rnd4K-easy-read"};

// Runs the benchmark. Every rank of `comm` must call it with the same options
// and a back end on the same target. Creates "sluice-io500.<time>/" under
// the back end's root and removes it at the end unless options.keep_files.
// I/O errors and verify failures do not stop the run: they mark the phase
// (and the run) invalid and are listed in the report. An error is returned
// only when the ranks can no longer coordinate (a peer died) or the run
// directory cannot be created. The report is complete on rank 0.
Result<RunReport> RunBenchmark(FileSystem* fs, Comm* comm, const Options& options,
                               const std::string& target_name);

}  // namespace sluice::io500
