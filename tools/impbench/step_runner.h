// Runs a benchmark phase as a list of steps on one EventLoop. Each step begins once, is polled
// every few milliseconds until it reports that it is finished, and fails the run when its
// deadline passes or the user interrupts; every load loop in impbench is bounded this way.
//
// The phase is one call to run(), because an EventLoop cannot run again once stopped: clients
// that must survive from one step to the next (to resume their TLS sessions) live on one loop.
#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include "gateway/base/net/event_loop.h"

namespace impgate::bench {

class StepRunner {
 public:
  using Seconds = std::chrono::duration<double>;

  // One step: a name for failures, a deadline, what to do once and what to poll.
  struct Step {
    std::string name;
    std::chrono::milliseconds deadline;
    std::function<void()> begin;                // once, when the step starts; may be empty
    std::function<bool(Seconds elapsed)> poll;  // true when the step is finished
  };

  explicit StepRunner(net::EventLoop& loop) : loop_(loop) {}
  void add(Step step) { steps_.push_back(std::move(step)); }

  // Runs every step in order on the loop (call once per loop). Returns an empty string when
  // all finished, otherwise why the run stopped ("<step>: not finished after N s",
  // "interrupted").
  std::string run();
  // Ends the run from inside a step (a server died, a sample failed): run() returns `reason`.
  void fail(std::string reason);

 private:
  void poll();

  net::EventLoop& loop_;
  std::vector<Step> steps_;
  std::size_t current_ = 0;
  bool begun_ = false;
  std::chrono::steady_clock::time_point stepStart_;
  std::string failure_;
};

}  // namespace impgate::bench
