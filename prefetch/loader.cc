#include "prefetch/loader.h"

#include <sys/mman.h>

#include <cstring>
#include <new>
#include <optional>

#include "common/clock.h"
#include "prefetch/worker_pool.h"

namespace sluice::prefetch {

namespace {
constexpr uint64_t kMapThreshold = 1 << 20;
}  // namespace

namespace {
uint8_t* MapBytes(uint64_t size) {
  void* m = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) throw std::bad_alloc();
  return static_cast<uint8_t*>(m);
}
}  // namespace

BufferRecycler::~BufferRecycler() {
  for (auto& [cap, p] : idle_) munmap(p, cap);
}

uint8_t* BufferRecycler::Get(uint64_t size, uint64_t* capacity) {
  std::pair<uint64_t, uint8_t*> evict{0, nullptr};
  {
    std::lock_guard<std::mutex> l(mu_);
    auto it = idle_.lower_bound(size);
    if (it != idle_.end() && it->first <= 2 * size + kMapThreshold) {
      *capacity = it->first;
      uint8_t* p = it->second;
      idle_.erase(it);
      return p;
    }
    // A miss with every idle slot taken: give up the buffer least likely to
    // fit (the smallest when all are too small, else the largest), so idle
    // buffers of the wrong size cannot stop reuse for good.
    if (!idle_.empty() && idle_.size() >= max_idle_) {
      auto victim = it == idle_.end() ? idle_.begin() : std::prev(idle_.end());
      evict = *victim;
      idle_.erase(victim);
    }
  }
  if (evict.second) munmap(evict.second, evict.first);
  // Room for batches a little larger than this one (samples vary in size).
  uint64_t cap = (size + size / 8 + kMapThreshold - 1) / kMapThreshold * kMapThreshold;
  uint8_t* p = MapBytes(cap);
  mapped_++;
  *capacity = cap;
  return p;
}

void BufferRecycler::Put(uint8_t* p, uint64_t capacity) {
  {
    std::lock_guard<std::mutex> l(mu_);
    if (idle_.size() < max_idle_) {
      idle_.emplace(capacity, p);
      return;
    }
  }
  munmap(p, capacity);
}

void BufferRecycler::Close() {
  std::multimap<uint64_t, uint8_t*> idle;
  {
    std::lock_guard<std::mutex> l(mu_);
    max_idle_ = 0;
    idle.swap(idle_);
  }
  for (auto& [cap, p] : idle) munmap(p, cap);
}

size_t BufferRecycler::idle() const {
  std::lock_guard<std::mutex> l(mu_);
  return idle_.size();
}

void Batch::Free::operator()(uint8_t* p) const {
  if (recycler) recycler->Put(p, size);
  else if (size >= kMapThreshold) munmap(p, size);
  else delete[] p;
}

void Batch::Allocate(uint64_t size, std::shared_ptr<BufferRecycler> recycler) {
  uint8_t* p = nullptr;
  uint64_t held = size;
  if (size >= kMapThreshold && recycler) {
    p = recycler->Get(size, &held);
  } else if (size >= kMapThreshold) {
    p = MapBytes(size);
    recycler = nullptr;
  } else {
    p = new uint8_t[size > 0 ? size : 1];
    recycler = nullptr;
  }
  data_ = std::unique_ptr<uint8_t[], Free>(p, Free{held, std::move(recycler)});
  size_ = size;
}

