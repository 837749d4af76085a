// Cross-shard operations for the kill -9 tests, shared by the driver
// (meta_crash_driver.cc, which runs one and SIGKILLs itself at step k) and
// the checker (crash_test.cc, which reopens, recovers and checks that the
// namespace is exactly the old or exactly the new one).
#pragma once

#include <string>

#include "tests/server/meta/meta_test_util.h"

namespace sluice::meta::testing {

constexpr uint32_t kCrashShards = 3;

// The first name "<prefix><i>" whose dentry under `parent` lands on a shard
// accepted by `ok`.
template <typename Pred>
std::string PickName(uint64_t parent, const std::string& prefix, Pred ok) {
  for (int i = 0;; ++i) {
    std::string n = prefix + std::to_string(i);
    if (ok(DentryShard(parent, n, kCrashShards))) return n;
  }
}

struct CrashNames {
  uint64_t a = 0, b = 0, c = 0;
  std::string dir_src, dir_dst;    // rename_dir: /a/dir_src -> /b/dir_dst (2 shards)
  std::string f_src, g_dst, h;     // rename_replace: /a/f_src -> /b/g_dst, g a link of /c/h (3 shards)
  std::string e;                   // rmdir: /a/e (fences on every shard)
};

inline Result<CrashNames> ResolveNames(ShardRouter& ns) {
  CrashNames n;
  SLUICE_ASSIGN_OR_RETURN(InodeAttr a, ns.Lookup(Root(), kRootIno, "a"));
  SLUICE_ASSIGN_OR_RETURN(InodeAttr b, ns.Lookup(Root(), kRootIno, "b"));
  SLUICE_ASSIGN_OR_RETURN(InodeAttr c, ns.Lookup(Root(), kRootIno, "c"));
  n.a = a.ino();
  n.b = b.ino();
  n.c = c.ino();
  n.dir_src = PickName(n.a, "dir", [](uint32_t s) { return s == 0; });
  n.dir_dst = PickName(n.b, "moved", [](uint32_t s) { return s == 1; });
  n.f_src = PickName(n.a, "f", [](uint32_t s) { return s == 1; });
  n.g_dst = PickName(n.b, "g", [](uint32_t s) { return s == 2; });
  n.h = PickName(n.c, "h", [](uint32_t s) { return s == 0; });
  n.e = PickName(n.a, "e", [](uint32_t s) { return s == 2; });
  return n;
}

// Builds the starting namespace of every scenario.
inline Status SetupCrashNamespace(ShardRouter& ns) {
  for (const char* d : {"a", "b", "c"}) SLUICE_RETURN_IF_ERROR(ns.Mkdir(Root(), kRootIno, d, 0755).status());
  SLUICE_ASSIGN_OR_RETURN(CrashNames n, ResolveNames(ns));
  SLUICE_ASSIGN_OR_RETURN(InodeAttr dir, ns.Mkdir(Root(), n.a, n.dir_src, 0755));
  SLUICE_RETURN_IF_ERROR(ns.Create(Root(), dir.ino(), "child", 0644, true).status());
  SLUICE_RETURN_IF_ERROR(ns.Create(Root(), n.a, n.f_src, 0644, true).status());
  SLUICE_ASSIGN_OR_RETURN(CreateResult h, ns.Create(Root(), n.c, n.h, 0644, true));
  SLUICE_RETURN_IF_ERROR(ns.Link(Root(), h.attr.ino(), n.b, n.g_dst).status());
  SLUICE_RETURN_IF_ERROR(ns.Mkdir(Root(), n.a, n.e, 0755).status());
  return Status::Ok();
}

// Participants of each scenario's transaction (decides the step numbers).
inline uint32_t CrashParticipants(const std::string& scenario) {
  if (scenario == "rename_dir") return 2;
  return 3;  // rename_replace, rmdir
}

inline Status RunCrashScenario(ShardRouter& ns, const std::string& scenario) {
  SLUICE_ASSIGN_OR_RETURN(CrashNames n, ResolveNames(ns));
  if (scenario == "rename_dir") return ns.Rename(Root(), n.a, n.dir_src, n.b, n.dir_dst);
  if (scenario == "rename_replace") return ns.Rename(Root(), n.a, n.f_src, n.b, n.g_dst);
  if (scenario == "rmdir") return ns.Rmdir(Root(), n.a, n.e);
  return Status(Code::kInvalid, "unknown crash scenario " + scenario);
}

}  // namespace sluice::meta::testing
