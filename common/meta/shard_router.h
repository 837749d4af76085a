// ShardRouter: the namespace over N shards as one POSIX-like API. It sends
// each operation to the shard that owns its key (DentryShard for names,
// InodeShard for inode numbers), cross-shard ones to the coordinator shard,
// fans readdir out over every shard, and retries operations refused with
// kBusy (a key held by a cross-shard transaction) until a deadline.
//
// A directory's nlink and mtime/ctime are spread over the shards holding
// its entries (proto DirStats); the router asks every shard and folds them
// into the directory attributes it returns (CompleteDirAttr).
//
// This is what libsluice does over RPC handles; tests and the benchmark use
// it over LocalShardHandles. Thread-safe if the handles are.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "common/meta/dir_reader.h"
#include "common/meta/shard_handle.h"

namespace sluice::meta {

class ShardRouter {
 public:
  // `shards` by id; `coordinator` serves Rename/Link/Rmdir/UnlinkAny. The
  // handles must outlive the router.
  ShardRouter(std::vector<ShardHandle*> shards, ShardHandle* coordinator,
              int busy_retry_ms = 5000);

  uint32_t num_shards() const { return static_cast<uint32_t>(shards_.size()); }
  ShardHandle* ShardForName(uint64_t parent, std::string_view name) const;
  ShardHandle* ShardForIno(uint64_t ino) const;

  Result<InodeAttr> Lookup(const Caller& c, uint64_t parent, std::string_view name);
  // Looks up every item with all the lookups in flight at once: the items
  // of each shard travel in calls of up to `max_batch` (<= kMaxLookupBatch)
  // lookups, every call sent before any answer is awaited (pipelining, no
  // cache: each lookup reads the shard's current state). Results in the
  // order of `items`, each as Lookup would have returned it.
  std::vector<Result<InodeAttr>> LookupMany(const Caller& c, const std::vector<LookupItem>& items,
                                            size_t max_batch = kMaxLookupBatch);
  Result<InodeAttr> GetAttr(uint64_t ino);
  Result<InodeAttr> SetAttr(const SetAttrRequest& req);
  Result<CreateResult> Create(const Caller& c, uint64_t parent, std::string_view name,
                              uint32_t mode, bool exclusive);
  Result<InodeAttr> Mkdir(const Caller& c, uint64_t parent, std::string_view name, uint32_t mode);
  Result<InodeAttr> Symlink(const Caller& c, uint64_t parent, std::string_view name,
                            std::string_view target);
  Result<std::string> Readlink(uint64_t ino);
  Result<InodeAttr> Link(const Caller& c, uint64_t ino, uint64_t new_parent,
                         std::string_view new_name);
  Status Unlink(const Caller& c, uint64_t parent, std::string_view name, InodeAttr* victim = nullptr);
  Status Rmdir(const Caller& c, uint64_t parent, std::string_view name);
  Status Rename(const Caller& c, uint64_t old_parent, std::string_view old_name,
                uint64_t new_parent, std::string_view new_name, uint32_t flags = 0);
  Result<std::vector<DirEntry>> ReadDirAll(const Caller& c, uint64_t dir);
  Result<DirPage> ReadDir(const Caller& c, uint64_t dir, std::string_view cookie,
                          uint32_t max_entries);
  // Sum over every shard.
  Result<StatFsResult> StatFs();
  Result<std::string> GetXattr(const Caller& c, uint64_t ino, std::string_view name);
  Status SetXattr(const Caller& c, uint64_t ino, std::string_view name, std::string_view value,
                  uint32_t flags);
  Result<std::vector<std::string>> ListXattr(const Caller& c, uint64_t ino);
  Status RemoveXattr(const Caller& c, uint64_t ino, std::string_view name);
  Result<uint64_t> ReportLength(uint64_t ino, uint64_t length);
  Status SetDirLayout(const Caller& c, uint64_t dir, const FileLayout& layout);

  // Resolves "/a/b/c" from the root, one Lookup per component (no symlinks followed).
  Result<InodeAttr> Resolve(const Caller& c, std::string_view path);

  // Folds every shard's DirStats into a directory's attributes (nlink =
  // 2 + subdirectories, mtime/ctime of its latest entry change); other
  // types are left alone. Lookup, GetAttr, SetAttr and Resolve do this.
  Status CompleteDirAttr(InodeAttr* attr);

 private:
  // Lookup without CompleteDirAttr (intermediate path components).
  Result<InodeAttr> LookupRaw(const Caller& c, uint64_t parent, std::string_view name);

  std::vector<ShardHandle*> shards_;
  ShardHandle* coordinator_;
  int busy_retry_ms_;
};

}  // namespace sluice::meta
