// Data-set formats: a clean read of each, and each corrupt-input case
// (bad index, lying tar header, TFRecord CRC mismatch, missing file) as an
// error naming the file and sample, or a counted skip.
#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "common/crc32c.h"
#include "prefetch/dataset.h"
#include "prefetch/folder_dataset.h"
#include "prefetch/pack_writer.h"
#include "prefetch/packed_dataset.h"
#include "prefetch/tar_dataset.h"
#include "prefetch/tfrecord_dataset.h"
#include "tests/prefetch/test_files.h"

namespace sluice::prefetch {
namespace {

using testing::HasSubstr;

// Reads sample i synchronously through the Dataset contract.
Result<std::string> ReadSample(const Dataset& ds, uint64_t i) {
  SLUICE_ASSIGN_OR_RETURN(SampleLocation loc, ds.Locate(i));
  std::string raw(loc.length, '\0');
  int fd = open(ds.files()[loc.file].c_str(), O_RDONLY);
  if (fd < 0) return Status::FromErrno(errno, ds.Describe(i));
  ssize_t r = pread(fd, raw.data(), raw.size(), static_cast<off_t>(loc.offset));
  close(fd);
  if (r != static_cast<ssize_t>(raw.size())) return Status(Code::kIo, "short read");
  auto span = std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(raw.data()), raw.size());
  SLUICE_ASSIGN_OR_RETURN(std::span<const uint8_t> payload, ds.Payload(i, span));
  return std::string(reinterpret_cast<const char*>(payload.data()), payload.size());
}

class DatasetTest : public testing::Test {
 protected:
  void SetUp() override { dir_ = MakeTempDir(); }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string dir_;
};

TEST_F(DatasetTest, FolderClassesLabelsAndBytes) {
  MakeClassFolders(dir_ + "/imgs", 3, 4);
  auto ds = OpenDataset(dir_ + "/imgs", "auto", {});
  ASSERT_TRUE(ds.ok()) << ds.status().ToString();
  EXPECT_STREQ((*ds)->kind(), "folder");
  ASSERT_EQ((*ds)->size(), 12u);
  for (uint64_t i = 0; i < 12; i++) {
    EXPECT_EQ((*ds)->Label(i), static_cast<int64_t>(i / 4));
    auto s = ReadSample(**ds, i);
    ASSERT_TRUE(s.ok());
    EXPECT_EQ(*s, SampleBytes(i / 4, i % 4));
  }
}

TEST_F(DatasetTest, FolderFileMissingAtOpen) {
  auto ds = OpenFileListDataset({{dir_ + "/nope.jpg", 1}}, {});
  ASSERT_FALSE(ds.ok());
  EXPECT_THAT(ds.status().message(), HasSubstr("nope.jpg"));
  EXPECT_THAT(ds.status().message(), HasSubstr("sample 0"));
}

TEST_F(DatasetTest, PackRoundTripAndShards) {
  MakeClassFolders(dir_ + "/imgs", 3, 5);
  auto fds = OpenDataset(dir_ + "/imgs", "folder", {});
  ASSERT_TRUE(fds.ok());
  std::vector<PackSource> src;
  for (uint64_t i = 0; i < (*fds)->size(); i++) src.push_back({(*fds)->files()[i], (*fds)->Label(i)});
  PackOptions po;
  po.shard_bytes = 100;  // several shards
  auto sum = PackSamples(src, {"a", "b", "c"}, dir_ + "/packed", po);
  ASSERT_TRUE(sum.ok()) << sum.status().ToString();
  EXPECT_GT(sum->index_files.size(), 2u);
  auto ds = OpenDataset(dir_ + "/packed", "auto", {});
  ASSERT_TRUE(ds.ok()) << ds.status().ToString();
  EXPECT_STREQ((*ds)->kind(), "packed");
  ASSERT_EQ((*ds)->size(), 15u);
  for (uint64_t i = 0; i < 15; i++) {
    EXPECT_EQ((*ds)->Label(i), (*fds)->Label(i));
    auto s = ReadSample(**ds, i);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    EXPECT_EQ(*s, SampleBytes(i / 5, i % 5));
  }
}

class PackedCorruptTest : public DatasetTest {
 protected:
  void SetUp() override {
    DatasetTest::SetUp();
    MakeClassFolders(dir_ + "/imgs", 2, 3);
    auto fds = OpenDataset(dir_ + "/imgs", "folder", {});
    std::vector<PackSource> src;
    for (uint64_t i = 0; i < (*fds)->size(); i++) src.push_back({(*fds)->files()[i], (*fds)->Label(i)});
    auto sum = PackSamples(src, {}, dir_ + "/p", PackOptions{});
    ASSERT_TRUE(sum.ok());
    index_ = dir_ + "/p/shard-00000.sidx";
    data_ = dir_ + "/p/shard-00000.data";
  }
  std::string index_, data_;
};

TEST_F(PackedCorruptTest, DataByteFlipIsCrcErrorNamingSample) {
  FlipByte(data_, 2);  // inside sample 0
  auto ds = OpenDataset(dir_ + "/p", "packed", {});
  ASSERT_TRUE(ds.ok());
  auto s = ReadSample(**ds, 0);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), Code::kCorrupt);
  EXPECT_THAT(s.status().message(), HasSubstr("shard-00000.data' sample 0"));
  EXPECT_THAT(s.status().message(), HasSubstr("CRC32C"));
  EXPECT_TRUE(ReadSample(**ds, 1).ok());
}

