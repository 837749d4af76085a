#include "tools/io500/progress.h"

#include <algorithm>
#include <cstdio>

#include "common/clock.h"

namespace sluice::io500 {

void Progress::Begin(const std::string& phase, const std::string& description, uint64_t total,
                     double stonewall_s, const std::string& unit) {
  phase_ = phase;
  unit_ = unit;
  total_ = total;
  stonewall_s_ = stonewall_s;
  wear_target_ = 0;
  start_ns_ = NowNanos();
  next_ns_ = start_ns_ + static_cast<uint64_t>(interval_s_ * 1e9);
  if (!enabled_) return;
  std::fprintf(stderr, "[%s] %s\n", phase.c_str(), description.c_str());
}

void Progress::WearOut(uint64_t done, uint64_t target) {
  wear_target_ = target;
  if (!enabled_) return;
  double el = (NowNanos() - start_ns_) / 1e9;
  if (target > done) {
    std::fprintf(stderr, "[%s] %.0f s: stonewall reached, rank 0 at %llu %s; wear-out to %llu\n",
                 phase_.c_str(), el, static_cast<unsigned long long>(done), unit_.c_str(),
                 static_cast<unsigned long long>(target));
  } else {
    std::fprintf(stderr, "[%s] %.0f s: stonewall reached, rank 0 at %llu %s (the most of any rank)\n",
                 phase_.c_str(), el, static_cast<unsigned long long>(done), unit_.c_str());
  }
}

void Progress::Note(const std::string& text) {
  if (enabled_) std::fprintf(stderr, "[%s] %s\n", phase_.c_str(), text.c_str());
}

void Progress::MaybePrint(uint64_t done) {
  uint64_t now = NowNanos();
  if (now < next_ns_) return;
  next_ns_ = now + static_cast<uint64_t>(interval_s_ * 1e9);
  double el = (now - start_ns_) / 1e9;
  auto d = static_cast<unsigned long long>(done);
  if (wear_target_ > 0) {
    double rate = done / el;
    double left = rate > 0 ? (wear_target_ - std::min(done, wear_target_)) / rate : 0;
    std::fprintf(stderr, "[%s] %.0f s: wear-out, rank 0 at %llu/%llu %s, ~%.0f s left\n",
                 phase_.c_str(), el, d, static_cast<unsigned long long>(wear_target_),
                 unit_.c_str(), left);
  } else if (stonewall_s_ > 0 && total_ == 0) {
    std::fprintf(stderr, "[%s] %.0f s: rank 0 at %llu %s, stonewall in %.0f s\n", phase_.c_str(),
                 el, d, unit_.c_str(), stonewall_s_ > el ? stonewall_s_ - el : 0.0);
  } else if (total_ > 0) {
    double rate = done / el;
    double left = rate > 0 ? (total_ - std::min<uint64_t>(done, total_)) / rate : 0;
    if (stonewall_s_ > 0 && stonewall_s_ - el < left) left = stonewall_s_ > el ? stonewall_s_ - el : 0;
    std::fprintf(stderr, "[%s] %.0f s: rank 0 at %llu/%llu %s (%.0f%%), ~%.0f s left\n",
                 phase_.c_str(), el, d, static_cast<unsigned long long>(total_), unit_.c_str(),
                 100.0 * done / total_, left);
  } else {
    std::fprintf(stderr, "[%s] %.0f s: rank 0 at %llu %s\n", phase_.c_str(), el, d, unit_.c_str());
  }
}

}  // namespace sluice::io500
