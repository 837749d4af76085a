// The cluster config: one TOML file describes a whole cluster, and the same
// binaries run on every host from it (each server picks its own entry by id).
//
//   [cluster]  name, provider, replication, chunk_size, stripe_width,
//              lease_ms, heartbeat_ms, data_root
//   [mgmtd]    host, port, dir
//   [[meta]]   id, host, port, dir
//   [[data]]   id, host, port, targets = ["dir", ...]
//   [[chain]]  targets = [target ids]        (optional; built automatically)
//   [[tenant]] name, secret_file             (optional; see common/auth.h)
//   [cluster]  secret_file: the servers' own secret, required with tenants
//
// Target ids are data-server id * 100 + position (1-based) in `targets`.
// Relative directories are under data_root; a relative data_root is relative
// to the config file. Errors name the file, the line, the field and the fix.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"

namespace sluice {

struct MgmtdConfig {
  std::string host = "127.0.0.1";
  uint16_t port = 7000;
  std::string dir;
};

struct MetaServerConfig {
  uint32_t id = 0;
  std::string host;
  uint16_t port = 0;
  std::string dir;
  uint32_t shard = 0;  // position among [[meta]] entries
};

struct DataServerConfig {
  uint32_t id = 0;
  std::string host;
  uint16_t port = 0;
  std::vector<std::string> targets;  // directories
  std::vector<uint32_t> target_ids;
};

struct ChainConfig {
  uint32_t id = 0;
  std::vector<uint32_t> targets;
};

struct TenantConfig {
  std::string name;
  std::string secret_file;  // absolute (relative ones are resolved against the config's folder)
};

struct ClusterConfig {
  std::string path;  // the file it came from
  std::string name = "sluice";
  std::string provider = "tcp";
  uint32_t replication = 2;
  uint64_t chunk_size = 1 << 20;
  uint32_t stripe_width = 4;
  uint32_t lease_ms = 3000;
  uint32_t heartbeat_ms = 500;
  std::string data_root;
  MgmtdConfig mgmtd;
  std::vector<MetaServerConfig> meta;
  std::vector<DataServerConfig> data;
  std::vector<ChainConfig> chains;  // explicit or built
  // Tenants and the cluster's own secret file (servers among themselves).
  // No tenants: an open cluster, every caller accepted.
  std::vector<TenantConfig> tenants;
  std::string secret_file;
  const TenantConfig* FindTenant(const std::string& name) const;

  const MetaServerConfig* FindMeta(uint32_t id) const;
  const DataServerConfig* FindData(uint32_t id) const;
  // The data server owning a target id, or nullptr.
  const DataServerConfig* DataOfTarget(uint32_t target_id) const;
};

// Parses and validates a config file (syntax, keys, types, ranges, chains).
Result<ClusterConfig> LoadClusterConfig(const std::string& path);
// Same, from text (`path` only names it in errors).
Result<ClusterConfig> ParseClusterConfig(const std::string& text, const std::string& path);

// Checks what can only be checked on the host that runs a server: that its
// directory can be created and written. `what` names the field, e.g. "[[data]] id=3 targets[1]".
Status CheckWritableDir(const std::string& dir, const std::string& config_path, const std::string& what);
// Checks that host:port can be bound for TCP right now.
Status CheckPortFree(const std::string& host, uint16_t port, const std::string& config_path,
                     const std::string& what);

// The chains built for targets on distinct servers: one chain per target,
// each taking the next `replication` targets of distinct servers round-robin.
Result<std::vector<ChainConfig>> BuildChains(const ClusterConfig& cfg);

// Parses "1MiB", "64KiB", "4M", "1048576" into bytes.
Result<uint64_t> ParseSize(const std::string& s);

}  // namespace sluice
