#include "common/meta/meta_types.h"

#include <algorithm>
#include <cstdio>

namespace sluice::meta {

uint64_t DentryHash(uint64_t parent, std::string_view name) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (int i = 0; i < 8; ++i) {
    h ^= (parent >> (8 * i)) & 0xff;
    h *= 0x100000001b3ull;
  }
  for (unsigned char c : name) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  return Mix64(h);
}

uint64_t Mix64(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ull;
  x ^= x >> 33;
  return x;
}

Status ValidateName(std::string_view name, const char* what) {
  if (name.empty()) return Status(Code::kNotFound, std::string(what) + ": empty name");
  if (name.size() > kMaxNameLen) {
    return Status(Code::kNameTooLong, std::string(what) + ": name of " +
                                          std::to_string(name.size()) + " bytes exceeds the " +
                                          std::to_string(kMaxNameLen) + "-byte limit");
  }
  if (name == "." || name == "..") {
    return Status(Code::kInvalid, std::string(what) + ": '" + std::string(name) +
                                      "' is not a valid entry name here");
  }
  for (char c : name) {
    if (c == '/' || c == '\0') {
      return Status(Code::kInvalid, std::string(what) + ": name '" + PrintableName(name) +
                                        "' contains '/' or NUL");
    }
  }
  return Status::Ok();
}

bool CallerInGroup(const Caller& caller, uint32_t gid) {
  for (uint32_t g : caller.gids()) {
    if (g == gid) return true;
  }
  return false;
}

bool CheckAccess(const InodeAttr& attr, const Caller& caller, int want) {
  const uint32_t mode = attr.mode();
  if (caller.uid() == 0) {
    if ((want & kMayExec) && attr.type() != FILE_TYPE_DIRECTORY && (mode & 0111) == 0) {
      return false;
    }
    return true;
  }
  uint32_t bits;
  if (caller.uid() == attr.uid()) {
    bits = (mode >> 6) & 7;
  } else if (CallerInGroup(caller, attr.gid())) {
    bits = (mode >> 3) & 7;
  } else {
    bits = mode & 7;
  }
  return (bits & static_cast<uint32_t>(want)) == static_cast<uint32_t>(want);
}

Status AccessDenied(const InodeAttr& attr, const Caller& caller, int want, const char* what) {
  std::string w;
  if (want & kMayRead) w += "read";
  if (want & kMayWrite) w += w.empty() ? "write" : "+write";
  if (want & kMayExec) w += w.empty() ? "search/exec" : "+search/exec";
  char mode[16];
  std::snprintf(mode, sizeof(mode), "%04o", attr.mode());
  return Status(Code::kPermission, std::string(what) + ": uid " + std::to_string(caller.uid()) +
                                       " lacks " + w + " permission on inode " +
                                       InoString(attr.ino()) + " (mode " + mode + ", owner " +
                                       std::to_string(attr.uid()) + ":" +
                                       std::to_string(attr.gid()) + ")");
}

Caller MakeCaller(uint32_t uid, uint32_t gid) {
  Caller c;
  c.set_uid(uid);
  c.add_gids(gid);
  return c;
}

FileLayout DefaultLayout() {
  FileLayout l;
  l.set_chunk_size(kDefaultChunkSize);
  l.set_stripe_width(1);
  return l;
}

Status ValidateLayout(const FileLayout& layout) {
  const uint32_t cs = layout.chunk_size();
  if (cs < kMinChunkSize || cs > kMaxChunkSize || (cs & (cs - 1)) != 0) {
    return Status(Code::kInvalid, "layout: chunk size " + std::to_string(cs) +
                                      " must be a power of two in [64 KiB, 64 MiB]");
  }
  if (layout.stripe_width() == 0) {
    return Status(Code::kInvalid, "layout: stripe width must be at least 1");
  }
  if (layout.chain_ids_size() > 0 &&
      layout.stripe_width() > static_cast<uint32_t>(layout.chain_ids_size())) {
    return Status(Code::kInvalid, "layout: stripe width " +
                                      std::to_string(layout.stripe_width()) + " exceeds the " +
                                      std::to_string(layout.chain_ids_size()) +
                                      " chains given");
  }
  return Status::Ok();
}

void MergeDirStats(DirStats* a, const DirStats& b) {
  a->set_subdirs(a->subdirs() + b.subdirs());
  if (b.mtime_event_ns() > a->mtime_event_ns() ||
      (b.mtime_event_ns() == a->mtime_event_ns() && b.mtime_ns() > a->mtime_ns())) {
    a->set_mtime_event_ns(b.mtime_event_ns());
    a->set_mtime_ns(b.mtime_ns());
  }
  a->set_ctime_ns(std::max(a->ctime_ns(), b.ctime_ns()));
}

void ApplyDirStats(InodeAttr* dir, const DirStats* parts, size_t count) {
  if (dir->type() != FILE_TYPE_DIRECTORY) return;
  DirStats all;
  for (size_t i = 0; i < count; ++i) MergeDirStats(&all, parts[i]);
  dir->set_nlink(static_cast<uint32_t>(2 + all.subdirs()));
  if (all.mtime_event_ns() > 0) dir->set_mtime_ns(all.mtime_ns());
  dir->set_ctime_ns(std::max(dir->ctime_ns(), all.ctime_ns()));
}

std::string InoString(uint64_t ino) {
  if (InodeShard(ino) == 0) return std::to_string(ino);
  return std::to_string(ino) + " (shard " + std::to_string(InodeShard(ino)) + ":" +
         std::to_string(ino & kInoLocalMask) + ")";
}

std::string PrintableName(std::string_view name) {
  std::string out;
  for (unsigned char c : name) {
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      out.push_back(static_cast<char>(c));
    } else {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\x%02x", c);
      out += buf;
    }
    if (out.size() > 80) {
      out += "...";
      break;
    }
  }
  return out;
}

}  // namespace sluice::meta
