// Paces the start of `count` connections at a steady rate, from a poll that tells it how much
// time has passed: by `t` seconds, rate * t connections have been started (at least one, at
// most `count`). A fleet that arrives at a known rate keeps the server's queues short, so what
// is measured is the cost of a handshake, not of a stampede.
#pragma once

#include <algorithm>
#include <cstddef>
#include <functional>

namespace impgate::bench {

class PacedStarts {
 public:
  PacedStarts(std::size_t count, double perSecond, std::function<void(std::size_t)> start)
      : count_(count), perSecond_(perSecond), start_(std::move(start)) {}

  // Starts every connection that is due `elapsedSeconds` after the first.
  void advance(double elapsedSeconds) {
    auto due = static_cast<std::size_t>(elapsedSeconds * perSecond_) + 1;
    due = std::min(due, count_);
    while (started_ < due) start_(started_++);
  }
  bool allStarted() const { return started_ == count_; }
  std::size_t started() const { return started_; }

 private:
  std::size_t count_;
  double perSecond_;
  std::function<void(std::size_t)> start_;
  std::size_t started_ = 0;
};

}  // namespace impgate::bench
