// The IO500 score and the result_summary.txt format on known numbers.
#include <gtest/gtest.h>

#include <cmath>

#include "tools/io500/report.h"

namespace sluice::io500 {
namespace {

PhaseResult P(const std::string& name, ScoreGroup g, double score, double seconds) {
  PhaseResult p;
  p.name = name;
  p.group = g;
  p.score = score;
  p.seconds = seconds;
  p.ran = true;
  return p;
}

std::vector<PhaseResult> KnownPhases() {
  using G = ScoreGroup;
  return {P("ior-easy-write", G::kBandwidth, 1.0, 310), P("mdtest-easy-write", G::kMetadata, 1, 320),
          P("timestamp", G::kNone, 0, 0.001),          P("ior-hard-write", G::kBandwidth, 2.0, 305),
          P("mdtest-hard-write", G::kMetadata, 10, 301), P("find", G::kMetadata, 100, 2),
          P("ior-easy-read", G::kBandwidth, 4.0, 50),  P("mdtest-easy-stat", G::kMetadata, 1000, 3),
          P("ior-hard-read", G::kBandwidth, 8.0, 40),  P("mdtest-hard-stat", G::kMetadata, 1, 4),
          P("mdtest-easy-delete", G::kMetadata, 10, 5), P("mdtest-hard-read", G::kMetadata, 100, 6),
          P("mdtest-hard-delete", G::kMetadata, 1000, 7),
          P("ior-rnd4K-easy-read", G::kNone, 0.5, 300)};
}

TEST(Score, GeometricMeansAndTotalOnKnownNumbers) {
  Score s = ComputeScore(KnownPhases());
  // bandwidth: (1*2*4*8)^(1/4) = 64^(1/4)
  EXPECT_NEAR(s.bandwidth, std::pow(64.0, 0.25), 1e-9);
  // metadata: (1*10*100*1000*1*10*100*1000)^(1/8) = (10^12)^(1/8)
  EXPECT_NEAR(s.metadata, std::pow(1e12, 1.0 / 8), 1e-6);
  EXPECT_NEAR(s.total, std::sqrt(s.bandwidth * s.metadata), 1e-9);
  // The unscored phases do not count: changing them changes nothing.
  auto phases = KnownPhases();
  phases.back().score = 1000;
  EXPECT_NEAR(ComputeScore(phases).bandwidth, s.bandwidth, 1e-12);
}

TEST(Score, ZeroScoreIsLeftOutOfTheMeanButInvalidates) {
  RunReport r;
  r.options.stonewall_seconds = 300;
  r.phases = KnownPhases();
  r.phases[0].score = 0;  // ior-easy-write
  FinalizeReport(&r);
  EXPECT_NEAR(r.score.bandwidth, std::pow(64.0, 1.0 / 3), 1e-9);  // (2*4*8)^(1/3)
  EXPECT_FALSE(r.valid);
  EXPECT_FALSE(r.phases[0].valid);
}

TEST(Score, FullLengthRunIsValid) {
  RunReport r;
  r.options.stonewall_seconds = 300;
  r.phases = KnownPhases();
  FinalizeReport(&r);
  EXPECT_TRUE(r.valid) << (r.problems.empty() ? "" : r.problems[0]);
}

TEST(Score, ShortStonewallAndShortWritePhasesInvalidate) {
  RunReport r;
  r.options.stonewall_seconds = 30;
  r.phases = KnownPhases();
  FinalizeReport(&r);
  EXPECT_FALSE(r.valid);
  ASSERT_FALSE(r.problems.empty());
  EXPECT_NE(r.problems[0].find("stonewall is 30 s"), std::string::npos);

  RunReport r2;
  r2.options.stonewall_seconds = 300;
  r2.phases = KnownPhases();
  r2.phases[4].seconds = 299;  // mdtest-hard-write ended before the stonewall
  FinalizeReport(&r2);
  EXPECT_FALSE(r2.valid);
  EXPECT_FALSE(r2.phases[4].valid);
  EXPECT_TRUE(r2.phases[3].valid);
  // Read phases may be short.
  EXPECT_TRUE(r2.phases[6].valid);
}

TEST(Score, ErrorsInvalidate) {
  RunReport r;
  r.options.stonewall_seconds = 300;
  r.phases = KnownPhases();
  r.phases[11].valid = false;  // mdtest-hard-read, as EndPhase marks a verify failure
  r.phases[11].errors = 1;
  r.phases[11].problems.push_back("rank 0: verify failed");
  FinalizeReport(&r);
  EXPECT_FALSE(r.valid);
  ASSERT_EQ(r.problems.size(), 1u);
  EXPECT_EQ(r.problems[0], "mdtest-hard-read: rank 0: verify failed");
}

TEST(Score, SummaryHasTheOfficialShape) {
  RunReport r;
  r.version = "v";
  r.options.stonewall_seconds = 300;
  r.phases = KnownPhases();
  r.phases[3].seconds = 12.5;  // ior-hard-write too short -> [INVALID] on its line
  FinalizeReport(&r);
  std::string s = FormatSummary(r);
  EXPECT_EQ(s.substr(0, s.find('\n')), "IO500 version v (standard)");
  EXPECT_NE(s.find("\n[RESULT]       ior-easy-write        1.000000 GiB/s : time 310.000 seconds\n"),
            std::string::npos)
      << s;
  EXPECT_NE(s.find("\n[      ]            timestamp        0.000000 kIOPS : time 0.001 seconds\n"),
            std::string::npos)
      << s;
  EXPECT_NE(
      s.find("\n[RESULT]       ior-hard-write        2.000000 GiB/s : time 12.500 seconds [INVALID]\n"),
      std::string::npos)
      << s;
  EXPECT_NE(s.find("\n[RESULT]                 find      100.000000 kIOPS : time 2.000 seconds\n"),
            std::string::npos)
      << s;
  EXPECT_NE(s.find("\n[      ]  ior-rnd4K-easy-read        0.500000 GiB/s"), std::string::npos) << s;
  char score[200];
  std::snprintf(score, sizeof(score),
                "[SCORE ] Bandwidth %f GiB/s : IOPS %f kiops : TOTAL %f [INVALID]\n",
                r.score.bandwidth, r.score.metadata, r.score.total);
  EXPECT_NE(s.find(score), std::string::npos) << s;
  // Phases appear in run order, the score last.
  EXPECT_LT(s.find("ior-easy-write"), s.find("mdtest-easy-write"));
  EXPECT_LT(s.find("mdtest-hard-read"), s.find("mdtest-hard-delete"));
  EXPECT_EQ(s.rfind("[SCORE ]"), s.rfind('\n', s.size() - 2) + 1);
}

TEST(Score, JsonCarriesScoresAndValidity) {
  RunReport r;
  r.version = "v";
  r.target = "local \"x\"";
  r.options.stonewall_seconds = 300;
  r.phases = KnownPhases();
  FinalizeReport(&r);
  std::string j = FormatJson(r);
  EXPECT_NE(j.find("\"target\": \"local \\\"x\\\"\""), std::string::npos) << j;
  EXPECT_NE(j.find("\"valid\": true,\n  \"problems\": []"), std::string::npos) << j;
  EXPECT_NE(j.find("\"name\": \"ior-hard-read\", \"group\": \"bandwidth\", \"score\": 8,"),
            std::string::npos)
      << j;
}

}  // namespace
}  // namespace sluice::io500

namespace sluice::io500 {
namespace {

TEST(Score, UnverifiedReadsInvalidate) {
  RunReport r;
  r.options.stonewall_seconds = 300;
  r.options.verify = false;
  r.phases = KnownPhases();
  FinalizeReport(&r);
  EXPECT_FALSE(r.valid);
  ASSERT_EQ(r.problems.size(), 1u);
  EXPECT_NE(r.problems[0].find("not verified"), std::string::npos);
}

}  // namespace
}  // namespace sluice::io500
