#include "tools/impbench/step_runner.h"

#include <cstdio>

#include "tools/impbench/interrupt.h"

namespace impgate::bench {
namespace {

constexpr std::chrono::milliseconds kPollInterval{5};

}  // namespace

std::string StepRunner::run() {
  current_ = 0;
  begun_ = false;
  failure_.clear();
  if (steps_.empty()) return {};
  auto timer = loop_.runEvery(kPollInterval, [this] { poll(); });
  // The first step begins at once rather than one interval later.
  loop_.post([this] { poll(); });
  std::error_code loopError = loop_.run();
  loop_.cancel(timer);
  if (failure_.empty() && loopError) failure_ = "event loop failed: " + loopError.message();
  if (failure_.empty() && current_ < steps_.size()) failure_ = "event loop stopped early";
  return failure_;
}

void StepRunner::fail(std::string reason) {
  if (failure_.empty()) failure_ = steps_[current_].name + ": " + std::move(reason);
  loop_.stop();
}

void StepRunner::poll() {
  while (current_ < steps_.size() && failure_.empty()) {
    if (interrupted()) {
      failure_ = "interrupted";
      loop_.stop();
      return;
    }
    Step& step = steps_[current_];
    auto now = std::chrono::steady_clock::now();
    if (!begun_) {
      begun_ = true;
      stepStart_ = now;
      if (step.begin) step.begin();
      if (!failure_.empty()) return;
    }
    Seconds elapsed = now - stepStart_;
    bool finished = !step.poll || step.poll(elapsed);
    if (!failure_.empty()) return;
    if (finished) {
      ++current_;
      begun_ = false;
      continue;  // the next step begins in the same pass
    }
    if (elapsed > step.deadline) {
      char text[64];
      std::snprintf(text, sizeof text, ": not finished after %.0f s", elapsed.count());
      failure_ = step.name + text;
      loop_.stop();
    }
    return;
  }
  if (failure_.empty()) loop_.stop();
}

}  // namespace impgate::bench
