// Reading one directory whose entries are spread over every shard.
//
// The fan-out walks the shards in id order and each shard's entries in name
// order; the cookie names the shard and the last name returned there, so a
// listing resumes exactly (each entry once) across pages, whatever page
// sizes are used. Entries created or removed during a listing may or may not
// appear (as with readdir(3)).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "common/meta/shard_handle.h"

namespace sluice::meta {

struct DirPage {
  std::vector<DirEntry> entries;
  std::string cookie;  // pass back to continue; opaque bytes
  bool eof = false;    // no entries after this page
};

// Up to max_entries entries of `dir` after `cookie` (empty: the start).
// `shards` holds every shard by id. Checks that dir is a directory the
// caller may read. "." and ".." are not included (the FUSE edge adds them).
Result<DirPage> ReadDirAcrossShards(const std::vector<ShardHandle*>& shards, const Caller& caller,
                                    uint64_t dir, std::string_view cookie, uint32_t max_entries);

// Every entry of `dir` at once, in the same order, each shard's part paged
// on its own thread so that the shards answer concurrently (what opendir on
// a mount needs: it reads the whole directory).
Result<std::vector<DirEntry>> ReadWholeDir(const std::vector<ShardHandle*>& shards, const Caller& caller,
                                           uint64_t dir);

}  // namespace sluice::meta
