// sluice: the admin CLI. `sluice <command> [args]` runs `sluice-<command>`
// from the same folder (like git), so each tool is its own small program:
//   sluice cluster start|status|stop [--config FILE]
//   sluice mount MOUNTPOINT / sluice umount MOUNTPOINT
//   sluice layout PATH [LAYOUT]
//   sluice pack --dir ROOT --out DIR
//   sluice io500 ...
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

namespace {

std::string SelfDir() {
  char buf[4096];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return ".";
  buf[n] = 0;
  std::string s(buf);
  return s.substr(0, s.rfind('/'));
}

void Usage() {
  std::fprintf(stderr,
               "usage: sluice <command> [args]\n\n"
               "commands:\n"
               "  cluster start|status|stop [--config FILE]   a cluster (default: local, on loopback)\n"
               "  mount MOUNTPOINT [--config FILE]              mount Sluice with FUSE\n"
               "  umount MOUNTPOINT                             unmount it\n"
               "  layout PATH [LAYOUT] [--config FILE]          show or set a directory's chunk size and striping\n"
               "  pack --dir ROOT --out DIR                     pack a data set for the loader\n"
               "  io500 [args]                                  the IO500 harness\n");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || !std::strcmp(argv[1], "-h") || !std::strcmp(argv[1], "--help")) {
    Usage();
    return argc < 2 ? 2 : 0;
  }
  std::string cmd = argv[1];
  if (cmd.find('/') != std::string::npos) {
    std::fprintf(stderr, "sluice: '%s' is not a command\n", cmd.c_str());
    return 2;
  }
  std::string path = SelfDir() + "/sluice-" + cmd;
  if (access(path.c_str(), X_OK) != 0) {
    std::fprintf(stderr, "sluice: unknown command '%s' (no %s)\n\n", cmd.c_str(), path.c_str());
    Usage();
    return 2;
  }
  std::vector<char*> args;
  args.push_back(const_cast<char*>(path.c_str()));
  for (int i = 2; i < argc; i++) args.push_back(argv[i]);
  args.push_back(nullptr);
  execv(path.c_str(), args.data());
  std::fprintf(stderr, "sluice: cannot run %s: %s\n", path.c_str(), std::strerror(errno));
  return 1;
}
