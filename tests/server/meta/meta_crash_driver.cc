// Runs one cross-shard operation over the on-disk shards in <dir> and
// SIGKILLs itself right after durable step <k> of the two-phase commit
// (k = 0: never). Used by crash_test.cc.
//   meta_crash_driver <dir> <scenario> <k>
// Scenario "create_stream": <k> threads create files in the root until the
// process is killed from outside, writing "<thread> <i>\n" to stdout after
// each create is acknowledged.
#include <csignal>
#include <cstdio>
#include <unistd.h>

#include <string>
#include <thread>
#include <vector>

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
  if (scenario == "create_stream") {
    std::vector<std::thread> threads;
    for (int t = 0; t < kill_step; ++t) {
      threads.emplace_back([&cluster, t] {
        for (int i = 0;; ++i) {
          std::string name = "s" + std::to_string(t) + "." + std::to_string(i);
          auto r = cluster.ns().Create(sluice::meta::testing::Root(), kRootIno, name, 0644, true);
          if (!r.ok()) {
            std::fprintf(stderr, "create %s: %s\n", name.c_str(), r.status().ToString().c_str());
            _exit(1);
          }
          std::string line = std::to_string(t) + " " + std::to_string(i) + "\n";
          if (write(1, line.data(), line.size()) != static_cast<ssize_t>(line.size())) _exit(1);
        }
      });
    }
    for (auto& t : threads) t.join();
    return 0;
  }
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
