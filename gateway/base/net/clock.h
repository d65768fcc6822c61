// Where an EventLoop takes its time from: the steady clock in production, a ManualClock in
// tests, so keepalive, handshake and flapping deadlines can be crossed in microseconds by
// advancing the clock instead of sleeping.
//
// A Clock is shared: it must outlive every EventLoop built on it. now() is thread-safe.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <mutex>
#include <vector>

namespace impgate::net {

class Clock {
 public:
  // The steady clock's types, so time points from any Clock compare with each other and with
  // EventLoop::Clock::time_point.
  using duration = std::chrono::steady_clock::duration;
  using time_point = std::chrono::steady_clock::time_point;

  // Told when the clock jumps (a ManualClock is advanced), so that a loop sleeping in
  // epoll_wait on a real-time timeout re-reads the time at once. Called on the thread that
  // moves the clock.
  class Listener {
   public:
    virtual ~Listener() = default;
    virtual void onClockAdvanced() = 0;
  };

  virtual ~Clock() = default;
  virtual time_point now() const = 0;

  // A clock that only moves with real time has no jumps to report; these are no-ops then.
  // They are const because a loop holds its clock by const reference: subscribing does not
  // change what the clock says.
  virtual void subscribe(Listener* /*listener*/) const {}
  virtual void unsubscribe(Listener* /*listener*/) const {}
};

// std::chrono::steady_clock behind the Clock interface.
class SteadyClock final : public Clock {
 public:
  time_point now() const override { return std::chrono::steady_clock::now(); }
};

// The process-wide SteadyClock, the default of every EventLoop.
inline const Clock& steadyClock() {
  static const SteadyClock clock;
  return clock;
}

// A clock that stands still until a test moves it. advance() may be called from any thread;
// it wakes every EventLoop built on this clock, so a loop running on another thread fires the
// timers that became due without waiting for its epoll timeout.
class ManualClock final : public Clock {
 public:
  // Starts at the real steady time by default, so values mixed with real time stay plausible.
  explicit ManualClock(time_point start = std::chrono::steady_clock::now())
      : ticks_(start.time_since_epoch().count()) {}

  time_point now() const override { return time_point(duration(ticks_.load())); }

  void advance(duration by) {
    std::lock_guard<std::mutex> lock(listenersMutex_);
    ticks_.fetch_add(by.count());
    // Under the lock, so a loop being destroyed (unsubscribe) is never called afterwards.
    for (Listener* listener : listeners_) listener->onClockAdvanced();
  }

  void subscribe(Listener* listener) const override {
    std::lock_guard<std::mutex> lock(listenersMutex_);
    listeners_.push_back(listener);
  }
  void unsubscribe(Listener* listener) const override {
    std::lock_guard<std::mutex> lock(listenersMutex_);
    listeners_.erase(std::remove(listeners_.begin(), listeners_.end(), listener), listeners_.end());
  }

 private:
  std::atomic<duration::rep> ticks_;
  mutable std::mutex listenersMutex_;
  mutable std::vector<Listener*> listeners_;
};

}  // namespace impgate::net
