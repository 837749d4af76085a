// sluice-fuse: the POSIX mount of a Sluice cluster, on the libfuse3
// low-level API over libsluice. One function per operation; errors are
// replied as errno (Status::to_errno()).
//
//   sluice-fuse MOUNTPOINT [--config FILE] [--tenant T --secret-file F] [-f] [--entry-timeout S]
//               [--attr-timeout S] [--writeback-cache] [--allow-other]
//               [--threads N] [--log FILE] [-o fuse,options]
//
// Without -f it detaches once the mount is live (the parent returns 0) or
// prints why it could not mount (the parent returns 1).
//
// Inodes: FUSE inode numbers are Sluice inode numbers (root = 1 on both
// sides), so no table is needed for lookups. A table of open inodes keeps
// what unlink would otherwise lose: a file unlinked (or replaced by rename)
// while open stays readable and writable through its open handles; its data
// is removed when the last handle is released.
//
// Consistency: close-to-open. flush (every close(2)) waits for the file's
// writes and reports its length to meta, so another mount that opens the
// file afterwards sees its bytes and st_size (after its attr timeout).
#define FUSE_USE_VERSION 34

#include <fuse3/fuse_lowlevel.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "client/sluice_client.h"
#include "common/owner_watch.h"
#include "common/data_client.h"
#include "common/log.h"
#include "common/meta/meta_client.h"

namespace sluice::fuse {
namespace {

using client::Client;
using client::File;
using meta::InodeAttr;

struct MountOptions {
  std::string mountpoint;
  std::string config;
  std::string tenant, secret_file;  // empty: $SLUICE_TENANT/$SLUICE_SECRET_FILE or the config's "default"
  bool foreground = false;
  double entry_timeout = 1.0;
  double attr_timeout = 1.0;
  bool writeback_cache = false;
  bool allow_other = false;
  unsigned threads = 16;
  std::string log;
  std::string fuse_opts;  // extra -o options
};

// What the mount keeps per open inode.
struct OpenInode {
  int opens = 0;
  bool orphan = false;  // no name left: remove the data at the last release
  InodeAttr attr;       // for getattr of an orphan
};

struct FileHandle {
  std::unique_ptr<File> file;
};

struct DirHandle {
  std::vector<meta::DirEntry> entries;
};

class SluiceFs {
 public:
  SluiceFs(std::unique_ptr<Client> c, const MountOptions& o) : client(std::move(c)), opts(o) {}

  std::unique_ptr<Client> client;
  MountOptions opts;
  std::mutex mu;
  std::unordered_map<uint64_t, OpenInode> open;

  // Called after unlink/rename dropped the last name of a file.
  void Orphaned(const InodeAttr& attr) {
    if (attr.ino() == 0) return;
    {
      std::lock_guard<std::mutex> l(mu);
      auto it = open.find(attr.ino());
      if (it != open.end() && it->second.opens > 0) {
        it->second.orphan = true;
        it->second.attr = attr;
        return;
      }
    }
    client->RemoveDataLater(attr);
  }