TEST_F(PackedCorruptTest, GarbledIndexIsRefused) {
  std::string bytes = ReadFile(index_);
  for (size_t i = 8; i < bytes.size(); i += 7) bytes[i] = static_cast<char>(0xff);
  WriteFile(index_, bytes);
  auto ds = OpenDataset(dir_ + "/p", "packed", {});
  ASSERT_FALSE(ds.ok());
  EXPECT_EQ(ds.status().code(), Code::kCorrupt);
  EXPECT_THAT(ds.status().message(), HasSubstr("shard-00000.sidx"));
  DatasetOptions skip;
  skip.skip_corrupt = true;
  EXPECT_FALSE(OpenDataset(dir_ + "/p", "packed", skip).ok());  // nothing readable left
}

TEST_F(PackedCorruptTest, TruncatedIndexAndDataAreRefused) {
  std::string bytes = ReadFile(index_);
  WriteFile(index_ + ".cut.sidx", bytes.substr(0, bytes.size() / 2));
  auto cut = OpenPackedDataset({index_ + ".cut.sidx"}, {});
  ASSERT_FALSE(cut.ok());
  EXPECT_THAT(cut.status().message(), HasSubstr(".cut.sidx"));
  ASSERT_EQ(truncate(data_.c_str(), 5), 0);
  auto ds = OpenPackedDataset({index_}, {});
  ASSERT_FALSE(ds.ok());
  EXPECT_THAT(ds.status().message(), HasSubstr("truncated"));
}

TEST_F(PackedCorruptTest, EntryPastEndOfDataIsCorrupt) {
  // Make sample 2's offset huge by editing the in-place struct: find its
  // (offset,length) pair in the buffer by the known values.
  SampleLocation loc;
  {
    auto ds0 = OpenPackedDataset({index_}, {});
    ASSERT_TRUE(ds0.ok());
    auto l = (*ds0)->Locate(2);
    ASSERT_TRUE(l.ok());
    loc = *l;
  }
  std::string bytes = ReadFile(index_);
  std::string pattern(16, '\0');
  memcpy(pattern.data(), &loc.offset, 8);
  memcpy(pattern.data() + 8, &loc.length, 8);
  size_t at = bytes.find(pattern);
  ASSERT_NE(at, std::string::npos);
  uint64_t huge = 1ull << 40;
  memcpy(bytes.data() + at, &huge, 8);
  WriteFile(index_, bytes);
  auto ds = OpenPackedDataset({index_}, {});
  ASSERT_TRUE(ds.ok()) << ds.status().ToString();
  auto bad = (*ds)->Locate(2);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), Code::kCorrupt);
  EXPECT_THAT(bad.status().message(), HasSubstr("sample 2"));
  EXPECT_TRUE((*ds)->Locate(1).ok());
}

