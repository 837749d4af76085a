// libsluice: the C++ client of a Sluice cluster.
//
//   auto c = sluice::client::Client::Connect({.cluster = "~/.sluice/local/cluster.toml"});
//   auto f = (*c)->Open("/data/x", O_CREAT | O_WRONLY, 0644);
//   (*f)->Write(buf, n);  (*f)->Close();
//
// A Client caches the cluster map (refreshed when a server answers "stale
// map"), sends namespace calls to the meta shards (meta::MetaClient) and chunk
// IO straight to the data servers (DataClient). A file's bytes are striped:
// chunk i of a file lives on chain layout.chain_ids[i % stripe_width], chunk
// size from the layout. A read or write spanning many chunks is issued to all
// their chains at once.
//
// Consistency: close-to-open. Writes are buffered (write-behind) and sent in
// parallel in the background; Fsync()/Close() wait for them and report the
// file's new length to its meta shard, which keeps the maximum. A reader that
// opens after the writer closed sees every byte and the length.
//
// Failures: chunk IO and namespace calls retry transient failures (a server
// down, a stale map, a timeout) against a refreshed map and another replica
// for at most ClientOptions::deadline_ms, then fail with the last error
// (kUnavailable / kTimeout naming the server). No exceptions: every call
// returns Status or Result<T>; Status::to_errno() gives the POSIX errno.
//
// Thread-safety: Client is thread-safe. A File may be used from several
// threads at once for Pread/Pwrite; Read/Write (which move the file offset)
// need external ordering like POSIX read/write on a shared fd.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include "common/status.h"
#include "common/meta/dir_reader.h"
#include "common/meta/meta_types.h"
#include "common/meta/shard_handle.h"
#include "proto/meta.pb.h"

namespace sluice {
class DataClient;
namespace meta {
class MetaClient;
}
}  // namespace sluice