  // The kernel asks for security.capability before every write (a write must
  // drop it), so a mount would send one xattr RPC per write. Inodes found
  // without it are remembered for attr_timeout — the staleness the kernel
  // already accepts for the mode bits it checks to drop setuid on a write
  // (a capability set through another mount is dropped by writes here once
  // that time has passed; attr_timeout 0 turns both off). A setxattr or
  // removexattr through this mount forgets the inode at once, and a
  // getxattr answer that raced one (the epoch moved) is not remembered.
  // True when the inode is known to have none; else *epoch is what NoCaps
  // must see unchanged to remember an answer about to be asked for.
  bool KnownWithoutCaps(uint64_t ino, uint64_t* epoch) {
    std::lock_guard<std::mutex> l(caps_mu);
    auto it = no_caps.find(ino);
    *epoch = caps_epoch;
    return it != no_caps.end() && std::chrono::steady_clock::now() < it->second;
  }
  uint64_t CapsEpoch() {
    std::lock_guard<std::mutex> l(caps_mu);
    return caps_epoch;
  }
  void NoCaps(uint64_t ino, uint64_t epoch_seen) {
    std::lock_guard<std::mutex> l(caps_mu);
    if (epoch_seen != caps_epoch) return;
    if (no_caps.size() >= 65536) no_caps.clear();
    no_caps[ino] = std::chrono::steady_clock::now() +
                   std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                       std::chrono::duration<double>(opts.attr_timeout));
  }
  void ForgetCaps(uint64_t ino) {
    std::lock_guard<std::mutex> l(caps_mu);
    caps_epoch++;
    no_caps.erase(ino);
  }
  std::mutex caps_mu;
  uint64_t caps_epoch = 0;  // setxattr/removexattr calls begun or ended
  std::unordered_map<uint64_t, std::chrono::steady_clock::time_point> no_caps;
};

constexpr char kCapsXattr[] = "security.capability";

SluiceFs* Fs(fuse_req_t req) { return static_cast<SluiceFs*>(fuse_req_userdata(req)); }

meta::Caller CallerOf(fuse_req_t req) {
  const fuse_ctx* ctx = fuse_req_ctx(req);
  return meta::MakeCaller(ctx->uid, ctx->gid);
}

void ToStat(const InodeAttr& a, struct stat* st) {
  std::memset(st, 0, sizeof *st);
  st->st_ino = a.ino();
  mode_t type = a.type() == meta::FILE_TYPE_DIRECTORY ? S_IFDIR
                : a.type() == meta::FILE_TYPE_SYMLINK ? S_IFLNK
                                                      : S_IFREG;
  st->st_mode = type | (a.mode() & 07777);
  st->st_nlink = a.nlink();
  st->st_uid = a.uid();
  st->st_gid = a.gid();
  st->st_size = static_cast<off_t>(a.size());
  st->st_blksize = 1 << 20;
  st->st_blocks = static_cast<blkcnt_t>((a.size() + 511) / 512);
  auto ts = [](int64_t ns) {
    struct timespec t;
    t.tv_sec = ns / 1000000000;
    t.tv_nsec = ns % 1000000000;
    return t;
  };
  st->st_atim = ts(a.atime_ns());
  st->st_mtim = ts(a.mtime_ns());
  st->st_ctim = ts(a.ctime_ns());
}

void ReplyEntry(fuse_req_t req, const InodeAttr& a) {
  fuse_entry_param e;
  std::memset(&e, 0, sizeof e);
  e.ino = a.ino();
  e.generation = 1;
  ToStat(a, &e.attr);
  e.attr_timeout = Fs(req)->opts.attr_timeout;
  e.entry_timeout = Fs(req)->opts.entry_timeout;
  fuse_reply_entry(req, &e);
}

void ReplyErr(fuse_req_t req, const Status& s) {
  int e = s.to_errno();
  if (e != ENOENT && e != EEXIST && e != ENODATA && e != ENOTEMPTY) LOG_INFO("fuse: " + s.ToString());
  fuse_reply_err(req, e ? e : EIO);
}

// ------------------------------------------------------------ operations --

void OpInit(void* userdata, fuse_conn_info* conn) {
  auto* fs = static_cast<SluiceFs*>(userdata);
  conn->max_write = 1u << 20;
  conn->max_read = 1u << 20;
  conn->max_readahead = 1u << 20;
  conn->max_background = 64;
  if (fs->opts.writeback_cache && (conn->capable & FUSE_CAP_WRITEBACK_CACHE)) {
    conn->want |= FUSE_CAP_WRITEBACK_CACHE;
  } else {
    conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
  }
  if (conn->capable & FUSE_CAP_READDIRPLUS) conn->want |= FUSE_CAP_READDIRPLUS;
  if (conn->capable & FUSE_CAP_ASYNC_READ) conn->want |= FUSE_CAP_ASYNC_READ;
  if (conn->capable & FUSE_CAP_PARALLEL_DIROPS) conn->want |= FUSE_CAP_PARALLEL_DIROPS;
}

void OpLookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
  auto r = Fs(req)->client->Lookup(CallerOf(req), parent, name);
  if (!r.ok()) return ReplyErr(req, r.status());
  ReplyEntry(req, *r);
}

void OpForget(fuse_req_t req, fuse_ino_t, uint64_t) { fuse_reply_none(req); }

void OpForgetMulti(fuse_req_t req, size_t, fuse_forget_data*) { fuse_reply_none(req); }

void OpGetattr(fuse_req_t req, fuse_ino_t ino, fuse_file_info*) {
  SluiceFs* fs = Fs(req);
  {
    std::lock_guard<std::mutex> l(fs->mu);
    auto it = fs->open.find(ino);
    if (it != fs->open.end() && it->second.orphan) {
      InodeAttr a = it->second.attr;
      auto st = fs->client->GetAttr(ino);  // meta forgot it; the client still knows our writes
      (void)st;
      struct stat s;
      ToStat(a, &s);
      return (void)fuse_reply_attr(req, &s, 0);
    }
  }
  auto r = fs->client->GetAttr(ino);
  if (!r.ok()) return ReplyErr(req, r.status());
  struct stat s;
  ToStat(*r, &s);
  fuse_reply_attr(req, &s, fs->opts.attr_timeout);
}

