#include "prefetch/sluice_dataset.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>

#include <atomic>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "client/sluice_client.h"
#include "prefetch/sluice_sample_reader.h"

namespace sluice::prefetch {

bool IsSluiceUrl(const std::string& s) { return s.rfind(kSluiceScheme, 0) == 0; }

Result<SluiceUrl> ParseSluiceUrl(const std::string& url) {
  SluiceUrl out;
  if (!IsSluiceUrl(url)) {
    if (url.empty() || url[0] != '/') {
      return Status(Code::kInvalid, "'" + url + "' is neither a sluice:// URL nor an absolute Sluice path");
    }
    out.path = url;
  } else {
    std::string rest = url.substr(sizeof(kSluiceScheme) - 1);
    size_t slash = rest.find('/');
    out.cluster = rest.substr(0, slash);
    out.path = slash == std::string::npos ? "/" : rest.substr(slash);
    if (!out.cluster.empty() && out.cluster.find(':') == std::string::npos) {
      return Status(Code::kInvalid, "'" + url + "': '" + out.cluster +
                                        "' is not host:port of sluice-mgmtd (for the path /" + rest +
                                        " on the configured cluster write sluice:///" + rest + ")");
    }
  }
  while (out.path.size() > 1 && out.path.back() == '/') out.path.pop_back();
  return out;
}

namespace {

class SluiceScanFile final : public ScanFile {
 public:
  SluiceScanFile(std::unique_ptr<client::File> f, std::string name)
      : f_(std::move(f)), size_(f_->Size()), name_(std::move(name)) {}
  uint64_t size() const override { return size_; }
  const std::string& path() const override { return name_; }
  Status ReadAt(uint64_t offset, void* buf, size_t n) const override {
    char* p = static_cast<char*>(buf);
    while (n > 0) {
      auto r = f_->Pread(p, n, offset);
      if (!r.ok()) return Status(r.status().code(), "read '" + name_ + "': " + r.status().message());
      if (*r == 0) {
        return Status(Code::kCorrupt, "'" + name_ + "' is truncated at byte " + std::to_string(offset));
      }
      p += *r;
      n -= *r;
      offset += *r;
    }
    return Status::Ok();
  }

 private:
  std::unique_ptr<client::File> f_;  // Pread is thread-safe and leaves the offset alone
  uint64_t size_;
  std::string name_;
};

FsEntry EntryOf(const std::string& name, const client::InodeAttr& a) {
  FsEntry e;
  e.name = name;
  e.is_dir = a.type() == meta::FILE_TYPE_DIRECTORY;
  e.is_file = a.type() == meta::FILE_TYPE_REGULAR;
  e.size = e.is_file ? a.size() : 0;
  return e;
}

}  // namespace

struct SluiceFs::Impl {
  std::shared_ptr<client::Client> client;
  std::mutex mu;
  std::unordered_map<std::string, client::InodeAttr> attrs;  // regular files seen, by Sluice path