namespace sluice::client {

using meta::Caller;
using meta::DirEntry;
using meta::FileLayout;
using meta::InodeAttr;

struct ClientOptions {
  // Where the cluster is: a config file path (cluster.toml, "~" expanded) or
  // "host:port" of sluice-mgmtd. Empty: $SLUICE_HOME/local/cluster.toml
  // (default ~/.sluice/local/cluster.toml, the embedded local cluster).
  std::string cluster;
  // libfabric provider when `cluster` is host:port (a config file names its own).
  std::string provider = "tcp";
  // Tenant credential carried by every request: `secret` itself, or the file
  // holding it. Neither given: $SLUICE_TENANT / $SLUICE_SECRET_FILE, else the
  // config's tenant "default" when its secret file is readable (common/auth.h).
  std::string tenant;
  std::string secret;
  std::string secret_file;
  // Identity for permission checks. Default: the process's euid/egid.
  uint32_t uid = static_cast<uint32_t>(-1);
  uint32_t gid = static_cast<uint32_t>(-1);
  // Total time an operation may spend retrying transient failures.
  uint32_t deadline_ms = 30000;
  // Sequential reads fetch this many bytes ahead (0 disables read-ahead).
  size_t read_ahead_bytes = 8u << 20;
  // Windows of read_ahead_bytes fetched ahead of the reader at once (memory:
  // up to (windows + 1) x read_ahead_bytes per sequentially read File).
  size_t read_ahead_windows = 4;
  // Read-ahead buffers registered with the fabric and shared by every File
  // of this Client (data lands in them by RMA, uncopied). Allocated on use;
  // memory: up to this many x read_ahead_bytes. Beyond it, reads are bounced.
  size_t read_ahead_registered = 16;
  // Writes are buffered up to this many bytes per file before they are sent,
  // and at most `write_inflight_bytes` per file are in flight at once.
  size_t write_behind_bytes = 4u << 20;
  size_t write_inflight_bytes = 16u << 20;
  // Threads that send chunk writes (parallel writes to many chains).
  size_t io_threads = 8;
  // Path calls (Stat, Open, Mkdir, Unlink, ...) remember the directories on
  // their way for this long, so "/a/b/c/file" costs one lookup instead of
  // four. Like a FUSE mount's entry timeout: a directory renamed, removed or
  // chmod'ed by another client is seen by this one within this time; this
  // client's own rename/rmdir/setattr of a directory forget at once. 0: off.
  uint32_t dir_cache_ms = 1000;
};

// Counters a user may read at any time.
struct ClientStats {
  std::atomic<uint64_t> bytes_read{0};
  std::atomic<uint64_t> bytes_written{0};
  std::atomic<uint64_t> chunk_reads{0};
  std::atomic<uint64_t> chunk_writes{0};
  std::atomic<uint64_t> read_ahead_hits{0};
  std::atomic<uint64_t> retries{0};
  std::atomic<uint64_t> dir_cache_hits{0};
};

// Layouts: how a directory's new files are cut into chunks and spread over
// chains. Read on any file or directory, set on a directory (files created
// in it afterwards inherit it), as text "chunk_size=1048576 stripe_width=2
// chains=1,2,3,4" (keys optional when setting; sizes take KiB/MiB suffixes).
// Through a mount: `getfattr -n user.sluice.layout DIR`,
// `setfattr -n user.sluice.layout -v 'chunk_size=64KiB' DIR`; it is not
// listed by listxattr, so copying tools do not carry it to other systems.
inline constexpr char kLayoutXattr[] = "user.sluice.layout";
std::string FormatLayout(const FileLayout& layout);
// `text`'s keys applied over `base`; errors name the offending key.
Result<FileLayout> ParseLayout(std::string_view text, FileLayout base);

class Client;
class File;
class WritePool;
class ReadBuffers;

// State shared by every File of one inode in one Client: the layout, the
// largest end written here (the length to report), writes in flight.
struct InodeState;

// One range of a BatchRead.
struct BatchReadItem {
  File* file = nullptr;      // an open File (must stay open during the call)
  uint64_t offset = 0;
  size_t length = 0;
  void* dest = nullptr;      // `length` bytes
  // Results: bytes read (fewer only at end of file); status of the item.
  size_t bytes = 0;
  Status status;
};

class File {
 public:
  ~File();  // closes (errors are lost: call Close() to see them)
  File(const File&) = delete;
  File& operator=(const File&) = delete;

  // Read/Write at the file offset, advancing it. Write with O_APPEND writes at
  // the end of file. Return the bytes done (Read: 0 at end of file).
  Result<size_t> Read(void* buf, size_t n);
  Result<size_t> Write(const void* buf, size_t n);
  // Positional IO; the file offset is unchanged. A read returns fewer bytes
  // only at end of file; holes read as zeros.
  Result<size_t> Pread(void* buf, size_t n, uint64_t offset);
  Result<size_t> Pwrite(const void* buf, size_t n, uint64_t offset);
  // Pread without the last copy: bytes already in read-ahead memory are not
  // copied into `buf`; `spans` gets pieces pointing at them (or into `buf`),
  // in file order, valid until `spans` is cleared or destroyed. For callers
  // that hand the bytes on (the FUSE mount replies with them as an iovec).
  struct Spans {
    std::vector<std::pair<const char*, size_t>> pieces;
    std::vector<std::shared_ptr<const void>> hold;  // keeps the memory alive
  };
  Result<size_t> PreadSpans(void* buf, size_t n, uint64_t offset, Spans* spans);
  // New file offset (like lseek with SEEK_SET/SEEK_CUR/SEEK_END).
  Result<uint64_t> Seek(int64_t offset, int whence);
  // Makes every write so far durable on all replicas and reports the length.
  Status Fsync();
  // Fsync, then the File is closed; later calls fail with kInvalid.
  Status Close();
  // Sets the length (cut or extend with zeros).
  Status Truncate(uint64_t size);
  // Current length as this client knows it (meta size or the end of its own writes).
  uint64_t Size() const;
  uint64_t ino() const { return attr_.ino(); }
  const InodeAttr& attr() const { return attr_; }
  int flags() const { return flags_; }

