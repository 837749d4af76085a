// Loader: delivers one rank's batches in the exact SampleOrder, reading
// `depth` batches ahead.
//
// Pipeline: `io_threads` threads each take the next step not yet issued
// (while fewer than `depth` steps are issued but not delivered), locate its
// samples, and read them with one SampleReader::ReadBatch (io_uring on POSIX
// paths: the batch's reads are in flight together). The filled buffer goes to
// a pool of `decode_threads` that checks each sample (CRC32C for packed
// shards, TFRecord CRCs) and runs the optional transform. Next() hands out
// the steps strictly in order, waiting on a condition variable.
//
// Memory bound: at most `depth` batches exist inside the loader at any time
// (issued, being read, decoded or ready), plus those the caller still holds.
// A batch's bytes are the sum of its samples' sizes; buffers of 1 MiB and
// more come from a BufferRecycler, whose buffers each hold at most 9/8 of the
// largest batch + 1 MiB. So loader memory is <= depth such buffers
// (+ transform output if any), plus up to min(depth, io_threads + 1) idle
// ones kept for the next batches.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "common/status.h"
#include "prefetch/dataset.h"
#include "prefetch/sample_order.h"
#include "prefetch/sample_reader.h"

namespace sluice::prefetch {

// A decode/transform hook: turns sample `index`'s payload into `*out`.
// Runs on the decode pool, concurrently for different batches.
using SampleTransform =
    std::function<Status(uint64_t index, std::span<const uint8_t> payload, std::vector<uint8_t>* out)>;

struct LoaderOptions {
  // Samples per rank per step. The global batch is batch_size * world unless
  // global_batch is set, in which case batch_size = global_batch / world.
  uint64_t batch_size = 32;
  uint64_t global_batch = 0;
  uint64_t rank = 0;
  uint64_t world = 1;
  uint64_t seed = 0;
  bool shuffle = true;
  LastBatch last_batch = LastBatch::kDrop;
  uint64_t block_size = 0;     // see OrderOptions
  uint64_t window_blocks = 16;
  uint32_t depth = 4;          // batches read ahead; the memory bound
  uint32_t io_threads = 2;     // batches being read at once (each one ReadBatch)
  uint32_t decode_threads = 1;
  // Corrupt or unreadable samples: false -> Next() returns the error naming
  // the file and sample; true -> the sample is left out of its batch and counted.
  bool skip_corrupt = false;
  SampleTransform transform;           // optional
  SampleReaderFactory reader_factory;  // default: NewUringSampleReader
};

struct BatchSample {
  uint64_t index;   // sample index in the data set (0 for padding)
  int64_t label;    // -1 when unknown or padding
  SlotKind kind;    // kSample, kPadding (no bytes) or kRepeat
  uint64_t offset;  // payload bytes: Batch::data()[offset, offset + length)
  uint64_t length;
};

// Large batch buffers kept for reuse. A fresh mapping costs a page fault and
// a zeroed page per 4 KiB touched: reading 116 KB samples through libsluice
// into a new mapping per batch took 98 us of client CPU per sample against
// 51 us into reused memory (build/bin/bench_batch_read). Buffers come back
// when their batch dies (also after the loader is gone: each batch holds the
// recycler alive, and a closed recycler unmaps what comes back).
class BufferRecycler {
 public:
  explicit BufferRecycler(size_t max_idle) : max_idle_(max_idle) {}
  ~BufferRecycler();
  BufferRecycler(const BufferRecycler&) = delete;
  BufferRecycler& operator=(const BufferRecycler&) = delete;
  // A mapped buffer of at least `size` bytes (its capacity in *capacity):
  // an idle one no larger than about twice `size`, else a new mapping.
  uint8_t* Get(uint64_t size, uint64_t* capacity);
  // Keeps the buffer for reuse (up to max_idle of them), else unmaps it.
  void Put(uint8_t* p, uint64_t capacity);
  size_t idle() const;
  uint64_t mapped() const { return mapped_.load(); }  // mappings made so far
  // Unmaps the idle buffers and keeps no more (the loader is gone; batches
  // still held unmap theirs when they die).
  void Close();

 private:
  size_t max_idle_;
  mutable std::mutex mu_;
  std::multimap<uint64_t, uint8_t*> idle_;  // capacity -> buffer
  std::atomic<uint64_t> mapped_{0};
};

// One step's samples for this rank, in order, with their bytes in one buffer.
class Batch {
 public:
  uint64_t epoch = 0;
  uint64_t step = 0;
  std::vector<BatchSample> samples;
  uint64_t skipped = 0;  // samples left out (skip_corrupt)