void OpSetattr(fuse_req_t req, fuse_ino_t ino, struct stat* attr, int to_set, fuse_file_info*) {
  SluiceFs* fs = Fs(req);
  meta::SetAttrRequest q;
  *q.mutable_caller() = CallerOf(req);
  q.set_ino(ino);
  uint32_t valid = 0;
  if (to_set & FUSE_SET_ATTR_MODE) {
    valid |= meta::kSetMode;
    q.set_mode(attr->st_mode & 07777);
  }
  if (to_set & FUSE_SET_ATTR_UID) {
    valid |= meta::kSetUid;
    q.set_uid(attr->st_uid);
  }
  if (to_set & FUSE_SET_ATTR_GID) {
    valid |= meta::kSetGid;
    q.set_gid(attr->st_gid);
  }
  if (to_set & FUSE_SET_ATTR_SIZE) {
    valid |= meta::kSetSize;
    q.set_size(static_cast<uint64_t>(attr->st_size));
  }
  auto ns = [](const struct timespec& t) { return static_cast<int64_t>(t.tv_sec) * 1000000000 + t.tv_nsec; };
  if (to_set & FUSE_SET_ATTR_ATIME_NOW) {
    valid |= meta::kSetAtime;
    q.set_atime_ns(meta::kTimeNow);
  } else if (to_set & FUSE_SET_ATTR_ATIME) {
    valid |= meta::kSetAtime;
    q.set_atime_ns(ns(attr->st_atim));
  }
  if (to_set & FUSE_SET_ATTR_MTIME_NOW) {
    valid |= meta::kSetMtime;
    q.set_mtime_ns(meta::kTimeNow);
  } else if (to_set & FUSE_SET_ATTR_MTIME) {
    valid |= meta::kSetMtime;
    q.set_mtime_ns(ns(attr->st_mtim));
  }
  q.set_valid(valid);
  {
    // An orphan (unlinked, still open) has no inode record left in meta: keep
    // the change in the mount's copy (the writeback cache sends mtime updates
    // at close). A size change still flushes and reaches the data.
    std::lock_guard<std::mutex> l(fs->mu);
    auto it = fs->open.find(ino);
    if (it != fs->open.end() && it->second.orphan) {
      InodeAttr& a = it->second.attr;
      if (valid & meta::kSetMode) a.set_mode(q.mode());
      if (valid & meta::kSetUid) a.set_uid(q.uid());
      if (valid & meta::kSetGid) a.set_gid(q.gid());
      if (valid & meta::kSetSize) a.set_size(q.size());
      if (valid & meta::kSetMtime) a.set_mtime_ns(q.mtime_ns() == meta::kTimeNow ? a.ctime_ns() : q.mtime_ns());
      struct stat s;
      ToStat(a, &s);
      return (void)fuse_reply_attr(req, &s, 0);
    }
  }
  auto r = fs->client->SetAttr(q);
  if (!r.ok()) return ReplyErr(req, r.status());
  struct stat s;
  ToStat(*r, &s);
  fuse_reply_attr(req, &s, fs->opts.attr_timeout);
}

void OpReadlink(fuse_req_t req, fuse_ino_t ino) {
  auto r = Fs(req)->client->Readlink(ino);
  if (!r.ok()) return ReplyErr(req, r.status());
  fuse_reply_readlink(req, r->c_str());
}

void OpMknod(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, dev_t) {
  if (!S_ISREG(mode)) return (void)fuse_reply_err(req, EPERM);
  auto r = Fs(req)->client->Create(CallerOf(req), parent, name, mode & 07777, true);
  if (!r.ok()) return ReplyErr(req, r.status());
  ReplyEntry(req, r->attr);
}

void OpMkdir(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode) {
  auto r = Fs(req)->client->MkdirAt(CallerOf(req), parent, name, mode & 07777);
  if (!r.ok()) return ReplyErr(req, r.status());
  ReplyEntry(req, *r);
}

void OpUnlink(fuse_req_t req, fuse_ino_t parent, const char* name) {
  SluiceFs* fs = Fs(req);
  InodeAttr orphan;
  Status s = fs->client->UnlinkAt(CallerOf(req), parent, name, &orphan);
  if (!s.ok()) return ReplyErr(req, s);
  fs->Orphaned(orphan);
  fuse_reply_err(req, 0);
}

void OpRmdir(fuse_req_t req, fuse_ino_t parent, const char* name) {
  Status s = Fs(req)->client->RmdirAt(CallerOf(req), parent, name);
  if (!s.ok()) return ReplyErr(req, s);
  fuse_reply_err(req, 0);
}

void OpSymlink(fuse_req_t req, const char* link, fuse_ino_t parent, const char* name) {
  auto r = Fs(req)->client->SymlinkAt(CallerOf(req), parent, name, link);
  if (!r.ok()) return ReplyErr(req, r.status());
  ReplyEntry(req, *r);
}

