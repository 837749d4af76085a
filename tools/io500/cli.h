// The sluice-io500 command line: parses options, starts the ranks (fork or
// MPI), runs the benchmark on each target and writes the results.
#pragma once

#include <string>
#include <vector>

#include "tools/io500/report.h"

namespace sluice::io500 {

// Runs the program; returns the process exit code:
// 0 the run(s) completed (a short stonewall still prints [INVALID]),
// 3 completed but a phase had I/O errors or verify failures,
// 2 bad usage, 1 the ranks could not run (a peer died, no target).
int RunCli(int argc, char** argv);

// The side-by-side table of several targets' results, with each target's
// ratio to the first one.
std::string FormatComparison(const std::vector<RunReport>& reports);

}  // namespace sluice::io500
