#include "common/config.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <map>
#include <set>
#include <sstream>
#include <toml++/toml.h>

namespace sluice {
namespace fs = std::filesystem;
namespace {

std::string Where(const std::string& path, const toml::source_region& r) {
  if (r.begin.line == 0) return path;
  return path + ":" + std::to_string(r.begin.line);
}

Status Bad(const std::string& path, const toml::node* n, const std::string& msg) {
  return Status(Code::kInvalid, (n ? Where(path, n->source()) : path) + ": " + msg);
}

Status CheckKeys(const std::string& path, const toml::table& t, const std::string& section,
                 const std::set<std::string>& known) {
  for (auto&& [k, v] : t) {
    std::string key(k.str());
    if (!known.count(key)) {
      std::string list;
      for (auto& s : known) list += (list.empty() ? "" : ", ") + s;
      return Bad(path, &v, "unknown key '" + key + "' in " + section + " (known keys: " + list +
                               "); fix the spelling or remove it");
    }
  }
  return Status::Ok();
}

template <typename T>
Status GetInt(const std::string& path, const toml::table& t, const std::string& section,
              const std::string& key, T* out, int64_t lo, int64_t hi) {
  const toml::node* n = t.get(key);
  if (!n) return Status::Ok();
  auto v = n->value<int64_t>();
  if (!n->is_integer() || !v) {
    return Bad(path, n, section + "." + key + " must be an integer, got " +
                            std::string(toml::impl::node_type_friendly_names[static_cast<int>(n->type())]));
  }
  if (*v < lo || *v > hi) {
    return Bad(path, n, section + "." + key + " = " + std::to_string(*v) + " is out of range [" +
                            std::to_string(lo) + ", " + std::to_string(hi) + "]");
  }
  *out = static_cast<T>(*v);
  return Status::Ok();
}

Status GetString(const std::string& path, const toml::table& t, const std::string& section,
                 const std::string& key, std::string* out) {
  const toml::node* n = t.get(key);
  if (!n) return Status::Ok();
  if (!n->is_string()) {
    return Bad(path, n, section + "." + key + " must be a string, got " +
                            std::string(toml::impl::node_type_friendly_names[static_cast<int>(n->type())]));
  }
  *out = *n->value<std::string>();
  return Status::Ok();
}

Status GetSize(const std::string& path, const toml::table& t, const std::string& section,
               const std::string& key, uint64_t* out) {
  const toml::node* n = t.get(key);
  if (!n) return Status::Ok();
  if (n->is_integer()) {
    *out = static_cast<uint64_t>(*n->value<int64_t>());
    return Status::Ok();
  }
  if (n->is_string()) {
    auto r = ParseSize(*n->value<std::string>());
    if (!r.ok()) return Bad(path, n, section + "." + key + ": " + r.status().message());
    *out = *r;
    return Status::Ok();
  }
  return Bad(path, n, section + "." + key + " must be a size such as 1048576 or \"1MiB\"");
}

std::string Resolve(const std::string& base, const std::string& p) {
  if (p.empty()) return p;
  fs::path q(p);
  return q.is_absolute() ? p : (fs::path(base) / q).lexically_normal().string();
}

bool IsLoopback(const std::string& host) {
  return host == "localhost" || host.rfind("127.", 0) == 0 || host == "::1";
}

}  // namespace

Result<uint64_t> ParseSize(const std::string& s) {
  if (s.empty()) return Status(Code::kInvalid, "empty size");
  size_t i = 0;
  while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) i++;
  if (i == 0) return Status(Code::kInvalid, "size '" + s + "' does not start with a number");
  uint64_t v = std::stoull(s.substr(0, i));
  std::string unit = s.substr(i);
  static const std::map<std::string, uint64_t> kUnits = {
      {"", 1}, {"B", 1}, {"K", 1024}, {"KiB", 1024}, {"KB", 1024}, {"M", 1 << 20}, {"MiB", 1 << 20},
      {"MB", 1 << 20}, {"G", 1ull << 30}, {"GiB", 1ull << 30}, {"GB", 1ull << 30}};
  auto it = kUnits.find(unit);
  if (it == kUnits.end()) {
    return Status(Code::kInvalid, "unknown unit '" + unit + "' in size '" + s + "' (use KiB, MiB, GiB)");
  }
  return v * it->second;
}

