// Progress lines for long phases, printed by rank 0 on stderr: what the phase
// is doing, how far rank 0 has got and how long is left (time to the
// stonewall for write phases, an estimate from rank 0's rate for reads).
#pragma once

#include <cstdint>
#include <string>

namespace sluice::io500 {

class Progress {
 public:
  // `enabled` is false on every rank but 0; `interval_s` <= 0 prints only
  // phase start lines.
  Progress(bool enabled, double interval_s) : enabled_(enabled), interval_s_(interval_s) {}

  // Starts a phase: prints "[phase] description". `total` is the number of
  // items rank 0 will do (0 = unknown, bounded by the stonewall),
  // `stonewall_s` the phase's stonewall (0 = none), `unit` names an item.
  void Begin(const std::string& phase, const std::string& description, uint64_t total,
             double stonewall_s, const std::string& unit);
  // Rank 0 has done `done` items; prints at most once per interval. Cheap.
  void Tick(uint64_t done) {
    if (enabled_ && interval_s_ > 0 && (done & 15) == 0) MaybePrint(done);
  }
  // The stonewall stopped new work; rank 0 now wears out up to `target`.
  void WearOut(uint64_t done, uint64_t target);
  // Prints a free-form line for the current phase.
  void Note(const std::string& text);

 private:
  void MaybePrint(uint64_t done);
  bool enabled_;
  double interval_s_;
  std::string phase_;
  std::string unit_;
  uint64_t total_ = 0;
  double stonewall_s_ = 0;
  uint64_t start_ns_ = 0;
  uint64_t next_ns_ = 0;
  uint64_t wear_target_ = 0;
};

}  // namespace sluice::io500
