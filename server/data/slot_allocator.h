// Free-slot bookkeeping for one preallocated data file of fixed-size slots.
//
// The allocator is never persisted: on open the chunk store marks every slot
// named by a chunk record as used, and everything else is free. Allocation
// returns the lowest free slot so data files stay dense. Not thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <queue>
#include <string>
#include <vector>

#include "common/status.h"

namespace sluice::data {

class SlotAllocator {
 public:
  // `name` appears in error messages (e.g. "target 3 class 1 MiB").
  SlotAllocator(std::string name, uint64_t slot_count);
  SlotAllocator(const SlotAllocator&) = delete;
  SlotAllocator& operator=(const SlotAllocator&) = delete;

  // Lowest free slot, now used; nullopt when every slot is used (Grow first).
  std::optional<uint64_t> Allocate();
  // Returns a used slot. Freeing a free or out-of-range slot is kInternal:
  // it means two owners believed they held the slot.
  Status Free(uint64_t slot);
  // Marks `slot` used while rebuilding from records; kCorrupt if it is out of
  // range or already used (two records naming one slot).
  Status MarkUsed(uint64_t slot);
  // Adds slots [slot_count(), new_count) as free. Requires new_count >= slot_count().
  void Grow(uint64_t new_count);

  bool IsUsed(uint64_t slot) const { return slot < used_.size() && used_[slot]; }
  uint64_t slot_count() const { return used_.size(); }
  uint64_t used_count() const { return used_count_; }
  uint64_t free_count() const { return used_.size() - used_count_; }

 private:
  std::string name_;
  std::vector<bool> used_;
  uint64_t used_count_ = 0;
  // Min-heap of candidate free slots; entries for slots that became used via
  // MarkUsed are skipped lazily.
  std::priority_queue<uint64_t, std::vector<uint64_t>, std::greater<uint64_t>> free_;
};

}  // namespace sluice::data