Result<std::unique_ptr<Loader>> Loader::Create(std::shared_ptr<const Dataset> dataset,
                                               const LoaderOptions& options) {
  if (!dataset) return Status(Code::kInvalid, "loader: no data set");
  if (options.world == 0 || options.rank >= options.world) {
    return Status(Code::kInvalid, "loader: rank " + std::to_string(options.rank) +
                                      " is not in a world of " + std::to_string(options.world));
  }
  if (options.depth == 0 || options.io_threads == 0) {
    return Status(Code::kInvalid, "loader: depth and io_threads must be >= 1");
  }
  uint64_t global = options.global_batch ? options.global_batch : options.batch_size * options.world;
  if (global == 0 || global % options.world != 0) {
    return Status(Code::kInvalid, "loader: global batch " + std::to_string(global) +
                                      " must be a positive multiple of world size " +
                                      std::to_string(options.world));
  }
  OrderOptions oo;
  oo.seed = options.seed;
  oo.global_batch = global;
  oo.last_batch = options.last_batch;
  oo.shuffle = options.shuffle;
  oo.block_size = options.block_size;
  oo.window_blocks = options.window_blocks;
  SLUICE_ASSIGN_OR_RETURN(SampleOrder order, SampleOrder::Create(dataset->size(), oo));
  std::unique_ptr<Loader> loader(
      new Loader(std::move(dataset), options, std::move(order), global / options.world));
  SLUICE_RETURN_IF_ERROR(loader->Start());
  return loader;
}

Loader::Loader(std::shared_ptr<const Dataset> dataset, const LoaderOptions& options,
               SampleOrder order, uint64_t batch_size)
    : dataset_(std::move(dataset)), opt_(options), order_(std::move(order)), batch_size_(batch_size) {}

Status Loader::Start() {
  SampleReaderFactory factory = opt_.reader_factory;
  if (!factory) {
    factory = [](const std::vector<std::string>& files) { return NewUringSampleReader(files); };
  }
  uint32_t n = std::min(opt_.io_threads, opt_.depth);
  for (uint32_t i = 0; i < n; i++) {
    SLUICE_ASSIGN_OR_RETURN(std::unique_ptr<SampleReader> r, factory(dataset_->files()));
    readers_.push_back(std::move(r));
  }
  buffers_ = std::make_shared<BufferRecycler>(std::min<size_t>(opt_.depth, n + 1));
  decode_pool_ = std::make_unique<WorkerPool>(opt_.decode_threads);
  for (auto& r : readers_) io_threads_.emplace_back([this, rd = r.get()] { IoLoop(rd); });
  return Status::Ok();
}

Loader::~Loader() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  for (auto& t : io_threads_) t.join();
  decode_pool_.reset();  // finishes queued decodes; their results are dropped
  if (buffers_) buffers_->Close();
}

void Loader::IoLoop(SampleReader* reader) {
  while (true) {
    uint64_t gstep, gen;
    {
      std::unique_lock<std::mutex> l(mu_);
      cv_.wait(l, [&] { return stop_ || next_issue_ - next_deliver_ < opt_.depth; });
      if (stop_) return;
      gstep = next_issue_++;
      gen = generation_;
      inflight_++;
    }
    std::shared_ptr<Batch> batch;
    Status st;
    BuildAndRead(reader, gstep, &batch, &st);
    if (!st.ok()) {
      Finish(gen, gstep, nullptr, st);
      continue;
    }
    decode_pool_->Submit([this, gen, gstep, batch] {
      Status dst;
      Decode(batch, &dst);
      Finish(gen, gstep, batch, dst);
    });
  }
}