const MetaServerConfig* ClusterConfig::FindMeta(uint32_t id) const {
  for (auto& m : meta) {
    if (m.id == id) return &m;
  }
  return nullptr;
}

const DataServerConfig* ClusterConfig::FindData(uint32_t id) const {
  for (auto& d : data) {
    if (d.id == id) return &d;
  }
  return nullptr;
}

const TenantConfig* ClusterConfig::FindTenant(const std::string& name) const {
  for (auto& t : tenants) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

const DataServerConfig* ClusterConfig::DataOfTarget(uint32_t target_id) const {
  return FindData(target_id / 100);
}

Result<std::vector<ChainConfig>> BuildChains(const ClusterConfig& cfg) {
  struct T {
    uint32_t id, server;
  };
  std::vector<T> all;
  // Interleave servers so consecutive targets sit on different servers.
  size_t most = 0;
  for (auto& d : cfg.data) most = std::max(most, d.target_ids.size());
  for (size_t i = 0; i < most; i++) {
    for (auto& d : cfg.data) {
      if (i < d.target_ids.size()) all.push_back({d.target_ids[i], d.id});
    }
  }
  if (cfg.data.size() < cfg.replication) {
    return Status(Code::kInvalid,
                  cfg.path + ": replication " + std::to_string(cfg.replication) + " needs at least " +
                      std::to_string(cfg.replication) + " [[data]] servers, the file has " +
                      std::to_string(cfg.data.size()) + "; add servers or lower cluster.replication");
  }
  // Replicas must not share a fate: distinct servers, and distinct hosts
  // unless the whole cluster runs on this machine's loopback.
  auto host_key = [&](uint32_t server) {
    const DataServerConfig* d = cfg.FindData(server);
    return IsLoopback(d->host) ? d->host + "#" + std::to_string(server) : d->host;
  };
  std::set<std::string> hosts;
  for (auto& d : cfg.data) hosts.insert(host_key(d.id));
  if (hosts.size() < cfg.replication) {
    return Status(Code::kInvalid, cfg.path + ": replication " + std::to_string(cfg.replication) + " needs [[data]] servers on " +
                                      std::to_string(cfg.replication) + " different hosts, the file has " +
                                      std::to_string(hosts.size()) + "; add hosts or lower cluster.replication");
  }
  std::vector<ChainConfig> chains;
  for (size_t i = 0; i < all.size(); i++) {
    ChainConfig c;
    c.id = static_cast<uint32_t>(i + 1);
    std::set<std::string> used;
    for (size_t k = 0; k < all.size() && c.targets.size() < cfg.replication; k++) {
      const T& t = all[(i + k) % all.size()];
      if (used.insert(host_key(t.server)).second) c.targets.push_back(t.id);
    }
    chains.push_back(c);
  }
  return chains;
}

Result<ClusterConfig> ParseClusterConfig(const std::string& text, const std::string& path) {
  toml::table root;
  try {
    root = toml::parse(text, path);
  } catch (const toml::parse_error& e) {
    std::ostringstream os;
    os << path << ":" << e.source().begin.line << ":" << e.source().begin.column << ": "
       << e.description();
    return Status(Code::kInvalid, os.str());
  }
  ClusterConfig cfg;
  cfg.path = path;
  SLUICE_RETURN_IF_ERROR(CheckKeys(path, root, "the file", {"cluster", "mgmtd", "meta", "data", "chain", "tenant"}));
  std::string base = fs::path(path).parent_path().string();
  if (base.empty()) base = ".";
  cfg.data_root = base;

  if (auto* c = root.get("cluster")) {
    if (!c->is_table()) return Bad(path, c, "[cluster] must be a table");
    const toml::table& t = *c->as_table();
    SLUICE_RETURN_IF_ERROR(CheckKeys(path, t, "[cluster]",
                                     {"name", "provider", "replication", "chunk_size", "stripe_width",
                                      "lease_ms", "heartbeat_ms", "data_root", "secret_file"}));
    SLUICE_RETURN_IF_ERROR(GetString(path, t, "cluster", "name", &cfg.name));
    SLUICE_RETURN_IF_ERROR(GetString(path, t, "cluster", "provider", &cfg.provider));
    SLUICE_RETURN_IF_ERROR(GetInt(path, t, "cluster", "replication", &cfg.replication, 1, 3));
    SLUICE_RETURN_IF_ERROR(GetSize(path, t, "cluster", "chunk_size", &cfg.chunk_size));
    SLUICE_RETURN_IF_ERROR(GetInt(path, t, "cluster", "stripe_width", &cfg.stripe_width, 1, 1024));
    SLUICE_RETURN_IF_ERROR(GetInt(path, t, "cluster", "lease_ms", &cfg.lease_ms, 100, 600000));
    SLUICE_RETURN_IF_ERROR(GetInt(path, t, "cluster", "heartbeat_ms", &cfg.heartbeat_ms, 20, 60000));
    std::string dr;
    SLUICE_RETURN_IF_ERROR(GetString(path, t, "cluster", "data_root", &dr));
    if (!dr.empty()) cfg.data_root = Resolve(base, dr);
    SLUICE_RETURN_IF_ERROR(GetString(path, t, "cluster", "secret_file", &cfg.secret_file));
    if (!cfg.secret_file.empty()) cfg.secret_file = Resolve(base, cfg.secret_file);
    const std::set<std::string> provs = {"tcp", "tcp;ofi_rxm", "shm", "verbs;ofi_rxm", "net"};
    if (!provs.count(cfg.provider)) {
      return Bad(path, t.get("provider"),
                 "cluster.provider '" + cfg.provider + "' is not one of tcp, tcp;ofi_rxm, shm, verbs;ofi_rxm");
    }
    if (cfg.chunk_size < (64u << 10) || cfg.chunk_size > (64u << 20) ||
        (cfg.chunk_size & (cfg.chunk_size - 1))) {
      return Bad(path, t.get("chunk_size"),
                 "cluster.chunk_size must be a power of two from 64KiB to 64MiB");
    }
    if (cfg.heartbeat_ms * 2 > cfg.lease_ms) {
      return Bad(path, t.get("heartbeat_ms"),
                 "cluster.heartbeat_ms must be at most half of lease_ms, or servers lose their lease");
    }
  }
  if (auto* m = root.get("mgmtd")) {
    if (!m->is_table()) return Bad(path, m, "[mgmtd] must be a table");
    const toml::table& t = *m->as_table();
    SLUICE_RETURN_IF_ERROR(CheckKeys(path, t, "[mgmtd]", {"host", "port", "dir"}));
    SLUICE_RETURN_IF_ERROR(GetString(path, t, "mgmtd", "host", &cfg.mgmtd.host));
    SLUICE_RETURN_IF_ERROR(GetInt(path, t, "mgmtd", "port", &cfg.mgmtd.port, 1, 65535));
    SLUICE_RETURN_IF_ERROR(GetString(path, t, "mgmtd", "dir", &cfg.mgmtd.dir));
  }
  if (cfg.mgmtd.dir.empty()) cfg.mgmtd.dir = "mgmtd";
  cfg.mgmtd.dir = Resolve(cfg.data_root, cfg.mgmtd.dir);

  std::set<std::pair<std::string, uint16_t>> endpoints = {{cfg.mgmtd.host, cfg.mgmtd.port}};
  auto claim = [&](const std::string& host, uint16_t port, const toml::node* n,
                   const std::string& what) -> Status {
    if (!endpoints.insert({host, port}).second) {
      return Bad(path, n, what + " uses " + host + ":" + std::to_string(port) +
                              ", which another server in this file already uses; give it its own port");
    }
    return Status::Ok();
  };

  if (auto* ma = root.get("meta")) {
    if (!ma->is_array_of_tables()) return Bad(path, ma, "meta must be an array of tables: [[meta]]");
    for (auto& e : *ma->as_array()) {
      const toml::table& t = *e.as_table();
      SLUICE_RETURN_IF_ERROR(CheckKeys(path, t, "[[meta]]", {"id", "host", "port", "dir"}));
      MetaServerConfig mc;
      mc.host = cfg.mgmtd.host;
      SLUICE_RETURN_IF_ERROR(GetInt(path, t, "meta", "id", &mc.id, 1, 4095));
      SLUICE_RETURN_IF_ERROR(GetString(path, t, "meta", "host", &mc.host));
      SLUICE_RETURN_IF_ERROR(GetInt(path, t, "meta", "port", &mc.port, 1, 65535));
      SLUICE_RETURN_IF_ERROR(GetString(path, t, "meta", "dir", &mc.dir));
      if (!t.get("id") || !t.get("port")) return Bad(path, &e, "[[meta]] needs id and port");
      if (cfg.FindMeta(mc.id)) return Bad(path, &e, "[[meta]] id " + std::to_string(mc.id) + " appears twice");
      SLUICE_RETURN_IF_ERROR(claim(mc.host, mc.port, t.get("port"), "[[meta]] id=" + std::to_string(mc.id)));
      if (mc.dir.empty()) mc.dir = "meta" + std::to_string(mc.id);
      mc.dir = Resolve(cfg.data_root, mc.dir);
      mc.shard = static_cast<uint32_t>(cfg.meta.size());
      cfg.meta.push_back(mc);
    }
  }
  if (auto* da = root.get("data")) {
    if (!da->is_array_of_tables()) return Bad(path, da, "data must be an array of tables: [[data]]");
    for (auto& e : *da->as_array()) {
      const toml::table& t = *e.as_table();
      SLUICE_RETURN_IF_ERROR(CheckKeys(path, t, "[[data]]", {"id", "host", "port", "targets"}));
      DataServerConfig dc;
      dc.host = cfg.mgmtd.host;
      SLUICE_RETURN_IF_ERROR(GetInt(path, t, "data", "id", &dc.id, 1, 40000));
      SLUICE_RETURN_IF_ERROR(GetString(path, t, "data", "host", &dc.host));
      SLUICE_RETURN_IF_ERROR(GetInt(path, t, "data", "port", &dc.port, 1, 65535));
      if (!t.get("id") || !t.get("port")) return Bad(path, &e, "[[data]] needs id and port");
      if (cfg.FindData(dc.id)) return Bad(path, &e, "[[data]] id " + std::to_string(dc.id) + " appears twice");
      SLUICE_RETURN_IF_ERROR(claim(dc.host, dc.port, t.get("port"), "[[data]] id=" + std::to_string(dc.id)));
      if (auto* tg = t.get("targets")) {
        if (!tg->is_array()) return Bad(path, tg, "data.targets must be an array of directories");
        for (auto& d : *tg->as_array()) {
          if (!d.is_string()) return Bad(path, &d, "data.targets entries must be strings (directories)");
          dc.targets.push_back(Resolve(cfg.data_root, *d.value<std::string>()));
        }
      } else {
        dc.targets.push_back(Resolve(cfg.data_root, "data" + std::to_string(dc.id)));
      }
      if (dc.targets.empty() || dc.targets.size() > 99) {
        return Bad(path, t.get("targets"), "a data server needs 1 to 99 targets");
      }
      for (size_t i = 0; i < dc.targets.size(); i++) dc.target_ids.push_back(dc.id * 100 + i + 1);
      cfg.data.push_back(dc);
    }
  }
  if (auto* ta = root.get("tenant")) {
    if (!ta->is_array_of_tables()) return Bad(path, ta, "tenant must be an array of tables: [[tenant]]");
    for (auto& e : *ta->as_array()) {
      const toml::table& t = *e.as_table();
      SLUICE_RETURN_IF_ERROR(CheckKeys(path, t, "[[tenant]]", {"name", "secret_file"}));
      TenantConfig tc;
      SLUICE_RETURN_IF_ERROR(GetString(path, t, "tenant", "name", &tc.name));
      SLUICE_RETURN_IF_ERROR(GetString(path, t, "tenant", "secret_file", &tc.secret_file));
      if (tc.name.empty() || tc.secret_file.empty()) {
        return Bad(path, &e, "[[tenant]] needs name and secret_file (a file holding the tenant's secret)");
      }
      bool name_ok = tc.name.size() <= 64 && tc.name[0] != '_';
      for (char ch : tc.name) name_ok = name_ok && (std::isalnum(static_cast<unsigned char>(ch)) || ch == '-' || ch == '_' || ch == '.');
      if (!name_ok) {
        return Bad(path, t.get("name"), "tenant name '" + tc.name +
                                            "' must be 1-64 letters, digits, '-', '_' or '.', not starting with '_'");
      }
      if (cfg.FindTenant(tc.name)) return Bad(path, &e, "[[tenant]] '" + tc.name + "' appears twice");
      tc.secret_file = Resolve(base, tc.secret_file);
      cfg.tenants.push_back(tc);
    }
    if (!cfg.tenants.empty() && cfg.secret_file.empty()) {
      return Bad(path, ta, "a cluster with [[tenant]] entries needs cluster.secret_file (the servers' own secret)");
    }
  }
  if (cfg.meta.empty()) return Status(Code::kInvalid, path + ": no [[meta]] server; add at least one");
  {
    // A file for several hosts that leaves one server on loopback (often
    // [mgmtd] host, whose default is 127.0.0.1) would split the cluster:
    // every host would start its own copy of that server.
    std::vector<std::pair<std::string, std::string>> where = {{cfg.mgmtd.host, "[mgmtd] host"}};
    for (auto& m : cfg.meta) where.emplace_back(m.host, "[[meta]] id=" + std::to_string(m.id) + " host");
    for (auto& d : cfg.data) where.emplace_back(d.host, "[[data]] id=" + std::to_string(d.id) + " host");
    const std::pair<std::string, std::string>* local = nullptr;
    const std::pair<std::string, std::string>* remote = nullptr;
    for (auto& w : where) {
      bool lo = IsLoopback(w.first) || w.first == "0.0.0.0";
      if (lo && !local) local = &w;
      if (!lo && !remote) remote = &w;
    }
    if (local && remote) {
      return Status(Code::kInvalid, path + ": " + local->second + " is " + local->first + " but " + remote->second +
                                        " is " + remote->first + "; a cluster on several hosts needs every server's " +
                                        "real address (mgmtd's default is 127.0.0.1: set [mgmtd] host)");
    }
  }
  if (cfg.data.empty()) return Status(Code::kInvalid, path + ": no [[data]] server; add at least one");

  if (auto* ch = root.get("chain")) {
    if (!ch->is_array_of_tables()) return Bad(path, ch, "chain must be an array of tables: [[chain]]");
    uint32_t next = 1;
    for (auto& e : *ch->as_array()) {
      const toml::table& t = *e.as_table();
      SLUICE_RETURN_IF_ERROR(CheckKeys(path, t, "[[chain]]", {"targets"}));
      auto* tg = t.get("targets");
      if (!tg || !tg->is_array()) return Bad(path, &e, "[[chain]] needs targets = [target ids]");
      ChainConfig c;
      c.id = next++;
      std::map<std::string, uint32_t> hosts;
      for (auto& v : *tg->as_array()) {
        auto id = v.value<int64_t>();
        if (!v.is_integer() || !id) return Bad(path, &v, "chain targets must be target ids (integers)");
        const DataServerConfig* d = cfg.DataOfTarget(static_cast<uint32_t>(*id));
        if (!d || std::find(d->target_ids.begin(), d->target_ids.end(), *id) == d->target_ids.end()) {
          return Bad(path, &v, "chain names target " + std::to_string(*id) +
                                   ", which no [[data]] server has (ids are server id*100 + position)");
        }
        // Replicas must not share a fate: not the same server, and not the
        // same host unless everything runs on this one machine (loopback).
        std::string host_key = IsLoopback(d->host) ? d->host + "#" + std::to_string(d->id) : d->host;
        if (hosts.count(host_key)) {
          return Bad(path, &v, "chain " + std::to_string(c.id) + " puts targets " +
                                   std::to_string(hosts[host_key]) + " and " + std::to_string(*id) +
                                   " on the same host " + d->host +
                                   "; replicas of one chain must be on different hosts");
        }
        hosts[host_key] = static_cast<uint32_t>(*id);
        c.targets.push_back(static_cast<uint32_t>(*id));
      }
      if (c.targets.size() != cfg.replication) {
        return Bad(path, &e, "chain " + std::to_string(c.id) + " has " + std::to_string(c.targets.size()) +
                                 " targets but cluster.replication is " + std::to_string(cfg.replication));
      }
      cfg.chains.push_back(c);
    }
  } else {
    auto chains = BuildChains(cfg);
    if (!chains.ok()) return chains.status();
    cfg.chains = std::move(chains.value());
  }
  return cfg;
}

Result<ClusterConfig> LoadClusterConfig(const std::string& path) {
  FILE* f = std::fopen(path.c_str(), "r");
  if (!f) return Status::FromErrno(errno, "cannot read cluster config " + path);
  std::string text;
  char buf[8192];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) text.append(buf, n);
  std::fclose(f);
  return ParseClusterConfig(text, path);
}

