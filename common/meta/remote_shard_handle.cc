#include "common/meta/remote_shard_handle.h"

#include <memory>

namespace sluice::meta {

std::string MetaMethod(const char* method) {
  return std::string("sluice.meta.MetaService/") + method;
}

RemoteShardHandle::RemoteShardHandle(rpc::RpcClient* rpc, rpc::Peer peer, uint32_t shard_id,
                                     RemoteShardOptions options)
    : rpc_(rpc), peer_(std::move(peer)), shard_id_(shard_id), options_(options) {
  label_ = "meta shard " + std::to_string(shard_id_) + " (" + peer_.label + ")";
}

rpc::CallOptions RemoteShardHandle::Options() const {
  rpc::CallOptions co;
  co.timeout_ms = options_.timeout_ms;
  co.map_version = options_.map_version ? options_.map_version->load() : 0;
  return co;
}

Status RemoteShardHandle::Finish(const char* method, const rpc::CallResult& r) {
  if (r.map_version != 0) {
    uint64_t seen = seen_map_version_.load();
    while (r.map_version > seen && !seen_map_version_.compare_exchange_weak(seen, r.map_version)) {
    }
  }
  if (r.status.ok()) return r.status;
  switch (r.status.code()) {
    // Transport-level failures name the shard; namespace errors already
    // name their inode and entry.
    case Code::kUnavailable:
    case Code::kTimeout:
    case Code::kProtocol:
    case Code::kCancelled:
    case Code::kTooBig:
    case Code::kStaleMap:
      return r.status.Prefix(std::string(method) + " on " + label_);
    default:
      return r.status;
  }
}

Status RemoteShardHandle::Call(const char* method, const google::protobuf::Message& req,
                               google::protobuf::Message* resp) {
  return Finish(method, rpc_->Call(peer_, MetaMethod(method), req, resp, Options()));
}

Result<InodeAttr> RemoteShardHandle::Lookup(const Caller& caller, uint64_t parent,
                                            std::string_view name) {
  lookups_.fetch_add(1, std::memory_order_relaxed);
  lookup_rpcs_.fetch_add(1, std::memory_order_relaxed);
  LookupRequest req;
  *req.mutable_caller() = caller;
  req.set_parent(parent);
  req.set_name(std::string(name));
  LookupResponse resp;
  SLUICE_RETURN_IF_ERROR(Call("Lookup", req, &resp));
  return std::move(*resp.mutable_attr());
}

void RemoteShardHandle::LookupAsync(const Caller& caller, uint64_t parent, std::string_view name,
                                    std::function<void(Result<InodeAttr>)> done) {
  lookups_.fetch_add(1, std::memory_order_relaxed);
  lookup_rpcs_.fetch_add(1, std::memory_order_relaxed);
  LookupRequest req;
  *req.mutable_caller() = caller;
  req.set_parent(parent);
  req.set_name(std::string(name));
  auto resp = std::make_shared<LookupResponse>();
  rpc_->CallAsync(peer_, MetaMethod("Lookup"), req, resp.get(), Options(),
                  [this, resp, done = std::move(done)](const rpc::CallResult& r) {
                    Status st = Finish("Lookup", r);
                    if (!st.ok()) {
                      done(st);
                    } else {
                      done(std::move(*resp->mutable_attr()));
                    }
                  });
}

void RemoteShardHandle::LookupBatchAsync(const Caller& caller, std::vector<LookupItem> items,
                                         std::function<void(std::vector<Result<InodeAttr>>)> done) {
  lookups_.fetch_add(items.size(), std::memory_order_relaxed);
  lookup_rpcs_.fetch_add(1, std::memory_order_relaxed);
  LookupBatchRequest req;
  *req.mutable_caller() = caller;
  for (LookupItem& it : items) {
    LookupBatchItem* x = req.add_items();
    x->set_parent(it.parent);
    x->set_name(std::move(it.name));
  }
  const size_t n = items.size();
  auto resp = std::make_shared<LookupBatchResponse>();
  rpc_->CallAsync(peer_, MetaMethod("LookupBatch"), req, resp.get(), Options(),
                  [this, n, resp, done = std::move(done)](const rpc::CallResult& r) {
                    std::vector<Result<InodeAttr>> out;
                    out.reserve(n);
                    Status st = Finish("LookupBatch", r);
                    if (st.ok() && static_cast<size_t>(resp->results_size()) != n) {
                      st = Status(Code::kProtocol, "LookupBatch on " + label_ + ": " +
                                                       std::to_string(resp->results_size()) +
                                                       " results for " + std::to_string(n) + " items");
                    }
                    for (size_t i = 0; i < n; ++i) {
                      if (!st.ok()) {
                        out.push_back(st);
                        continue;
                      }
                      LookupBatchResult* x = resp->mutable_results(static_cast<int>(i));
                      if (x->code() == 0) {
                        out.push_back(std::move(*x->mutable_attr()));
                      } else {
                        const Code c = x->code() < static_cast<uint32_t>(Code::kMaxCode)
                                           ? static_cast<Code>(x->code())
                                           : Code::kInternal;
                        out.push_back(Status(c, x->message()));
                      }
                    }
                    done(std::move(out));
                  });
}

Result<InodeAttr> RemoteShardHandle::GetAttr(uint64_t ino) {
  GetAttrRequest req;
  req.set_ino(ino);
  GetAttrResponse resp;
  SLUICE_RETURN_IF_ERROR(Call("GetAttr", req, &resp));
  return std::move(*resp.mutable_attr());
}

Result<InodeAttr> RemoteShardHandle::SetAttr(const SetAttrRequest& req) {
  SetAttrResponse resp;
  SLUICE_RETURN_IF_ERROR(Call("SetAttr", req, &resp));
  return std::move(*resp.mutable_attr());
}

Result<CreateResult> RemoteShardHandle::Create(const Caller& caller, uint64_t parent,
                                               std::string_view name, uint32_t mode,
                                               bool exclusive) {
  CreateRequest req;
  *req.mutable_caller() = caller;
  req.set_parent(parent);
  req.set_name(std::string(name));
  req.set_mode(mode);
  req.set_exclusive(exclusive);
  CreateResponse resp;
  SLUICE_RETURN_IF_ERROR(Call("Create", req, &resp));
  CreateResult r;
  r.attr = std::move(*resp.mutable_attr());
  r.created = resp.created();
  return r;
}

Result<InodeAttr> RemoteShardHandle::Mkdir(const Caller& caller, uint64_t parent,
                                           std::string_view name, uint32_t mode) {
  MkdirRequest req;
  *req.mutable_caller() = caller;
  req.set_parent(parent);
  req.set_name(std::string(name));
  req.set_mode(mode);
  MkdirResponse resp;
  SLUICE_RETURN_IF_ERROR(Call("Mkdir", req, &resp));
  return std::move(*resp.mutable_attr());
}

Result<InodeAttr> RemoteShardHandle::Symlink(const Caller& caller, uint64_t parent,
                                             std::string_view name, std::string_view target) {
  SymlinkRequest req;
  *req.mutable_caller() = caller;
  req.set_parent(parent);
  req.set_name(std::string(name));
  req.set_target(std::string(target));
  SymlinkResponse resp;
  SLUICE_RETURN_IF_ERROR(Call("Symlink", req, &resp));
  return std::move(*resp.mutable_attr());
}

Result<std::string> RemoteShardHandle::Readlink(uint64_t ino) {
  ReadlinkRequest req;
  req.set_ino(ino);
  ReadlinkResponse resp;
  SLUICE_RETURN_IF_ERROR(Call("Readlink", req, &resp));
  return std::move(*resp.mutable_target());
}

Status RemoteShardHandle::Unlink(const Caller& caller, uint64_t parent, std::string_view name,
                                 InodeAttr* victim) {
  UnlinkRequest req;
  *req.mutable_caller() = caller;
  req.set_parent(parent);
  req.set_name(std::string(name));
  UnlinkResponse resp;
  SLUICE_RETURN_IF_ERROR(Call("Unlink", req, &resp));
  if (victim) *victim = std::move(*resp.mutable_victim());
  return Status::Ok();
}

Result<ShardDirPage> RemoteShardHandle::ReadDirShard(uint64_t dir, std::string_view after,
                                                     uint32_t max_entries) {
  ReadDirShardRequest req;
  req.set_dir(dir);
  req.set_after(std::string(after));
  req.set_max_entries(std::min(max_entries, kMaxWireDirEntries));
  ReadDirShardResponse resp;
  SLUICE_RETURN_IF_ERROR(Call("ReadDirShard", req, &resp));
  ShardDirPage page;
  page.entries.reserve(resp.entries_size());
  for (auto& e : *resp.mutable_entries()) page.entries.push_back(std::move(e));
  page.more = resp.more();
  if (page.more && page.entries.empty()) {
    return Status(Code::kProtocol, "ReadDirShard on " + label_ + ": 'more' with an empty page");
  }
  return page;
}

Result<StatFsResult> RemoteShardHandle::StatFs() {
  StatFsRequest req;
  StatFsResponse resp;
  SLUICE_RETURN_IF_ERROR(Call("StatFs", req, &resp));
  StatFsResult r;
  r.inodes = resp.inodes();
  r.bytes = resp.bytes();
  r.dentries = resp.dentries();
  return r;
}

Result<std::string> RemoteShardHandle::GetXattr(const Caller& caller, uint64_t ino,
                                                std::string_view name) {
  GetXattrRequest req;
  *req.mutable_caller() = caller;
  req.set_ino(ino);
  req.set_name(std::string(name));
  GetXattrResponse resp;
  SLUICE_RETURN_IF_ERROR(Call("GetXattr", req, &resp));
  return std::move(*resp.mutable_value());
}

Status RemoteShardHandle::SetXattr(const Caller& caller, uint64_t ino, std::string_view name,
                                   std::string_view value, uint32_t flags) {
  SetXattrRequest req;
  *req.mutable_caller() = caller;
  req.set_ino(ino);
  req.set_name(std::string(name));
  req.set_value(std::string(value));
  req.set_flags(flags);
  SetXattrResponse resp;
  return Call("SetXattr", req, &resp);
}

Result<std::vector<std::string>> RemoteShardHandle::ListXattr(const Caller& caller, uint64_t ino) {
  ListXattrRequest req;
  *req.mutable_caller() = caller;
  req.set_ino(ino);
  ListXattrResponse resp;
  SLUICE_RETURN_IF_ERROR(Call("ListXattr", req, &resp));
  std::vector<std::string> names;
  for (auto& n : *resp.mutable_names()) names.push_back(std::move(n));
  return names;
}

Status RemoteShardHandle::RemoveXattr(const Caller& caller, uint64_t ino, std::string_view name) {
  RemoveXattrRequest req;
  *req.mutable_caller() = caller;
  req.set_ino(ino);
  req.set_name(std::string(name));
  RemoveXattrResponse resp;
  return Call("RemoveXattr", req, &resp);
}

Result<uint64_t> RemoteShardHandle::ReportLength(uint64_t ino, uint64_t length) {
  ReportLengthRequest req;
  req.set_ino(ino);
  req.set_length(length);
  ReportLengthResponse resp;
  SLUICE_RETURN_IF_ERROR(Call("ReportLength", req, &resp));
  return resp.size();
}

Status RemoteShardHandle::SetDirLayout(const Caller& caller, uint64_t dir,
                                       const FileLayout& layout) {
  SetDirLayoutRequest req;
  *req.mutable_caller() = caller;
  req.set_dir(dir);
  *req.mutable_layout() = layout;
  SetDirLayoutResponse resp;
  return Call("SetDirLayout", req, &resp);
}

Result<DirStats> RemoteShardHandle::GetDirStats(uint64_t dir) {
  DirStatsRequest req;
  req.set_dir(dir);
  DirStatsResponse resp;
  SLUICE_RETURN_IF_ERROR(Call("DirStats", req, &resp));
  return std::move(*resp.mutable_stats());
}

void RemoteShardHandle::GetDirStatsAsync(uint64_t dir,
                                         std::function<void(Result<DirStats>)> done) {
  DirStatsRequest req;
  req.set_dir(dir);
  auto resp = std::make_shared<DirStatsResponse>();
  rpc_->CallAsync(peer_, MetaMethod("DirStats"), req, resp.get(), Options(),
                  [this, resp, done = std::move(done)](const rpc::CallResult& r) {
                    Status st = Finish("DirStats", r);
                    if (!st.ok()) {
                      done(st);
                    } else {
                      done(std::move(*resp->mutable_stats()));
                    }
                  });
}

Status RemoteShardHandle::ForgetDir(uint64_t dir) {
  ForgetDirRequest req;
  req.set_dir(dir);
  ForgetDirResponse resp;
  return Call("ForgetDir", req, &resp);
}

Status RemoteShardHandle::TxnPrepare(const TxnPrepareRecord& record) {
  TxnPrepareRequest req;
  *req.mutable_record() = record;
  TxnPrepareResponse resp;
  return Call("TxnPrepare", req, &resp);
}

Status RemoteShardHandle::TxnDecide(uint64_t txid, bool commit) {
  TxnDecideRequest req;
  req.set_txid(txid);
  req.set_commit(commit);
  TxnDecideResponse resp;
  return Call("TxnDecide", req, &resp);
}

Status RemoteShardHandle::TxnApply(const std::vector<TxnOp>& ops) {
  // TxnApply has no message of its own yet: it travels as a prepare record
  // without a txid (see meta_service.h).
  TxnPrepareRequest req;
  for (const TxnOp& op : ops) *req.mutable_record()->add_ops() = op;
  TxnPrepareResponse resp;
  return Call("TxnApply", req, &resp);
}

Result<std::vector<uint64_t>> RemoteShardHandle::TxnListPrepared() {
  TxnListPreparedRequest req;
  TxnListPreparedResponse resp;
  SLUICE_RETURN_IF_ERROR(Call("TxnListPrepared", req, &resp));
  return std::vector<uint64_t>(resp.txids().begin(), resp.txids().end());
}

Status RemoteShardHandle::Rename(const RenameRequest& req) {
  RenameResponse resp;
  return Call("Rename", req, &resp);
}

Result<InodeAttr> RemoteShardHandle::Link(const Caller& caller, uint64_t ino, uint64_t new_parent,
                                          std::string_view new_name) {
  LinkRequest req;
  *req.mutable_caller() = caller;
  req.set_ino(ino);
  req.set_new_parent(new_parent);
  req.set_new_name(std::string(new_name));
  LinkResponse resp;
  SLUICE_RETURN_IF_ERROR(Call("Link", req, &resp));
  return std::move(*resp.mutable_attr());
}

Status RemoteShardHandle::Rmdir(const Caller& caller, uint64_t parent, std::string_view name) {
  RmdirRequest req;
  *req.mutable_caller() = caller;
  req.set_parent(parent);
  req.set_name(std::string(name));
  RmdirResponse resp;
  return Call("Rmdir", req, &resp);
}

Status RemoteShardHandle::UnlinkAny(const Caller& caller, uint64_t parent, std::string_view name,
                                    InodeAttr* victim) {
  return Unlink(caller, parent, name, victim);
}

}  // namespace sluice::meta