void Loader::BuildAndRead(SampleReader* reader, uint64_t gstep, std::shared_ptr<Batch>* out,
                          Status* st) {
  const uint64_t spe = order_.steps_per_epoch();
  auto batch = std::make_shared<Batch>();
  batch->epoch = gstep / spe;
  batch->step = gstep % spe;
  auto slots = order_.RankBatch(batch->epoch, batch->step, opt_.rank, opt_.world);
  if (!slots.ok()) {
    *st = slots.status();
    return;
  }
  std::vector<ReadRequest> reqs;
  std::vector<size_t> req_sample;  // request -> position in batch->samples
  uint64_t total = 0;
  for (const Slot& slot : *slots) {
    if (slot.kind == SlotKind::kPadding) {
      batch->samples.push_back({0, -1, SlotKind::kPadding, total, 0});
      continue;
    }
    auto loc = dataset_->Locate(slot.sample);
    if (!loc.ok()) {
      if (opt_.skip_corrupt) {
        batch->skipped++;
        continue;
      }
      *st = loc.status();
      return;
    }
    batch->samples.push_back({slot.sample, dataset_->Label(slot.sample), slot.kind, total, loc->length});
    ReadRequest r;
    r.file = loc->file;
    r.offset = loc->offset;
    r.length = loc->length;
    reqs.push_back(std::move(r));
    req_sample.push_back(batch->samples.size() - 1);
    total += loc->length;
  }
  batch->Allocate(total, buffers_);
  for (size_t i = 0; i < reqs.size(); i++) {
    reqs[i].dest = batch->mutable_data() + batch->samples[req_sample[i]].offset;
  }
  Status rst = reader->ReadBatch(reqs);
  if (!rst.ok()) {
    batch->AbandonBuffer();
    *st = rst.Prefix("loader: epoch " + std::to_string(batch->epoch) + " step " +
                     std::to_string(batch->step));
    return;
  }
  uint64_t bytes = 0;
  std::vector<bool> drop(batch->samples.size(), false);
  for (size_t i = 0; i < reqs.size(); i++) {
    if (reqs[i].status.ok()) {
      bytes += reqs[i].length;
      continue;
    }
    const BatchSample& s = batch->samples[req_sample[i]];
    if (!opt_.skip_corrupt) {
      *st = reqs[i].status.Prefix(dataset_->Describe(s.index));
      return;
    }
    drop[req_sample[i]] = true;
  }
  if (opt_.skip_corrupt) {
    std::vector<BatchSample> kept;
    for (size_t i = 0; i < batch->samples.size(); i++) {
      if (drop[i]) batch->skipped++;
      else kept.push_back(batch->samples[i]);
    }
    batch->samples = std::move(kept);
  }
  {
    std::lock_guard<std::mutex> l(mu_);
    stats_.bytes_read += bytes;
  }
  *out = std::move(batch);
}

void Loader::Decode(std::shared_ptr<Batch> batch, Status* st) {
  std::vector<BatchSample> kept;
  kept.reserve(batch->samples.size());
  for (size_t i = 0; i < batch->samples.size(); i++) {
    BatchSample s = batch->samples[i];
    if (s.kind == SlotKind::kPadding) {
      kept.push_back(s);
      continue;
    }
    auto payload = dataset_->Payload(s.index, batch->bytes(i));
    if (!payload.ok()) {
      if (opt_.skip_corrupt) {
        batch->skipped++;
        continue;
      }
      *st = payload.status();
      return;
    }
    s.offset = static_cast<uint64_t>(payload->data() - batch->data());
    s.length = payload->size();
    kept.push_back(s);
  }
  batch->samples = std::move(kept);
  if (!opt_.transform) return;
  // Transform each sample, then gather the outputs into one fresh buffer.
  std::vector<std::vector<uint8_t>> outs(batch->samples.size());
  uint64_t total = 0;
  for (size_t i = 0; i < batch->samples.size(); i++) {
    if (batch->samples[i].kind == SlotKind::kPadding) continue;
    Status tst = opt_.transform(batch->samples[i].index, batch->bytes(i), &outs[i]);
    if (!tst.ok()) {
      *st = tst.Prefix("transform of " + dataset_->Describe(batch->samples[i].index));
      return;
    }
    total += outs[i].size();
  }
  Batch packed;
  packed.Allocate(total, buffers_);
  uint64_t at = 0;
  for (size_t i = 0; i < batch->samples.size(); i++) {
    if (!outs[i].empty()) memcpy(packed.mutable_data() + at, outs[i].data(), outs[i].size());
    batch->samples[i].offset = at;
    batch->samples[i].length = outs[i].size();
    at += outs[i].size();
  }
  packed.epoch = batch->epoch;
  packed.step = batch->step;
  packed.samples = std::move(batch->samples);
  packed.skipped = batch->skipped;
  *batch = std::move(packed);
}

void Loader::Finish(uint64_t gen, uint64_t gstep, std::shared_ptr<Batch> batch, Status st) {
  {
    std::lock_guard<std::mutex> l(mu_);
    inflight_--;
    if (gen == generation_ && !stop_) ready_[gstep] = Ready{std::move(batch), std::move(st)};
  }
  cv_.notify_all();
}