void OpRename(fuse_req_t req, fuse_ino_t parent, const char* name, fuse_ino_t newparent, const char* newname,
              unsigned int flags) {
  SluiceFs* fs = Fs(req);
  InodeAttr orphan;
  Status s = fs->client->RenameAt(CallerOf(req), parent, name, newparent, newname, flags, &orphan);
  if (!s.ok()) return ReplyErr(req, s);
  fs->Orphaned(orphan);
  fuse_reply_err(req, 0);
}

void OpLink(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char* newname) {
  auto r = Fs(req)->client->LinkAt(CallerOf(req), ino, newparent, newname);
  if (!r.ok()) return ReplyErr(req, r.status());
  ReplyEntry(req, *r);
}

// Opens `attr` for a FUSE handle and counts it in the open table.
Result<FileHandle*> OpenHandle(SluiceFs* fs, const InodeAttr& attr, int flags) {
  if (fs->opts.writeback_cache) {
    // The kernel reads pages of files opened write-only and handles O_APPEND itself.
    if ((flags & O_ACCMODE) == O_WRONLY) flags = (flags & ~O_ACCMODE) | O_RDWR;
    flags &= ~O_APPEND;
  }
  auto f = fs->client->OpenInode(attr, flags);
  if (!f.ok()) return f.status();
  {
    std::lock_guard<std::mutex> l(fs->mu);
    OpenInode& o = fs->open[attr.ino()];
    o.opens++;
    if (!o.orphan) o.attr = attr;
  }
  return new FileHandle{std::move(f.value())};
}

void OpOpen(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  SluiceFs* fs = Fs(req);
  InodeAttr attr;
  {
    std::lock_guard<std::mutex> l(fs->mu);
    auto it = fs->open.find(ino);
    if (it != fs->open.end() && it->second.orphan) attr = it->second.attr;
  }
  if (attr.ino() == 0) {
    auto r = fs->client->GetAttr(ino);
    if (!r.ok()) return ReplyErr(req, r.status());
    attr = *r;
  }
  if (attr.type() == meta::FILE_TYPE_DIRECTORY) return (void)fuse_reply_err(req, EISDIR);
  auto h = OpenHandle(fs, attr, fi->flags);
  if (!h.ok()) return ReplyErr(req, h.status());
  fi->fh = reinterpret_cast<uint64_t>(*h);
  fi->keep_cache = 0;  // close-to-open: drop pages another client may have changed
  fuse_reply_open(req, fi);
}

void OpCreate(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, fuse_file_info* fi) {
  SluiceFs* fs = Fs(req);
  auto r = fs->client->Create(CallerOf(req), parent, name, mode & 07777, (fi->flags & O_EXCL) != 0);
  if (!r.ok()) return ReplyErr(req, r.status());
  if (r->attr.type() == meta::FILE_TYPE_DIRECTORY) return (void)fuse_reply_err(req, EISDIR);
  int flags = fi->flags;
  if (r->created) {
    flags &= ~O_TRUNC;
    fs->NoCaps(r->attr.ino(), fs->CapsEpoch());  // a new file has no extended attributes
  }
  auto h = OpenHandle(fs, r->attr, flags);
  if (!h.ok()) return ReplyErr(req, h.status());
  fi->fh = reinterpret_cast<uint64_t>(*h);
  fuse_entry_param e;
  std::memset(&e, 0, sizeof e);
  e.ino = r->attr.ino();
  e.generation = 1;
  InodeAttr a = r->attr;
  if (flags & O_TRUNC) a.set_size(0);
  ToStat(a, &e.attr);
  e.attr_timeout = fs->opts.attr_timeout;
  e.entry_timeout = fs->opts.entry_timeout;
  fuse_reply_create(req, &e, fi);
}

FileHandle* Handle(fuse_file_info* fi) { return reinterpret_cast<FileHandle*>(fi->fh); }

void OpRead(fuse_req_t req, fuse_ino_t, size_t size, off_t off, fuse_file_info* fi) {
  // One buffer per loop thread, reused: a fresh 1 MiB allocation per read
  // costs 256 page faults.
  thread_local std::vector<char> buf;
  if (buf.size() < size) buf.resize(size);
  // Sequential reads reply straight from the read-ahead windows (no copy
  // into `buf`); other reads land in `buf`.
  thread_local client::File::Spans spans;
  auto r = Handle(fi)->file->PreadSpans(buf.data(), size, static_cast<uint64_t>(off), &spans);
  if (!r.ok()) return ReplyErr(req, r.status());
  thread_local std::vector<iovec> iov;
  iov.clear();
  for (auto& [p, n] : spans.pieces) iov.push_back({const_cast<char*>(p), n});
  fuse_reply_iov(req, iov.data(), static_cast<int>(iov.size()));
  spans.pieces.clear();
  spans.hold.clear();
}

void OpWrite(fuse_req_t req, fuse_ino_t, const char* buf, size_t size, off_t off, fuse_file_info* fi) {
  auto r = Handle(fi)->file->Pwrite(buf, size, static_cast<uint64_t>(off));
  if (!r.ok()) return ReplyErr(req, r.status());
  fuse_reply_write(req, *r);
}

