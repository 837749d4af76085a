#include "server/data/slot_allocator.h"

namespace sluice::data {

SlotAllocator::SlotAllocator(std::string name, uint64_t slot_count) : name_(std::move(name)) {
  Grow(slot_count);
}

std::optional<uint64_t> SlotAllocator::Allocate() {
  while (!free_.empty()) {
    uint64_t s = free_.top();
    free_.pop();
    if (!used_[s]) {
      used_[s] = true;
      used_count_++;
      return s;
    }
  }
  return std::nullopt;
}

Status SlotAllocator::Free(uint64_t slot) {
  if (slot >= used_.size() || !used_[slot]) {
    return Status(Code::kInternal, name_ + ": free of slot " + std::to_string(slot) +
                                       " that is not in use (of " + std::to_string(used_.size()) +
                                       ")");
  }
  used_[slot] = false;
  used_count_--;
  free_.push(slot);
  return Status::Ok();
}

Status SlotAllocator::MarkUsed(uint64_t slot) {
  if (slot >= used_.size()) {
    return Status(Code::kCorrupt, name_ + ": slot " + std::to_string(slot) +
                                      " lies beyond the data file (" +
                                      std::to_string(used_.size()) + " slots)");
  }
  if (used_[slot]) {
    return Status(Code::kCorrupt, name_ + ": slot " + std::to_string(slot) +
                                      " is named by two chunk records");
  }
  used_[slot] = true;
  used_count_++;
  return Status::Ok();
}

void SlotAllocator::Grow(uint64_t new_count) {
  for (uint64_t s = used_.size(); s < new_count; s++) free_.push(s);
  used_.resize(new_count, false);
}

}  // namespace sluice::data
