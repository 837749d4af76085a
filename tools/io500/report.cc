#include "tools/io500/report.h"

#include <cmath>
#include <cstdio>
#include <sstream>

namespace sluice::io500 {
namespace {

constexpr int kMinWriteSeconds = 300;  // IO500's minimum for a valid write phase

bool IsWritePhase(const std::string& name) {
  return name == "ior-easy-write" || name == "mdtest-easy-write" || name == "ior-hard-write" ||
         name == "mdtest-hard-write";
}

std::string JsonEscape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\u%04x", c);
          out += buf;
        } else {
          out += c;
        }
    }
  }
  return out;
}

std::string Num(double v) {
  if (!std::isfinite(v)) return "null";
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.9g", v);
  return buf;
}

const char* GroupName(ScoreGroup g) {
  switch (g) {
    case ScoreGroup::kBandwidth: return "bandwidth";
    case ScoreGroup::kMetadata: return "metadata";
    default: return "none";
  }
}

}  // namespace

Score ComputeScore(const std::vector<PhaseResult>& phases) {
  auto geo = [&](ScoreGroup g) {
    double log_sum = 0;
    int n = 0;
    for (const auto& p : phases) {
      if (p.group != g || !p.ran || !(p.score > 0)) continue;
      log_sum += std::log(p.score);
      ++n;
    }
    return n == 0 ? 0.0 : std::exp(log_sum / n);
  };
  Score s;
  s.bandwidth = geo(ScoreGroup::kBandwidth);
  s.metadata = geo(ScoreGroup::kMetadata);
  s.total = std::sqrt(s.bandwidth * s.metadata);
  return s;
}

std::vector<std::string> PhaseRuleProblems(const PhaseResult& p, int stonewall_seconds) {
  std::vector<std::string> out;
  if (IsWritePhase(p.name)) {
    if (p.seconds < stonewall_seconds) {
      out.push_back("runtime " + Num(p.seconds) + " s is below the stonewall (" +
                    std::to_string(stonewall_seconds) +
                    " s): every rank finished all its work early");
    }
    if (p.seconds < kMinWriteSeconds) {
      out.push_back("runtime " + Num(p.seconds) + " s is below IO500's minimum of " +
                    std::to_string(kMinWriteSeconds) + " s for a write phase");
    }
  }
  if (p.group != ScoreGroup::kNone && !(p.score > 0)) out.push_back("score is 0");
  return out;
}

void FinalizeReport(RunReport* r) {
  if (r->options.stonewall_seconds < kMinWriteSeconds) {
    r->problems.push_back("stonewall is " + std::to_string(r->options.stonewall_seconds) +
                          " s; IO500 requires " + std::to_string(kMinWriteSeconds) + " s");
  }
  if (!r->options.verify) {
    r->problems.push_back("reads were not verified (--no-verify); IO500 verifies (ior -R)");
  }
  for (auto& p : r->phases) {
    if (!p.ran) continue;
    for (auto& prob : PhaseRuleProblems(p, r->options.stonewall_seconds)) {
      p.problems.push_back(prob);
    }
    if (!p.problems.empty()) p.valid = false;
    if (!p.valid) {
      r->problems.push_back(p.name + ": " +
                            (p.problems.empty() ? std::string("errors on some rank")
                                                : p.problems.front()));
    }
  }
  r->valid = r->problems.empty();
  r->score = ComputeScore(r->phases);
}

std::string FormatSummary(const RunReport& r) {
  std::string out = "IO500 version " + r.version + " (standard)\n";
  char line[256];
  for (const auto& p : r.phases) {
    if (!p.ran) continue;
    bool bw = p.name.rfind("ior", 0) == 0;
    std::snprintf(line, sizeof(line), "%s %20s %15f %s : time %.3f seconds%s\n",
                  p.group == ScoreGroup::kNone ? "[      ]" : "[RESULT]", p.name.c_str(),
                  p.score, bw ? "GiB/s" : "kIOPS", p.seconds, p.valid ? "" : " [INVALID]");
    out += line;
  }
  std::snprintf(line, sizeof(line), "[SCORE ] Bandwidth %f GiB/s : IOPS %f kiops : TOTAL %f%s\n",
                r.score.bandwidth, r.score.metadata, r.score.total, r.valid ? "" : " [INVALID]");
  out += line;
  return out;
}

