// The libsluice SampleReader against a real local cluster started by the
// suite (test::LocalCluster: mkdtemp directory, free ports; stopped and
// leftover pids killed at the end, even on failure). A folder data set is
// written twice: to a local directory (which plays the mount: the data set
// is opened from there) and, byte for byte, into Sluice through libsluice.
// The Loader with the io_uring reader on the local files and with the
// libsluice reader (mount prefix stripped) must yield exactly the same
// batches, bytes and order.
#include <fcntl.h>

#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "client/sluice_client.h"
#include "prefetch/folder_dataset.h"
#include "prefetch/loader.h"
#include "prefetch/sluice_dataset.h"
#include "prefetch/sluice_sample_reader.h"
#include "tests/common/test_util.h"

namespace sluice::prefetch {
namespace {

namespace fs = std::filesystem;

// One cluster for the suite (test::LocalClusterSuite: temp dir, free ports),
// stopped, with leftover pids killed, even when a test fails.
class SluiceReaderTest : public test::LocalClusterSuite<SluiceReaderTest> {
 public:
  static test::LocalCluster::Options ClusterOptions() {
    test::LocalCluster::Options o;
    o.name = "prefetchsluice";
    return o;
  }

 protected:
  void SetUpWithCluster() override {
    dir_ = cluster().dir();
    client::ClientOptions o;
    o.cluster = cluster().config();
    auto c = client::Client::Connect(o);
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    client_ = std::shared_ptr<client::Client>(std::move(c.value()));
  }

  // Writes root/<class>/<sample> locally and /<name>/<class>/<sample> in Sluice.
  void WriteDataSet(const std::string& name, int classes, int per_class, uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::string local = dir_ + "/mnt/" + name;
    ASSERT_TRUE(client_->Mkdir("/" + name, 0755).ok());
    for (int c = 0; c < classes; ++c) {
      std::string cls = "class" + std::to_string(c);
      fs::create_directories(local + "/" + cls);
      auto m = client_->Mkdir("/" + name + "/" + cls, 0755);
      ASSERT_TRUE(m.ok()) << m.status().ToString();
      for (int s = 0; s < per_class; ++s) {
        // Mostly small samples, some over a 1 MiB chunk (striped over chains).
        size_t n = (s % 7 == 3) ? 1500000 + rng() % 700000 : 1 + rng() % 120000;
        std::vector<char> bytes(n);
        for (auto& b : bytes) b = static_cast<char>(rng());
        std::string rel = "/" + name + "/" + cls + "/s" + std::to_string(s) + ".bin";
        std::ofstream(local.substr(0, local.size() - name.size() - 1) + rel, std::ios::binary)
            .write(bytes.data(), static_cast<std::streamsize>(n));
        auto f = client_->Open(rel, O_CREAT | O_WRONLY | O_TRUNC, 0644);
        ASSERT_TRUE(f.ok()) << f.status().ToString();
        auto w = (*f)->Pwrite(bytes.data(), n, 0);
        ASSERT_TRUE(w.ok()) << w.status().ToString();
        ASSERT_EQ(*w, n);
        Status cl = (*f)->Close();
        ASSERT_TRUE(cl.ok()) << cl.ToString();
      }
    }
  }

