// sluice-data-scrub --config FILE (--target T | --all)
// Asks the data server(s) holding the targets to read every stored chunk
// version and check it against its CRC32C (DataService/Scrub). Prints one line
// per bad chunk; exits 0 when every target is clean, 1 when a chunk is bad, 2
// on a usage or connection error.
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "common/auth.h"
#include "common/config.h"
#include "common/data_client.h"

using namespace sluice;

int main(int argc, char** argv) {
  std::string config_path;
  std::vector<uint32_t> targets;
  bool all = false;
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    if (a == "--config" && i + 1 < argc) {
      config_path = argv[++i];
    } else if (a == "--target" && i + 1 < argc) {
      targets.push_back(static_cast<uint32_t>(std::strtoul(argv[++i], nullptr, 10)));
    } else if (a == "--all") {
      all = true;
    } else {
      config_path.clear();
      break;
    }
  }
  if (config_path.empty() || (targets.empty() && !all)) {
    std::fprintf(stderr, "usage: sluice-data-scrub --config FILE (--target T ... | --all)\n");
    return 2;
  }
  auto cfg = LoadClusterConfig(config_path);
  if (!cfg.ok()) {
    std::fprintf(stderr, "sluice-data-scrub: %s\n", cfg.status().message().c_str());
    return 2;
  }
  if (all) {
    for (auto& d : cfg->data) targets.insert(targets.end(), d.target_ids.begin(), d.target_ids.end());
  }
  // An operator's tool: it speaks as the cluster's servers do.
  auto own = auth::ClusterCredential(*cfg);
  if (!own.ok()) {
    std::fprintf(stderr, "sluice-data-scrub: %s\n", own.status().message().c_str());
    return 2;
  }
  DataClientOptions o;
  o.credential = *own;
  o.provider = cfg->provider;
  o.mgmtd_host = cfg->mgmtd.host;
  o.mgmtd_port = cfg->mgmtd.port;
  auto client = DataClient::Create(o);
  if (!client.ok()) {
    std::fprintf(stderr, "sluice-data-scrub: %s\n", client.status().ToString().c_str());
    return 2;
  }
  int rc = 0;
  for (uint32_t t : targets) {
    auto r = (*client)->Scrub(t);
    if (!r.ok()) {
      std::fprintf(stderr, "sluice-data-scrub: target %u: %s (is its data server running? mgmtd at %s:%u)\n", t,
                   r.status().ToString().c_str(), cfg->mgmtd.host.c_str(), cfg->mgmtd.port);
      rc = 2;
      continue;
    }
    std::printf("target %u: %llu chunk versions, %llu bytes checked, %d bad\n", t,
                static_cast<unsigned long long>(r->chunks_checked()),
                static_cast<unsigned long long>(r->bytes_checked()), r->bad_size());
    for (auto& b : r->bad()) {
      std::printf("  BAD target %u chunk %llu:%llu v%llu: %s\n", t, static_cast<unsigned long long>(b.chunk().inode()),
                  static_cast<unsigned long long>(b.chunk().index()), static_cast<unsigned long long>(b.version()),
                  b.message().c_str());
    }
    if (r->bad_size() > 0 && rc == 0) rc = 1;
  }
  return rc;
}
