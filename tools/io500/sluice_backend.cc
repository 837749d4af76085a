#include "tools/io500/sluice_backend.h"

#include <fcntl.h>

#include "client/sluice_client.h"

namespace sluice::io500 {
namespace {

class SluiceFile final : public File {
 public:
  SluiceFile(std::unique_ptr<client::File> f, std::string path) : f_(std::move(f)), path_(std::move(path)) {}
  ~SluiceFile() override { (void)Close(); }

  Result<size_t> Pread(void* buf, size_t len, uint64_t offset) override {
    if (!f_) return Status(Code::kInvalid, "pread sluice:" + path_ + ": file is closed");
    auto n = f_->Pread(buf, len, offset);
    if (!n.ok()) return Status(n.status().code(), "pread sluice:" + path_ + " at " + std::to_string(offset) +
                                                      ": " + n.status().message());
    return *n;
  }
  Status Pwrite(const void* buf, size_t len, uint64_t offset) override {
    if (!f_) return Status(Code::kInvalid, "pwrite sluice:" + path_ + ": file is closed");
    size_t done = 0;
    const char* p = static_cast<const char*>(buf);
    while (done < len) {
      auto n = f_->Pwrite(p + done, len - done, offset + done);
      if (!n.ok()) {
        return Status(n.status().code(), "pwrite sluice:" + path_ + " at " + std::to_string(offset + done) +
                                             ": " + n.status().message());
      }
      if (*n == 0) {
        return Status(Code::kIo, "pwrite sluice:" + path_ + " at " + std::to_string(offset + done) +
                                     ": wrote 0 bytes");
      }
      done += *n;
    }
    return Status::Ok();
  }
  Status Fsync() override {
    if (!f_) return Status(Code::kInvalid, "fsync sluice:" + path_ + ": file is closed");
    Status s = f_->Fsync();
    if (!s.ok()) return Status(s.code(), "fsync sluice:" + path_ + ": " + s.message());
    return s;
  }
  Status Close() override {
    if (!f_) return Status::Ok();
    Status s = f_->Close();
    f_.reset();
    if (!s.ok()) return Status(s.code(), "close sluice:" + path_ + ": " + s.message());
    return s;
  }

