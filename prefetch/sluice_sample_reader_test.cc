// The libsluice SampleReader against a real local cluster started by the
// suite (mkdtemp directory, free ports; stopped and leftover pids killed at
// the end, even on failure). A folder data set is written twice: to a local
// directory (which plays the mount: the data set is opened from there) and,
// byte for byte, into Sluice through libsluice. The Loader with the io_uring
// reader on the local files and with the libsluice reader (mount prefix
// stripped) must yield exactly the same batches, bytes and order.
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

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
#include "prefetch/sluice_sample_reader.h"

namespace sluice::prefetch {
namespace {

namespace fs = std::filesystem;

uint16_t FreePort() {
  int s = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  getsockname(s, reinterpret_cast<sockaddr*>(&a), &len);
  close(s);
  return ntohs(a.sin_port);
}

int Sh(const std::string& cmd, std::string* out) {
  FILE* p = ::popen((cmd + " 2>&1").c_str(), "r");
  if (p == nullptr) return -1;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), p)) > 0) out->append(buf, n);
  int st = ::pclose(p);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

std::string g_dir, g_cfg;

class SluiceReaderTest : public ::testing::Test {
 public:
  static void SetUpTestSuite() {
    char tmpl[] = "/tmp/sluice-prefetchn-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    g_dir = tmpl;
    g_cfg = g_dir + "/cluster.toml";
    std::ofstream f(g_cfg);
    f << "[cluster]\nname = \"prefetchsluice\"\nreplication = 2\nlease_ms = 1500\nheartbeat_ms = 300\n"
      << "data_root = \"" << g_dir << "\"\n[mgmtd]\nport = " << FreePort() << "\n";
    for (int i = 1; i <= 2; ++i) f << "[[meta]]\nid = " << i << "\nport = " << FreePort() << "\n";
    for (int i = 1; i <= 4; ++i) f << "[[data]]\nid = " << i << "\nport = " << FreePort() << "\n";
    f.close();
    std::string start = std::string(SLUICE_BIN_DIR) + "/sluice cluster start --config " + g_cfg;
    std::string out;
    if (Sh(start, &out) != 0) {
      out.clear();
      ASSERT_EQ(Sh(start, &out), 0) << "cluster start failed:\n" << out;
    }
  }
  static void TearDownTestSuite() {
    if (g_dir.empty()) return;
    std::string out;
    (void)Sh(std::string(SLUICE_BIN_DIR) + "/sluice cluster stop --config " + g_cfg, &out);
    std::error_code ec;
    for (auto& e : fs::directory_iterator(g_dir + "/run", ec)) {
      std::ifstream p(e.path());
      pid_t pid = 0;
      if (p >> pid && pid > 0) kill(pid, SIGKILL);
    }
    fs::remove_all(g_dir, ec);
  }

 protected:
  void SetUp() override {
    client::ClientOptions o;
    o.cluster = g_cfg;
    auto c = client::Client::Connect(o);
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    client_ = std::shared_ptr<client::Client>(std::move(c.value()));
  }

  // Writes root/<class>/<sample> locally and /<name>/<class>/<sample> in Sluice.
  void WriteDataSet(const std::string& name, int classes, int per_class, uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::string local = g_dir + "/mnt/" + name;
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
  auto ds = OpenFolderDataset(g_dir + "/mnt/ds", DatasetOptions{});
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

  o.reader_factory = SluiceSampleReaderFactory(client_, {.mount_prefix = g_dir + "/mnt"});
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
  std::string mnt = g_dir + "/mnt";
  std::vector<std::string> files = {mnt + "/ds2/class0/s0.bin", mnt + "/ds2/class0/missing.bin",
                                    "/elsewhere/x.bin", mnt + "/ds2/class0/s1.bin"};
  auto r = NewSluiceSampleReader(client_, files, {.mount_prefix = mnt});
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

}  // namespace
}  // namespace sluice::prefetch
