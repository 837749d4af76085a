// The loader delivers exactly the SampleOrder sequence with the right bytes,
// on every data-set format, resumes exactly, honours its memory bound, and
// reports or skips corrupt samples.
#include "prefetch/loader.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <thread>

#include "prefetch/folder_dataset.h"
#include "prefetch/pack_writer.h"
#include "tests/prefetch/test_files.h"

namespace sluice::prefetch {
namespace {

using testing::HasSubstr;

constexpr int kClasses = 4, kPerClass = 53;  // 212 samples

// Builds the same 212 samples in each format; sample i's bytes are
// SampleBytes(i / kPerClass, i % kPerClass) everywhere.
class LoaderTest : public testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    dir_ = MakeTempDir();
    MakeClassFolders(dir_ + "/folder", kClasses, kPerClass);
    std::vector<PackSource> src;
    std::vector<TarMember> members;
    std::vector<std::string> records;
    for (int c = 0; c < kClasses; c++) {
      for (int i = 0; i < kPerClass; i++) {
        char name[64];
        snprintf(name, sizeof(name), "/folder/c%d/item%04d.bin", c, i);
        src.push_back({dir_ + name, c});
        snprintf(name, sizeof(name), "s%d_%04d", c, i);
        members.push_back({std::string(name) + ".cls", std::to_string(c)});
        members.push_back({std::string(name) + ".bin", SampleBytes(c, i)});
        records.push_back(SampleBytes(c, i));
      }
    }
    PackOptions po;
    po.shard_bytes = 4000;
    ASSERT_TRUE(PackSamples(src, {}, dir_ + "/packed", po).ok());
    std::filesystem::create_directories(dir_ + "/tar");
    std::vector<TarMember> half1(members.begin(), members.begin() + 200);
    std::vector<TarMember> half2(members.begin() + 200, members.end());
    WriteTar(dir_ + "/tar/a.tar", half1);
    WriteTar(dir_ + "/tar/b.tar", half2);
    std::filesystem::create_directories(dir_ + "/tfr");
    WriteTfRecord(dir_ + "/tfr/a.tfrecord", records);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::shared_ptr<const Dataset> Open(const std::string& kind, DatasetOptions o = {}) {
    auto ds = OpenDataset(dir_ + "/" + kind, "auto", o);
    EXPECT_TRUE(ds.ok()) << ds.status().ToString();
    return std::shared_ptr<const Dataset>(std::move(ds).value());
  }

