// SampleOrder: which sample each rank reads at each step of each epoch.
//
// The epoch's order is a seeded bijection over [0, n) (FeistelPermutation
// keyed by hash(seed, epoch)), so it costs O(1) memory and is identical on
// every machine. With global batch G and world size w (b = G / w per rank),
// step s on rank r reads slots [s*G + r*b, s*G + r*b + b) of that order, so
// the ranks of one step together read G consecutive slots and an epoch reads
// every sample exactly once. The resume state is therefore only
// (seed, epoch, samples consumed globally, G): loading it under another world
// size re-slices the rest of the epoch with nothing repeated or lost.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"
#include "prefetch/feistel_permutation.h"

namespace sluice::prefetch {

// What happens to the last, incomplete global batch of an epoch
// (n % G samples). Always an explicit choice: nothing is repeated silently.
enum class LastBatch : uint32_t {
  kDrop = 0,     // the incomplete global batch is not read (its samples change each epoch)
  kPad = 1,      // it is read; missing slots come back as kPadding entries (no sample)
  kRepeat = 2,   // missing slots repeat samples from the start of the epoch, marked kRepeat
  kPartial = 3,  // it is read; ranks whose slots lie past n get short or empty batches
};
const char* LastBatchName(LastBatch lb);
Result<LastBatch> ParseLastBatch(const std::string& name);  // "drop" | "pad" | "repeat" | "partial"

struct OrderOptions {
  uint64_t seed = 0;
  // Samples per step summed over all ranks; must be a multiple of every world
  // size the job will run with.
  uint64_t global_batch = 1;
  LastBatch last_batch = LastBatch::kDrop;
  // false: slots map to samples in index order (evaluation, debugging).
  bool shuffle = true;
  // 0: full shuffle. Otherwise a block shuffle: the samples are cut into
  // blocks of `block_size` consecutive indices, the blocks are permuted, and
  // samples are shuffled only within windows of `window_blocks` consecutive
  // (permuted) blocks. See prefetch/README.md for what randomness this keeps.
  uint64_t block_size = 0;
  uint64_t window_blocks = 16;
};

// Resume state: a few dozen bytes whatever the data-set size.
struct OrderState {
  static constexpr uint32_t kFormatVersion = 1;
  uint32_t version = kFormatVersion;
  uint64_t seed = 0;
  uint64_t epoch = 0;
  uint64_t consumed = 0;  // samples (slots) consumed globally in `epoch`; a multiple of G
  uint64_t global_batch = 0;
  uint64_t num_samples = 0;  // checked on load so a state is not applied to another data set

  bool operator==(const OrderState&) const = default;
  // Fixed 48-byte little-endian encoding; Decode refuses unknown versions.
  std::string Encode() const;
  static Result<OrderState> Decode(const std::string& bytes);
};

enum class SlotKind : uint8_t { kSample = 0, kPadding = 1, kRepeat = 2 };

struct Slot {
  uint64_t sample;  // sample index; meaningless for kPadding
  SlotKind kind;
};

class SampleOrder {
 public:
  // Fails if n == 0, G == 0, or kDrop leaves an epoch with no step.
  static Result<SampleOrder> Create(uint64_t num_samples, const OrderOptions& options);

  uint64_t num_samples() const { return n_; }
  const OrderOptions& options() const { return opt_; }
  // Steps (global batches) in every epoch: n / G for kDrop, ceil(n / G) otherwise.
  uint64_t steps_per_epoch() const { return steps_; }

  // The sample at position `slot` (< n) of epoch `epoch`'s order.
  uint64_t SampleAt(uint64_t epoch, uint64_t slot) const;

  // The slots rank `rank` of `world` reads at `step` of `epoch`.
  // Requires world > 0, rank < world, G % world == 0, step < steps_per_epoch().
  Result<std::vector<Slot>> RankBatch(uint64_t epoch, uint64_t step, uint64_t rank,
                                      uint64_t world) const;

 private:
  SampleOrder(uint64_t n, const OrderOptions& opt);
  uint64_t BlockSampleAt(uint64_t epoch, uint64_t slot) const;

  uint64_t n_;
  OrderOptions opt_;
  uint64_t steps_;
};

// One rank's position in the stream of epochs; advances step by step.
// Not thread-safe.
class OrderCursor {
 public:
  // `order` must outlive the cursor.
  static Result<OrderCursor> Create(const SampleOrder* order, uint64_t rank, uint64_t world);

  uint64_t epoch() const { return epoch_; }
  uint64_t step() const { return step_; }  // next step to read in epoch()
  bool epoch_done() const { return step_ >= order_->steps_per_epoch(); }

  // The slots of the current step; then moves to the next step (it does not
  // roll into the next epoch: call NextEpoch()). Requires !epoch_done().
  std::vector<Slot> Take();
  // Starts the next epoch at step 0.
  void NextEpoch();
  // Jumps to the first step of `epoch`.
  void SetEpoch(uint64_t epoch);

  // The global state after the steps taken so far (all ranks in lock step).
  OrderState state() const;
  // Continues from `state`, which may come from a different world size.
  // Fails on a version, seed, data-set size or global-batch mismatch, or a position
  // that is not on a global-batch boundary.
  Status Load(const OrderState& state);

 private:
  OrderCursor(const SampleOrder* order, uint64_t rank, uint64_t world)
      : order_(order), rank_(rank), world_(world) {}
  const SampleOrder* order_;
  uint64_t rank_, world_;
  uint64_t epoch_ = 0, step_ = 0;
};

}  // namespace sluice::prefetch