void OpFlush(fuse_req_t req, fuse_ino_t, fuse_file_info* fi) {
  // Every close(2): the writes land and the length is published (close-to-open).
  Status s = Handle(fi)->file->Fsync();
  fuse_reply_err(req, s.ok() ? 0 : s.to_errno());
}

void OpRelease(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  SluiceFs* fs = Fs(req);
  FileHandle* h = Handle(fi);
  Status s = h->file->Close();
  if (!s.ok()) LOG_WARN("release of " + meta::InoString(ino) + ": " + s.ToString());
  delete h;
  InodeAttr orphan;
  {
    std::lock_guard<std::mutex> l(fs->mu);
    auto it = fs->open.find(ino);
    if (it != fs->open.end() && --it->second.opens <= 0) {
      if (it->second.orphan) orphan = it->second.attr;
      fs->open.erase(it);
    }
  }
  if (orphan.ino() != 0) {
    fs->client->RemoveDataLater(orphan);
  }
  fuse_reply_err(req, 0);
}

void OpFsync(fuse_req_t req, fuse_ino_t, int, fuse_file_info* fi) {
  Status s = Handle(fi)->file->Fsync();
  fuse_reply_err(req, s.ok() ? 0 : s.to_errno());
}

void OpOpendir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  SluiceFs* fs = Fs(req);
  meta::Caller c = CallerOf(req);
  auto d = std::make_unique<DirHandle>();
  auto all = fs->client->ReadDirAll(c, ino);
  if (!all.ok()) return ReplyErr(req, all.status());
  d->entries = std::move(*all);
  fi->fh = reinterpret_cast<uint64_t>(d.release());
  fuse_reply_open(req, fi);
}

void ReadDirCommon(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi, bool plus) {
  SluiceFs* fs = Fs(req);
  auto* d = reinterpret_cast<DirHandle*>(fi->fh);
  std::vector<char> buf(size);
  size_t used = 0;
  meta::Caller c = CallerOf(req);
  // readdirplus: the attributes of the entries this reply can hold, looked
  // up all at once (batched per shard) rather than one round trip each.
  size_t first = off > 2 ? static_cast<size_t>(off - 2) : 0;
  std::vector<Result<InodeAttr>> attrs;
  if (plus && first < d->entries.size()) {
    // A readdirplus record is a 128-byte entry_out, a 24-byte dirent and the name.
    size_t fit = std::min(d->entries.size() - first, size / 160 + 1);
    std::vector<std::string> names;
    names.reserve(fit);
    for (size_t i = first; i < first + fit; ++i) names.push_back(d->entries[i].name());
    attrs = fs->client->LookupMany(c, ino, names);
  }
  // Offsets: 1 = ".", 2 = "..", 2 + i + 1 = entries[i].
  for (off_t pos = off; ; ++pos) {
    std::string name;
    struct stat st;
    std::memset(&st, 0, sizeof st);
    InodeAttr attr;
    if (pos == 0) {
      name = ".";
      st.st_ino = ino;
      st.st_mode = S_IFDIR;
    } else if (pos == 1) {
      name = "..";
      st.st_ino = ino;  // the kernel resolves ".." itself
      st.st_mode = S_IFDIR;
    } else {
      size_t i = static_cast<size_t>(pos - 2);
      if (i >= d->entries.size()) break;
      const meta::DirEntry& e = d->entries[i];
      name = e.name();
      st.st_ino = e.ino();
      st.st_mode = e.type() == meta::FILE_TYPE_DIRECTORY ? S_IFDIR
                   : e.type() == meta::FILE_TYPE_SYMLINK ? S_IFLNK
                                                         : S_IFREG;
      if (plus) {
        auto r = i - first < attrs.size() ? std::move(attrs[i - first]) : fs->client->Lookup(c, ino, name);
        if (!r.ok()) continue;  // vanished since opendir
        attr = *r;
      }
    }
    size_t n;
    if (plus) {
      fuse_entry_param e;
      std::memset(&e, 0, sizeof e);
      if (attr.ino() != 0) {
        e.ino = attr.ino();
        e.generation = 1;
        ToStat(attr, &e.attr);
        e.attr_timeout = fs->opts.attr_timeout;
        e.entry_timeout = fs->opts.entry_timeout;
      } else {
        e.attr = st;  // "." and "..": ino 0 entry is not looked up by the kernel
      }
      n = fuse_add_direntry_plus(req, buf.data() + used, size - used, name.c_str(), &e, pos + 1);
    } else {
      n = fuse_add_direntry(req, buf.data() + used, size - used, name.c_str(), &st, pos + 1);
    }
    if (n > size - used) break;
    used += n;
  }
  fuse_reply_buf(req, buf.data(), used);
}