  std::string dir_;
};

std::string Expected(uint64_t index) { return SampleBytes(index / kPerClass, index % kPerClass); }

// Runs `steps` batches (crossing epoch ends) and returns "index:bytes" per sample.
std::vector<std::string> Drain(Loader* l, uint64_t steps) {
  std::vector<std::string> out;
  for (uint64_t s = 0; s < steps;) {
    auto b = l->Next();
    EXPECT_TRUE(b.ok()) << b.status().ToString();
    if (!b.ok()) break;
    if (!*b) {
      out.push_back("<epoch end>");
      continue;
    }
    for (size_t i = 0; i < (*b)->samples.size(); i++) {
      auto bytes = (*b)->bytes(i);
      out.push_back(std::to_string((*b)->samples[i].index) + ":" +
                    std::string(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
    }
    s++;
  }
  return out;
}

TEST_P(LoaderTest, DeliversExactShuffledOrderWithRightBytes) {
  auto ds = Open(GetParam());
  ASSERT_EQ(ds->size(), 212u);
  LoaderOptions o;
  o.batch_size = 8;
  o.world = 3;
  o.rank = 2;
  o.seed = 17;
  o.depth = 3;
  auto loader = Loader::Create(ds, o);
  ASSERT_TRUE(loader.ok()) << loader.status().ToString();
  const uint64_t spe = (*loader)->steps_per_epoch();
  ASSERT_EQ(spe, 212u / 24);
  OrderOptions oo;
  oo.seed = 17;
  oo.global_batch = 24;
  auto order = SampleOrder::Create(212, oo);
  auto cursor = OrderCursor::Create(&*order, 2, 3);
  for (uint64_t epoch = 0; epoch < 2; epoch++) {
    for (uint64_t s = 0; s < spe; s++) {
      auto b = (*loader)->Next();
      ASSERT_TRUE(b.ok()) << b.status().ToString();
      ASSERT_TRUE(*b);
      EXPECT_EQ((*b)->epoch, epoch);
      EXPECT_EQ((*b)->step, s);
      auto want = cursor->Take();
      ASSERT_EQ((*b)->samples.size(), want.size());
      for (size_t i = 0; i < want.size(); i++) {
        ASSERT_EQ((*b)->samples[i].index, want[i].sample);
        auto bytes = (*b)->bytes(i);
        EXPECT_EQ(std::string(reinterpret_cast<const char*>(bytes.data()), bytes.size()),
                  Expected(want[i].sample));
        if (GetParam() != "tfr") {
          EXPECT_EQ((*b)->samples[i].label, static_cast<int64_t>(want[i].sample / kPerClass));
        }
      }
    }
    auto end = (*loader)->Next();
    ASSERT_TRUE(end.ok());
    EXPECT_FALSE(*end) << "epoch " << epoch << " should end after " << spe << " steps";
    cursor->NextEpoch();
  }
  EXPECT_EQ((*loader)->stats().samples, 2 * spe * 8);
}

TEST_P(LoaderTest, ResumeEqualsUninterrupted) {
  auto ds = Open(GetParam());
  LoaderOptions o;
  o.batch_size = 10;
  o.seed = 3;
  o.last_batch = LastBatch::kPad;
  auto full = Loader::Create(ds, o);
  ASSERT_TRUE(full.ok());
  const uint64_t spe = (*full)->steps_per_epoch();
  auto want = Drain(full->get(), 2 * spe + 3);
  for (uint64_t cut : {uint64_t{0}, uint64_t{5}, spe, spe + 7}) {
    auto a = Loader::Create(ds, o);
    auto head = Drain(a->get(), cut);
    std::string saved = (*a)->state().Encode();
    a->reset();
    LoaderOptions other = o;
    other.seed = 999;  // the state's seed wins
    auto b = Loader::Create(ds, other);
    auto st = OrderState::Decode(saved);
    ASSERT_TRUE(st.ok());
    ASSERT_TRUE((*b)->LoadState(*st).ok());
    auto tail = Drain(b->get(), 2 * spe + 3 - cut);
    // An epoch-end marker right at the cut is seen by the first loader only.
    if (!head.empty() && head.back() == "<epoch end>" && !tail.empty() && tail.front() == "<epoch end>") {
      tail.erase(tail.begin());
    }
    head.insert(head.end(), tail.begin(), tail.end());
    std::vector<std::string> w = want, h = head;
    std::erase(w, "<epoch end>");
    std::erase(h, "<epoch end>");
    EXPECT_EQ(h, w) << "cut at step " << cut;
  }
}

INSTANTIATE_TEST_SUITE_P(Formats, LoaderTest, testing::Values("folder", "packed", "tar", "tfr"));

TEST_F(LoaderTest, WorldSizeChangeOnResumeExactlyOnce) {
  auto ds = Open("packed");
  std::map<uint64_t, int> count;
  OrderState st;
  for (uint64_t r = 0; r < 4; r++) {  // 4 ranks x 6 = global 24, 3 steps
    LoaderOptions o;
    o.batch_size = 6;
    o.world = 4;
    o.rank = r;
    o.seed = 8;
    auto l = Loader::Create(ds, o);
    for (int s = 0; s < 3; s++) {
      auto b = (*l)->Next();
      for (auto& x : (*b)->samples) count[x.index]++;
    }
    st = (*l)->state();
  }
  for (uint64_t r = 0; r < 3; r++) {  // resume on 3 ranks x 8
    LoaderOptions o;
    o.global_batch = 24;
    o.world = 3;
    o.rank = r;
    o.seed = 8;
    auto l = Loader::Create(ds, o);
    ASSERT_TRUE((*l)->LoadState(st).ok());
    while (true) {
      auto b = (*l)->Next();
      ASSERT_TRUE(b.ok());
      if (!*b) break;
      EXPECT_EQ((*b)->samples.size(), 8u);
      for (auto& x : (*b)->samples) count[x.index]++;
    }
  }
  EXPECT_EQ(count.size(), 212u - 212u % 24);
  for (auto& [idx, c] : count) EXPECT_EQ(c, 1) << "sample " << idx;
}

// Counts ReadBatch calls through a wrapped io_uring reader.
struct CountingReader : SampleReader {
  std::unique_ptr<SampleReader> inner;
  std::atomic<int>* calls;
  Status ReadBatch(std::span<ReadRequest> r) override {
    calls->fetch_add(1);
    return inner->ReadBatch(r);
  }
};

TEST_F(LoaderTest, ReadsAheadOnlyDepthBatches) {
  auto ds = Open("packed");
  std::atomic<int> calls{0};
  LoaderOptions o;
  o.batch_size = 4;
  o.depth = 3;
  o.io_threads = 2;
  o.reader_factory = [&](const std::vector<std::string>& files) -> Result<std::unique_ptr<SampleReader>> {
    auto r = std::make_unique<CountingReader>();
    SLUICE_ASSIGN_OR_RETURN(r->inner, NewUringSampleReader(files));
    r->calls = &calls;
    return std::unique_ptr<SampleReader>(std::move(r));
  };
  auto l = Loader::Create(ds, o);
  ASSERT_TRUE(l.ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_EQ(calls.load(), 3) << "the loader should read exactly depth batches ahead";
  ASSERT_TRUE((*l)->Next().ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_EQ(calls.load(), 4);
}

// Batches of 1 MiB and more reuse the buffers of batches the caller has
// dropped: a handful of mappings for many batches, every byte still right
// (a reused buffer's old bytes never show through), and a batch the caller
// keeps is never handed out again.
TEST(LoaderBuffers, LargeBatchesReuseDroppedBuffers) {
  std::string dir = MakeTempDir();
  constexpr int kFiles = 24;
  auto bytes_of = [](int i) {
    std::string b(300 * 1024 + i * 1000, '\0');
    for (size_t k = 0; k < b.size(); k++) b[k] = static_cast<char>((k * 31 + i * 7) % 251);
    return b;
  };
  std::filesystem::create_directories(dir + "/ds/c0");
  for (int i = 0; i < kFiles; i++) {
    char name[32];
    snprintf(name, sizeof(name), "/item%04d.bin", i);
    WriteFile(dir + "/ds/c0" + name, bytes_of(i));
  }
  auto ds = OpenDataset(dir + "/ds", "auto", {});
  ASSERT_TRUE(ds.ok()) << ds.status().ToString();
  std::shared_ptr<const Dataset> set(std::move(ds).value());
  LoaderOptions o;
  o.batch_size = 4;  // ~1.2 MB per batch
  o.depth = 3;
  o.io_threads = 2;
  auto l = Loader::Create(set, o);
  ASSERT_TRUE(l.ok()) << l.status().ToString();
  std::shared_ptr<Batch> kept;
  std::string kept_bytes;
  int batches = 0;
  for (int epoch = 0; epoch < 4; epoch++) {
    for (;;) {
      auto b = (*l)->Next();
      ASSERT_TRUE(b.ok()) << b.status().ToString();
      if (!*b) break;
      batches++;
      for (size_t i = 0; i < (*b)->samples.size(); i++) {
        auto got = (*b)->bytes(i);
        std::string want = bytes_of(static_cast<int>((*b)->samples[i].index));
        ASSERT_EQ(std::string(reinterpret_cast<const char*>(got.data()), got.size()), want)
            << "sample " << (*b)->samples[i].index << " of batch " << batches;
      }
      if (batches == 2) {  // the caller holds on to one batch throughout
        kept = *b;
        kept_bytes.assign(reinterpret_cast<const char*>(kept->data()), kept->data_size());
      }
    }
  }
  EXPECT_EQ(batches, 4 * kFiles / 4);
  auto st = (*l)->stats();
  // depth batches in the loader, the one kept, the one being read, idle ones.
  EXPECT_LE(st.buffers_mapped, 12u) << "every batch mapped its own buffer: nothing was reused";
  EXPECT_GE(st.buffers_mapped, 2u);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(kept->data()), kept->data_size()), kept_bytes)
      << "a batch the caller still holds was overwritten";
  l->reset();
  kept.reset();  // its buffer goes back to the recycler, which outlived the loader
  std::filesystem::remove_all(dir);
}

TEST(LoaderBuffers, RecyclerKeepsAtMostMaxIdleAndFitsSizes) {
  auto r = std::make_shared<BufferRecycler>(2);
  uint64_t c1 = 0, c2 = 0, c3 = 0;
  uint8_t* a = r->Get(3u << 20, &c1);
  uint8_t* b = r->Get(3u << 20, &c2);
  uint8_t* c = r->Get(3u << 20, &c3);
  EXPECT_GE(c1, 3u << 20);
  EXPECT_EQ(r->mapped(), 3u);
  a[0] = 1, b[c2 - 1] = 2, c[0] = 3;  // writable over their whole capacity
  r->Put(a, c1);
  r->Put(b, c2);
  r->Put(c, c3);  // the third is unmapped
  EXPECT_EQ(r->idle(), 2u);
  uint64_t cap = 0, big_cap = 0, small_cap = 0;
  uint8_t* reused = r->Get(2u << 20, &cap);  // an idle buffer fits: no new mapping
  EXPECT_EQ(r->mapped(), 3u);
  EXPECT_EQ(cap, c1);
  uint8_t* big = r->Get(64u << 20, &big_cap);  // none fits: mapped
  EXPECT_EQ(r->mapped(), 4u);
  EXPECT_GE(big_cap, 64u << 20);
  uint8_t* small = r->Get(1u << 10, &small_cap);  // far smaller than the idle one: not wasted on it
  EXPECT_EQ(r->mapped(), 5u);
  r->Put(reused, cap);
  r->Put(big, big_cap);
  r->Put(small, small_cap);  // idle slots full: unmapped
  EXPECT_EQ(r->idle(), 2u);
  // A miss with every idle slot taken gives one up, so buffers of the wrong
  // size cannot block reuse for good.
  uint64_t huge_cap = 0;
  uint8_t* huge = r->Get(256u << 20, &huge_cap);
  EXPECT_EQ(r->idle(), 1u);
  r->Put(huge, huge_cap);
  EXPECT_EQ(r->idle(), 2u);
  r->Close();  // the loader is gone: nothing kept idle any more
  EXPECT_EQ(r->idle(), 0u);
  uint64_t late_cap = 0;
  uint8_t* late = r->Get(3u << 20, &late_cap);
  r->Put(late, late_cap);
  EXPECT_EQ(r->idle(), 0u);
}

TEST_F(LoaderTest, SetEpochDropsPrefetchAndJumps) {
  auto ds = Open("packed");
  LoaderOptions o;
  o.batch_size = 10;
  o.seed = 21;
  o.depth = 5;
  auto l = Loader::Create(ds, o);
  for (int i = 0; i < 3; i++) ASSERT_TRUE((*l)->Next().ok());
  ASSERT_TRUE((*l)->SetEpoch(5).ok());
  OrderOptions oo;
  oo.seed = 21;
  oo.global_batch = 10;
  auto order = SampleOrder::Create(212, oo);
  for (uint64_t s = 0; s < 4; s++) {
    auto b = (*l)->Next();
    ASSERT_TRUE(b.ok() && *b);
    EXPECT_EQ((*b)->epoch, 5u);
    EXPECT_EQ((*b)->step, s);
    auto want = order->RankBatch(5, s, 0, 1);
    for (size_t i = 0; i < want->size(); i++) EXPECT_EQ((*b)->samples[i].index, (*want)[i].sample);
  }
  EXPECT_EQ((*l)->state().epoch, 5u);
  EXPECT_EQ((*l)->state().consumed, 40u);
}

TEST_F(LoaderTest, TransformRunsOnEverySample) {
  auto ds = Open("packed");
  LoaderOptions o;
  o.batch_size = 5;
  o.decode_threads = 2;
  o.transform = [](uint64_t index, std::span<const uint8_t> in, std::vector<uint8_t>* out) {
    out->assign(in.rbegin(), in.rend());
    out->push_back(static_cast<uint8_t>(index % 251));
    return Status::Ok();
  };
  auto l = Loader::Create(ds, o);
  for (int s = 0; s < 10; s++) {
    auto b = (*l)->Next();
    ASSERT_TRUE(b.ok());
    for (size_t i = 0; i < (*b)->samples.size(); i++) {
      std::string want = Expected((*b)->samples[i].index);
      want = std::string(want.rbegin(), want.rend());
      want.push_back(static_cast<char>((*b)->samples[i].index % 251));
      auto got = (*b)->bytes(i);
      EXPECT_EQ(std::string(reinterpret_cast<const char*>(got.data()), got.size()), want);
    }
  }
}

TEST_F(LoaderTest, PaddingIsMarkedNotRepeated) {
  auto ds = Open("packed");
  LoaderOptions o;
  o.batch_size = 50;
  o.shuffle = false;
  o.last_batch = LastBatch::kPad;
  auto l = Loader::Create(ds, o);
  ASSERT_EQ((*l)->steps_per_epoch(), 5u);
  std::shared_ptr<Batch> last;
  for (int s = 0; s < 5; s++) last = *(*l)->Next();
  ASSERT_EQ(last->samples.size(), 50u);
  for (size_t i = 0; i < 50; i++) {
    if (i < 12) {
      EXPECT_EQ(last->samples[i].kind, SlotKind::kSample);
      EXPECT_EQ(last->samples[i].index, 200 + i);
    } else {
      EXPECT_EQ(last->samples[i].kind, SlotKind::kPadding);
      EXPECT_EQ(last->samples[i].length, 0u);
    }
  }
}

TEST_F(LoaderTest, CorruptPackedSampleErrorOrSkip) {
  // Corrupt one byte of shard 0's data: whichever sample holds byte 10.
  auto ds = Open("packed");
  FlipByte(dir_ + "/packed/shard-00000.data", 10);
  LoaderOptions o;
  o.batch_size = 212;
  o.shuffle = false;
  {
    auto l = Loader::Create(ds, o);
    auto b = (*l)->Next();
    ASSERT_FALSE(b.ok());
    EXPECT_EQ(b.status().code(), Code::kCorrupt);
    EXPECT_THAT(b.status().message(), HasSubstr("shard-00000.data' sample 0"));
  }
  o.skip_corrupt = true;
  auto l = Loader::Create(ds, o);
  auto b = (*l)->Next();
  ASSERT_TRUE(b.ok());
  EXPECT_EQ((*b)->samples.size(), 211u);
  EXPECT_EQ((*b)->skipped, 1u);
  EXPECT_EQ((*b)->samples[0].index, 1u);
  EXPECT_EQ((*l)->stats().skipped, 1u);
}

TEST_F(LoaderTest, FileMissingAtReadTime) {
  auto ds = Open("folder");
  std::filesystem::remove(dir_ + "/folder/c1/item0003.bin");  // sample 56
  LoaderOptions o;
  o.batch_size = 100;
  o.shuffle = false;
  {
    auto l = Loader::Create(ds, o);
    auto b = (*l)->Next();
    ASSERT_FALSE(b.ok());
    EXPECT_EQ(b.status().code(), Code::kNotFound);
    EXPECT_THAT(b.status().message(), HasSubstr("item0003.bin' sample 56"));
  }
  o.skip_corrupt = true;
  auto l = Loader::Create(ds, o);
  auto b = (*l)->Next();
  ASSERT_TRUE(b.ok());
  EXPECT_EQ((*b)->samples.size(), 99u);
  EXPECT_EQ((*b)->skipped, 1u);
}

TEST_F(LoaderTest, TruncatedFileAtReadTime) {
  auto ds = Open("folder");
  ASSERT_EQ(truncate((dir_ + "/folder/c0/item0002.bin").c_str(), 3), 0);
  LoaderOptions o;
  o.batch_size = 10;
  o.shuffle = false;
  auto l = Loader::Create(ds, o);
  auto b = (*l)->Next();
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.status().code(), Code::kCorrupt);
  EXPECT_THAT(b.status().message(), HasSubstr("sample 2"));
  EXPECT_THAT(b.status().message(), HasSubstr("truncated"));
}

TEST(UringSampleReader, ManyRequestsBothFileModes) {
  std::string dir = MakeTempDir();
  std::vector<std::string> files;
  for (int f = 0; f < 20; f++) {
    files.push_back(dir + "/f" + std::to_string(f));
    std::string b;
    for (int i = 0; i < 100000; i++) b.push_back(static_cast<char>((i * 7 + f) % 256));
    WriteFile(files.back(), b);
  }
  for (size_t max_cached : {size_t{1024}, size_t{0}}) {
    UringReaderOptions ro;
    ro.queue_depth = 16;
    ro.max_cached_files = max_cached;
    auto r = NewUringSampleReader(files, ro);
    ASSERT_TRUE(r.ok());
    std::vector<ReadRequest> reqs(600);
    std::vector<std::vector<uint8_t>> bufs(600);
    for (int i = 0; i < 600; i++) {
      reqs[i].file = i % 20;
      reqs[i].offset = (i * 997) % 90000;
      reqs[i].length = 1 + (i * 31) % 9000;
      bufs[i].resize(reqs[i].length);
      reqs[i].dest = bufs[i].data();
    }
    ASSERT_TRUE((*r)->ReadBatch(reqs).ok());
    for (int i = 0; i < 600; i++) {
      ASSERT_TRUE(reqs[i].status.ok()) << reqs[i].status.ToString();
      for (uint64_t k = 0; k < reqs[i].length; k += 97) {
        ASSERT_EQ(bufs[i][k], static_cast<uint8_t>(((reqs[i].offset + k) * 7 + i % 20) % 256));
      }
    }
  }
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace sluice::prefetch