TEST_F(DatasetTest, TarWebDatasetSamples) {
  std::vector<TarMember> members;
  for (int i = 0; i < 5; i++) {
    char key[32];
    snprintf(key, sizeof(key), "dir/s%03d", i);
    members.push_back({std::string(key) + ".cls", std::to_string(i % 3) + "\n"});
    members.push_back({std::string(key) + ".jpg", SampleBytes(9, i)});
  }
  WriteTar(dir_ + "/a.tar", members);
  auto ds = OpenDataset(dir_ + "/a.tar", "auto", {});
  ASSERT_TRUE(ds.ok()) << ds.status().ToString();
  EXPECT_STREQ((*ds)->kind(), "tar");
  ASSERT_EQ((*ds)->size(), 5u);
  for (uint64_t i = 0; i < 5; i++) {
    EXPECT_EQ((*ds)->Label(i), static_cast<int64_t>(i % 3));
    auto s = ReadSample(**ds, i);
    ASSERT_TRUE(s.ok());
    EXPECT_EQ(*s, SampleBytes(9, i));
  }
}

TEST_F(DatasetTest, TarLyingSizeHeader) {
  std::vector<TarMember> members;
  for (int i = 0; i < 4; i++) members.push_back({"k" + std::to_string(i) + ".bin", SampleBytes(1, i)});
  WriteTar(dir_ + "/a.tar", members, /*lie_about_member=*/2);
  auto ds = OpenDataset(dir_ + "/a.tar", "tar", {});
  ASSERT_FALSE(ds.ok());
  EXPECT_EQ(ds.status().code(), Code::kCorrupt);
  EXPECT_THAT(ds.status().message(), HasSubstr("a.tar"));
  EXPECT_THAT(ds.status().message(), HasSubstr("k2.bin"));
  EXPECT_THAT(ds.status().message(), HasSubstr("claims"));
  DatasetOptions skip;
  skip.skip_corrupt = true;
  auto ds2 = OpenDataset(dir_ + "/a.tar", "tar", skip);
  ASSERT_TRUE(ds2.ok());
  EXPECT_EQ((*ds2)->size(), 2u);  // k0, k1 before the lie
  EXPECT_EQ((*ds2)->skipped(), 1u);
}

TEST_F(DatasetTest, TarBadChecksumAndTruncation) {
  std::vector<TarMember> members;
  for (int i = 0; i < 3; i++) members.push_back({"k" + std::to_string(i) + ".bin", SampleBytes(2, i)});
  WriteTar(dir_ + "/a.tar", members);
  std::string bytes = ReadFile(dir_ + "/a.tar");
  // Second header sits after the first header and its one data block.
  std::string flipped = bytes;
  flipped[1024 + 10] ^= 0x20;
  WriteFile(dir_ + "/b.tar", flipped);
  auto ds = OpenDataset(dir_ + "/b.tar", "tar", {});
  ASSERT_FALSE(ds.ok());
  EXPECT_THAT(ds.status().message(), HasSubstr("checksum"));
  EXPECT_THAT(ds.status().message(), HasSubstr("b.tar"));
  WriteFile(dir_ + "/c.tar", bytes.substr(0, 1024 + 512 + 10));  // cut inside k1's data
  auto dc = OpenDataset(dir_ + "/c.tar", "tar", {});
  ASSERT_FALSE(dc.ok());
  EXPECT_THAT(dc.status().message(), HasSubstr("k1.bin"));
  WriteFile(dir_ + "/d.tar", bytes.substr(0, 2048));  // cut after k1, before k2's header
  auto dd = OpenDataset(dir_ + "/d.tar", "tar", {});
  ASSERT_FALSE(dd.ok());
  EXPECT_THAT(dd.status().message(), HasSubstr("truncated"));
  EXPECT_THAT(dd.status().message(), HasSubstr("k1.bin"));
}