  const uint8_t* data() const { return data_.get(); }
  uint8_t* mutable_data() { return data_.get(); }
  uint64_t data_size() const { return size_; }
  // Replaces the buffer with `size` uninitialised bytes. Large buffers are
  // mapped (from `recycler` when given, which takes them back when the batch
  // dies; else unmapped then), so memory goes back to the system or to the
  // next batch (malloc arenas would keep it and break the stated bound).
  void Allocate(uint64_t size, std::shared_ptr<BufferRecycler> recycler = nullptr);
  // Gives up the buffer without unmapping or reusing it: a reader failed
  // with reads possibly still in flight into it, and a late one must not
  // land in another batch's memory (a new mapping could reuse the address).
  // The memory stays allocated for the process's life.
  void AbandonBuffer() {
    (void)data_.release();
    size_ = 0;
  }
  std::span<const uint8_t> bytes(size_t i) const {
    return {data_.get() + samples[i].offset, samples[i].length};
  }

 private:
  struct Free {
    uint64_t size;      // bytes mapped or allocated
    std::shared_ptr<BufferRecycler> recycler;
    void operator()(uint8_t* p) const;
  };
  std::unique_ptr<uint8_t[], Free> data_{nullptr, Free{0, nullptr}};
  uint64_t size_ = 0;
};

struct LoaderStats {
  uint64_t batches = 0;        // delivered
  uint64_t samples = 0;        // delivered (padding not counted)
  uint64_t bytes_read = 0;     // read from storage, including discarded work
  uint64_t skipped = 0;        // corrupt/unreadable samples left out
  uint64_t buffers_mapped = 0; // batch buffers of 1 MiB and more mapped (the rest reused)
  uint64_t wait_nanos = 0;     // time Next() spent waiting for a batch
};

class Loader {
 public:
  // `dataset` is shared with the caller; the loader starts reading at once.
  static Result<std::unique_ptr<Loader>> Create(std::shared_ptr<const Dataset> dataset,
                                                const LoaderOptions& options);
  ~Loader();
  Loader(const Loader&) = delete;
  Loader& operator=(const Loader&) = delete;

  // The next batch of the current epoch, or nullptr at the end of the epoch
  // (the following call starts the next epoch). An error names the file and
  // sample; the loader then moves past that batch.
  Result<std::shared_ptr<Batch>> Next();

  uint64_t epoch() const;
  uint64_t steps_per_epoch() const { return order_.steps_per_epoch(); }
  uint64_t batch_size() const { return batch_size_; }
  const Dataset& dataset() const { return *dataset_; }

  // Resume state after the batches delivered so far.
  OrderState state() const;
  // Continues from `state` (possibly saved under another world size); drops
  // whatever was prefetched. Adopts the state's seed.
  Status LoadState(const OrderState& state);
  // Starts epoch `epoch` from its first step.
  Status SetEpoch(uint64_t epoch);

  LoaderStats stats() const;

 private:
  Loader(std::shared_ptr<const Dataset> dataset, const LoaderOptions& options, SampleOrder order,
         uint64_t batch_size);
  Status Start();
  // Drops prefetched and in-flight work, runs `while_idle` under the lock
  // with no I/O in flight, then continues from `global_step`.
  void Restart(uint64_t global_step, const std::function<void()>& while_idle);
  void IoLoop(SampleReader* reader);
  void BuildAndRead(SampleReader* reader, uint64_t gstep, std::shared_ptr<Batch>* out, Status* st);
  void Decode(std::shared_ptr<Batch> batch, Status* st);
  void Finish(uint64_t gen, uint64_t gstep, std::shared_ptr<Batch> batch, Status st);

  std::shared_ptr<const Dataset> dataset_;
  LoaderOptions opt_;
  SampleOrder order_;
  uint64_t batch_size_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  struct Ready {
    std::shared_ptr<Batch> batch;
    Status status;
  };
  std::map<uint64_t, Ready> ready_;  // global step -> finished batch
  uint64_t next_issue_ = 0;          // global step = epoch * steps_per_epoch + step
  uint64_t next_deliver_ = 0;
  uint64_t deliver_epoch_ = 0;       // the epoch Next() is in
  uint64_t inflight_ = 0;            // issued, not yet in ready_
  uint64_t generation_ = 0;          // bumped by Restart; stale work is dropped
  bool stop_ = false;
  LoaderStats stats_;

  std::vector<std::unique_ptr<SampleReader>> readers_;
  std::shared_ptr<BufferRecycler> buffers_;
  std::unique_ptr<class WorkerPool> decode_pool_;
  std::vector<std::thread> io_threads_;
};

}  // namespace sluice::prefetch