 private:
  friend class Client;
  File(Client* c, InodeAttr attr, int flags, std::shared_ptr<InodeState> st);
  Status FlushBuffer(bool wait);
  Result<size_t> ReadAhead(void* buf, size_t n, uint64_t offset, Spans* spans = nullptr);

  Client* client_;
  InodeAttr attr_;
  int flags_;
  std::shared_ptr<InodeState> st_;
  bool closed_ = false;
  std::mutex mu_;  // offset, write buffer, read-ahead window
  uint64_t pos_ = 0;
  // Read-ahead: the window being consumed and the next one, fetched in the
  // background while the caller works through the current one.
  struct Window;
  std::shared_ptr<Window> StartWindow(uint64_t offset, uint64_t size, uint64_t gen);
  std::shared_ptr<Window> cur_;
  std::deque<std::shared_ptr<Window>> ahead_;
  uint64_t last_read_end_ = UINT64_MAX;
};

class Client {
 public:
  // Connects: reads the config (or uses host:port), fetches the cluster map.
  // Fails with kUnavailable naming mgmtd when it does not answer.
  static Result<std::unique_ptr<Client>> Connect(const ClientOptions& options);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // ---- Namespace by path ("/a/b", from the root; symlinks not followed in
  // intermediate components). Errors carry the path.
  Result<InodeAttr> Stat(std::string_view path);
  Result<InodeAttr> Mkdir(std::string_view path, uint32_t mode);
  // Unlink a file or symlink; the file's data is removed when it has no name left.
  Status Unlink(std::string_view path);
  Status Rmdir(std::string_view path);
  Status Rename(std::string_view from, std::string_view to);
  Result<std::vector<DirEntry>> ListDir(std::string_view path);
  // A file's layout, or what a directory gives the files created in it.
  Result<FileLayout> Layout(std::string_view path);
  // Sets a directory's layout from text (see kLayoutXattr); owner or root.
  Status SetDirLayout(std::string_view path, std::string_view layout);
  // Opens with open(2) flags: O_RDONLY/O_WRONLY/O_RDWR, O_CREAT, O_EXCL, O_TRUNC, O_APPEND.
  Result<std::unique_ptr<File>> Open(std::string_view path, int flags, uint32_t mode = 0644);