Status CheckWritableDir(const std::string& dir, const std::string& config_path,
                        const std::string& what) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) {
    return Status(Code::kPermission, config_path + ": " + what + ": cannot create directory " + dir +
                                         ": " + ec.message() + "; choose a writable directory");
  }
  std::string probe = dir + "/.sluice-write-test";
  int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  if (fd < 0 || ::write(fd, "x", 1) != 1) {
    int e = errno;
    if (fd >= 0) ::close(fd);
    return Status(Code::kPermission, config_path + ": " + what + ": directory " + dir +
                                         " is not writable (" + std::strerror(e) +
                                         "); fix its permissions or choose another");
  }
  ::close(fd);
  ::unlink(probe.c_str());
  return Status::Ok();
}

Status CheckPortFree(const std::string& host, uint16_t port, const std::string& config_path,
                     const std::string& what) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return Status::FromErrno(errno, "socket");
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  if (inet_pton(AF_INET, host.c_str(), &a.sin_addr) != 1) {
    addrinfo hints{};
    hints.ai_family = AF_INET;
    addrinfo* res = nullptr;
    if (getaddrinfo(host.c_str(), nullptr, &hints, &res) != 0 || res == nullptr) {
      close(fd);
      return Status(Code::kInvalid, config_path + ": " + what + ": host '" + host +
                                        "' does not resolve to an IPv4 address here");
    }
    a.sin_addr = reinterpret_cast<sockaddr_in*>(res->ai_addr)->sin_addr;
    freeaddrinfo(res);
  }
  int rc = bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  int e = errno;
  close(fd);
  if (rc != 0 && e == EADDRNOTAVAIL) {
    return Status(Code::kInvalid, config_path + ": " + what + ": " + host + " is not an address of this host");
  }
  if (rc != 0) {
    return Status(Code::kBusy, config_path + ": " + what + ": port " + std::to_string(port) + " on " +
                                   host + " is already in use (" + std::strerror(e) +
                                   "); stop what uses it or choose another port");
  }
  return Status::Ok();
}

}  // namespace sluice
