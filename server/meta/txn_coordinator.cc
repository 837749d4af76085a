#include "server/meta/txn_coordinator.h"

#include "common/log.h"

namespace sluice::meta {

namespace {

TxnOp PutDentry(uint64_t parent, std::string_view name, uint64_t ino, FileType type,
                uint64_t expect) {
  TxnOp op;
  op.set_kind(TxnOp::PUT_DENTRY);
  op.set_parent(parent);
  op.set_name(std::string(name));
  op.set_ino(ino);
  op.set_type(type);
  op.set_expect_ino(expect);
  return op;
}

TxnOp DeleteDentry(uint64_t parent, std::string_view name, uint64_t expect) {
  TxnOp op;
  op.set_kind(TxnOp::DELETE_DENTRY);
  op.set_parent(parent);
  op.set_name(std::string(name));
  op.set_expect_ino(expect);
  return op;
}

TxnOp AdjustInode(uint64_t ino, int32_t nlink_delta) {
  TxnOp op;
  op.set_kind(TxnOp::ADJUST_INODE);
  op.set_ino(ino);
  op.set_nlink_delta(nlink_delta);
  return op;
}

TxnOp Fence(uint64_t dir) {
  TxnOp op;
  op.set_kind(TxnOp::FENCE_EMPTY_DIR);
  op.set_ino(dir);
  return op;
}

}  // namespace

TxnCoordinator::TxnCoordinator(MetaStore* home, std::vector<ShardHandle*> shards)
    : home_(home), shards_(std::move(shards)) {}

Result<InodeAttr> TxnCoordinator::GetAttr(uint64_t ino) {
  uint32_t s = InodeShard(ino);
  if (s >= shards_.size()) {
    return Status(Code::kNotFound, "inode " + InoString(ino) + " names shard " +
                                       std::to_string(s) + " beyond the cluster");
  }
  return shards_[s]->GetAttr(ino);
}

Result<InodeAttr> TxnCoordinator::DirForChange(const Caller& caller, uint64_t dir,
                                               const char* what, uint32_t mask) {
  auto a = GetAttr(dir);
  if (!a.ok()) {
    if (a.status().code() == Code::kNotFound) {
      return Status(Code::kNotFound, std::string(what) + ": directory " + InoString(dir) +
                                         " does not exist");
    }
    return a.status().Prefix(what);
  }
  if (a->type() != FILE_TYPE_DIRECTORY) {
    return Status(Code::kNotDir, std::string(what) + ": " + InoString(dir) + " is not a directory");
  }
  if (!CheckAccess(*a, caller, mask)) return AccessDenied(*a, caller, mask, what);
  return a;
}

Status TxnCoordinator::CheckSticky(const Caller& caller, const InodeAttr& dir,
                                   const InodeAttr& victim, const char* what) {
  if ((dir.mode() & 01000) && caller.uid() != 0 && caller.uid() != dir.uid() &&
      caller.uid() != victim.uid()) {
    return Status(Code::kNotPermitted, std::string(what) + ": inode " + InoString(victim.ino()) +
                                           " is in sticky directory " + InoString(dir.ino()) +
                                           " and uid " + std::to_string(caller.uid()) +
                                           " owns neither");
  }
  return Status::Ok();
}

Status TxnCoordinator::CheckNotAncestor(uint64_t moved_dir, uint64_t new_parent,
                                        const char* what) {
  uint64_t cur = new_parent;
  for (int depth = 0; depth < 65536; ++depth) {
    if (cur == moved_dir) {
      return Status(Code::kInvalid, std::string(what) + ": cannot move directory " +
                                        InoString(moved_dir) + " into itself or its descendant " +
                                        InoString(new_parent));
    }
    if (cur == kRootIno) return Status::Ok();
    SLUICE_ASSIGN_OR_RETURN(InodeAttr a, GetAttr(cur));
    if (a.parent() == 0 || a.parent() == cur) {
      return Status(Code::kCorrupt, std::string(what) + ": directory " + InoString(cur) +
                                        " has no parent pointer");
    }
    cur = a.parent();
  }
  return Status(Code::kLoop, std::string(what) + ": ancestor walk from " + InoString(new_parent) +
                                 " did not reach the root");
}

Status TxnCoordinator::RunTxn(const std::string& description, const OpsByShard& ops) {
  if (ops.size() == 1) {
    auto& [s, list] = *ops.begin();
    Status st = shards_[s]->TxnApply(list);
    return st.ok() ? st : st.Prefix(description);
  }
  const uint64_t txid = home_->NewTxid();
  {
    std::lock_guard<std::mutex> g(inflight_mu_);
    inflight_.insert(txid);
  }
  struct Done {
    TxnCoordinator* c;
    uint64_t txid;
    ~Done() {
      std::lock_guard<std::mutex> g(c->inflight_mu_);
      c->inflight_.erase(txid);
    }
  } done{this, txid};
  TxnIntentRecord intent;
  intent.set_txid(txid);
  intent.set_state(TxnIntentRecord::PREPARING);
  intent.set_description(description);
  for (auto& [s, list] : ops) intent.add_participants(s);
  SLUICE_RETURN_IF_ERROR(home_->PutIntent(intent).Prefix(description));
  int step = 1;
  Step(step++);

  Status failure;
  for (auto& [s, list] : ops) {
    TxnPrepareRecord rec;
    rec.set_txid(txid);
    rec.set_coordinator_shard(home_->shard_id());
    for (const TxnOp& op : list) *rec.add_ops() = op;
    Status st = shards_[s]->TxnPrepare(rec);
    if (!st.ok()) {
      failure = st.Prefix(description + " (shard " + std::to_string(s) + ")");
      break;
    }
    Step(step++);
  }
  if (!failure.ok()) {
    bool all_aborted = true;
    for (auto& [s, list] : ops) {
      Status st = shards_[s]->TxnDecide(txid, false);
      if (!st.ok()) {
        all_aborted = false;
        LOG_WARN(description + ": abort on shard " + std::to_string(s) + ": " + st.ToString() +
                 "; recovery will retry");
      }
    }
    if (all_aborted) {
      Status st = home_->DeleteIntent(txid);
      if (!st.ok()) LOG_WARN(description + ": " + st.ToString());
    }
    return failure;
  }

  intent.set_state(TxnIntentRecord::COMMITTED);
  SLUICE_RETURN_IF_ERROR(home_->PutIntent(intent).Prefix(description + " (commit point)"));
  Step(step++);
  bool all_committed = true;
  for (auto& [s, list] : ops) {
    Status st = shards_[s]->TxnDecide(txid, true);
    if (!st.ok()) {
      // The decision is durable: the shard applies it when recovery re-sends it.
      all_committed = false;
      LOG_WARN(description + ": commit on shard " + std::to_string(s) + ": " + st.ToString() +
               "; committed, recovery will finish it");
    }
    Step(step++);
  }
  if (all_committed) {
    SLUICE_RETURN_IF_ERROR(home_->DeleteIntent(txid).Prefix(description + " (forget)"));
    Step(step++);
  }
  return Status::Ok();
}

Status TxnCoordinator::Recover() {
  SLUICE_ASSIGN_OR_RETURN(std::vector<TxnIntentRecord> intents, home_->ListIntents());
  Status first;
  // Orphans first: a participant's prepared txn from this coordinator with
  // no intent and not in flight can only be a prepare that arrived after its
  // abort (an intent is written before any prepare and deleted after every
  // decision), so it is aborted. Txids carry their coordinator's shard id.
  std::unordered_set<uint64_t> known;
  for (const TxnIntentRecord& in : intents) known.insert(in.txid());
  for (ShardHandle* shard : shards_) {
    auto prepared = shard->TxnListPrepared();
    if (!prepared.ok()) {
      if (first.ok()) first = prepared.status().Prefix("recover: list prepared on shard " + std::to_string(shard->shard_id()));
      continue;
    }
    for (uint64_t txid : prepared.value()) {
      if (InodeShard(txid) != home_->shard_id() || known.count(txid)) continue;
      {
        std::lock_guard<std::mutex> g(inflight_mu_);
        if (inflight_.count(txid)) continue;
      }
      // Re-check the intent log: the txn may have started after the listing above.
      auto again = home_->ListIntents();
      bool has_intent = false;
      if (again.ok()) {
        for (auto& in : again.value()) has_intent = has_intent || in.txid() == txid;
      }
      if (!again.ok() || has_intent) continue;
      Status st = shard->TxnDecide(txid, false);
      LOG_INFO("recovery: aborted orphan prepared txn " + std::to_string(txid) + " on shard " +
               std::to_string(shard->shard_id()) + (st.ok() ? "" : ": " + st.ToString()));
      if (!st.ok() && first.ok()) first = st;
    }
  }
  for (const TxnIntentRecord& in : intents) {
    {
      std::lock_guard<std::mutex> g(inflight_mu_);
      if (inflight_.count(in.txid())) continue;
    }
    const bool commit = in.state() == TxnIntentRecord::COMMITTED;
    bool done = true;
    for (uint32_t s : in.participants()) {
      Status st = s < shards_.size()
                      ? shards_[s]->TxnDecide(in.txid(), commit)
                      : Status(Code::kInternal, "participant shard " + std::to_string(s) +
                                                    " is beyond the cluster");
      if (!st.ok()) {
        done = false;
        if (first.ok()) first = st.Prefix("recover txn " + std::to_string(in.txid()));
      }
    }
    LOG_INFO("recovery: " + std::string(commit ? "finished" : "undid") + " txn " +
             std::to_string(in.txid()) + " (" + in.description() + ")");
    if (done) {
      Status st = home_->DeleteIntent(in.txid());
      if (!st.ok() && first.ok()) first = st;
    }
  }
  return first;
}

Status TxnCoordinator::Rename(const RenameRequest& req) {
  const Caller& caller = req.caller();
  const uint32_t flags = req.flags();
  const uint64_t p1 = req.old_parent(), p2 = req.new_parent();
  const std::string& n1 = req.old_name();
  const std::string& n2 = req.new_name();
  const std::string desc = "rename " + InoString(p1) + "/'" + PrintableName(n1) + "' -> " +
                           InoString(p2) + "/'" + PrintableName(n2) + "'";
  if ((flags & ~(kRenameNoReplace | kRenameExchange)) != 0 ||
      (flags == (kRenameNoReplace | kRenameExchange))) {
    return Status(Code::kInvalid, desc + ": unsupported flags " + std::to_string(flags));
  }
  SLUICE_RETURN_IF_ERROR(ValidateName(n1, "rename source"));
  SLUICE_RETURN_IF_ERROR(ValidateName(n2, "rename target"));
  const uint32_t n = static_cast<uint32_t>(shards_.size());

  std::lock_guard<std::mutex> rename_lock(rename_mu_);
  // Looking the names up needs search permission on both parents; the other
  // checks follow Linux's order (do_renameat2, then vfs_rename's may_delete
  // and may_create), so each case fails with the errno Linux gives it.
  SLUICE_ASSIGN_OR_RETURN(InodeAttr dir1, DirForChange(caller, p1, "rename", kMayExec));
  SLUICE_ASSIGN_OR_RETURN(InodeAttr dir2, DirForChange(caller, p2, "rename", kMayExec));
  const uint32_t a = DentryShard(p1, n1, n), b = DentryShard(p2, n2, n);
  SLUICE_ASSIGN_OR_RETURN(InodeAttr src, shards_[a]->Lookup(caller, p1, n1));
  auto dst_r = shards_[b]->Lookup(caller, p2, n2);
  if (!dst_r.ok() && dst_r.status().code() != Code::kNotFound) return dst_r.status();
  const bool dst_exists = dst_r.ok();
  InodeAttr dst = dst_exists ? dst_r.value() : InodeAttr();
  const bool src_dir = src.type() == FILE_TYPE_DIRECTORY;
  const bool dst_dir = dst_exists && dst.type() == FILE_TYPE_DIRECTORY;
  const bool exchange = (flags & kRenameExchange) != 0;
  // 1. The target's existence against the flags.
  if (dst_exists && (flags & kRenameNoReplace)) return Status(Code::kExists, desc + ": target exists");
  if (exchange && !dst_exists) return Status(Code::kNotFound, desc + ": exchange target does not exist");
  // 2. A directory moved under itself; a target directory holding the source
  // (never empty; for an exchange, the same mistake the other way round).
  if (p1 != p2) {
    if (src_dir) SLUICE_RETURN_IF_ERROR(CheckNotAncestor(src.ino(), p2, desc.c_str()));
    if (dst_dir) {
      Status above = CheckNotAncestor(dst.ino(), p1, desc.c_str());
      if (above.code() == Code::kInvalid && !exchange) {
        return Status(Code::kNotEmpty, desc + ": target directory " + InoString(dst.ino()) +
                                           " contains the source");
      }
      SLUICE_RETURN_IF_ERROR(above);
    }
  }
  // 3. The same inode under both names: POSIX says do nothing.
  if (dst_exists && dst.ino() == src.ino()) return Status::Ok();
  // 4. Removing the source's name: write on its directory, the sticky bit.
  if (!CheckAccess(dir1, caller, kMayWrite | kMayExec)) {
    return AccessDenied(dir1, caller, kMayWrite | kMayExec, "rename");
  }
  SLUICE_RETURN_IF_ERROR(CheckSticky(caller, dir1, src, "rename"));
  // 5. The target's name: write on its directory, the sticky bit, its type.
  if (!CheckAccess(dir2, caller, kMayWrite | kMayExec)) {
    return AccessDenied(dir2, caller, kMayWrite | kMayExec, "rename");
  }
  if (dst_exists) {
    SLUICE_RETURN_IF_ERROR(CheckSticky(caller, dir2, dst, "rename"));
    if (!exchange && src_dir && !dst_dir) return Status(Code::kNotDir, desc + ": target is not a directory");
    if (!exchange && !src_dir && dst_dir) return Status(Code::kIsDir, desc + ": target is a directory");
  }
  // 6. A directory moving to another parent rewrites its "..": like Linux,
  // that needs write permission on the directory itself.
  if (p1 != p2) {
    if (src_dir && !CheckAccess(src, caller, kMayWrite)) {
      return AccessDenied(src, caller, kMayWrite, "rename (moving a directory)");
    }
    if (exchange && dst_dir && !CheckAccess(dst, caller, kMayWrite)) {
      return AccessDenied(dst, caller, kMayWrite, "rename (moving a directory)");
    }
  }

  OpsByShard ops;
  // A renamed inode's ctime changes (as on Linux); a directory moving to
  // another parent also gets its new "..".
  auto moved = [&](const InodeAttr& x, uint64_t new_parent) {
    TxnOp op = AdjustInode(x.ino(), 0);
    if (x.type() == FILE_TYPE_DIRECTORY && p1 != p2) {
      op.set_set_parent(true);
      op.set_new_parent(new_parent);
    }
    ops[InodeShard(x.ino())].push_back(op);
  };
  if (exchange) {
    ops[a].push_back(PutDentry(p1, n1, dst.ino(), dst.type(), src.ino()));
    ops[b].push_back(PutDentry(p2, n2, src.ino(), src.type(), dst.ino()));
    moved(src, p2);
    moved(dst, p1);
    return RunTxn(desc, ops);
  }

  ops[a].push_back(DeleteDentry(p1, n1, src.ino()));
  ops[b].push_back(PutDentry(p2, n2, src.ino(), src.type(), dst_exists ? dst.ino() : 0));
  moved(src, p2);
  if (dst_exists) {
    if (dst_dir) {
      for (uint32_t s = 0; s < n; ++s) ops[s].push_back(Fence(dst.ino()));
      TxnOp op = AdjustInode(dst.ino(), 0);
      op.set_remove_inode(true);
      op.set_must_be_dir(true);
      ops[InodeShard(dst.ino())].push_back(op);
    } else {
      ops[InodeShard(dst.ino())].push_back(AdjustInode(dst.ino(), -1));
    }
  }
  return RunTxn(desc, ops);
}

Result<InodeAttr> TxnCoordinator::Link(const Caller& caller, uint64_t ino, uint64_t new_parent,
                                       std::string_view new_name) {
  const std::string desc = "link " + InoString(ino) + " as " + InoString(new_parent) + "/'" +
                           PrintableName(new_name) + "'";
  if (new_name == "." || new_name == "..") return Status(Code::kExists, desc + ": name exists");
  SLUICE_RETURN_IF_ERROR(ValidateName(new_name, "link"));
  auto src = GetAttr(ino);
  if (!src.ok()) return src.status().Prefix(desc);
  if (src->type() == FILE_TYPE_DIRECTORY) {
    return Status(Code::kNotPermitted, desc + ": hard links to directories are not allowed");
  }
  SLUICE_RETURN_IF_ERROR(DirForChange(caller, new_parent, "link").status());
  const uint32_t b = DentryShard(new_parent, new_name, static_cast<uint32_t>(shards_.size()));
  OpsByShard ops;
  ops[b].push_back(PutDentry(new_parent, new_name, ino, src->type(), 0));
  ops[InodeShard(ino)].push_back(AdjustInode(ino, +1));
  SLUICE_RETURN_IF_ERROR(RunTxn(desc, ops));
  return GetAttr(ino);
}

Status TxnCoordinator::Unlink(const Caller& caller, uint64_t parent, std::string_view name, InodeAttr* out) {
  const std::string desc = "unlink " + InoString(parent) + "/'" + PrintableName(name) + "'";
  SLUICE_RETURN_IF_ERROR(ValidateName(name, "unlink"));
  SLUICE_ASSIGN_OR_RETURN(InodeAttr dir, DirForChange(caller, parent, "unlink"));
  const uint32_t a = DentryShard(parent, name, static_cast<uint32_t>(shards_.size()));
  SLUICE_ASSIGN_OR_RETURN(InodeAttr victim, shards_[a]->Lookup(caller, parent, name));
  if (victim.type() == FILE_TYPE_DIRECTORY) {
    return Status(Code::kIsDir, desc + ": is a directory");
  }
  SLUICE_RETURN_IF_ERROR(CheckSticky(caller, dir, victim, "unlink"));
  OpsByShard ops;
  ops[a].push_back(DeleteDentry(parent, name, victim.ino()));
  ops[InodeShard(victim.ino())].push_back(AdjustInode(victim.ino(), -1));
  SLUICE_RETURN_IF_ERROR(RunTxn(desc, ops));
  if (out) {
    // The link count as it is now, not as it was looked up: a link or unlink
    // of another name may have committed in between. Gone means this was the
    // last name (or a concurrent unlink's: removing the data twice is
    // harmless); a failed look says "not the last" so no data is removed.
    auto now = shards_[InodeShard(victim.ino())]->GetAttr(victim.ino());
    if (now.ok()) {
      victim.set_nlink(now->nlink());
    } else {
      if (now.status().code() != Code::kNotFound) {
        LOG_WARN(desc + ": link count after the unlink unknown (" + now.status().ToString() +
                 "); its data is kept");
      }
      victim.set_nlink(now.status().code() == Code::kNotFound ? 0 : 1);
    }
    *out = std::move(victim);
  }
  return Status::Ok();
}

Status TxnCoordinator::Rmdir(const Caller& caller, uint64_t parent, std::string_view name) {
  const std::string desc = "rmdir " + InoString(parent) + "/'" + PrintableName(name) + "'";
  if (name == ".") return Status(Code::kInvalid, desc + ": cannot remove '.'");
  if (name == "..") return Status(Code::kNotEmpty, desc + ": cannot remove '..'");
  SLUICE_RETURN_IF_ERROR(ValidateName(name, "rmdir"));
  SLUICE_ASSIGN_OR_RETURN(InodeAttr dir, DirForChange(caller, parent, "rmdir"));
  const uint32_t n = static_cast<uint32_t>(shards_.size());
  const uint32_t a = DentryShard(parent, name, n);
  SLUICE_ASSIGN_OR_RETURN(InodeAttr victim, shards_[a]->Lookup(caller, parent, name));
  if (victim.type() != FILE_TYPE_DIRECTORY) {
    return Status(Code::kNotDir, desc + ": not a directory");
  }
  SLUICE_RETURN_IF_ERROR(CheckSticky(caller, dir, victim, "rmdir"));
  OpsByShard ops;
  for (uint32_t s = 0; s < n; ++s) ops[s].push_back(Fence(victim.ino()));
  ops[a].push_back(DeleteDentry(parent, name, victim.ino()));
  TxnOp rm = AdjustInode(victim.ino(), 0);
  rm.set_remove_inode(true);
  rm.set_must_be_dir(true);
  ops[InodeShard(victim.ino())].push_back(rm);
  return RunTxn(desc, ops);
}

}  // namespace sluice::meta
