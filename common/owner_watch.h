// Servers and mounts started on behalf of another process (a test) can be
// tied to it: with SLUICE_EXIT_WITH_PID=<pid> in the environment, the process
// stops itself (SIGTERM to itself, so its normal shutdown runs: a server
// stops, a mount unmounts) as soon as that process has exited — also when it
// was killed with -9, as ctest does to a test that times out. `sluice cluster
// start` detaches its servers, so nothing else would reach them.
#pragma once

#include <functional>
#include <string>

namespace sluice {

// Starts the watch if SLUICE_EXIT_WITH_PID is set; `what` names this process
// in the log line. When the owner is gone, `stop` runs (default: SIGTERM to
// this process; call after SIGTERM is blocked or handled). Waits on a pidfd
// (no polling where the kernel has pidfd_open).
void WatchOwnerFromEnv(const std::string& what, std::function<void()> stop = {});

}  // namespace sluice