Result<std::shared_ptr<Batch>> Loader::Next() {
  const uint64_t spe = order_.steps_per_epoch();
  std::unique_lock<std::mutex> l(mu_);
  if (next_deliver_ >= (deliver_epoch_ + 1) * spe) {
    deliver_epoch_++;
    return std::shared_ptr<Batch>();
  }
  uint64_t t0 = NowNanos();
  cv_.wait(l, [&] { return ready_.count(next_deliver_) > 0; });
  stats_.wait_nanos += NowNanos() - t0;
  Ready r = std::move(ready_[next_deliver_]);
  ready_.erase(next_deliver_);
  next_deliver_++;
  l.unlock();
  cv_.notify_all();  // an I/O thread may issue the next step
  if (!r.status.ok()) return r.status;
  std::lock_guard<std::mutex> g(mu_);
  stats_.batches++;
  stats_.skipped += r.batch->skipped;
  for (const BatchSample& s : r.batch->samples) stats_.samples += s.kind != SlotKind::kPadding;
  return r.batch;
}

uint64_t Loader::epoch() const {
  std::lock_guard<std::mutex> l(mu_);
  return deliver_epoch_;
}

OrderState Loader::state() const {
  std::lock_guard<std::mutex> l(mu_);
  const uint64_t spe = order_.steps_per_epoch();
  OrderState s;
  s.seed = order_.options().seed;
  s.global_batch = order_.options().global_batch;
  s.num_samples = order_.num_samples();
  uint64_t step = next_deliver_ - deliver_epoch_ * spe;
  s.epoch = step >= spe ? deliver_epoch_ + 1 : deliver_epoch_;
  s.consumed = step >= spe ? 0 : step * s.global_batch;
  return s;
}

void Loader::Restart(uint64_t global_step, const std::function<void()>& while_idle) {
  std::unique_lock<std::mutex> l(mu_);
  generation_++;                          // in-flight results will be dropped
  next_issue_ = next_deliver_ + opt_.depth;  // and no new step is issued meanwhile
  // Let in-flight reads drain so the memory bound holds across a restart and
  // nothing reads the order while it changes.
  cv_.wait(l, [&] { return inflight_ == 0; });
  ready_.clear();
  if (while_idle) while_idle();
  next_issue_ = next_deliver_ = global_step;
  l.unlock();
  cv_.notify_all();
}

Status Loader::LoadState(const OrderState& state) {
  std::optional<SampleOrder> reseeded;
  const SampleOrder* order = &order_;
  if (state.seed != order_.options().seed) {
    OrderOptions oo = order_.options();
    oo.seed = state.seed;
    SLUICE_ASSIGN_OR_RETURN(SampleOrder o, SampleOrder::Create(order_.num_samples(), oo));
    reseeded.emplace(std::move(o));
    order = &*reseeded;
  }
  // Validate before touching anything, so a bad state leaves the loader as it was.
  SLUICE_ASSIGN_OR_RETURN(OrderCursor c, OrderCursor::Create(order, opt_.rank, opt_.world));
  SLUICE_RETURN_IF_ERROR(c.Load(state));
  const uint64_t gstep =
      state.epoch * order->steps_per_epoch() + state.consumed / order->options().global_batch;
  Restart(gstep, [&] {
    if (reseeded) {
      order_ = std::move(*reseeded);
      opt_.seed = state.seed;
    }
    deliver_epoch_ = state.epoch;
  });
  return Status::Ok();
}

Status Loader::SetEpoch(uint64_t epoch) {
  Restart(epoch * order_.steps_per_epoch(), [&] { deliver_epoch_ = epoch; });
  return Status::Ok();
}

LoaderStats Loader::stats() const {
  std::lock_guard<std::mutex> l(mu_);
  LoaderStats s = stats_;
  s.buffers_mapped = buffers_ ? buffers_->mapped() : 0;
  return s;
}

}  // namespace sluice::prefetch
