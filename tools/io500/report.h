// The results of a run: one PhaseResult per phase, the IO500 score, and the
// two output forms (result_summary.txt shape and JSON).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tools/io500/options.h"

namespace sluice::io500 {

enum class ScoreGroup { kNone, kBandwidth, kMetadata };

struct PhaseResult {
  std::string name;  // "ior-easy-write", ...
  ScoreGroup group = ScoreGroup::kNone;
  bool ran = false;
  double score = 0;    // GiB/s for IOR phases, kIOPS for the others
  double seconds = 0;  // phase wall time on rank 0, barrier to barrier
  uint64_t items = 0;  // bytes (IOR) or operations, summed over ranks
  double stonewall_hit_seconds = 0;  // write phases: when the stonewall stopped new work
  uint64_t items_at_stonewall = 0;   // summed over ranks
  bool valid = true;
  uint64_t errors = 0;  // ranks that hit an I/O error or a verify failure
  std::vector<std::string> problems;  // why invalid: errors, verify failures, rules
  std::string detail;                 // what was done, e.g. "96 x 2 MiB per rank"
};

struct Score {
  double bandwidth = 0;  // GiB/s, geometric mean of the IOR phases
  double metadata = 0;   // kIOPS, geometric mean of mdtest phases and find
  double total = 0;      // sqrt(bandwidth * metadata)
};

struct RunReport {
  std::string version;
  std::string target;   // name given on the command line
  std::string backend;  // FileSystem::Describe()
  std::string ranks;    // Comm::Describe()
  int nranks = 1;
  std::string start_time;  // UTC, ISO 8601
  std::string drop_caches;  // "yes" or why not
  Options options;
  std::vector<PhaseResult> phases;
  Score score;
  bool valid = true;
  std::vector<std::string> problems;  // run-level reasons for [INVALID]
};

// IO500's score: each group is the geometric mean of its phases' scores that
// are > 0 (as the official tool does; a 0 score invalidates the run
// elsewhere), 0 if none; total = sqrt(bandwidth * metadata).
Score ComputeScore(const std::vector<PhaseResult>& phases);

// The rule violations of one finished phase on its own (runtime under the
// stonewall or under 300 s for write phases, a 0 score); empty if none.
std::vector<std::string> PhaseRuleProblems(const PhaseResult& phase, int stonewall_seconds);

// Applies the validity rules to `report` (phase and run level) and fills in
// report.score. Rules: a write phase shorter than the stonewall or than 300 s,
// a configured stonewall under 300 s, any error, verify failure or 0 score.
void FinalizeReport(RunReport* report);

// The result_summary.txt text: "IO500 version ...", a [RESULT] line per
// scored phase ("[      ]" for unscored ones), then the [SCORE ] line.
std::string FormatSummary(const RunReport& report);
// Everything in the report as a JSON object.
std::string FormatJson(const RunReport& report);

}  // namespace sluice::io500