  // ---- Namespace by inode (what FUSE speaks). `caller` is the identity the
  // permission checks use.
  Result<InodeAttr> Lookup(const Caller& caller, uint64_t parent, std::string_view name);
  // Many names of one directory at once (batched per shard; results in
  // order, each with its own status): what `ls -l` and readdirplus need.
  std::vector<Result<InodeAttr>> LookupMany(const Caller& caller, uint64_t parent,
                                            const std::vector<std::string>& names);
  // The attributes, with the size merged with this client's unreported writes.
  Result<InodeAttr> GetAttr(uint64_t ino);
  // setattr(2)-like; a size change truncates the data too (meta::kSet* bits).
  Result<InodeAttr> SetAttr(const meta::SetAttrRequest& req);
  Result<meta::CreateResult> Create(const Caller& caller, uint64_t parent, std::string_view name,
                                    uint32_t mode, bool exclusive);
  Result<InodeAttr> MkdirAt(const Caller& caller, uint64_t parent, std::string_view name, uint32_t mode);
  Result<InodeAttr> SymlinkAt(const Caller& caller, uint64_t parent, std::string_view name,
                              std::string_view target);
  Result<std::string> Readlink(uint64_t ino);
  Result<InodeAttr> LinkAt(const Caller& caller, uint64_t ino, uint64_t new_parent, std::string_view new_name);
  // Removes the name. If that was the file's last name, *orphan (if given)
  // receives its attributes: the caller removes the data with RemoveData()
  // once nothing has it open (unlinked-but-open files stay readable). With
  // orphan == nullptr the data is removed in the background, as Lustre and
  // CephFS free an unlinked file's objects after the unlink returns
  // (WaitRemovals() waits for it; StatFs() and the Client's destructor do).
  Status UnlinkAt(const Caller& caller, uint64_t parent, std::string_view name, InodeAttr* orphan = nullptr);
  Status RmdirAt(const Caller& caller, uint64_t parent, std::string_view name);
  // Like UnlinkAt for a replaced destination.
  Status RenameAt(const Caller& caller, uint64_t old_parent, std::string_view old_name, uint64_t new_parent,
                  std::string_view new_name, uint32_t flags, InodeAttr* orphan = nullptr);
  // Every entry of a directory at once, the shards read concurrently.
  Result<std::vector<meta::DirEntry>> ReadDirAll(const Caller& caller, uint64_t dir);
  Result<meta::DirPage> ReadDirAt(const Caller& caller, uint64_t dir, std::string_view cookie,
                                  uint32_t max_entries);
  Result<meta::StatFsResult> StatFs();
  Result<std::string> GetXattr(const Caller& caller, uint64_t ino, std::string_view name);
  Status SetXattr(const Caller& caller, uint64_t ino, std::string_view name, std::string_view value,
                  uint32_t flags);
  Result<std::vector<std::string>> ListXattr(const Caller& caller, uint64_t ino);
  Status RemoveXattr(const Caller& caller, uint64_t ino, std::string_view name);
  // Opens an inode whose attributes the caller has (from Lookup/Create).
  // O_TRUNC truncates. Works on an unlinked inode while its data exists.
  Result<std::unique_ptr<File>> OpenInode(const InodeAttr& attr, int flags);
  // Sends this client's buffered writes of an inode, waits for them and
  // reports the length (what fsync does, for every File of the inode).
  Status FlushInode(uint64_t ino);
  // Removes every chunk of a file that has no name left.
  Status RemoveData(const InodeAttr& attr);
  // The same, on a background thread (waits while 4096 are queued).
  void RemoveDataLater(const InodeAttr& attr);
  // Returns once the data of every file queued by RemoveDataLater is gone
  // (failures are logged, naming the inode), or after timeout_ms (-1: no
  // limit); false on timeout.
  bool WaitRemovals(int timeout_ms = -1);

  // ---- Bulk IO for loaders.
  // Reads every item; items complete out of order, `on_done(i)` (if given)
  // runs as item i completes, on an internal thread (keep it short). Returns
  // when all are done; each item has its own status. Writes this client has
  // buffered for these files are sent first, so they are read back.
  Status BatchRead(std::span<BatchReadItem> items, const std::function<void(size_t)>& on_done = nullptr);
  // Registers memory that reads land in by RMA without a copy (zero-copy on
  // RDMA fabrics). The memory must stay valid for the Client's lifetime.
  Status RegisterBuffer(void* addr, size_t len);

  // The chain a chunk of this file lives on.
  uint32_t ChainOf(const InodeAttr& attr, uint64_t chunk_index) const;
  uint32_t ChunkSizeOf(const InodeAttr& attr) const;

  const ClientOptions& options() const { return options_; }
  const ClientStats& stats() const { return stats_; }
  const Caller& caller() const { return caller_; }
  meta::MetaClient* meta() { return meta_.get(); }
  DataClient* data() { return data_.get(); }

