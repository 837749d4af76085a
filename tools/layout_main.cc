// sluice layout PATH [LAYOUT] [--config FILE] [--tenant T --secret-file F]
//
// Prints the layout of PATH (a file's, or what a directory gives the files
// created in it), or sets a directory's layout to LAYOUT, e.g.
//   sluice layout /ior-hard 'chunk_size=64KiB stripe_width=4'
// PATH is a path on a Sluice mount (handled through the mount's
// user.sluice.layout attribute) or else a path inside the cluster named by
// --config (default: the local cluster), reached through libsluice.
#include <sys/xattr.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

#include "client/sluice_client.h"

namespace {

int Usage() {
  std::fprintf(stderr,
               "usage: sluice layout PATH [LAYOUT] [--config FILE] [--tenant NAME --secret-file FILE]\n"
               "  LAYOUT: 'chunk_size=SIZE stripe_width=N chains=ID,ID,...' (any of the keys)\n"
               "  PATH on a Sluice mount, or a path inside the cluster (--config, default local)\n");
  return 2;
}

// Through a mount: the virtual extended attribute.
int OnMount(const std::string& path, const std::string& layout) {
  if (!layout.empty()) {
    if (setxattr(path.c_str(), sluice::client::kLayoutXattr, layout.data(), layout.size(), 0) != 0) {
      std::fprintf(stderr, "sluice layout: cannot set the layout of %s: %s\n", path.c_str(),
                   std::strerror(errno));
      return 1;
    }
  }
  char buf[4096];
  ssize_t n = getxattr(path.c_str(), sluice::client::kLayoutXattr, buf, sizeof buf);
  if (n < 0) {
    std::fprintf(stderr, "sluice layout: cannot read the layout of %s: %s\n", path.c_str(), std::strerror(errno));
    return 1;
  }
  std::printf("%s: %.*s\n", path.c_str(), static_cast<int>(n), buf);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  sluice::client::ClientOptions o;
  std::string path, layout;
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (a == "--config") {
      o.cluster = next();
    } else if (a == "--tenant") {
      o.tenant = next();
    } else if (a == "--secret-file") {
      o.secret_file = next();
    } else if (a == "-h" || a == "--help") {
      Usage();
      return 0;
    } else if (!a.empty() && a[0] == '-') {
      std::fprintf(stderr, "sluice layout: unknown option '%s'\n", a.c_str());
      return Usage();
    } else if (path.empty()) {
      path = a;
    } else if (layout.empty()) {
      layout = a;
    } else {
      return Usage();
    }
  }
  if (path.empty()) return Usage();

  // A path this machine sees that carries the attribute is on a Sluice mount.
  if (o.cluster.empty() && getxattr(path.c_str(), sluice::client::kLayoutXattr, nullptr, 0) >= 0) {
    return OnMount(path, layout);
  }
  auto c = sluice::client::Client::Connect(o);
  if (!c.ok()) {
    std::fprintf(stderr, "sluice layout: %s\n", c.status().ToString().c_str());
    return 1;
  }
  if (!layout.empty()) {
    sluice::Status st = (*c)->SetDirLayout(path, layout);
    if (!st.ok()) {
      std::fprintf(stderr, "sluice layout: %s\n", st.ToString().c_str());
      return 1;
    }
  }
  auto l = (*c)->Layout(path);
  if (!l.ok()) {
    std::fprintf(stderr, "sluice layout: %s\n", l.status().ToString().c_str());
    return 1;
  }
  std::printf("%s: %s\n", path.c_str(), sluice::client::FormatLayout(*l).c_str());
  return 0;
}