TEST_F(DatasetTest, TfRecordReadAndCrcMismatch) {
  std::vector<std::string> recs;
  for (int i = 0; i < 6; i++) recs.push_back(SampleBytes(3, i));
  WriteTfRecord(dir_ + "/x.tfrecord", recs);
  auto ds = OpenDataset(dir_ + "/x.tfrecord", "auto", {});
  ASSERT_TRUE(ds.ok()) << ds.status().ToString();
  EXPECT_STREQ((*ds)->kind(), "tfrecord");
  ASSERT_EQ((*ds)->size(), 6u);
  for (uint64_t i = 0; i < 6; i++) {
    auto s = ReadSample(**ds, i);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    EXPECT_EQ(*s, recs[i]);
  }
  // Flip a data byte of record 3: a data CRC error naming the file and sample.
  auto loc = (*ds)->Locate(3);
  FlipByte(dir_ + "/x.tfrecord", loc->offset + 1);
  auto bad = ReadSample(**ds, 3);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), Code::kCorrupt);
  EXPECT_THAT(bad.status().message(), HasSubstr("x.tfrecord' sample 3"));
  EXPECT_THAT(bad.status().message(), HasSubstr("CRC"));
  // Flip a length byte of record 4: a header CRC error when opening.
  auto loc4 = (*ds)->Locate(4);
  FlipByte(dir_ + "/x.tfrecord", loc4->offset - 12);
  auto reopened = OpenDataset(dir_ + "/x.tfrecord", "tfrecord", {});
  ASSERT_FALSE(reopened.ok());
  EXPECT_THAT(reopened.status().message(), HasSubstr("record 4"));
  EXPECT_THAT(reopened.status().message(), HasSubstr("length CRC"));
  DatasetOptions skip;
  skip.skip_corrupt = true;
  auto skipped = OpenDataset(dir_ + "/x.tfrecord", "tfrecord", skip);
  ASSERT_TRUE(skipped.ok());
  EXPECT_EQ((*skipped)->size(), 4u);
  EXPECT_EQ((*skipped)->skipped(), 1u);
}

TEST_F(DatasetTest, TfRecordTruncated) {
  WriteTfRecord(dir_ + "/x.tfrecord", {"hello", "world!"});
  std::string bytes = ReadFile(dir_ + "/x.tfrecord");
  WriteFile(dir_ + "/x.tfrecord", bytes.substr(0, bytes.size() - 3));
  auto ds = OpenDataset(dir_ + "/x.tfrecord", "tfrecord", {});
  ASSERT_FALSE(ds.ok());
  EXPECT_THAT(ds.status().message(), HasSubstr("record 1"));
  EXPECT_THAT(ds.status().message(), HasSubstr("truncated"));
}

TEST_F(DatasetTest, MissingShardIsErrorOrSkip) {
  WriteTfRecord(dir_ + "/a.tfrecord", {"one", "two"});
  auto ds = OpenTfRecordDataset({dir_ + "/a.tfrecord", dir_ + "/gone.tfrecord"}, {});
  ASSERT_FALSE(ds.ok());
  EXPECT_EQ(ds.status().code(), Code::kNotFound);
  EXPECT_THAT(ds.status().message(), HasSubstr("gone.tfrecord"));
  DatasetOptions skip;
  skip.skip_corrupt = true;
  auto ok = OpenTfRecordDataset({dir_ + "/a.tfrecord", dir_ + "/gone.tfrecord"}, skip);
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ((*ok)->size(), 2u);
  EXPECT_EQ((*ok)->skipped(), 1u);
}

}  // namespace
}  // namespace sluice::prefetch