 private:
  friend class File;
  Client() = default;
  std::shared_ptr<InodeState> StateOf(const InodeAttr& attr);
  void DropStateIfIdle(uint64_t ino);
  // Reads [offset, offset+n) of the file into buf straight from the data
  // servers (holes and bytes past chunk ends as zeros). `size` bounds it.
  Result<size_t> ReadChunks(const InodeAttr& attr, void* buf, size_t n, uint64_t offset, uint64_t size);
  // Sends [offset, offset+n) to the chains; blocking. Updates stats.
  Status WriteChunks(const InodeAttr& attr, const char* buf, size_t n, uint64_t offset);
  // An extent taken out of an inode's write-behind buffer, its range already
  // registered as in flight.
  struct TakenExtent {
    uint64_t off = 0;
    std::shared_ptr<std::vector<char>> bytes;
    std::multimap<uint64_t, uint64_t>::iterator range;
  };
  // Empties the buffer once no older in-flight write overlaps it; `l` holds
  // st->mu (released while waiting).
  std::vector<TakenExtent> TakeBuffer(InodeState* st, std::unique_lock<std::mutex>& l);
  // Sends the inode's write-behind buffer (if any) now, after the in-flight
  // writes it overlaps; `l` holds st->mu (released while sending). Wait for
  // st->inflight_ranges to empty to know it landed.
  void WriteBufferNow(const InodeAttr& attr, const std::shared_ptr<InodeState>& st,
                      std::unique_lock<std::mutex>& l);
  // Sends taken extents (ascending, disjoint) as chunk writes in parallel,
  // the ranges that fall in one chunk together as one multi-range write. An
  // extent's range leaves st->inflight_ranges when its last chunk write
  // completes; each completion takes its bytes off st->inflight (the caller
  // added them) and records a failure in st->error.
  void SubmitExtents(const InodeAttr& attr, const std::shared_ptr<InodeState>& st,
                     std::vector<TakenExtent> extents);
  // Cuts the data of a file from old_size to new_size (chunks past the end removed).
  Status TruncateData(const InodeAttr& attr, uint64_t old_size, uint64_t new_size);
  Result<InodeAttr> Resolve(std::string_view path);
  Result<std::pair<uint64_t, std::string>> ResolveParent(std::string_view path);
  // The directory at `path` (normalized: "/" or "/a/b"), from the cache or
  // by lookups from its deepest cached ancestor. A name that vanished under
  // a cached ancestor makes one more walk from the root, uncached.
  Result<InodeAttr> ResolveDir(const std::string& path, bool use_cache = true);
  void ForgetDirs();
  // A looked-up size merged with this client's own unreported writes.
  void MergeLocalSize(InodeAttr* a);
  Result<FileLayout> LayoutOf(uint64_t ino);
  Status SetDirLayoutAt(const Caller& caller, uint64_t dir, std::string_view text);

  struct CachedDir {
    InodeAttr attr;
    std::chrono::steady_clock::time_point expires;
  };
  std::mutex dirs_mu_;
  std::unordered_map<std::string, CachedDir> dirs_;

  ClientOptions options_;
  Caller caller_;
  std::unique_ptr<meta::MetaClient> meta_;
  std::unique_ptr<DataClient> data_;
  std::unique_ptr<WritePool> pool_;
  std::shared_ptr<ReadBuffers> read_buffers_;
  uint32_t map_chunk_size_ = 1u << 20;
  uint32_t map_stripe_width_ = 1;
  std::vector<uint32_t> map_chains_;  // sorted chain ids of the cluster map
  std::mutex states_mu_;
  std::unordered_map<uint64_t, std::weak_ptr<InodeState>> states_;
  ClientStats stats_;

  // Background removal of unlinked files' data (RemoveDataLater).
  void RemoverLoop();
  std::mutex removals_mu_;
  std::condition_variable removals_cv_;
  std::deque<InodeAttr> removals_;
  size_t removals_running_ = 0;
  bool removals_stop_ = false;
  std::vector<std::thread> removers_;
};

// Expands a leading "~/" with $HOME.
std::string ExpandHome(const std::string& path);
// The embedded local cluster's config: $SLUICE_HOME/local/cluster.toml.
std::string DefaultClusterConfig();

}  // namespace sluice::client