void OpReaddir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi) {
  ReadDirCommon(req, ino, size, off, fi, false);
}

void OpReaddirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi) {
  ReadDirCommon(req, ino, size, off, fi, true);
}

void OpReleasedir(fuse_req_t req, fuse_ino_t, fuse_file_info* fi) {
  delete reinterpret_cast<DirHandle*>(fi->fh);
  fuse_reply_err(req, 0);
}

void OpStatfs(fuse_req_t req, fuse_ino_t) {
  SluiceFs* fs = Fs(req);
  auto r = fs->client->StatFs();
  if (!r.ok()) return ReplyErr(req, r.status());
  uint64_t cap = 0, used = 0, rep = 1;
  auto map = fs->client->data()->Map();
  if (map.ok()) {
    for (auto& t : map->targets()) {
      cap += t.capacity_bytes();
      used += t.used_bytes();
    }
    rep = std::max<uint64_t>(1, map->replication());
  }
  struct statvfs s;
  std::memset(&s, 0, sizeof s);
  s.f_bsize = 1 << 20;
  s.f_frsize = 4096;
  s.f_blocks = cap / rep / 4096;
  s.f_bfree = cap > used ? (cap - used) / rep / 4096 : 0;
  s.f_bavail = s.f_bfree;
  s.f_files = r->inodes + (1ull << 32);
  s.f_ffree = 1ull << 32;
  s.f_favail = s.f_ffree;
  s.f_namemax = meta::kMaxNameLen;
  fuse_reply_statfs(req, &s);
}

void OpSetxattr(fuse_req_t req, fuse_ino_t ino, const char* name, const char* value, size_t size, int flags) {
  Fs(req)->ForgetCaps(ino);
  Status s = Fs(req)->client->SetXattr(CallerOf(req), ino, name, std::string_view(value, size),
                                       static_cast<uint32_t>(flags));
  Fs(req)->ForgetCaps(ino);
  fuse_reply_err(req, s.ok() ? 0 : s.to_errno());
}

void OpGetxattr(fuse_req_t req, fuse_ino_t ino, const char* name, size_t size) {
  SluiceFs* fs = Fs(req);
  const bool caps = std::strcmp(name, kCapsXattr) == 0;
  uint64_t epoch = 0;
  if (caps && fs->KnownWithoutCaps(ino, &epoch)) return (void)fuse_reply_err(req, ENODATA);
  auto r = fs->client->GetXattr(CallerOf(req), ino, name);
  if (!r.ok()) {
    if (caps && r.status().to_errno() == ENODATA) fs->NoCaps(ino, epoch);
    return (void)fuse_reply_err(req, r.status().to_errno());
  }
  if (size == 0) return (void)fuse_reply_xattr(req, r->size());
  if (r->size() > size) return (void)fuse_reply_err(req, ERANGE);
  fuse_reply_buf(req, r->data(), r->size());
}

void OpListxattr(fuse_req_t req, fuse_ino_t ino, size_t size) {
  auto r = Fs(req)->client->ListXattr(CallerOf(req), ino);
  if (!r.ok()) return (void)fuse_reply_err(req, r.status().to_errno());
  std::string all;
  for (auto& n : *r) {
    all += n;
    all.push_back('\0');
  }
  if (size == 0) return (void)fuse_reply_xattr(req, all.size());
  if (all.size() > size) return (void)fuse_reply_err(req, ERANGE);
  fuse_reply_buf(req, all.data(), all.size());
}

void OpRemovexattr(fuse_req_t req, fuse_ino_t ino, const char* name) {
  Fs(req)->ForgetCaps(ino);
  Status s = Fs(req)->client->RemoveXattr(CallerOf(req), ino, name);
  Fs(req)->ForgetCaps(ino);
  fuse_reply_err(req, s.ok() ? 0 : s.to_errno());
}

fuse_lowlevel_ops MakeOps() {
  fuse_lowlevel_ops ops;
  std::memset(&ops, 0, sizeof ops);
  ops.init = OpInit;
  ops.lookup = OpLookup;
  ops.forget = OpForget;
  ops.forget_multi = OpForgetMulti;
  ops.getattr = OpGetattr;
  ops.setattr = OpSetattr;
  ops.readlink = OpReadlink;
  ops.mknod = OpMknod;
  ops.mkdir = OpMkdir;
  ops.unlink = OpUnlink;
  ops.rmdir = OpRmdir;
  ops.symlink = OpSymlink;
  ops.rename = OpRename;
  ops.link = OpLink;
  ops.open = OpOpen;
  ops.create = OpCreate;
  ops.read = OpRead;
  ops.write = OpWrite;
  ops.flush = OpFlush;
  ops.release = OpRelease;
  ops.fsync = OpFsync;
  ops.opendir = OpOpendir;
  ops.readdir = OpReaddir;
  ops.readdirplus = OpReaddirplus;
  ops.releasedir = OpReleasedir;
  ops.statfs = OpStatfs;
  ops.setxattr = OpSetxattr;
  ops.getxattr = OpGetxattr;
  ops.listxattr = OpListxattr;
  ops.removexattr = OpRemovexattr;
  return ops;
}

