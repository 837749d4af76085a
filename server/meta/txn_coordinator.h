// TxnCoordinator: namespace changes that touch more than one shard — rename,
// link, rmdir, and unlink of an entry whose inode lives on another shard —
// made atomic with an intent record and two-phase commit.
//
// Protocol (presumed abort). For a transaction over participants P1..Pn:
//   1. the coordinator writes intent {txid, PREPARING, participants} (synced);
//   2. each participant checks its ops, holds their keys and writes a
//      prepare record (synced) — any refusal aborts everywhere;
//   3. the coordinator rewrites the intent as COMMITTED (the commit point);
//   4. each participant applies its ops and drops its prepare record in one
//      batch (synced);
//   5. the coordinator deletes the intent.
// Recover() (run when the coordinator shard opens, once peers are
// reachable) re-sends commit for COMMITTED intents and abort for PREPARING
// ones; participants keep prepared keys held (kBusy to others) until then.
// Ops whose keys all live on one shard skip the protocol: TxnApply does
// them in one atomic batch.
//
// Directory cycles: every rename holds this coordinator's rename lock from
// its ancestor check to its commit. There is one coordinator per cluster
// (shard 0), so no two renames interleave and the ancestor walk of one
// cannot be invalidated by another. Creates, unlinks and rmdirs do not take
// the lock.
//
// rmdir emptiness: the transaction fences the directory on every shard
// (FENCE_EMPTY_DIR: that shard has no entry of it and, held exclusively
// against the directory's add/remove lock, none is being added). Creates
// refuse a fenced directory (kBusy while prepared, ENOENT once committed: the
// fence stays as a tombstone), so no create can slip in between the check
// and the removal.
//
// Thread-safe.
#pragma once

#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <unordered_set>
#include <vector>

#include "common/status.h"
#include "server/meta/meta_store.h"
#include "common/meta/shard_handle.h"

namespace sluice::meta {

class TxnCoordinator {
 public:
  // `home` keeps the intent log (the coordinator shard's store); `shards`
  // reaches every shard by id, home's included. All must outlive this.
  TxnCoordinator(MetaStore* home, std::vector<ShardHandle*> shards);
  TxnCoordinator(const TxnCoordinator&) = delete;
  TxnCoordinator& operator=(const TxnCoordinator&) = delete;

  // rename(2)/renameat2(2): flags 0, kRenameNoReplace or kRenameExchange.
  // EINVAL when a directory would move into itself or a descendant.
  Status Rename(const RenameRequest& req);
  // A new name new_parent/new_name for non-directory `ino`; nlink + 1.
  Result<InodeAttr> Link(const Caller& caller, uint64_t ino, uint64_t new_parent,
                         std::string_view new_name);
  // Removes an empty directory (ENOTEMPTY otherwise), whatever shards hold its entries.
  Status Rmdir(const Caller& caller, uint64_t parent, std::string_view name);
  // Removes a non-directory entry wherever its dentry and inode live.
  Status Unlink(const Caller& caller, uint64_t parent, std::string_view name, InodeAttr* victim = nullptr);

  // Finishes (COMMITTED) or undoes (PREPARING) every transaction in home's
  // intent log that this coordinator is not driving right now. Call it when
  // the coordinator shard opens and then periodically (a participant that
  // was unreachable at commit keeps its keys held until this re-sends the
  // decision). Returns the first failure; intents that failed stay.
  Status Recover();

  // Test hook: called after each durable step of a two-phase transaction
  // with its 1-based number (1 intent, 2..n+1 prepares, n+2 commit point,
  // n+3..2n+2 participant commits, 2n+3 intent deleted).
  void SetStepHook(std::function<void(int)> hook) { step_hook_ = std::move(hook); }

 private:
  using OpsByShard = std::map<uint32_t, std::vector<TxnOp>>;

  Status RunTxn(const std::string& description, const OpsByShard& ops);
  Result<InodeAttr> GetAttr(uint64_t ino);
  // The directory's attributes, checking `mask` (default: write and search)
  // permission for the caller.
  Result<InodeAttr> DirForChange(const Caller& caller, uint64_t dir, const char* what,
                                 uint32_t mask = kMayWrite | kMayExec);
  Status CheckSticky(const Caller& caller, const InodeAttr& dir, const InodeAttr& victim,
                     const char* what);
  Status CheckNotAncestor(uint64_t moved_dir, uint64_t new_parent, const char* what);
  void Step(int step) {
    if (step_hook_) step_hook_(step);
  }

  MetaStore* home_;
  std::vector<ShardHandle*> shards_;
  std::mutex rename_mu_;
  std::function<void(int)> step_hook_;
  std::mutex inflight_mu_;
  std::unordered_set<uint64_t> inflight_;  // txids RunTxn is driving; Recover skips them
};

}  // namespace sluice::meta
