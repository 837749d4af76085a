#include "prefetch/pack_writer.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>

#include "common/crc32c.h"
#include "proto/sample_index_generated.h"

namespace sluice::prefetch {
namespace {

Status WriteAll(int fd, const void* data, size_t n, const std::string& path) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return Status::FromErrno(errno, "write '" + path + "'");
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
  return Status::Ok();
}

Status ReadWholeFile(const std::string& path, std::vector<uint8_t>* out) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::FromErrno(errno, "open '" + path + "'");
  struct stat st;
  if (fstat(fd, &st) != 0) {
    int err = errno;
    close(fd);
    return Status::FromErrno(err, "stat '" + path + "'");
  }
  out->resize(static_cast<size_t>(st.st_size));
  size_t got = 0;
  while (got < out->size()) {
    ssize_t r = read(fd, out->data() + got, out->size() - got);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) {
      int err = r < 0 ? errno : EIO;
      close(fd);
      return Status::FromErrno(err, "read '" + path + "' (file shrank while packing?)");
    }
    got += static_cast<size_t>(r);
  }
  close(fd);
  return Status::Ok();
}

class ShardWriter {
 public:
  ShardWriter(std::string data_path, std::string index_path)
      : data_path_(std::move(data_path)), index_path_(std::move(index_path)) {}
  ~ShardWriter() {
    if (fd_ >= 0) close(fd_);
  }

  Status Open() {
    fd_ = open(data_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd_ < 0) return Status::FromErrno(errno, "create '" + data_path_ + "'");
    return Status::Ok();
  }

  Status Add(const std::vector<uint8_t>& bytes, int64_t label, const std::string& name) {
    SLUICE_RETURN_IF_ERROR(WriteAll(fd_, bytes.data(), bytes.size(), data_path_));
    entries_.emplace_back(size_, bytes.size(), Crc32c(bytes.data(), bytes.size()),
                          static_cast<int32_t>(label));
    names_.push_back(name);
    size_ += bytes.size();
    return Status::Ok();
  }
  uint64_t size() const { return size_; }

  // Finishes the data file, then writes the index beside it (tmp + rename:
  // the index appearing is what makes the shard exist).
  Status Finish(const std::vector<std::string>& class_names) {
    if (fsync(fd_) != 0) return Status::FromErrno(errno, "fsync '" + data_path_ + "'");
    close(fd_);
    fd_ = -1;
    flatbuffers::FlatBufferBuilder fbb(1024 + entries_.size() * 64);
    auto data_file = fbb.CreateString(std::filesystem::path(data_path_).filename().string());
    auto samples = fbb.CreateVectorOfStructs(entries_);
    auto classes = fbb.CreateVectorOfStrings(class_names);
    auto names = fbb.CreateVectorOfStrings(names_);
    auto root = fbs::CreateSampleIndex(fbb, 1, data_file, size_, samples, classes, names);
    fbs::FinishSampleIndexBuffer(fbb, root);
    std::string tmp = index_path_ + ".tmp";
    int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return Status::FromErrno(errno, "create '" + tmp + "'");
    Status st = WriteAll(fd, fbb.GetBufferPointer(), fbb.GetSize(), tmp);
    if (st.ok() && fsync(fd) != 0) st = Status::FromErrno(errno, "fsync '" + tmp + "'");
    close(fd);
    SLUICE_RETURN_IF_ERROR(st);
    if (rename(tmp.c_str(), index_path_.c_str()) != 0) {
      return Status::FromErrno(errno, "rename '" + tmp + "' to '" + index_path_ + "'");
    }
    return Status::Ok();
  }

 private:
  std::string data_path_, index_path_;
  int fd_ = -1;
  uint64_t size_ = 0;
  std::vector<fbs::SampleEntry> entries_;
  std::vector<std::string> names_;
};

}  // namespace

Result<PackSummary> PackSamples(const std::vector<PackSource>& sources,
                                const std::vector<std::string>& class_names,
                                const std::string& out_dir, const PackOptions& options) {
  if (sources.empty()) return Status(Code::kInvalid, "pack: no input samples");
  std::error_code ec;
  std::filesystem::create_directories(out_dir, ec);
  if (ec) return Status(ErrnoToCode(ec.value()), "create '" + out_dir + "': " + ec.message());
  PackSummary summary;
  std::unique_ptr<ShardWriter> shard;
  std::vector<uint8_t> buf;
  for (size_t i = 0; i < sources.size(); i++) {
    const PackSource& src = sources[i];
    if (src.label < -1 || src.label > INT32_MAX) {
      return Status(Code::kInvalid, "pack: sample " + std::to_string(i) + " '" + src.path +
                                        "' has label " + std::to_string(src.label) +
                                        " outside [-1, 2^31)");
    }
    Status st = ReadWholeFile(src.path, &buf);
    if (!st.ok()) return st.Prefix("pack: sample " + std::to_string(i));
    if (!shard) {
      char name[64];
      snprintf(name, sizeof(name), "%s-%05zu", options.prefix.c_str(),
               summary.index_files.size());
      std::string base = out_dir + "/" + name;
      shard = std::make_unique<ShardWriter>(base + ".data", base + ".sidx");
      SLUICE_RETURN_IF_ERROR(shard->Open());
      summary.index_files.push_back(base + ".sidx");
    }
    SLUICE_RETURN_IF_ERROR(shard->Add(buf, src.label, src.path));
    summary.samples++;
    summary.bytes += buf.size();
    if (shard->size() >= options.shard_bytes) {
      SLUICE_RETURN_IF_ERROR(shard->Finish(class_names));
      shard.reset();
    }
  }
  if (shard) SLUICE_RETURN_IF_ERROR(shard->Finish(class_names));
  return summary;
}

}  // namespace sluice::prefetch