// ----------------------------------------------------------------- main --

void Usage() {
  std::fprintf(stderr,
               "usage: sluice-fuse MOUNTPOINT [--config FILE] [-f] [--entry-timeout S] [--attr-timeout S]\n"
               "                  [--writeback-cache] [--allow-other] [--threads N] [--log FILE] [-o opts]\n"
               "  --config FILE   cluster config (default: $SLUICE_HOME/local/cluster.toml, ~/.sluice/...)\n"
               "  --tenant NAME --secret-file FILE   credential (default: $SLUICE_TENANT, $SLUICE_SECRET_FILE,\n"
               "                  else the config's tenant \"default\" when its secret file is readable)\n"
               "  -f              stay in the foreground\n"
               "  --entry-timeout/--attr-timeout S   kernel cache timeouts in seconds (default 1)\n"
               "  --writeback-cache                  let the kernel cache writes (faster small writes)\n"
               "  --log FILE      daemon log (default: $SLUICE_HOME/logs/fuse<mountpoint>.log)\n");
}

bool ParseArgs(int argc, char** argv, MountOptions* o) {
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&](const char* what) -> const char* {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "sluice-fuse: %s needs a value\n", what);
        return nullptr;
      }
      return argv[++i];
    };
    const char* v = nullptr;
    if (a == "-f" || a == "--foreground") {
      o->foreground = true;
    } else if (a == "--writeback-cache") {
      o->writeback_cache = true;
    } else if (a == "--allow-other") {
      o->allow_other = true;
    } else if (a == "--config") {
      if (!(v = next("--config"))) return false;
      o->config = v;
    } else if (a == "--tenant") {
      if (!(v = next("--tenant"))) return false;
      o->tenant = v;
    } else if (a == "--secret-file") {
      if (!(v = next("--secret-file"))) return false;
      o->secret_file = v;
    } else if (a == "--entry-timeout") {
      if (!(v = next("--entry-timeout"))) return false;
      o->entry_timeout = std::atof(v);
    } else if (a == "--attr-timeout") {
      if (!(v = next("--attr-timeout"))) return false;
      o->attr_timeout = std::atof(v);
    } else if (a == "--threads") {
      if (!(v = next("--threads"))) return false;
      o->threads = static_cast<unsigned>(std::max(1, std::atoi(v)));
    } else if (a == "--log") {
      if (!(v = next("--log"))) return false;
      o->log = v;
    } else if (a == "-o") {
      if (!(v = next("-o"))) return false;
      o->fuse_opts += (o->fuse_opts.empty() ? "" : ",") + std::string(v);
    } else if (a == "-h" || a == "--help") {
      Usage();
      std::exit(0);
    } else if (!a.empty() && a[0] != '-' && o->mountpoint.empty()) {
      o->mountpoint = a;
    } else {
      std::fprintf(stderr, "sluice-fuse: unknown argument '%s'\n", a.c_str());
      return false;
    }
  }
  if (o->mountpoint.empty()) {
    Usage();
    return false;
  }
  return true;
}

