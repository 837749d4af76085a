// Runs one cross-shard operation over the on-disk shards in <dir> and
// SIGKILLs itself right after durable step <k> of the two-phase commit
// (k = 0: never). Used by crash_test.cc.
//   meta_crash_driver <dir> <scenario> <k>
#include <csignal>
#include <cstdio>
#include <unistd.h>

#include "tests/server/meta/crash_scenarios.h"

int main(int argc, char** argv) {
  using namespace sluice::meta;
  if (argc != 4) {
    std::fprintf(stderr, "usage: %s <dir> <rename_dir|rename_replace|rmdir> <kill-step>\n", argv[0]);
    return 2;
  }
  const std::string dir = argv[1], scenario = argv[2];
  const int kill_step = std::atoi(argv[3]);
  sluice::meta::testing::MetaCluster cluster(dir, sluice::meta::testing::kCrashShards, /*sync=*/true);
  cluster.coordinator().SetStepHook([kill_step](int step) {
    if (step == kill_step) kill(getpid(), SIGKILL);
  });
  sluice::Status st = sluice::meta::testing::RunCrashScenario(cluster.ns(), scenario);
  if (!st.ok()) {
    std::fprintf(stderr, "meta_crash_driver: %s failed: %s\n", scenario.c_str(), st.ToString().c_str());
    return 1;
  }
  std::printf("completed %s without being killed\n", scenario.c_str());
  return 0;
}
