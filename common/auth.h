// Tenant credentials. Every request carries (tenant, secret); a cluster whose
// config lists [[tenant]] entries accepts a request only when the secret is
// that tenant's, and refuses it (PERMISSION, naming the tenant and the
// server, never the secret) before any payload moves or any handler runs.
// Servers speak among themselves as the tenant "_cluster" with the secret in
// cluster.secret_file; internal methods (registration, chain forwarding,
// two-phase commit) accept only that identity. A config without tenants is an
// open cluster: every caller is accepted (the servers log that once).
//
// Secrets live in files (one line, no other permissions than the owner's),
// so configs can be shared without sharing secrets: a client needs to read
// only its own tenant's file.
#pragma once

#include <set>
#include <string>
#include <unordered_map>

#include <functional>
#include <vector>

#include "common/config.h"
#include "common/status.h"
#include "proto/rpc.pb.h"

namespace sluice::auth {

inline constexpr char kClusterTenant[] = "_cluster";

// Reads a secret file: it must exist, hold 16 to 4096 bytes (a trailing
// newline is dropped) and not be readable by group or others.
Result<std::string> ReadSecretFile(const std::string& path, const std::string& what);

// Writes a fresh random secret (64 hex digits) to `path` with mode 0600,
// unless the file exists. Used by `sluice cluster start` for the local cluster.
Status CreateSecretFile(const std::string& path);

class Authenticator {
 public:
  // An open authenticator: accepts everything.
  Authenticator() = default;
  // Reads the cluster secret and every tenant's secret named by `cfg`.
  // `server` names this server in refusals ("meta 1 at host:port").
  static Result<Authenticator> FromConfig(const ClusterConfig& cfg, const std::string& server);

  bool open() const { return secrets_.empty(); }
  // Methods (full names) only the cluster's own servers may call.
  void RequireCluster(const std::string& method) { internal_.insert(method); }
  Status Check(const rpc::Credential& credential, const std::string& method) const;

 private:
  std::string server_;
  std::unordered_map<std::string, std::string> secrets_;  // tenant -> secret
  std::set<std::string> internal_;
};

// The credential the cluster's servers use (tenant "_cluster"); an empty
// credential for an open cluster.
Result<rpc::Credential> ClusterCredential(const ClusterConfig& cfg);

// The credential a client of `cfg` speaks with: `tenant` and `secret_file`
// when given, else $SLUICE_TENANT and $SLUICE_SECRET_FILE, else the tenant
// "default" if the config has one and its secret file is readable here.
// Open cluster and nothing given: an empty credential.
Result<rpc::Credential> ClientCredential(const ClusterConfig& cfg, std::string tenant, std::string secret_file);

// For a server process, before it creates any RPC client: makes the
// cluster's credential this process's default (rpc::SetDefaultCredential)
// and returns the check for its rpc::ServerOptions::authenticate, with
// `internal` methods reserved for the cluster's servers. Logs once when the
// cluster is open. Errors name the secret file that cannot be used.
Result<std::function<Status(const rpc::Credential&, const std::string&)>> SetUpServer(
    const ClusterConfig& cfg, const std::string& server, const std::vector<std::string>& internal);

}  // namespace sluice::auth
