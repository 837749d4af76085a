#include "common/meta/dir_reader.h"

#include <exception>
#include <thread>

namespace sluice::meta {

namespace {

// Entries per shard call of ReadWholeDir (a remote shard sends at most
// kMaxWireDirEntries, 512, per answer).
constexpr uint32_t kWholeDirPage = 512;

// `dir` must be a directory the caller may read.
Status CheckReadableDir(const std::vector<ShardHandle*>& shards, const Caller& caller, uint64_t dir,
                        const std::string& where) {
  const uint32_t n = static_cast<uint32_t>(shards.size());
  if (n == 0) return Status(Code::kInvalid, where + ": no shards");
  if (InodeShard(dir) >= n) return Status(Code::kNotFound, where + ": no such shard");
  SLUICE_ASSIGN_OR_RETURN(InodeAttr attr, shards[InodeShard(dir)]->GetAttr(dir));
  if (attr.type() != FILE_TYPE_DIRECTORY) return Status(Code::kNotDir, where + ": not a directory");
  if (!CheckAccess(attr, caller, kMayRead)) return AccessDenied(attr, caller, kMayRead, "readdir");
  return Status::Ok();
}

// Cookie: 4-byte big-endian shard index, then the last name returned there.
std::string EncodeCookie(uint32_t shard, std::string_view after) {
  std::string c;
  for (int i = 3; i >= 0; --i) c.push_back(static_cast<char>((shard >> (8 * i)) & 0xff));
  c.append(after);
  return c;
}

}  // namespace

Result<DirPage> ReadDirAcrossShards(const std::vector<ShardHandle*>& shards, const Caller& caller,
                                    uint64_t dir, std::string_view cookie, uint32_t max_entries) {
  const uint32_t n = static_cast<uint32_t>(shards.size());
  const std::string where = "readdir " + InoString(dir);
  SLUICE_RETURN_IF_ERROR(CheckReadableDir(shards, caller, dir, where));
  if (max_entries == 0) max_entries = 1;

  uint32_t shard = 0;
  std::string after;
  if (!cookie.empty()) {
    if (cookie.size() < 4 || cookie.size() > 4 + kMaxNameLen) {
      return Status(Code::kInvalid, where + ": malformed cookie of " +
                                        std::to_string(cookie.size()) + " bytes");
    }
    shard = 0;
    for (int i = 0; i < 4; ++i) shard = (shard << 8) | static_cast<unsigned char>(cookie[i]);
    if (shard > n) return Status(Code::kInvalid, where + ": cookie names shard " + std::to_string(shard));
    after.assign(cookie.substr(4));
  }
  DirPage page;
  while (shard < n) {
    uint32_t want = max_entries - static_cast<uint32_t>(page.entries.size());
    SLUICE_ASSIGN_OR_RETURN(ShardDirPage part, shards[shard]->ReadDirShard(dir, after, want));
    for (auto& e : part.entries) page.entries.push_back(std::move(e));
    if (part.more) {
      page.cookie = EncodeCookie(shard, page.entries.back().name());
      return page;
    }
    ++shard;
    after.clear();
    if (page.entries.size() >= max_entries) break;
  }
  page.eof = shard >= n;
  page.cookie = EncodeCookie(shard, {});
  return page;
}

Result<std::vector<DirEntry>> ReadWholeDir(const std::vector<ShardHandle*>& shards, const Caller& caller,
                                           uint64_t dir) {
  const size_t n = shards.size();
  SLUICE_RETURN_IF_ERROR(CheckReadableDir(shards, caller, dir, "readdir " + InoString(dir)));
  std::vector<std::vector<DirEntry>> parts(n);
  std::vector<Status> status(n);
  auto read_shard = [&](size_t s) noexcept {
    try {
      std::string after;
      for (;;) {
        auto page = shards[s]->ReadDirShard(dir, after, kWholeDirPage);
        if (!page.ok()) {
          status[s] = page.status();
          return;
        }
        for (auto& e : page->entries) parts[s].push_back(std::move(e));
        if (!page->more) return;
        after = parts[s].back().name();
      }
    } catch (const std::exception& e) {
      status[s] = Status(Code::kInternal, "readdir " + InoString(dir) + " on shard " + std::to_string(s) + ": " +
                                              e.what());
    }
  };
  std::vector<std::thread> threads;
  threads.reserve(n);
  size_t here_from = n;  // shards read on this thread because no thread could start
  for (size_t s = 1; s < n; s++) {
    try {
      threads.emplace_back(read_shard, s);
    } catch (const std::exception&) {
      here_from = s;
      break;
    }
  }
  read_shard(0);
  for (size_t s = here_from; s < n; s++) read_shard(s);
  for (std::thread& t : threads) t.join();
  std::vector<DirEntry> all;
  size_t total = 0;
  for (size_t s = 0; s < n; s++) {
    SLUICE_RETURN_IF_ERROR(status[s]);
    total += parts[s].size();
  }
  all.reserve(total);
  for (auto& p : parts) {
    for (auto& e : p) all.push_back(std::move(e));
  }
  return all;
}

}  // namespace sluice::meta
