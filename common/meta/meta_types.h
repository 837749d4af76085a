// Shared vocabulary of the metadata shard: inode numbering, dentry placement,
// name rules and mode-bit permission checks. Value types (InodeAttr,
// FileLayout, Caller, DirEntry, TxnOp) are the Protobuf messages of
// proto/meta.proto, so the RPC layer passes them through unchanged.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"
#include "proto/meta.pb.h"

namespace sluice::meta {

// An inode number carries its shard id in the high 16 bits.
constexpr int kShardBits = 16;
constexpr int kInoLocalBits = 64 - kShardBits;
constexpr uint64_t kInoLocalMask = (uint64_t{1} << kInoLocalBits) - 1;
constexpr uint32_t kMaxShards = 1u << kShardBits;

// The root directory: local number 1 on shard 0.
constexpr uint64_t kRootIno = 1;

constexpr size_t kMaxNameLen = 255;        // bytes, like NAME_MAX
constexpr size_t kMaxSymlinkLen = 4095;    // bytes, like PATH_MAX - 1
constexpr size_t kMaxXattrNameLen = 255;
constexpr size_t kMaxXattrValueLen = 65536;

constexpr uint32_t kMinChunkSize = 64 * 1024;
constexpr uint32_t kMaxChunkSize = 64 * 1024 * 1024;
constexpr uint32_t kDefaultChunkSize = 1024 * 1024;

// SetAttrRequest.valid bits.
constexpr uint32_t kSetMode = 1u << 0;
constexpr uint32_t kSetUid = 1u << 1;
constexpr uint32_t kSetGid = 1u << 2;
constexpr uint32_t kSetSize = 1u << 3;
constexpr uint32_t kSetAtime = 1u << 4;
constexpr uint32_t kSetMtime = 1u << 5;
constexpr int64_t kTimeNow = -1;  // atime_ns/mtime_ns value meaning "now"

// RenameRequest.flags (Linux renameat2 values).
constexpr uint32_t kRenameNoReplace = 1;
constexpr uint32_t kRenameExchange = 2;

// SetXattrRequest.flags (Linux values).
constexpr uint32_t kXattrCreate = 1;
constexpr uint32_t kXattrReplace = 2;

// Access bits for CheckAccess.
constexpr int kMayRead = 4;
constexpr int kMayWrite = 2;
constexpr int kMayExec = 1;

inline uint64_t MakeIno(uint32_t shard, uint64_t local) {
  return (uint64_t{shard} << kInoLocalBits) | (local & kInoLocalMask);
}
inline uint32_t InodeShard(uint64_t ino) { return static_cast<uint32_t>(ino >> kInoLocalBits); }

// Stable 64-bit hash (FNV-1a over the parent's 8 little-endian bytes and the
// name, then a murmur3 finaliser). Never change it: it places data on disk.
uint64_t DentryHash(uint64_t parent, std::string_view name);
// A fixed 64-bit mixer (MurmurHash3's finalizer), the same on every machine:
// spreads inode numbers over lock stripes and chain pools.
uint64_t Mix64(uint64_t x);
// The shard that owns dentry (parent, name) in a cluster of num_shards shards.
inline uint32_t DentryShard(uint64_t parent, std::string_view name, uint32_t num_shards) {
  return static_cast<uint32_t>(DentryHash(parent, name) % num_shards);
}

// OK if `name` may be a directory entry: 1..255 bytes, no '/' or NUL, not
// "." or "..". `what` names the operation for the message.
Status ValidateName(std::string_view name, const char* what);

// True if `caller` may access `attr` with every bit of `want` (kMay*),
// following the owner/group/other mode bits; uid 0 passes except that
// execute on a non-directory needs some execute bit.
bool CheckAccess(const InodeAttr& attr, const Caller& caller, int want);
bool CallerInGroup(const Caller& caller, uint32_t gid);

// The EACCES status for a failed CheckAccess.
Status AccessDenied(const InodeAttr& attr, const Caller& caller, int want, const char* what);

// A Caller for uid/gid (tests and tools).
Caller MakeCaller(uint32_t uid, uint32_t gid);

// The default layout: 1 MiB chunks, stripe width 1, no chains assigned.
FileLayout DefaultLayout();
// OK if the layout may be set on a directory: chunk size a power of two in
// [64 KiB, 64 MiB], stripe width >= 1 and, when chains are given, <= their count.
Status ValidateLayout(const FileLayout& layout);

// Folds every shard's share of a directory's attributes into `dir` (an
// inode record as stored): nlink = 2 + the subdirectory entries on all
// shards; mtime = the value of the latest mtime event on any shard (the
// stored mtime when there is none); ctime = the latest of the stored ctime
// and every share's. Leaves non-directories alone.
void ApplyDirStats(InodeAttr* dir, const DirStats* parts, size_t count);
// Merges share `b` into `a` (the same rule, for combining several events).
void MergeDirStats(DirStats* a, const DirStats& b);

// "12" or "0x1:5" (shard:local) style rendering for messages.
std::string InoString(uint64_t ino);
// A name rendered printable for messages (non-printable bytes as \xNN).
std::string PrintableName(std::string_view name);

}  // namespace sluice::meta
