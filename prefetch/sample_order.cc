#include "prefetch/sample_order.h"

#include <cstring>

#include "prefetch/hash.h"

namespace sluice::prefetch {
namespace {

// Domain-separation tags so the full-shuffle, block and window keys differ.
constexpr uint64_t kTagFull = 1, kTagBlocks = 2, kTagWindow = 3;

uint64_t EpochKey(uint64_t seed, uint64_t epoch, uint64_t tag) {
  return HashPair(HashPair(seed, epoch), tag);
}

void PutU64(std::string* out, uint64_t v) {
  for (int i = 0; i < 8; i++) out->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
uint64_t GetU64(const char* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}

}  // namespace

const char* LastBatchName(LastBatch lb) {
  switch (lb) {
    case LastBatch::kDrop: return "drop";
    case LastBatch::kPad: return "pad";
    case LastBatch::kRepeat: return "repeat";
    case LastBatch::kPartial: return "partial";
  }
  return "?";
}

Result<LastBatch> ParseLastBatch(const std::string& name) {
  for (LastBatch lb : {LastBatch::kDrop, LastBatch::kPad, LastBatch::kRepeat, LastBatch::kPartial}) {
    if (name == LastBatchName(lb)) return lb;
  }
  return Status(Code::kInvalid,
                "last_batch '" + name + "' is not one of drop, pad, repeat, partial");
}

std::string OrderState::Encode() const {
  std::string out;
  PutU64(&out, version);
  PutU64(&out, seed);
  PutU64(&out, epoch);
  PutU64(&out, consumed);
  PutU64(&out, global_batch);
  PutU64(&out, num_samples);
  return out;
}

Result<OrderState> OrderState::Decode(const std::string& bytes) {
  if (bytes.size() != 48) {
    return Status(Code::kInvalid, "loader state: expected 48 bytes, got " +
                                      std::to_string(bytes.size()));
  }
  OrderState s;
  uint64_t version = GetU64(bytes.data());
  if (version != kFormatVersion) {
    return Status(Code::kUnsupported, "loader state: format version " + std::to_string(version) +
                                          " is not supported (this build reads " +
                                          std::to_string(kFormatVersion) + ")");
  }
  s.version = static_cast<uint32_t>(version);
  s.seed = GetU64(bytes.data() + 8);
  s.epoch = GetU64(bytes.data() + 16);
  s.consumed = GetU64(bytes.data() + 24);
  s.global_batch = GetU64(bytes.data() + 32);
  s.num_samples = GetU64(bytes.data() + 40);
  return s;
}

SampleOrder::SampleOrder(uint64_t n, const OrderOptions& opt) : n_(n), opt_(opt) {
  uint64_t g = opt.global_batch;
  steps_ = opt.last_batch == LastBatch::kDrop ? n / g : (n + g - 1) / g;
}

Result<SampleOrder> SampleOrder::Create(uint64_t num_samples, const OrderOptions& options) {
  if (num_samples == 0) return Status(Code::kInvalid, "sample order: the data set is empty");
  if (options.global_batch == 0) return Status(Code::kInvalid, "sample order: global batch is 0");
  if (options.block_size > 0 && options.window_blocks == 0) {
    return Status(Code::kInvalid, "sample order: block shuffle needs window_blocks >= 1");
  }
  if (options.last_batch == LastBatch::kDrop && num_samples < options.global_batch) {
    return Status(Code::kInvalid, "sample order: " + std::to_string(num_samples) +
                                      " samples make no global batch of " +
                                      std::to_string(options.global_batch) +
                                      " with last_batch=drop; use a smaller batch or pad/partial");
  }
  return SampleOrder(num_samples, options);
}

uint64_t SampleOrder::SampleAt(uint64_t epoch, uint64_t slot) const {
  if (!opt_.shuffle) return slot;
  if (opt_.block_size > 0) return BlockSampleAt(epoch, slot);
  FeistelPermutation perm(n_, EpochKey(opt_.seed, epoch, kTagFull));
  return perm.Forward(slot);
}

// Block shuffle. Blocks are [k*B, k*B + B) (the last one, the "tail", may be
// short). The blocks are permuted; permuted positions are grouped into windows
// of W; the slots of a window map through a per-window permutation onto the
// samples of its blocks, concatenated in permuted order.
uint64_t SampleOrder::BlockSampleAt(uint64_t epoch, uint64_t slot) const {
  const uint64_t b = opt_.block_size;
  const uint64_t w = opt_.window_blocks;
  const uint64_t nb = (n_ + b - 1) / b;
  const uint64_t tail = n_ % b;  // size of the short last block, 0 if none
  FeistelPermutation blocks(nb, EpochKey(opt_.seed, epoch, kTagBlocks));
  // Permuted position of the short block; windows after it hold (b - tail) fewer samples.
  const uint64_t tail_pos = tail ? blocks.Inverse(nb - 1) : nb;
  const uint64_t num_windows = (nb + w - 1) / w;
  auto window_start = [&](uint64_t j) -> uint64_t {
    uint64_t s = j * w * b;
    if (tail && tail_pos < j * w) s -= (b - tail);
    return s;
  };
  uint64_t j = slot / (w * b);
  if (j >= num_windows) j = num_windows - 1;
  while (j > 0 && window_start(j) > slot) j--;
  while (j + 1 < num_windows && window_start(j + 1) <= slot) j++;
  const uint64_t start = window_start(j);
  const uint64_t end = j + 1 < num_windows ? window_start(j + 1) : n_;
  FeistelPermutation within(end - start, HashPair(EpochKey(opt_.seed, epoch, kTagWindow), j));
  uint64_t p = within.Forward(slot - start);
  const uint64_t first = j * w;
  const uint64_t last = first + w < nb ? first + w : nb;
  if (!tail || tail_pos < first || tail_pos >= last) {
    uint64_t k = first + p / b;
    return blocks.Forward(k) * b + p % b;
  }
  for (uint64_t k = first; k < last; k++) {
    uint64_t size = (k == tail_pos) ? tail : b;
    if (p < size) return blocks.Forward(k) * b + p;
    p -= size;
  }
  return 0;  // unreachable: p < end - start
}

Result<std::vector<Slot>> SampleOrder::RankBatch(uint64_t epoch, uint64_t step, uint64_t rank,
                                                 uint64_t world) const {
  const uint64_t g = opt_.global_batch;
  if (world == 0 || rank >= world) {
    return Status(Code::kInvalid, "sample order: rank " + std::to_string(rank) +
                                      " is not in a world of " + std::to_string(world));
  }
  if (g % world != 0) {
    return Status(Code::kInvalid, "sample order: global batch " + std::to_string(g) +
                                      " is not divisible by world size " + std::to_string(world));
  }
  if (step >= steps_) {
    return Status(Code::kInvalid, "sample order: step " + std::to_string(step) +
                                      " is past the end of the epoch (" + std::to_string(steps_) +
                                      " steps)");
  }
  const uint64_t b = g / world;
  const uint64_t first = step * g + rank * b;
  std::vector<Slot> out;
  out.reserve(b);
  for (uint64_t t = first; t < first + b; t++) {
    if (t < n_) {
      out.push_back({SampleAt(epoch, t), SlotKind::kSample});
      continue;
    }
    switch (opt_.last_batch) {
      case LastBatch::kPad: out.push_back({0, SlotKind::kPadding}); break;
      case LastBatch::kRepeat: out.push_back({SampleAt(epoch, (t - n_) % n_), SlotKind::kRepeat}); break;
      case LastBatch::kPartial: break;
      case LastBatch::kDrop: break;  // unreachable: kDrop has no step past n
    }
  }
  return out;
}

Result<OrderCursor> OrderCursor::Create(const SampleOrder* order, uint64_t rank, uint64_t world) {
  const uint64_t g = order->options().global_batch;
  if (world == 0 || rank >= world) {
    return Status(Code::kInvalid, "loader: rank " + std::to_string(rank) +
                                      " is not in a world of " + std::to_string(world));
  }
  if (g % world != 0) {
    return Status(Code::kInvalid, "loader: global batch " + std::to_string(g) +
                                      " is not divisible by world size " + std::to_string(world));
  }
  return OrderCursor(order, rank, world);
}

std::vector<Slot> OrderCursor::Take() {
  auto r = order_->RankBatch(epoch_, step_, rank_, world_);
  step_++;
  return r.ok() ? std::move(r).value() : std::vector<Slot>{};
}

void OrderCursor::NextEpoch() {
  epoch_++;
  step_ = 0;
}

void OrderCursor::SetEpoch(uint64_t epoch) {
  epoch_ = epoch;
  step_ = 0;
}

OrderState OrderCursor::state() const {
  OrderState s;
  s.seed = order_->options().seed;
  s.global_batch = order_->options().global_batch;
  s.num_samples = order_->num_samples();
  if (epoch_done()) {
    s.epoch = epoch_ + 1;
    s.consumed = 0;
  } else {
    s.epoch = epoch_;
    s.consumed = step_ * s.global_batch;
  }
  return s;
}

Status OrderCursor::Load(const OrderState& s) {
  const OrderOptions& opt = order_->options();
  if (s.version != OrderState::kFormatVersion) {
    return Status(Code::kUnsupported,
                  "loader state: format version " + std::to_string(s.version) + " is not supported");
  }
  if (s.seed != opt.seed) {
    return Status(Code::kInvalid, "loader state: seed " + std::to_string(s.seed) +
                                      " differs from this loader's seed " + std::to_string(opt.seed));
  }
  if (s.num_samples != order_->num_samples()) {
    return Status(Code::kInvalid, "loader state: saved for " + std::to_string(s.num_samples) +
                                      " samples, but the data set has " +
                                      std::to_string(order_->num_samples()));
  }
  if (s.global_batch != opt.global_batch) {
    return Status(Code::kInvalid, "loader state: saved with global batch " +
                                      std::to_string(s.global_batch) + ", loader uses " +
                                      std::to_string(opt.global_batch) +
                                      " (the global batch must stay fixed across a resume)");
  }
  if (s.consumed % opt.global_batch != 0 ||
      s.consumed / opt.global_batch > order_->steps_per_epoch()) {
    return Status(Code::kInvalid, "loader state: position " + std::to_string(s.consumed) +
                                      " is not a global-batch boundary inside the epoch");
  }
  epoch_ = s.epoch;
  step_ = s.consumed / opt.global_batch;
  return Status::Ok();
}

}  // namespace sluice::prefetch
