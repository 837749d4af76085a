#include "common/owner_watch.h"

#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <thread>

#include "common/log.h"

namespace sluice {

void WatchOwnerFromEnv(const std::string& what, std::function<void()> stop) {
  const char* env = std::getenv("SLUICE_EXIT_WITH_PID");
  if (env == nullptr || *env == 0) return;
  char* end = nullptr;
  long pid = std::strtol(env, &end, 10);
  if (*end != 0 || pid <= 1) {
    LOG_WARN(what + ": ignoring SLUICE_EXIT_WITH_PID='" + std::string(env) + "' (not a process id)");
    return;
  }
  std::thread([what, pid, stop] {
    int fd = static_cast<int>(syscall(SYS_pidfd_open, static_cast<pid_t>(pid), 0));
    if (fd >= 0) {
      pollfd p{fd, POLLIN, 0};
      while (poll(&p, 1, -1) < 0 && errno == EINTR) {
      }
      close(fd);
    } else if (errno != ESRCH) {
      // No pidfd here: look once a second.
      while (kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM) {
        std::this_thread::sleep_for(std::chrono::seconds(1));
      }
    }
    LOG_WARN(what + ": process " + std::to_string(pid) +
             " (SLUICE_EXIT_WITH_PID) has exited: stopping");
    if (stop) {
      stop();
    } else {
      kill(getpid(), SIGTERM);
    }
  }).detach();
}

}  // namespace sluice
