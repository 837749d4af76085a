// LocalShardHandle: a ShardHandle over a MetaStore in the same process (and,
// on the coordinator shard, its TxnCoordinator). Tests run a whole cluster
// in one process with these; sluice-meta uses one for its own shard.
#pragma once

#include "server/meta/meta_store.h"
#include "common/meta/shard_handle.h"
#include "server/meta/txn_coordinator.h"

namespace sluice::meta {

class LocalShardHandle : public ShardHandle {
 public:
  // `store` (and `coordinator`, may be null) must outlive the handle.
  explicit LocalShardHandle(MetaStore* store, TxnCoordinator* coordinator = nullptr)
      : store_(store), coordinator_(coordinator) {}

  void set_coordinator(TxnCoordinator* c) { coordinator_ = c; }
  MetaStore* store() const { return store_; }

  uint32_t shard_id() const override { return store_->shard_id(); }
  Result<InodeAttr> Lookup(const Caller& c, uint64_t parent, std::string_view name) override {
    return store_->Lookup(c, parent, name);
  }
  void LookupBatchAsync(const Caller& c, std::vector<LookupItem> items,
                        std::function<void(std::vector<Result<InodeAttr>>)> done) override {
    done(store_->LookupMany(c, items));
  }
  Result<InodeAttr> GetAttr(uint64_t ino) override { return store_->GetAttr(ino); }
  Result<InodeAttr> SetAttr(const SetAttrRequest& req) override { return store_->SetAttr(req); }
  Result<CreateResult> Create(const Caller& c, uint64_t parent, std::string_view name,
                              uint32_t mode, bool exclusive) override {
    return store_->Create(c, parent, name, mode, exclusive);
  }
  Result<InodeAttr> Mkdir(const Caller& c, uint64_t parent, std::string_view name,
                          uint32_t mode) override {
    return store_->Mkdir(c, parent, name, mode);
  }
  Result<InodeAttr> Symlink(const Caller& c, uint64_t parent, std::string_view name,
                            std::string_view target) override {
    return store_->Symlink(c, parent, name, target);
  }
  Result<std::string> Readlink(uint64_t ino) override { return store_->Readlink(ino); }
  Status Unlink(const Caller& c, uint64_t parent, std::string_view name, InodeAttr* victim = nullptr) override {
    return store_->Unlink(c, parent, name, victim);
  }
  Result<ShardDirPage> ReadDirShard(uint64_t dir, std::string_view after,
                                    uint32_t max_entries) override {
    return store_->ReadDirShard(dir, after, max_entries);
  }
  Result<StatFsResult> StatFs() override { return store_->StatFs(); }
  Result<std::string> GetXattr(const Caller& c, uint64_t ino, std::string_view name) override {
    return store_->GetXattr(c, ino, name);
  }
  Status SetXattr(const Caller& c, uint64_t ino, std::string_view name, std::string_view value,
                  uint32_t flags) override {
    return store_->SetXattr(c, ino, name, value, flags);
  }
  Result<std::vector<std::string>> ListXattr(const Caller& c, uint64_t ino) override {
    return store_->ListXattr(c, ino);
  }
  Status RemoveXattr(const Caller& c, uint64_t ino, std::string_view name) override {
    return store_->RemoveXattr(c, ino, name);
  }
  Result<uint64_t> ReportLength(uint64_t ino, uint64_t length) override {
    return store_->ReportLength(ino, length);
  }
  Status SetDirLayout(const Caller& c, uint64_t dir, const FileLayout& layout) override {
    return store_->SetDirLayout(c, dir, layout);
  }
  Result<DirStats> GetDirStats(uint64_t dir) override { return store_->GetDirStats(dir); }
  Status ForgetDir(uint64_t dir) override {
    store_->ForgetDir(dir);
    return Status::Ok();
  }
  Status TxnPrepare(const TxnPrepareRecord& record) override { return store_->TxnPrepare(record); }
  Status TxnDecide(uint64_t txid, bool commit) override { return store_->TxnDecide(txid, commit); }
  Status TxnApply(const std::vector<TxnOp>& ops) override { return store_->TxnApply(ops); }
  Result<std::vector<uint64_t>> TxnListPrepared() override { return store_->PreparedTxns(); }

  Status Rename(const RenameRequest& req) override {
    if (!coordinator_) return NotCoordinator("rename");
    return coordinator_->Rename(req);
  }
  Result<InodeAttr> Link(const Caller& c, uint64_t ino, uint64_t new_parent,
                         std::string_view new_name) override {
    if (!coordinator_) return NotCoordinator("link");
    return coordinator_->Link(c, ino, new_parent, new_name);
  }
  Status Rmdir(const Caller& c, uint64_t parent, std::string_view name) override {
    if (!coordinator_) return NotCoordinator("rmdir");
    return coordinator_->Rmdir(c, parent, name);
  }
  Status UnlinkAny(const Caller& c, uint64_t parent, std::string_view name, InodeAttr* victim = nullptr) override {
    if (!coordinator_) return NotCoordinator("unlink");
    return coordinator_->Unlink(c, parent, name, victim);
  }

 private:
  Status NotCoordinator(const char* what) const {
    return Status(Code::kUnsupported, std::string(what) + ": shard " +
                                          std::to_string(store_->shard_id()) +
                                          " is not the coordinator shard");
  }

  MetaStore* store_;
  TxnCoordinator* coordinator_;
};

}  // namespace sluice::meta