 private:
  std::unique_ptr<client::File> f_;
  std::string path_;
};

}  // namespace

SluiceFileSystem::SluiceFileSystem(std::unique_ptr<client::Client> client, std::string cluster,
                                   std::string root)
    : client_(std::move(client)), cluster_(std::move(cluster)), root_(std::move(root)) {
  while (root_.size() > 1 && root_.back() == '/') root_.pop_back();
}

SluiceFileSystem::~SluiceFileSystem() = default;

std::string SluiceFileSystem::Describe() const { return "native:" + cluster_ + ":" + root_; }

std::string SluiceFileSystem::Full(const std::string& path) const {
  if (path.empty()) return root_;
  if (root_ == "/") return "/" + path;
  return root_ + "/" + path;
}

Result<std::unique_ptr<File>> SluiceFileSystem::Open(const std::string& path, uint32_t flags, uint32_t mode) {
  bool rd = flags & kOpenRead, wr = flags & kOpenWrite;
  int oflags = (rd && wr) ? O_RDWR : (wr ? O_WRONLY : O_RDONLY);
  if (flags & kOpenCreate) oflags |= O_CREAT;
  if (flags & kOpenTruncate) oflags |= O_TRUNC;
  if (flags & kOpenExclusive) oflags |= O_EXCL;
  std::string full = Full(path);
  auto f = client_->Open(full, oflags, mode);
  if (!f.ok()) return Status(f.status().code(), "open sluice:" + full + ": " + f.status().message());
  return std::unique_ptr<File>(new SluiceFile(std::move(f.value()), full));
}

Result<FileStat> SluiceFileSystem::Stat(const std::string& path) {
  std::string full = Full(path);
  auto a = client_->Stat(full);
  if (!a.ok()) return Status(a.status().code(), "stat sluice:" + full + ": " + a.status().message());
  FileStat out;
  out.size = a->size();
  out.is_dir = a->type() == meta::FILE_TYPE_DIRECTORY;
  out.is_regular = a->type() == meta::FILE_TYPE_REGULAR;
  int64_t ns = a->mtime_ns();
  out.mtime.tv_sec = static_cast<time_t>(ns / 1000000000);
  out.mtime.tv_nsec = static_cast<long>(ns % 1000000000);
  return out;
}

Status SluiceFileSystem::Mkdir(const std::string& path, uint32_t mode) {
  std::string full = Full(path);
  auto a = client_->Mkdir(full, mode);
  if (!a.ok()) return Status(a.status().code(), "mkdir sluice:" + full + ": " + a.status().message());
  return Status::Ok();
}

Status SluiceFileSystem::SetLayout(const std::string& dir, const std::string& layout) {
  std::string full = Full(dir);
  Status s = client_->SetDirLayout(full, layout);
  if (!s.ok()) return Status(s.code(), "sluice:" + full + ": " + s.message());
  return s;
}

Status SluiceFileSystem::Unlink(const std::string& path) {
  std::string full = Full(path);
  Status s = client_->Unlink(full);
  if (!s.ok()) return Status(s.code(), "unlink sluice:" + full + ": " + s.message());
  return s;
}

Status SluiceFileSystem::Rmdir(const std::string& path) {
  std::string full = Full(path);
  Status s = client_->Rmdir(full);
  if (!s.ok()) return Status(s.code(), "rmdir sluice:" + full + ": " + s.message());
  return s;
}

Result<std::vector<DirEntry>> SluiceFileSystem::ReadDir(const std::string& path) {
  std::string full = Full(path);
  auto list = client_->ListDir(full);
  if (!list.ok()) return Status(list.status().code(), "readdir sluice:" + full + ": " + list.status().message());
  std::vector<DirEntry> out;
  out.reserve(list->size());
  for (const auto& e : *list) {
    if (e.name() == "." || e.name() == "..") continue;
    DirEntry d;
    d.name = e.name();
    switch (e.type()) {
      case meta::FILE_TYPE_REGULAR: d.type = DirEntry::Type::kFile; break;
      case meta::FILE_TYPE_DIRECTORY: d.type = DirEntry::Type::kDir; break;
      case meta::FILE_TYPE_UNSPECIFIED: d.type = DirEntry::Type::kUnknown; break;
      default: d.type = DirEntry::Type::kOther; break;
    }
    out.push_back(std::move(d));
  }
  return out;
}

Result<std::unique_ptr<FileSystem>> MakeSluiceFileSystem(const std::string& spec) {
  const std::string prefix = "native:";
  if (spec.rfind(prefix, 0) != 0) return Status(Code::kInvalid, "target '" + spec + "' is not native:<cluster>:<dir>");
  std::string rest = spec.substr(prefix.size());
  size_t colon = rest.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 >= rest.size()) {
    return Status(Code::kInvalid, "target '" + spec +
                                      "': want native:<cluster-config or mgmtd host:port>:<dir inside Sluice>");
  }
  std::string cluster = rest.substr(0, colon);
  std::string dir = rest.substr(colon + 1);
  if (dir[0] != '/') {
    return Status(Code::kInvalid, "target '" + spec + "': directory '" + dir + "' must be absolute inside Sluice");
  }
  client::ClientOptions o;
  o.cluster = cluster;
  auto c = client::Client::Connect(o);
  if (!c.ok()) {
    return Status(c.status().code(), "target '" + spec + "': connect to " + cluster + ": " + c.status().message());
  }
  auto a = (*c)->Stat(dir);
  if (!a.ok()) {
    return Status(a.status().code(),
                  "target '" + spec + "': directory sluice:" + dir + " (create it first): " + a.status().message());
  }
  if (a->type() != meta::FILE_TYPE_DIRECTORY) {
    return Status(Code::kNotDir, "target '" + spec + "': sluice:" + dir + " is not a directory");
  }
  return std::unique_ptr<FileSystem>(new SluiceFileSystem(std::move(c.value()), cluster, dir));
}

}  // namespace sluice::io500
