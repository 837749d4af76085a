#include "server/meta/meta_service.h"

#include "common/meta/dir_reader.h"
#include "common/meta/remote_shard_handle.h"

namespace sluice::meta {

MetaService::MetaService(MetaStore* store, std::vector<ShardHandle*> shards,
                         TxnCoordinator* coordinator)
    : store_(store), shards_(std::move(shards)), coordinator_(coordinator) {}

void MetaService::SetMapVersion(uint64_t version) {
  uint64_t cur = map_version_.load();
  while (version > cur && !map_version_.compare_exchange_weak(cur, version)) {
  }
}

template <typename Req, typename Resp, typename Fn>
void MetaService::Add(rpc::RpcServer* server, const char* method, Fn fn, bool read_only) {
  auto run = [this, method, fn](rpc::CallContext& ctx, const Req& req, Resp* resp) -> Status {
    const uint64_t known = map_version_.load();
    ctx.set_map_version(known);
    if (ctx.map_version() != 0 && ctx.map_version() < known) {
      stats_.stale_refused++;
      return Status(Code::kStaleMap,
                    std::string(method) + " on meta shard " + std::to_string(store_->shard_id()) +
                        ": request built against cluster map version " +
                        std::to_string(ctx.map_version()) + ", shard knows version " +
                        std::to_string(known) + "; refresh the map and retry");
    }
    if (!hook_) return fn(req, resp);
    hook_(method, false, Status::Ok());
    Status st = fn(req, resp);
    hook_(method, true, st);
    return st;
  };
  server->Register<Req, Resp>(MetaMethod(method), run);
  if (!read_only) return;
  // Read-only calls are answered on the progress thread as they arrive,
  // unless they need another shard (or a test hook watches calls): then a
  // worker answers them.
  server->RegisterInline<Req, Resp>(
      MetaMethod(method), [this, run](rpc::CallContext& ctx, const Req& req, Resp* resp) -> Status {
        if (hook_) return ctx.Defer();
        MetaStore::LocalOnlyScope local;
        Status st = run(ctx, req, resp);
        return local.needed_peer() ? ctx.Defer() : st;
      });
}

Status MetaService::Unlink(const UnlinkRequest& req, UnlinkResponse* resp) {
  const uint32_t owner = DentryShard(req.parent(), req.name(), store_->num_shards());
  Status st;
  if (owner == store_->shard_id()) {
    st = store_->Unlink(req.caller(), req.parent(), req.name(), resp->mutable_victim());
    if (st.code() != Code::kCrossDevice) return st;
  }
  if (coordinator_ != nullptr) {
    return coordinator_->Unlink(req.caller(), req.parent(), req.name(), resp->mutable_victim());
  }
  if (!st.ok()) return st;  // kCrossDevice: the caller asks the coordinator shard
  return Status(Code::kInvalid, "unlink " + InoString(req.parent()) + "/'" +
                                    PrintableName(req.name()) + "': the entry belongs to shard " +
                                    std::to_string(owner) + ", not shard " +
                                    std::to_string(store_->shard_id()));
}

namespace {
constexpr bool kReadOnly = true;

Status NotCoordinator(uint32_t shard, const char* what) {
  return Status(Code::kUnsupported, std::string(what) + ": meta shard " + std::to_string(shard) +
                                        " is not the coordinator shard (shard 0)");
}
}  // namespace

void MetaService::RegisterWith(rpc::RpcServer* server) {
  MetaStore* s = store_;
  Add<LookupRequest, LookupResponse>(server, "Lookup", [s](const LookupRequest& q, LookupResponse* r) {
    SLUICE_ASSIGN_OR_RETURN(*r->mutable_attr(), s->Lookup(q.caller(), q.parent(), q.name()));
    return Status::Ok();
  }, kReadOnly);
  Add<LookupBatchRequest, LookupBatchResponse>(server, "LookupBatch", [s](const LookupBatchRequest& q, LookupBatchResponse* r) {
    if (static_cast<size_t>(q.items_size()) > kMaxLookupBatch) {
      return Status(Code::kInvalid, "LookupBatch of " + std::to_string(q.items_size()) +
                                        " items exceeds " + std::to_string(kMaxLookupBatch));
    }
    std::vector<LookupItem> items;
    items.reserve(q.items_size());
    for (const auto& it : q.items()) items.push_back({it.parent(), it.name()});
    for (auto& res : s->LookupMany(q.caller(), items)) {
      LookupBatchResult* x = r->add_results();
      if (res.ok()) {
        *x->mutable_attr() = std::move(res).value();
      } else {
        x->set_code(static_cast<uint32_t>(res.status().code()));
        x->set_message(res.status().message());
      }
    }
    return Status::Ok();
  }, kReadOnly);
  Add<GetAttrRequest, GetAttrResponse>(server, "GetAttr", [s](const GetAttrRequest& q, GetAttrResponse* r) {
    SLUICE_ASSIGN_OR_RETURN(*r->mutable_attr(), s->GetAttr(q.ino()));
    return Status::Ok();
  }, kReadOnly);
  Add<SetAttrRequest, SetAttrResponse>(server, "SetAttr", [s](const SetAttrRequest& q, SetAttrResponse* r) {
    SLUICE_ASSIGN_OR_RETURN(*r->mutable_attr(), s->SetAttr(q));
    return Status::Ok();
  });
  Add<CreateRequest, CreateResponse>(server, "Create", [s](const CreateRequest& q, CreateResponse* r) {
    SLUICE_ASSIGN_OR_RETURN(CreateResult c,
                            s->Create(q.caller(), q.parent(), q.name(), q.mode(), q.exclusive()));
    *r->mutable_attr() = std::move(c.attr);
    r->set_created(c.created);
    return Status::Ok();
  });
  Add<MkdirRequest, MkdirResponse>(server, "Mkdir", [s](const MkdirRequest& q, MkdirResponse* r) {
    SLUICE_ASSIGN_OR_RETURN(*r->mutable_attr(), s->Mkdir(q.caller(), q.parent(), q.name(), q.mode()));
    return Status::Ok();
  });
  Add<SymlinkRequest, SymlinkResponse>(server, "Symlink", [s](const SymlinkRequest& q, SymlinkResponse* r) {
    SLUICE_ASSIGN_OR_RETURN(*r->mutable_attr(),
                            s->Symlink(q.caller(), q.parent(), q.name(), q.target()));
    return Status::Ok();
  });
  Add<ReadlinkRequest, ReadlinkResponse>(server, "Readlink", [s](const ReadlinkRequest& q, ReadlinkResponse* r) {
    SLUICE_ASSIGN_OR_RETURN(*r->mutable_target(), s->Readlink(q.ino()));
    return Status::Ok();
  }, kReadOnly);
  Add<UnlinkRequest, UnlinkResponse>(server, "Unlink", [this](const UnlinkRequest& q, UnlinkResponse* r) {
    return Unlink(q, r);
  });
  TxnCoordinator* co = coordinator_;
  const uint32_t id = s->shard_id();
  Add<LinkRequest, LinkResponse>(server, "Link", [co, id](const LinkRequest& q, LinkResponse* r) {
    if (!co) return NotCoordinator(id, "link");
    SLUICE_ASSIGN_OR_RETURN(*r->mutable_attr(),
                            co->Link(q.caller(), q.ino(), q.new_parent(), q.new_name()));
    return Status::Ok();
  });
  Add<RmdirRequest, RmdirResponse>(server, "Rmdir", [co, id](const RmdirRequest& q, RmdirResponse*) {
    if (!co) return NotCoordinator(id, "rmdir");
    return co->Rmdir(q.caller(), q.parent(), q.name());
  });
  Add<RenameRequest, RenameResponse>(server, "Rename", [co, id](const RenameRequest& q, RenameResponse*) {
    if (!co) return NotCoordinator(id, "rename");
    return co->Rename(q);
  });
  Add<ReadDirRequest, ReadDirResponse>(server, "ReadDir", [this](const ReadDirRequest& q, ReadDirResponse* r) {
    SLUICE_ASSIGN_OR_RETURN(DirPage page,
                            ReadDirAcrossShards(shards_, q.caller(), q.dir(), q.cookie(),
                                                std::min(q.max_entries(), kMaxWireDirEntries)));
    for (auto& e : page.entries) *r->add_entries() = std::move(e);
    r->set_cookie(std::move(page.cookie));
    r->set_eof(page.eof);
    return Status::Ok();
  });
  Add<StatFsRequest, StatFsResponse>(server, "StatFs", [s](const StatFsRequest&, StatFsResponse* r) {
    SLUICE_ASSIGN_OR_RETURN(StatFsResult f, s->StatFs());
    r->set_inodes(f.inodes);
    r->set_bytes(f.bytes);
    r->set_dentries(f.dentries);
    return Status::Ok();
  }, kReadOnly);
  Add<GetXattrRequest, GetXattrResponse>(server, "GetXattr", [s](const GetXattrRequest& q, GetXattrResponse* r) {
    SLUICE_ASSIGN_OR_RETURN(*r->mutable_value(), s->GetXattr(q.caller(), q.ino(), q.name()));
    return Status::Ok();
  }, kReadOnly);
  Add<SetXattrRequest, SetXattrResponse>(server, "SetXattr", [s](const SetXattrRequest& q, SetXattrResponse*) {
    return s->SetXattr(q.caller(), q.ino(), q.name(), q.value(), q.flags());
  });
  Add<ListXattrRequest, ListXattrResponse>(server, "ListXattr", [s](const ListXattrRequest& q, ListXattrResponse* r) {
    SLUICE_ASSIGN_OR_RETURN(std::vector<std::string> names, s->ListXattr(q.caller(), q.ino()));
    for (auto& n : names) r->add_names(std::move(n));
    return Status::Ok();
  }, kReadOnly);
  Add<RemoveXattrRequest, RemoveXattrResponse>(server, "RemoveXattr", [s](const RemoveXattrRequest& q, RemoveXattrResponse*) {
    return s->RemoveXattr(q.caller(), q.ino(), q.name());
  });
  Add<ReportLengthRequest, ReportLengthResponse>(server, "ReportLength", [s](const ReportLengthRequest& q, ReportLengthResponse* r) {
    SLUICE_ASSIGN_OR_RETURN(uint64_t size, s->ReportLength(q.ino(), q.length()));
    r->set_size(size);
    return Status::Ok();
  });
  Add<SetDirLayoutRequest, SetDirLayoutResponse>(server, "SetDirLayout", [s](const SetDirLayoutRequest& q, SetDirLayoutResponse*) {
    return s->SetDirLayout(q.caller(), q.dir(), q.layout());
  });
  Add<DirStatsRequest, DirStatsResponse>(server, "DirStats", [s](const DirStatsRequest& q, DirStatsResponse* r) {
    SLUICE_ASSIGN_OR_RETURN(*r->mutable_stats(), s->GetDirStats(q.dir()));
    return Status::Ok();
  }, kReadOnly);
  Add<ForgetDirRequest, ForgetDirResponse>(server, "ForgetDir", [s](const ForgetDirRequest& q, ForgetDirResponse*) {
    s->ForgetDir(q.dir());
    return Status::Ok();
  });
  Add<ReadDirShardRequest, ReadDirShardResponse>(server, "ReadDirShard", [s](const ReadDirShardRequest& q, ReadDirShardResponse* r) {
    SLUICE_ASSIGN_OR_RETURN(ShardDirPage page,
                            s->ReadDirShard(q.dir(), q.after(),
                                            std::min(q.max_entries(), kMaxWireDirEntries)));
    for (auto& e : page.entries) *r->add_entries() = std::move(e);
    r->set_more(page.more);
    return Status::Ok();
  });
  Add<TxnPrepareRequest, TxnPrepareResponse>(server, "TxnPrepare", [s](const TxnPrepareRequest& q, TxnPrepareResponse*) {
    return s->TxnPrepare(q.record());
  });
  Add<TxnDecideRequest, TxnDecideResponse>(server, "TxnDecide", [s](const TxnDecideRequest& q, TxnDecideResponse*) {
    return s->TxnDecide(q.txid(), q.commit());
  });
  Add<TxnPrepareRequest, TxnPrepareResponse>(server, "TxnApply", [s](const TxnPrepareRequest& q, TxnPrepareResponse*) {
    if (q.record().txid() != 0) {
      return Status(Code::kInvalid, "TxnApply on meta shard " + std::to_string(s->shard_id()) +
                                        ": a one-shard transaction carries no txid (got " +
                                        std::to_string(q.record().txid()) + ")");
    }
    std::vector<TxnOp> ops(q.record().ops().begin(), q.record().ops().end());
    return s->TxnApply(ops);
  });
  Add<TxnListPreparedRequest, TxnListPreparedResponse>(server, "TxnListPrepared", [s](const TxnListPreparedRequest&, TxnListPreparedResponse* r) {
    for (uint64_t t : s->PreparedTxns()) r->add_txids(t);
    return Status::Ok();
  });
}

}  // namespace sluice::meta