std::string FormatJson(const RunReport& r) {
  std::ostringstream o;
  const Options& op = r.options;
  o << "{\n";
  o << "  \"version\": \"" << JsonEscape(r.version) << "\",\n";
  o << "  \"target\": \"" << JsonEscape(r.target) << "\",\n";
  o << "  \"backend\": \"" << JsonEscape(r.backend) << "\",\n";
  o << "  \"ranks\": " << r.nranks << ",\n";
  o << "  \"ranks_description\": \"" << JsonEscape(r.ranks) << "\",\n";
  o << "  \"start_time\": \"" << JsonEscape(r.start_time) << "\",\n";
  o << "  \"drop_caches\": \"" << JsonEscape(r.drop_caches) << "\",\n";
  o << "  \"options\": {\"quick\": " << (op.quick ? "true" : "false")
    << ", \"stonewall_seconds\": " << op.stonewall_seconds
    << ", \"ior_easy_transfer\": " << op.ior_easy_transfer
    << ", \"ior_easy_block\": " << op.ior_easy_block
    << ", \"ior_hard_transfer\": " << op.ior_hard_transfer
    << ", \"ior_hard_segments\": " << op.ior_hard_segments
    << ", \"mdtest_easy_files\": " << op.mdtest_easy_files
    << ", \"mdtest_hard_files\": " << op.mdtest_hard_files
    << ", \"mdtest_hard_bytes\": " << op.mdtest_hard_bytes << ", \"seed\": " << op.seed
    << ", \"verify\": " << (op.verify ? "true" : "false")
    << ", \"corrupt\": \"" << JsonEscape(op.corrupt) << "\"},\n";
  o << "  \"phases\": [\n";
  bool first = true;
  for (const auto& p : r.phases) {
    if (!p.ran) continue;
    if (!first) o << ",\n";
    first = false;
    o << "    {\"name\": \"" << p.name << "\", \"group\": \"" << GroupName(p.group)
      << "\", \"score\": " << Num(p.score) << ", \"unit\": \""
      << (p.name.rfind("ior", 0) == 0 ? "GiB/s" : "kIOPS") << "\", \"seconds\": " << Num(p.seconds)
      << ", \"items\": " << p.items << ", \"stonewall_hit_seconds\": "
      << Num(p.stonewall_hit_seconds) << ", \"items_at_stonewall\": " << p.items_at_stonewall
      << ", \"valid\": " << (p.valid ? "true" : "false") << ", \"errors\": " << p.errors
      << ", \"detail\": \""
      << JsonEscape(p.detail) << "\", \"problems\": [";
    for (size_t i = 0; i < p.problems.size(); ++i) {
      o << (i ? ", " : "") << "\"" << JsonEscape(p.problems[i]) << "\"";
    }
    o << "]}";
  }
  o << "\n  ],\n";
  o << "  \"score\": {\"bandwidth_GiBps\": " << Num(r.score.bandwidth)
    << ", \"metadata_kIOPS\": " << Num(r.score.metadata) << ", \"total\": " << Num(r.score.total)
    << "},\n";
  o << "  \"valid\": " << (r.valid ? "true" : "false") << ",\n";
  o << "  \"problems\": [";
  for (size_t i = 0; i < r.problems.size(); ++i) {
    o << (i ? ", " : "") << "\"" << JsonEscape(r.problems[i]) << "\"";
  }
  o << "]\n}\n";
  return o.str();
}

}  // namespace sluice::io500
