#include "common/auth.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>

#include "common/log.h"
#include "common/rpc.h"

namespace sluice::auth {
namespace {

// Compares without an early exit, so timing does not reveal a matching prefix.
bool SameSecret(const std::string& given, const std::string& known) {
  if (given.size() != known.size()) return false;
  unsigned diff = 0;
  for (size_t i = 0; i < known.size(); i++) {
    diff |= static_cast<unsigned char>(given[i]) ^ static_cast<unsigned char>(known[i]);
  }
  return diff == 0;
}

}  // namespace

Result<std::string> ReadSecretFile(const std::string& path, const std::string& what) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) {
    return Status(Code::kNotFound, what + ": secret file " + path + " cannot be read: " + std::strerror(errno));
  }
  if (st.st_mode & (S_IRWXG | S_IRWXO)) {
    return Status(Code::kPermission, what + ": secret file " + path + " is readable by others; chmod 600 " + path);
  }
  std::ifstream f(path, std::ios::binary);
  if (!f) return Status(Code::kPermission, what + ": secret file " + path + " cannot be opened");
  std::stringstream ss;
  ss << f.rdbuf();
  std::string s = ss.str();
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
  if (s.size() < 16 || s.size() > 4096) {
    return Status(Code::kInvalid, what + ": secret file " + path + " holds " + std::to_string(s.size()) +
                                      " bytes; a secret is 16 to 4096 bytes");
  }
  return s;
}

Status CreateSecretFile(const std::string& path) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0600);
  if (fd < 0) {
    if (errno == EEXIST) return Status::Ok();
    return Status(Code::kIo, "create secret file " + path + ": " + std::strerror(errno));
  }
  std::random_device rd;
  static const char kHex[] = "0123456789abcdef";
  std::string s;
  for (int i = 0; i < 64; i++) s += kHex[rd() & 15];
  s += '\n';
  bool ok = write(fd, s.data(), s.size()) == static_cast<ssize_t>(s.size()) && fsync(fd) == 0;
  close(fd);
  if (!ok) return Status(Code::kIo, "write secret file " + path);
  return Status::Ok();
}

Result<Authenticator> Authenticator::FromConfig(const ClusterConfig& cfg, const std::string& server) {
  Authenticator a;
  a.server_ = server;
  if (cfg.tenants.empty()) return a;
  SLUICE_ASSIGN_OR_RETURN(a.secrets_[kClusterTenant],
                          ReadSecretFile(cfg.secret_file, cfg.path + ": cluster.secret_file"));
  for (const auto& t : cfg.tenants) {
    SLUICE_ASSIGN_OR_RETURN(a.secrets_[t.name],
                            ReadSecretFile(t.secret_file, cfg.path + ": [[tenant]] '" + t.name + "'"));
  }
  return a;
}

Status Authenticator::Check(const rpc::Credential& c, const std::string& method) const {
  if (secrets_.empty()) return Status::Ok();
  if (c.tenant().empty()) {
    return Status(Code::kPermission, server_ + " refused " + method +
                                         ": the request carries no tenant credential and this cluster requires "
                                         "one (--tenant/--secret-file, or $SLUICE_TENANT/$SLUICE_SECRET_FILE)");
  }
  auto it = secrets_.find(c.tenant());
  if (it == secrets_.end()) {
    return Status(Code::kPermission, server_ + " refused " + method + ": unknown tenant '" + c.tenant() + "'");
  }
  if (!SameSecret(c.secret(), it->second)) {
    return Status(Code::kPermission, server_ + " refused " + method + ": wrong secret for tenant '" + c.tenant() + "'");
  }
  if (c.tenant() != kClusterTenant && internal_.count(method)) {
    return Status(Code::kPermission, server_ + " refused " + method + ": tenant '" + c.tenant() +
                                         "' may not call a method reserved for the cluster's servers");
  }
  return Status::Ok();
}

Result<rpc::Credential> ClusterCredential(const ClusterConfig& cfg) {
  rpc::Credential c;
  if (cfg.tenants.empty()) return c;
  SLUICE_ASSIGN_OR_RETURN(std::string secret, ReadSecretFile(cfg.secret_file, cfg.path + ": cluster.secret_file"));
  c.set_tenant(kClusterTenant);
  c.set_secret(secret);
  return c;
}

Result<rpc::Credential> ClientCredential(const ClusterConfig& cfg, std::string tenant, std::string secret_file) {
  if (tenant.empty()) {
    if (const char* e = std::getenv("SLUICE_TENANT")) tenant = e;
  }
  if (secret_file.empty()) {
    if (const char* e = std::getenv("SLUICE_SECRET_FILE")) secret_file = e;
  }
  rpc::Credential c;
  if (tenant.empty() && secret_file.empty()) {
    const TenantConfig* d = cfg.FindTenant("default");
    if (!d || access(d->secret_file.c_str(), R_OK) != 0) return c;  // open cluster, or refused by the servers
    tenant = d->name;
    secret_file = d->secret_file;
  }
  if (tenant.empty()) return Status(Code::kInvalid, "a secret file was given without a tenant name (--tenant)");
  if (secret_file.empty()) {
    const TenantConfig* t = cfg.FindTenant(tenant);
    if (!t) {
      return Status(Code::kInvalid, "tenant '" + tenant + "' is not in " + cfg.path + " and no --secret-file was given");
    }
    secret_file = t->secret_file;
  }
  SLUICE_ASSIGN_OR_RETURN(std::string secret, ReadSecretFile(secret_file, "tenant '" + tenant + "'"));
  c.set_tenant(tenant);
  c.set_secret(secret);
  return c;
}

Result<std::function<Status(const rpc::Credential&, const std::string&)>> SetUpServer(
    const ClusterConfig& cfg, const std::string& server, const std::vector<std::string>& internal) {
  SLUICE_ASSIGN_OR_RETURN(rpc::Credential own, ClusterCredential(cfg));
  SLUICE_ASSIGN_OR_RETURN(Authenticator a, Authenticator::FromConfig(cfg, server));
  for (const auto& m : internal) a.RequireCluster(m);
  rpc::SetDefaultCredential(own);
  if (a.open()) {
    LOG_WARN(server + ": " + cfg.path + " lists no [[tenant]]: this is an open cluster, every caller is accepted");
  }
  return std::function<Status(const rpc::Credential&, const std::string&)>(
      [a = std::move(a)](const rpc::Credential& c, const std::string& method) { return a.Check(c, method); });
}

}  // namespace sluice::auth
