#include "prefetch/tfrecord_dataset.h"

#include <cstdio>

#include "common/crc32c.h"
#include "prefetch/dataset_fs.h"

namespace sluice::prefetch {
namespace {

struct Record {
  uint32_t file;
  uint64_t offset;  // of the data; the stored length covers data + 4-byte CRC
  uint64_t length;  // data bytes
};

uint64_t LoadLe64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
  return v;
}
uint32_t LoadLe32(const uint8_t* p) {
  return uint32_t{p[0]} | uint32_t{p[1]} << 8 | uint32_t{p[2]} << 16 | uint32_t{p[3]} << 24;
}

class TfRecordDataset final : public Dataset {
 public:
  TfRecordDataset(std::vector<std::string> files, std::vector<Record> records, uint64_t skipped)
      : files_(std::move(files)), records_(std::move(records)) {
    skipped_ = skipped;
  }
  const char* kind() const override { return "tfrecord"; }
  uint64_t size() const override { return records_.size(); }
  const std::vector<std::string>& files() const override { return files_; }
  Result<SampleLocation> Locate(uint64_t index) const override {
    if (index >= records_.size()) {
      return Status(Code::kInvalid, "tfrecord data set: sample " + std::to_string(index) +
                                        " out of range");
    }
    const Record& r = records_[index];
    return SampleLocation{r.file, r.offset, r.length + 4};
  }
  int64_t Label(uint64_t) const override { return -1; }
  Result<std::span<const uint8_t>> Payload(uint64_t index,
                                           std::span<const uint8_t> raw) const override {
    if (raw.size() < 4) return Status(Code::kCorrupt, Describe(index) + ": record truncated");
    std::span<const uint8_t> data = raw.first(raw.size() - 4);
    uint32_t want = LoadLe32(raw.data() + data.size());
    uint32_t got = MaskCrc(Crc32c(data.data(), data.size()));
    if (want != got) {
      char buf[80];
      snprintf(buf, sizeof(buf), "data CRC mismatch (masked CRC32C %08x, record says %08x)", got, want);
      return Status(Code::kCorrupt, Describe(index) + ": " + buf);
    }
    return data;
  }
  std::string Describe(uint64_t index) const override {
    const Record& r = records_[index];
    return "'" + files_[r.file] + "' sample " + std::to_string(index) + " (record at byte " +
           std::to_string(r.offset - 12) + ")";
  }

 private:
  std::vector<std::string> files_;
  std::vector<Record> records_;
};

// Scans one file's record headers. Returns the error for the first bad header.
Status ScanFileRecords(const ScanFile& f, uint32_t id, std::vector<Record>* out) {
  uint64_t off = 0;
  uint64_t n = 0;
  uint8_t h[12];
  while (off < f.size()) {
    auto where = [&] {
      return "tfrecord '" + f.path() + "' record " + std::to_string(n) + " at byte " +
             std::to_string(off) + ": ";
    };
    if (f.size() - off < 12) return Status(Code::kCorrupt, where() + "truncated header");
    SLUICE_RETURN_IF_ERROR(f.ReadAt(off, h, 12));
    uint64_t len = LoadLe64(h);
    if (MaskCrc(Crc32c(h, 8)) != LoadLe32(h + 8)) {
      return Status(Code::kCorrupt, where() + "length CRC mismatch");
    }
    if (len > f.size() - off - 12 || f.size() - off - 12 - len < 4) {
      return Status(Code::kCorrupt, where() + "record of " + std::to_string(len) +
                                        " bytes runs past the end of the file (truncated)");
    }
    out->push_back({id, off + 12, len});
    off += 12 + len + 4;
    n++;
  }
  return Status::Ok();
}

}  // namespace

Result<std::unique_ptr<Dataset>> OpenTfRecordDataset(const std::vector<std::string>& paths,
                                                     const DatasetOptions& options, DatasetFs& fs) {
  std::vector<std::string> files;
  std::vector<Record> records;
  uint64_t skipped = 0;
  for (const std::string& path : paths) {
    auto f = fs.Open(path);
    if (!f.ok()) {
      if (options.skip_corrupt) {
        skipped++;
        continue;
      }
      return f.status();
    }
    Status st = ScanFileRecords(**f, static_cast<uint32_t>(files.size()), &records);
    if (!st.ok()) {
      if (!options.skip_corrupt) return st;
      skipped++;  // the bad record; later records cannot be found without a trusted length
    }
    files.push_back(path);
  }
  if (records.empty()) return Status(Code::kInvalid, "tfrecord data set: no readable records");
  return std::unique_ptr<Dataset>(new TfRecordDataset(std::move(files), std::move(records), skipped));
}

}  // namespace sluice::prefetch
