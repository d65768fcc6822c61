// MemoryBudget: the bytes one gateway node buffers for its devices, against one limit (like
// mosquitto's memory_limit or Envoy's overload manager).
//
// Sessions report what they hold (partial frames, queued output, pending deliveries) as they
// change; the Gateway asks overloaded() and sheds load by its policy (docs/architecture.md,
// "Memory budget"). Reactor thread only.
#pragma once

#include <cstddef>

namespace impgate::gateway {

class MemoryBudget {
 public:
  explicit MemoryBudget(std::size_t limit) : limit_(limit) {}

  // A holder's usage changed from `before` to `after` bytes.
  void update(std::size_t before, std::size_t after) {
    used_ = used_ - before + after;
    if (used_ > peak_) peak_ = used_;
  }

  std::size_t used() const { return used_; }
  std::size_t limit() const { return limit_; }
  // The most used since the last resetPeak().
  std::size_t peak() const { return peak_; }
  void resetPeak() { peak_ = used_; }
  // Above the high watermark (90 %): stop taking more work.
  bool high() const { return used_ > limit_ / 10 * 9; }
  // Over the limit itself: give memory back.
  bool overloaded() const { return used_ > limit_; }
  // At or below the low watermark (80 %): what was paused may resume.
  bool relieved() const { return used_ <= limit_ / 10 * 8; }

 private:
  std::size_t limit_;
  std::size_t used_ = 0;
  std::size_t peak_ = 0;
};

}  // namespace impgate::gateway
