#include "common/meta/shard_router.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "common/clock.h"

namespace sluice::meta {

namespace {

// Calls fn until it returns something other than kBusy or the deadline passes.
template <typename F>
auto RetryBusy(int budget_ms, F fn) -> decltype(fn()) {
  const uint64_t deadline = NowMillis() + static_cast<uint64_t>(budget_ms);
  int sleep_us = 200;
  for (;;) {
    auto r = fn();
    if (r.ok() || r.status().code() != Code::kBusy || NowMillis() >= deadline) return r;
    std::this_thread::sleep_for(std::chrono::microseconds(sleep_us));
    sleep_us = std::min(sleep_us * 2, 20000);
  }
}

// Adapts a Status-returning call to RetryBusy (which wants .status()).
struct StatusBox {
  Status s;
  bool ok() const { return s.ok(); }
  const Status& status() const { return s; }
};

template <typename F>
Status RetryBusyStatus(int budget_ms, F fn) {
  return RetryBusy(budget_ms, [&] { return StatusBox{fn()}; }).s;
}

}  // namespace

ShardRouter::ShardRouter(std::vector<ShardHandle*> shards, ShardHandle* coordinator,
                         int busy_retry_ms)
    : shards_(std::move(shards)), coordinator_(coordinator), busy_retry_ms_(busy_retry_ms) {}

ShardHandle* ShardRouter::ShardForName(uint64_t parent, std::string_view name) const {
  return shards_[DentryShard(parent, name, num_shards())];
}

ShardHandle* ShardRouter::ShardForIno(uint64_t ino) const {
  uint32_t s = InodeShard(ino);
  return s < shards_.size() ? shards_[s] : nullptr;
}

#define SLUICE_INO_SHARD_OR_RETURN(var, ino, what)                                     \
  ShardHandle* var = ShardForIno(ino);                                                 \
  if (var == nullptr) {                                                                \
    return Status(Code::kNotFound, std::string(what) + ": inode " + InoString(ino) +   \
                                       " names a shard beyond the cluster");           \
  }

Status ShardRouter::CompleteDirAttr(InodeAttr* attr) {
  if (attr->type() != FILE_TYPE_DIRECTORY) return Status::Ok();
  // Every shard holds a share of the directory (its entries there): ask
  // them all at once and fold the answers in.
  const size_t n = shards_.size();
  std::vector<DirStats> parts(n);
  std::mutex mu;
  std::condition_variable cv;
  size_t pending = n;
  Status first;
  for (size_t i = 0; i < n; ++i) {
    shards_[i]->GetDirStatsAsync(attr->ino(), [&, i](Result<DirStats> r) {
      std::lock_guard<std::mutex> l(mu);
      if (r.ok()) {
        parts[i] = std::move(r).value();
      } else if (first.ok()) {
        first = r.status().Prefix("directory attributes of " + InoString(attr->ino()));
      }
      if (--pending == 0) cv.notify_all();
    });
  }
  {
    std::unique_lock<std::mutex> l(mu);
    cv.wait(l, [&] { return pending == 0; });
  }
  SLUICE_RETURN_IF_ERROR(first);
  ApplyDirStats(attr, parts.data(), parts.size());
  return Status::Ok();
}

Result<InodeAttr> ShardRouter::LookupRaw(const Caller& c, uint64_t parent, std::string_view name) {
  if (name == "." || name == "..") {
    SLUICE_INO_SHARD_OR_RETURN(h, parent, "lookup");
    return h->Lookup(c, parent, name);
  }
  SLUICE_RETURN_IF_ERROR(ValidateName(name, "lookup"));
  return ShardForName(parent, name)->Lookup(c, parent, name);
}

Result<InodeAttr> ShardRouter::Lookup(const Caller& c, uint64_t parent, std::string_view name) {
  SLUICE_ASSIGN_OR_RETURN(InodeAttr a, LookupRaw(c, parent, name));
  SLUICE_RETURN_IF_ERROR(CompleteDirAttr(&a));
  return a;
}

std::vector<Result<InodeAttr>> ShardRouter::LookupMany(const Caller& c,
                                                       const std::vector<LookupItem>& items,
                                                       size_t max_batch) {
  max_batch = std::clamp<size_t>(max_batch, 1, kMaxLookupBatch);
  const size_t n = items.size();
  std::vector<Result<InodeAttr>> out(n, Result<InodeAttr>(Status(Code::kInternal, "not looked up")));
  // Group the items by the shard that answers them, in calls of max_batch.
  struct Call {
    ShardHandle* shard;
    std::vector<size_t> index;
    std::vector<LookupItem> items;
  };
  std::vector<Call> calls;
  std::vector<int> open_call(shards_.size(), -1);
  for (size_t i = 0; i < n; ++i) {
    const LookupItem& it = items[i];
    ShardHandle* h = nullptr;
    if (it.name == "." || it.name == "..") {
      h = ShardForIno(it.parent);
      if (h == nullptr) {
        out[i] = Status(Code::kNotFound, "lookup: inode " + InoString(it.parent) +
                                             " names a shard beyond the cluster");
        continue;
      }
    } else {
      Status st = ValidateName(it.name, "lookup");
      if (!st.ok()) {
        out[i] = st;
        continue;
      }
      h = ShardForName(it.parent, it.name);
    }
    int& k = open_call[h->shard_id()];
    if (k < 0 || calls[static_cast<size_t>(k)].items.size() >= max_batch) {
      k = static_cast<int>(calls.size());
      calls.push_back(Call{h, {}, {}});
    }
    calls[static_cast<size_t>(k)].index.push_back(i);
    calls[static_cast<size_t>(k)].items.push_back(it);
  }
  std::mutex mu;
  std::condition_variable cv;
  size_t pending = calls.size();
  for (Call& call : calls) {
    auto done = [&, idx = &call.index](std::vector<Result<InodeAttr>> rs) {
      std::lock_guard<std::mutex> l(mu);
      for (size_t j = 0; j < idx->size(); ++j) {
        out[(*idx)[j]] = j < rs.size() ? std::move(rs[j])
                                       : Result<InodeAttr>(Status(Code::kProtocol, "lookup result missing"));
      }
      if (--pending == 0) cv.notify_all();
    };
    if (call.items.size() == 1) {
      const LookupItem& it = call.items[0];
      call.shard->LookupAsync(c, it.parent, it.name, [done](Result<InodeAttr> r) mutable {
        std::vector<Result<InodeAttr>> one;
        one.push_back(std::move(r));
        done(std::move(one));
      });
    } else {
      call.shard->LookupBatchAsync(c, std::move(call.items), done);
    }
  }
  {
    std::unique_lock<std::mutex> l(mu);
    cv.wait(l, [&] { return pending == 0; });
  }
  for (auto& r : out) {
    if (!r.ok()) continue;
    Status st = CompleteDirAttr(&r.value());
    if (!st.ok()) r = st;
  }
  return out;
}

Result<InodeAttr> ShardRouter::GetAttr(uint64_t ino) {
  SLUICE_INO_SHARD_OR_RETURN(h, ino, "getattr");
  SLUICE_ASSIGN_OR_RETURN(InodeAttr a, h->GetAttr(ino));
  SLUICE_RETURN_IF_ERROR(CompleteDirAttr(&a));
  return a;
}

Result<InodeAttr> ShardRouter::SetAttr(const SetAttrRequest& req) {
  SLUICE_INO_SHARD_OR_RETURN(h, req.ino(), "setattr");
  SLUICE_ASSIGN_OR_RETURN(InodeAttr a, RetryBusy(busy_retry_ms_, [&] { return h->SetAttr(req); }));
  SLUICE_RETURN_IF_ERROR(CompleteDirAttr(&a));
  return a;
}

Result<CreateResult> ShardRouter::Create(const Caller& c, uint64_t parent, std::string_view name,
                                         uint32_t mode, bool exclusive) {
  SLUICE_RETURN_IF_ERROR(ValidateName(name, "create"));
  ShardHandle* h = ShardForName(parent, name);
  return RetryBusy(busy_retry_ms_, [&] { return h->Create(c, parent, name, mode, exclusive); });
}

Result<InodeAttr> ShardRouter::Mkdir(const Caller& c, uint64_t parent, std::string_view name,
                                     uint32_t mode) {
  SLUICE_RETURN_IF_ERROR(ValidateName(name, "mkdir"));
  ShardHandle* h = ShardForName(parent, name);
  return RetryBusy(busy_retry_ms_, [&] { return h->Mkdir(c, parent, name, mode); });
}

Result<InodeAttr> ShardRouter::Symlink(const Caller& c, uint64_t parent, std::string_view name,
                                       std::string_view target) {
  SLUICE_RETURN_IF_ERROR(ValidateName(name, "symlink"));
  ShardHandle* h = ShardForName(parent, name);
  return RetryBusy(busy_retry_ms_, [&] { return h->Symlink(c, parent, name, target); });
}

Result<std::string> ShardRouter::Readlink(uint64_t ino) {
  SLUICE_INO_SHARD_OR_RETURN(h, ino, "readlink");
  return h->Readlink(ino);
}

Result<InodeAttr> ShardRouter::Link(const Caller& c, uint64_t ino, uint64_t new_parent,
                                    std::string_view new_name) {
  return RetryBusy(busy_retry_ms_, [&] { return coordinator_->Link(c, ino, new_parent, new_name); });
}

Status ShardRouter::Unlink(const Caller& c, uint64_t parent, std::string_view name, InodeAttr* victim) {
  SLUICE_RETURN_IF_ERROR(ValidateName(name, "unlink"));
  ShardHandle* h = ShardForName(parent, name);
  return RetryBusyStatus(busy_retry_ms_, [&] {
    Status st = h->Unlink(c, parent, name, victim);
    if (st.code() == Code::kCrossDevice) st = coordinator_->UnlinkAny(c, parent, name, victim);
    return st;
  });
}

Status ShardRouter::Rmdir(const Caller& c, uint64_t parent, std::string_view name) {
  return RetryBusyStatus(busy_retry_ms_, [&] { return coordinator_->Rmdir(c, parent, name); });
}

Status ShardRouter::Rename(const Caller& c, uint64_t old_parent, std::string_view old_name,
                           uint64_t new_parent, std::string_view new_name, uint32_t flags) {
  RenameRequest req;
  *req.mutable_caller() = c;
  req.set_old_parent(old_parent);
  req.set_old_name(std::string(old_name));
  req.set_new_parent(new_parent);
  req.set_new_name(std::string(new_name));
  req.set_flags(flags);
  return RetryBusyStatus(busy_retry_ms_, [&] { return coordinator_->Rename(req); });
}

Result<std::vector<DirEntry>> ShardRouter::ReadDirAll(const Caller& c, uint64_t dir) {
  return ReadWholeDir(shards_, c, dir);
}

Result<DirPage> ShardRouter::ReadDir(const Caller& c, uint64_t dir, std::string_view cookie,
                                     uint32_t max_entries) {
  return ReadDirAcrossShards(shards_, c, dir, cookie, max_entries);
}

Result<StatFsResult> ShardRouter::StatFs() {
  StatFsResult total;
  for (ShardHandle* h : shards_) {
    SLUICE_ASSIGN_OR_RETURN(StatFsResult r, h->StatFs());
    total.inodes += r.inodes;
    total.bytes += r.bytes;
    total.dentries += r.dentries;
  }
  return total;
}

Result<std::string> ShardRouter::GetXattr(const Caller& c, uint64_t ino, std::string_view name) {
  SLUICE_INO_SHARD_OR_RETURN(h, ino, "getxattr");
  return h->GetXattr(c, ino, name);
}

Status ShardRouter::SetXattr(const Caller& c, uint64_t ino, std::string_view name,
                             std::string_view value, uint32_t flags) {
  SLUICE_INO_SHARD_OR_RETURN(h, ino, "setxattr");
  return RetryBusyStatus(busy_retry_ms_, [&] { return h->SetXattr(c, ino, name, value, flags); });
}

Result<std::vector<std::string>> ShardRouter::ListXattr(const Caller& c, uint64_t ino) {
  SLUICE_INO_SHARD_OR_RETURN(h, ino, "listxattr");
  return h->ListXattr(c, ino);
}

Status ShardRouter::RemoveXattr(const Caller& c, uint64_t ino, std::string_view name) {
  SLUICE_INO_SHARD_OR_RETURN(h, ino, "removexattr");
  return RetryBusyStatus(busy_retry_ms_, [&] { return h->RemoveXattr(c, ino, name); });
}

Result<uint64_t> ShardRouter::ReportLength(uint64_t ino, uint64_t length) {
  SLUICE_INO_SHARD_OR_RETURN(h, ino, "report length");
  return RetryBusy(busy_retry_ms_, [&] { return h->ReportLength(ino, length); });
}

Status ShardRouter::SetDirLayout(const Caller& c, uint64_t dir, const FileLayout& layout) {
  SLUICE_INO_SHARD_OR_RETURN(h, dir, "set layout");
  return RetryBusyStatus(busy_retry_ms_, [&] { return h->SetDirLayout(c, dir, layout); });
}

Result<InodeAttr> ShardRouter::Resolve(const Caller& c, std::string_view path) {
  // Components are looked up raw; only the result gets its directory share.
  SLUICE_INO_SHARD_OR_RETURN(root, kRootIno, "resolve");
  SLUICE_ASSIGN_OR_RETURN(InodeAttr cur, root->GetAttr(kRootIno));
  size_t pos = 0;
  while (pos < path.size()) {
    while (pos < path.size() && path[pos] == '/') ++pos;
    if (pos >= path.size()) break;
    size_t end = path.find('/', pos);
    if (end == std::string_view::npos) end = path.size();
    SLUICE_ASSIGN_OR_RETURN(cur, LookupRaw(c, cur.ino(), path.substr(pos, end - pos)));
    pos = end;
  }
  SLUICE_RETURN_IF_ERROR(CompleteDirAttr(&cur));
  return cur;
}

}  // namespace sluice::meta