// Runs the mount; reports readiness (0) or a message on `ready_fd` (-1: none).
int Run(const MountOptions& o, int ready_fd) {
  auto report = [&](const std::string& msg) {
    if (ready_fd >= 0) {
      std::string m = msg.empty() ? std::string(1, '\0') : msg;
      ssize_t w = write(ready_fd, m.data(), m.size());
      (void)w;
      close(ready_fd);
    } else if (!msg.empty()) {
      std::fprintf(stderr, "%s\n", msg.c_str());
    }
  };
  client::ClientOptions co;
  co.cluster = o.config;
  co.tenant = o.tenant;
  co.secret_file = o.secret_file;
  auto c = Client::Connect(co);
  if (!c.ok()) {
    report("sluice-fuse: cannot connect to the cluster: " + c.status().ToString());
    return 1;
  }
  SluiceFs fs(std::move(c.value()), o);
  std::string fopts = "fsname=sluice,subtype=sluice,default_permissions,max_read=1048576";
  if (o.allow_other) fopts += ",allow_other";
  if (!o.fuse_opts.empty()) fopts += "," + o.fuse_opts;
  std::vector<std::string> argv_s = {"sluice-fuse", "-o", fopts};
  std::vector<char*> argv;
  for (auto& s : argv_s) argv.push_back(s.data());
  fuse_args args = FUSE_ARGS_INIT(static_cast<int>(argv.size()), argv.data());
  fuse_lowlevel_ops ops = MakeOps();
  fuse_session* se = fuse_session_new(&args, &ops, sizeof ops, &fs);
  if (!se) {
    report("sluice-fuse: bad FUSE options '" + fopts + "'");
    return 1;
  }
  // libfabric's shm provider installs SIGTERM/SIGINT/SIGHUP handlers when it
  // loads (to remove its regions; it then exits), and libfuse only installs
  // its own over the default: the mount died without unmounting. Ours win:
  // the session ends and the mount is released; dead regions are swept by
  // the next endpoint (common/fabric.cc).
  for (int sig : {SIGTERM, SIGINT, SIGHUP}) signal(sig, SIG_DFL);
  if (fuse_set_signal_handlers(se) != 0) {
    fuse_session_destroy(se);
    report("sluice-fuse: cannot set signal handlers");
    return 1;
  }
  // The loop's thread (waiting for the session to end) takes the signal.
  pthread_t loop_thread = pthread_self();
  WatchOwnerFromEnv("sluice-fuse " + o.mountpoint, [loop_thread] { pthread_kill(loop_thread, SIGTERM); });
  if (fuse_session_mount(se, o.mountpoint.c_str()) != 0) {
    fuse_remove_signal_handlers(se);
    fuse_session_destroy(se);
    report("sluice-fuse: cannot mount on " + o.mountpoint +
           " (does it exist, is something mounted there, is /dev/fuse usable?)");
    return 1;
  }
  // Live means the kernel finished INIT and the root answers: check from a
  // thread while the loop serves, then tell the parent.
  std::string mp = o.mountpoint;
  std::thread probe([mp, report, se] {
    struct stat st;
    if (stat(mp.c_str(), &st) == 0 && st.st_ino == meta::kRootIno) {
      report("");
    } else {
      report("sluice-fuse: the mount on " + mp + " did not come up: " + std::strerror(errno));
      fuse_session_exit(se);
    }
  });
  fuse_loop_config cfg;
  std::memset(&cfg, 0, sizeof cfg);
  cfg.clone_fd = 0;
  cfg.max_idle_threads = o.threads;
  int rc = fuse_session_loop_mt(se, &cfg);
  probe.join();
  fuse_session_unmount(se);
  fuse_remove_signal_handlers(se);
  fuse_session_destroy(se);
  fuse_opt_free_args(&args);
  return rc == 0 ? 0 : 1;
}

}  // namespace
}  // namespace sluice::fuse

int main(int argc, char** argv) {
  using namespace sluice::fuse;
  MountOptions o;
  if (!ParseArgs(argc, argv, &o)) return 2;
  char* real = realpath(o.mountpoint.c_str(), nullptr);
  if (!real) {
    std::fprintf(stderr, "sluice-fuse: mountpoint %s: %s\n", o.mountpoint.c_str(), std::strerror(errno));
    return 1;
  }
  o.mountpoint = real;
  std::free(real);
  sluice::SetLogComponent("fuse");
  if (o.foreground) return Run(o, -1);
  // Detach before any thread exists; the child reports when the mount is live.
  int p[2];
  if (pipe(p) != 0) return 1;
  pid_t pid = fork();
  if (pid < 0) {
    std::perror("sluice-fuse: fork");
    return 1;
  }
  if (pid > 0) {
    close(p[1]);
    std::string msg;
    char buf[512];
    ssize_t n;
    while ((n = read(p[0], buf, sizeof buf)) > 0) msg.append(buf, static_cast<size_t>(n));
    if (msg.size() == 1 && msg[0] == '\0') return 0;
    if (msg.empty()) msg = "sluice-fuse: the mount process exited before the mount was live";
    std::fprintf(stderr, "%s\n", msg.c_str());
    int st = 0;
    waitpid(pid, &st, WNOHANG);
    return 1;
  }
  close(p[0]);
  setsid();
  if (chdir("/") != 0) return 1;
  if (o.log.empty()) {
    // Default: $SLUICE_HOME/logs/fuse<mountpoint with '/' as '_'>.log
    const char* h = std::getenv("SLUICE_HOME");
    const char* home = std::getenv("HOME");
    std::string dir = h ? std::string(h) : std::string(home ? home : "/root") + "/.sluice";
    mkdir(dir.c_str(), 0755);
    dir += "/logs";
    mkdir(dir.c_str(), 0755);
    std::string name = o.mountpoint;
    for (char& ch : name) ch = ch == '/' ? '_' : ch;
    o.log = dir + "/fuse" + name + ".log";
  }
  int nul = open("/dev/null", O_RDWR);
  int logfd = open(o.log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  if (logfd < 0) logfd = nul;
  dup2(nul, 0);
  dup2(logfd, 1);
  dup2(logfd, 2);
  return Run(o, p[1]);
}