  std::string dir_;
  std::shared_ptr<client::Client> client_;
};

struct Seen {
  uint64_t epoch, step;
  std::vector<uint64_t> index;
  std::vector<int64_t> label;
  std::vector<std::vector<uint8_t>> bytes;
  bool operator==(const Seen&) const = default;
};

Result<std::vector<Seen>> RunLoader(std::shared_ptr<const Dataset> ds, LoaderOptions o, int epochs) {
  SLUICE_ASSIGN_OR_RETURN(auto loader, Loader::Create(ds, o));
  std::vector<Seen> out;
  for (int e = 0; e < epochs; ++e) {
    for (;;) {
      SLUICE_ASSIGN_OR_RETURN(auto b, loader->Next());
      if (!b) break;
      Seen s{b->epoch, b->step, {}, {}, {}};
      for (size_t i = 0; i < b->samples.size(); ++i) {
        s.index.push_back(b->samples[i].index);
        s.label.push_back(b->samples[i].label);
        auto sp = b->bytes(i);
        s.bytes.emplace_back(sp.begin(), sp.end());
      }
      out.push_back(std::move(s));
    }
  }
  return out;
}

TEST_F(SluiceReaderTest, LoaderYieldsTheSameBatchesAsTheUringReader) {
  WriteDataSet("ds", 3, 23, 7);
  auto ds = OpenFolderDataset(dir_ + "/mnt/ds", DatasetOptions{});
  ASSERT_TRUE(ds.ok()) << ds.status().ToString();
  std::shared_ptr<const Dataset> dataset(std::move(ds.value()));
  ASSERT_EQ(dataset->files().size(), 69u);

  LoaderOptions o;
  o.batch_size = 8;
  o.seed = 42;
  o.shuffle = true;
  o.last_batch = LastBatch::kPad;
  o.depth = 3;
  o.io_threads = 2;
  auto uring = RunLoader(dataset, o, 2);
  ASSERT_TRUE(uring.ok()) << uring.status().ToString();

  o.reader_factory = SluiceSampleReaderFactory(client_, {.mount_prefix = dir_ + "/mnt", .open = nullptr});
  uint64_t before = client_->stats().bytes_read.load();
  auto native = RunLoader(dataset, o, 2);
  ASSERT_TRUE(native.ok()) << native.status().ToString();
  uint64_t read = client_->stats().bytes_read.load() - before;

  ASSERT_EQ(native->size(), uring->size());
  ASSERT_GT(uring->size(), 2u * 8);  // 2 epochs of ceil(69/8) = 9 steps
  for (size_t i = 0; i < uring->size(); ++i) {
    ASSERT_TRUE((*native)[i] == (*uring)[i]) << "batch " << i << " (epoch " << (*uring)[i].epoch << " step "
                                             << (*uring)[i].step << ") differs";
  }
  uint64_t total = 0;
  for (const auto& f : dataset->files()) total += fs::file_size(f);
  EXPECT_GE(read, 2 * total) << "the libsluice reader must have read both epochs from the cluster";
  std::printf("%zu batches over 2 epochs identical; libsluice read %llu bytes (data set %llu bytes)\n",
              uring->size(), static_cast<unsigned long long>(read), static_cast<unsigned long long>(total));
}

TEST_F(SluiceReaderTest, ErrorsNameTheFile) {
  WriteDataSet("ds2", 1, 3, 9);
  std::string mnt = dir_ + "/mnt";
  std::vector<std::string> files = {mnt + "/ds2/class0/s0.bin", mnt + "/ds2/class0/missing.bin",
                                    "/elsewhere/x.bin", mnt + "/ds2/class0/s1.bin"};
  auto r = NewSluiceSampleReader(client_, files, {.mount_prefix = mnt, .open = nullptr});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  uint64_t size1 = fs::file_size(files[3]);
  std::vector<uint8_t> a(10), b(10), c(10), d(size1 + 5);
  std::vector<ReadRequest> reqs = {{0, 0, 10, a.data(), {}},
                                   {1, 0, 10, b.data(), {}},
                                   {2, 0, 10, c.data(), {}},
                                   {3, 0, size1 + 5, d.data(), {}}};
  ASSERT_TRUE((*r)->ReadBatch(reqs).ok());
  EXPECT_TRUE(reqs[0].status.ok()) << reqs[0].status.ToString();
  std::ifstream in(files[0], std::ios::binary);
  std::vector<uint8_t> want(10);
  in.read(reinterpret_cast<char*>(want.data()), 10);
  EXPECT_EQ(a, want);
  EXPECT_EQ(reqs[1].status.code(), Code::kNotFound) << reqs[1].status.ToString();
  EXPECT_NE(reqs[1].status.message().find("missing.bin"), std::string::npos) << reqs[1].status.ToString();
  EXPECT_EQ(reqs[2].status.code(), Code::kInvalid) << reqs[2].status.ToString();
  EXPECT_NE(reqs[2].status.message().find("/elsewhere/x.bin"), std::string::npos) << reqs[2].status.ToString();
  EXPECT_EQ(reqs[3].status.code(), Code::kCorrupt) << reqs[3].status.ToString();
  EXPECT_NE(reqs[3].status.message().find("s1.bin"), std::string::npos) << reqs[3].status.ToString();
}

TEST_F(SluiceReaderTest, NativeDataSetEqualsTheLocalCopy) {
  // Opened through libsluice only (listing, sizes, reads): no mount involved.
  WriteDataSet("ds3", 2, 11, 5);
  auto native = OpenSluiceDataset(client_, "sluice:///ds3", "auto", {});
  ASSERT_TRUE(native.ok()) << native.status().ToString();
  EXPECT_STREQ(native->dataset->kind(), "folder");
  ASSERT_EQ(native->dataset->size(), 22u);
  EXPECT_EQ(native->dataset->files()[0], "sluice:///ds3/class0/s0.bin");
  auto local = OpenFolderDataset(dir_ + "/mnt/ds3", DatasetOptions{});
  ASSERT_TRUE(local.ok()) << local.status().ToString();

  LoaderOptions o;
  o.batch_size = 5;
  o.seed = 3;
  o.last_batch = LastBatch::kPartial;
  auto want = RunLoader(std::shared_ptr<const Dataset>(std::move(local.value())), o, 2);
  ASSERT_TRUE(want.ok()) << want.status().ToString();
  o.reader_factory = native->reader_factory;
  auto got = RunLoader(native->dataset, o, 2);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  ASSERT_EQ(got->size(), want->size());
  for (size_t i = 0; i < want->size(); ++i) EXPECT_TRUE((*got)[i] == (*want)[i]) << "batch " << i;

  auto missing = OpenSluiceDataset(client_, "sluice:///ds3-nothing", "auto", {});
  EXPECT_EQ(missing.status().code(), Code::kNotFound) << missing.status().ToString();
  EXPECT_NE(missing.status().message().find("sluice:///ds3-nothing"), std::string::npos);
}

TEST(SluiceUrlTest, ParsesAndJoins) {
  auto a = ParseSluiceUrl("sluice:///a/b/");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->cluster, "");
  EXPECT_EQ(a->path, "/a/b");
  auto b = ParseSluiceUrl("sluice://10.0.0.1:7000/x");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->cluster, "10.0.0.1:7000");
  EXPECT_EQ(b->path, "/x");
  EXPECT_EQ(ParseSluiceUrl("sluice://ds/x").status().code(), Code::kInvalid);
  EXPECT_EQ(ParseSluiceUrl("relative/x").status().code(), Code::kInvalid);
  EXPECT_EQ(ParseSluiceUrl("/plain")->path, "/plain");
  EXPECT_EQ(ParentPath("sluice:///a/b.sidx"), "sluice:///a");
  EXPECT_EQ(ParentPath("sluice:///b.sidx"), "sluice:///");
  EXPECT_EQ(JoinPath(ParentPath("sluice:///b.sidx"), "b.data"), "sluice:///b.data");
  EXPECT_EQ(ParentPath("sluice://h:1/b.sidx"), "sluice://h:1/");
  EXPECT_EQ(ParentPath("/x"), "/");
  EXPECT_EQ(ParentPath("x"), "");
  EXPECT_EQ(ParentPath("d/x"), "d");
}

}  // namespace
}  // namespace sluice::prefetch