  void Remember(const std::string& path, const client::InodeAttr& a) {
    if (a.type() != meta::FILE_TYPE_REGULAR) return;
    std::lock_guard<std::mutex> lk(mu);
    attrs[path] = a;
  }
};

SluiceFs::SluiceFs(std::shared_ptr<client::Client> client) : impl_(new Impl) {
  impl_->client = std::move(client);
}
SluiceFs::~SluiceFs() = default;

Result<FsEntry> SluiceFs::Stat(const std::string& path) {
  SLUICE_ASSIGN_OR_RETURN(SluiceUrl u, ParseSluiceUrl(path));
  auto a = impl_->client->Stat(u.path);
  if (!a.ok()) return Status(a.status().code(), "stat '" + path + "': " + a.status().message());
  impl_->Remember(u.path, *a);
  return EntryOf(path, *a);
}

Result<std::vector<FsEntry>> SluiceFs::List(const std::string& dir) {
  SLUICE_ASSIGN_OR_RETURN(SluiceUrl u, ParseSluiceUrl(dir));
  auto entries = impl_->client->ListDir(u.path);
  if (!entries.ok()) return Status(entries.status().code(), "list '" + dir + "': " + entries.status().message());
  std::vector<FsEntry> out;
  std::vector<std::pair<size_t, uint64_t>> need;  // (out slot, ino) of entries needing their attributes
  for (const auto& d : *entries) {
    FsEntry e;
    e.name = d.name();
    if (d.type() == meta::FILE_TYPE_DIRECTORY) {
      e.is_dir = true;
    } else if (d.type() == meta::FILE_TYPE_REGULAR || d.type() == meta::FILE_TYPE_SYMLINK) {
      need.emplace_back(out.size(), d.ino());
    } else {
      continue;
    }
    out.push_back(std::move(e));
  }
  // File sizes: one GetAttr each (symlinks: Stat of the path), several in
  // flight at once (they wait on the meta server, not on the CPU).
  std::vector<Status> errors(need.size());
  std::atomic<size_t> next{0};
  auto work = [&] {
    for (size_t k; (k = next.fetch_add(1)) < need.size();) {
      FsEntry& e = out[need[k].first];
      std::string full = JoinPath(u.path, e.name);
      auto a = impl_->client->GetAttr(need[k].second);
      if (a.ok() && a->type() == meta::FILE_TYPE_SYMLINK) a = impl_->client->Stat(full);
      if (!a.ok()) {
        if (a.status().code() != Code::kNotFound) {
          errors[k] = Status(a.status().code(), "stat '" + JoinPath(dir, e.name) + "': " + a.status().message());
        }
        continue;  // removed while listing: left out
      }
      impl_->Remember(full, *a);
      e = EntryOf(e.name, *a);
    }
  };
  size_t threads = std::min<size_t>(8, need.size() / 16 + 1);
  std::vector<std::thread> pool;
  for (size_t t = 1; t < threads; t++) pool.emplace_back(work);
  work();
  for (auto& t : pool) t.join();
  for (const Status& s : errors) SLUICE_RETURN_IF_ERROR(s);
  std::vector<FsEntry> kept;
  kept.reserve(out.size());
  for (auto& e : out) {
    if (e.is_dir || e.is_file) kept.push_back(std::move(e));
  }
  return kept;
}

Result<std::unique_ptr<client::File>> SluiceFs::OpenForRead(const std::string& path) {
  SLUICE_ASSIGN_OR_RETURN(SluiceUrl u, ParseSluiceUrl(path));
  client::InodeAttr attr;
  bool known = false;
  {
    std::lock_guard<std::mutex> lk(impl_->mu);
    auto it = impl_->attrs.find(u.path);
    if (it != impl_->attrs.end()) {
      attr = it->second;
      known = true;
    }
  }
  if (known) return impl_->client->OpenInode(attr, O_RDONLY);
  return impl_->client->Open(u.path, O_RDONLY);
}

Result<std::unique_ptr<ScanFile>> SluiceFs::Open(const std::string& path) {
  auto f = OpenForRead(path);
  if (!f.ok()) return Status(f.status().code(), "open '" + path + "': " + f.status().message());
  return std::unique_ptr<ScanFile>(new SluiceScanFile(std::move(f.value()), path));
}

Result<FileBytes> SluiceFs::ReadAll(const std::string& path) {
  SLUICE_ASSIGN_OR_RETURN(std::unique_ptr<ScanFile> f, Open(path));
  auto buf = std::make_shared<std::vector<uint8_t>>(f->size());
  if (!buf->empty()) SLUICE_RETURN_IF_ERROR(f->ReadAt(0, buf->data(), buf->size()));
  std::span<const uint8_t> bytes(buf->data(), buf->size());
  return FileBytes{path, bytes, std::move(buf)};
}

Result<SluiceDataset> OpenSluiceDataset(std::shared_ptr<client::Client> client, const std::string& url,
                                        const std::string& format, const DatasetOptions& options) {
  if (!client) return Status(Code::kInvalid, "OpenSluiceDataset: no client");
  SLUICE_ASSIGN_OR_RETURN(SluiceUrl u, ParseSluiceUrl(url));
  // Files are named by URL (errors say where they live).
  std::string name = std::string(kSluiceScheme) + u.cluster + u.path;
  auto fs = std::make_shared<SluiceFs>(client);
  SLUICE_ASSIGN_OR_RETURN(std::unique_ptr<Dataset> ds, OpenDataset(name, format, options, *fs));
  SluiceDataset out;
  out.dataset = std::shared_ptr<const Dataset>(std::move(ds));
  SluiceReaderOptions ro;
  ro.open = [fs](const std::string& file) { return fs->OpenForRead(file); };
  out.reader_factory = SluiceSampleReaderFactory(std::move(client), std::move(ro));
  return out;
}

Result<uint64_t> CopyIntoSluice(client::Client& client, const std::string& local, const std::string& url,
                                unsigned threads) {
  namespace fs = std::filesystem;
  SLUICE_ASSIGN_OR_RETURN(SluiceUrl u, ParseSluiceUrl(url));
  auto mkdir = [&](const std::string& path) -> Status {
    auto m = client.Mkdir(path, 0755);
    if (m.ok() || m.status().code() == Code::kExists) return Status::Ok();
    return m.status();
  };
  // (local file, sluice path) pairs; folders made first, parents before children.
  std::vector<std::pair<std::string, std::string>> files;
  std::error_code ec;
  if (fs::is_directory(local, ec)) {
    SLUICE_RETURN_IF_ERROR(mkdir(u.path));
    std::vector<std::pair<std::string, std::string>> dirs;
    for (auto it = fs::recursive_directory_iterator(local, ec); !ec && it != fs::recursive_directory_iterator();
         it.increment(ec)) {
      std::string rel = fs::relative(it->path(), local).generic_string();
      std::string dst = JoinPath(u.path, rel);
      if (it->is_directory()) dirs.emplace_back(it->path(), dst);
      else if (it->is_regular_file()) files.emplace_back(it->path(), dst);
    }
    if (ec) return Status(ErrnoToCode(ec.value()), "list '" + local + "': " + ec.message());
    std::sort(dirs.begin(), dirs.end(), [](const auto& a, const auto& b) { return a.second < b.second; });
    for (const auto& d : dirs) SLUICE_RETURN_IF_ERROR(mkdir(d.second));
  } else if (fs::is_regular_file(local, ec)) {
    files.emplace_back(local, u.path);
  } else {
    return Status(Code::kNotFound, "'" + local + "' is not a file or folder");
  }
  std::atomic<size_t> next{0};
  std::atomic<uint64_t> total{0};
  std::mutex mu;
  Status first;
  auto copy_one = [&](const std::string& src, const std::string& dst) -> Status {
    int fd = ::open(src.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return Status::FromErrno(errno, "open '" + src + "'");
    std::unique_ptr<int, void (*)(int*)> closer(&fd, [](int* p) { ::close(*p); });
    SLUICE_ASSIGN_OR_RETURN(auto f, client.Open(dst, O_CREAT | O_WRONLY | O_TRUNC, 0644));
    std::vector<char> buf(4u << 20);
    for (;;) {
      ssize_t n = ::read(fd, buf.data(), buf.size());
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return Status::FromErrno(errno, "read '" + src + "'");
      if (n == 0) break;
      SLUICE_ASSIGN_OR_RETURN(size_t w, f->Write(buf.data(), static_cast<size_t>(n)));
      if (w != static_cast<size_t>(n)) return Status(Code::kIo, "short write to " + dst);
      total += static_cast<uint64_t>(n);
    }
    return f->Close().Prefix("close " + dst);
  };
  auto work = [&] {
    for (size_t k; (k = next.fetch_add(1)) < files.size();) {
      Status st = copy_one(files[k].first, files[k].second);
      if (!st.ok()) {
        std::lock_guard<std::mutex> lk(mu);
        if (first.ok()) first = st;
        next = files.size();
      }
    }
  };
  std::vector<std::thread> pool;
  for (unsigned t = 1; t < std::max(1u, threads); t++) pool.emplace_back(work);
  work();
  for (auto& t : pool) t.join();
  SLUICE_RETURN_IF_ERROR(first);
  return total.load();
}

}  // namespace sluice::prefetch
