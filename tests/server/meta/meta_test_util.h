// An in-process metadata cluster for tests: N MetaStores in a temp dir,
// LocalShardHandles, the coordinator on shard 0 and a ShardRouter.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "server/meta/local_shard_handle.h"
#include "server/meta/meta_store.h"
#include "common/meta/shard_router.h"
#include "server/meta/txn_coordinator.h"

namespace sluice::meta::testing {

inline std::string MakeTempDir(const char* tag) {
  std::string tmpl = std::string("/tmp/sluice-meta-") + tag + "-XXXXXX";
  char* p = mkdtemp(tmpl.data());
  if (p == nullptr) {
    ADD_FAILURE() << "mkdtemp " << tmpl << " failed";
    return "/tmp";
  }
  return p;
}

class MetaCluster {
 public:
  // Opens (creating) `n` shards under `dir`; `sync` as MetaStoreOptions::sync.
  MetaCluster(std::string dir, uint32_t n, bool sync = true, uint32_t dir_cache_ms = 1000)
      : dir_(std::move(dir)), n_(n), sync_(sync), dir_cache_ms_(dir_cache_ms) {
    Open();
  }
  ~MetaCluster() { Close(); }

  void Open() {
    for (uint32_t s = 0; s < n_; ++s) {
      MetaStoreOptions o;
      o.shard_id = s;
      o.num_shards = n_;
      o.sync = sync_;
      o.block_cache_bytes = 8 << 20;
      o.remote_dir_cache_ms = dir_cache_ms_;
      auto r = MetaStore::Open(ShardPath(s), o);
      if (!r.ok()) {
        ADD_FAILURE() << r.status().ToString();
        std::abort();
      }
      stores_.push_back(std::move(r).value());
      handles_.push_back(std::make_unique<LocalShardHandle>(stores_.back().get()));
    }
    std::vector<ShardHandle*> hs;
    for (auto& h : handles_) hs.push_back(h.get());
    for (auto& s : stores_) s->SetPeers(hs);
    coordinator_ = std::make_unique<TxnCoordinator>(stores_[0].get(), hs);
    handles_[0]->set_coordinator(coordinator_.get());
    router_ = std::make_unique<ShardRouter>(hs, handles_[0].get(), 3000);
  }

  void Close() {
    router_.reset();
    coordinator_.reset();
    handles_.clear();
    stores_.clear();
  }

  // Closes and reopens every shard, then runs coordinator recovery.
  Status Reopen() {
    Close();
    Open();
    return coordinator_->Recover();
  }
  // Closes and reopens every shard without recovery.
  void ReopenWithoutRecovery() {
    Close();
    Open();
  }

  std::string ShardPath(uint32_t s) const { return dir_ + "/shard" + std::to_string(s); }
  ShardRouter& ns() { return *router_; }
  MetaStore& store(uint32_t s) { return *stores_[s]; }
  ShardHandle* handle(uint32_t s) { return handles_[s].get(); }
  TxnCoordinator& coordinator() { return *coordinator_; }
  uint32_t n() const { return n_; }

  // Every entry of `dir` on every shard (no permission check), names sorted by shard then name.
  std::vector<std::string> RawEntries(uint64_t dir) {
    std::vector<std::string> out;
    for (auto& s : stores_) {
      auto page = s->ReadDirShard(dir, {}, 1u << 30);
      EXPECT_TRUE(page.ok()) << page.status().ToString();
      if (!page.ok()) continue;
      for (auto& e : page->entries) out.push_back(e.name());
    }
    return out;
  }

 private:
  std::string dir_;
  uint32_t n_;
  bool sync_;
  uint32_t dir_cache_ms_;
  std::vector<std::unique_ptr<MetaStore>> stores_;
  std::vector<std::unique_ptr<LocalShardHandle>> handles_;
  std::unique_ptr<TxnCoordinator> coordinator_;
  std::unique_ptr<ShardRouter> router_;
};

inline const Status& StatusOf(const Status& s) { return s; }
template <typename T>
const Status& StatusOf(const Result<T>& r) {
  return r.status();
}

inline Caller Root() { return MakeCaller(0, 0); }
inline Caller User(uint32_t uid = 1000, uint32_t gid = 1000) { return MakeCaller(uid, gid); }

}  // namespace sluice::meta::testing

#define ASSERT_OK(expr)                                                                  \
  do {                                                                                   \
    auto&& _r = (expr);                                                                  \
    ASSERT_TRUE(::sluice::meta::testing::StatusOf(_r).ok())                              \
        << #expr << ": " << ::sluice::meta::testing::StatusOf(_r).ToString();            \
  } while (0)
#define EXPECT_OK(expr)                                                                  \
  do {                                                                                   \
    auto&& _r = (expr);                                                                  \
    EXPECT_TRUE(::sluice::meta::testing::StatusOf(_r).ok())                              \
        << #expr << ": " << ::sluice::meta::testing::StatusOf(_r).ToString();            \
  } while (0)
#define EXPECT_CODE(expr, code_)                                                         \
  do {                                                                                   \
    auto&& _r = (expr);                                                                  \
    EXPECT_EQ(::sluice::meta::testing::StatusOf(_r).code(), ::sluice::Code::code_)       \
        << #expr << " -> " << ::sluice::meta::testing::StatusOf(_r).ToString();          \
  } while (0)
