// sluice-mount, sluice-umount and mount.fuse.sluice (one source, three programs).
//
//   sluice mount MOUNTPOINT [--config FILE] [sluice-fuse options]
//       mounts (default: the local cluster, $SLUICE_HOME/local/cluster.toml)
//       and returns once the mount is live.
//   sluice umount MOUNTPOINT
//       unmounts (fusermount3 -u); the sluice-fuse process then exits.
//   mount.fuse.sluice SOURCE MOUNTPOINT [-o opts]
//       the helper mount(8) runs for `mount -t fuse.sluice` and fstab:
//         /etc/cluster.toml  /mnt/sluice  fuse.sluice  defaults,_netdev  0 0
//       SOURCE is a config file, or "sluice"/"local" for the local cluster.
//       Options: config=FILE, tenant=NAME, secret_file=FILE, entry_timeout=S, attr_timeout=S,
//       writeback_cache, allow_other; mount(8)'s generic ones are ignored.
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#ifndef SLUICE_MOUNT_TOOL
#define SLUICE_MOUNT_TOOL 1  // 1 sluice-mount, 2 sluice-umount, 3 mount.fuse.sluice
#endif

namespace {

std::string SelfDir() {
  char buf[4096];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return ".";
  buf[n] = 0;
  std::string s(buf);
  return s.substr(0, s.rfind('/'));
}

int Exec(std::vector<std::string> args) {
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = fork();
  if (pid < 0) {
    std::perror("fork");
    return 1;
  }
  if (pid == 0) {
    execvp(argv[0], argv.data());
    std::fprintf(stderr, "cannot run %s: %s\n", argv[0], std::strerror(errno));
    _exit(127);
  }
  int st = 0;
  while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(st) ? WEXITSTATUS(st) : 1;
}

std::string FusePath() {
  std::string p = SelfDir() + "/sluice-fuse";
  if (access(p.c_str(), X_OK) == 0) return p;
  return "sluice-fuse";  // from PATH
}

int Mount(int argc, char** argv) {
  if (argc < 2 || argv[1][0] == '-') {
    std::fprintf(stderr,
                 "usage: sluice mount MOUNTPOINT [--config FILE] [--entry-timeout S] [--attr-timeout S]\n"
                 "                    [--writeback-cache] [--allow-other] [--log FILE]\n"
                 "Mounts Sluice (default: the local cluster started by `sluice cluster start`).\n");
    return 2;
  }
  struct stat st;
  if (stat(argv[1], &st) != 0 || !S_ISDIR(st.st_mode)) {
    std::fprintf(stderr, "sluice mount: %s is not a directory: create it first (mkdir -p %s)\n", argv[1], argv[1]);
    return 1;
  }
  std::vector<std::string> args = {FusePath()};
  for (int i = 1; i < argc; ++i) args.push_back(argv[i]);
  return Exec(args);
}

int Umount(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: sluice umount MOUNTPOINT\n");
    return 2;
  }
  char* real = realpath(argv[1], nullptr);
  std::string mp = real ? real : argv[1];
  std::free(real);
  std::ifstream mounts("/proc/mounts");
  std::string line;
  bool mounted = false;
  while (std::getline(mounts, line)) {
    std::istringstream ls(line);
    std::string src, dir;
    ls >> src >> dir;
    if (dir == mp) mounted = true;
  }
  if (!mounted) {
    std::fprintf(stderr, "sluice umount: nothing is mounted on %s\n", mp.c_str());
    return 1;
  }
  int rc = Exec({"fusermount3", "-u", mp});
  if (rc != 0) {
    std::fprintf(stderr, "sluice umount: could not unmount %s (busy? close files under it, or use `fusermount3 -uz %s`)\n",
                 argv[1], argv[1]);
  }
  return rc;
}

int MountHelper(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: mount.fuse.sluice SOURCE MOUNTPOINT [-o opts]\n");
    return 2;
  }
  std::string source = argv[1], mountpoint = argv[2];
  std::vector<std::string> args = {FusePath(), mountpoint};
  if (source != "sluice" && source != "local" && source != "none") args.insert(args.end(), {"--config", source});
  std::string passthrough;
  for (int i = 3; i < argc; ++i) {
    if (std::strcmp(argv[i], "-o") != 0 || i + 1 >= argc) continue;
    std::stringstream ss(argv[++i]);
    std::string opt;
    while (std::getline(ss, opt, ',')) {
      std::string k = opt.substr(0, opt.find('=')), v = opt.find('=') == std::string::npos ? "" : opt.substr(opt.find('=') + 1);
      if (k == "config") {
        args.insert(args.end(), {"--config", v});
      } else if (k == "tenant") {
        args.insert(args.end(), {"--tenant", v});
      } else if (k == "secret_file") {
        args.insert(args.end(), {"--secret-file", v});
      } else if (k == "entry_timeout") {
        args.insert(args.end(), {"--entry-timeout", v});
      } else if (k == "attr_timeout") {
        args.insert(args.end(), {"--attr-timeout", v});
      } else if (k == "writeback_cache") {
        args.push_back("--writeback-cache");
      } else if (k == "allow_other") {
        args.push_back("--allow-other");
      } else if (k == "log") {
        args.insert(args.end(), {"--log", v});
      } else if (k == "ro") {
        passthrough += (passthrough.empty() ? "" : ",") + opt;
      }
      // rw, defaults, _netdev, noauto, user, nofail, dev, suid, exec...: mount(8)'s business.
    }
  }
  if (!passthrough.empty()) args.insert(args.end(), {"-o", passthrough});
  return Exec(args);
}

}  // namespace

int main(int argc, char** argv) {
  constexpr int kTool = SLUICE_MOUNT_TOOL;
  if (kTool == 1) return Mount(argc, argv);
  if (kTool == 2) return Umount(argc, argv);
  return MountHelper(argc, argv);
}
