// A single-threaded epoll reactor: fd readiness, timers, work posted from other threads and
// deferred destruction.
//
// One EventLoop is owned by one thread, which calls run() (or runOnce() pass by pass). Every
// other method except post(), wake() and stop() must be called from that thread. Handlers may close
// and release their own connection from inside a callback only through deferDelete(): the object is
// destroyed at the end of the current pass, after every callback of that pass has returned.
//
// The loop reads time only from its net::Clock (clock.h): the steady clock by default, a
// ManualClock in tests, which fires timers when the test advances it.
#pragma once

#include <sys/epoll.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <system_error>
#include <unordered_map>
#include <vector>

#include "gateway/base/net/clock.h"

namespace impgate::net {

// Receives readiness events for a file descriptor registered with an EventLoop.
class IoHandler {
 public:
  virtual ~IoHandler() = default;
  // `events` is the epoll event mask (EPOLLIN, EPOLLOUT, EPOLLERR, EPOLLHUP, ...).
  virtual void onIoEvents(uint32_t events) = 0;
};

class EventLoop : private net::Clock::Listener {
 public:
  // The time_point type of now() (net::Clock::time_point is the same type). The time itself
  // comes from the loop's net::Clock: read it with now() or clock().now(), not Clock::now().
  using Clock = std::chrono::steady_clock;
  using Callback = std::function<void()>;
  using TimerId = uint64_t;

  // `clock` must outlive the loop. Throws std::runtime_error when the epoll instance or the
  // wake-up eventfd cannot be created or registered (start-up only).
  explicit EventLoop(const net::Clock& clock = steadyClock());
  ~EventLoop() override;
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  // Registers `fd` for `events` (EPOLLIN/EPOLLOUT; edge-triggered is not used). The handler
  // must outlive the registration. Returns false (errno set) when epoll refuses: the caller
  // must then not expect events (close the connection, or fail start-up).
  [[nodiscard]] bool watch(int fd, uint32_t events, IoHandler* handler);
  // Changes the events of a registered `fd`. Returns false (errno set) when epoll refuses.
  [[nodiscard]] bool rewatch(int fd, uint32_t events, IoHandler* handler);
  // Returns false (errno set) when `fd` was not registered; harmless before a close().
  bool unwatch(int fd);

  // Runs `cb` on the loop thread once, after `delay`. Timers are meant for a few long-lived
  // jobs (sweeps, reconnects); per-connection deadlines are checked by the owner's sweep.
  TimerId runAfter(std::chrono::milliseconds delay, Callback cb);
  // Runs `cb` every `interval` until cancelled. It fires at most once per pass and is then
  // scheduled `interval` after that pass's now().
  TimerId runEvery(std::chrono::milliseconds interval, Callback cb);
  // Cancels a pending timer, in O(log n). A timer may cancel itself (or any other) from its
  // own callback; an unknown, fired or already cancelled id is ignored.
  void cancel(TimerId id);

  // Thread-safe: queues `cb` to run on the loop thread and wakes the loop. The queue has no
  // bound; postedPending() tells how much it holds.
  void post(Callback cb);
  // Thread-safe: callbacks posted and not yet run to completion, and the most there ever
  // were. For a memory budget on the producers (the bus thread).
  std::size_t postedPending() const { return postedPending_.load(std::memory_order_relaxed); }
  std::size_t postedHighWater() const { return postedHighWater_.load(std::memory_order_relaxed); }

  // Runs `cb` on the loop thread once, at the end of the current pass: after every ready
  // descriptor, posted callback and due timer of the pass has been handled. For work that gains
  // from being batched over a pass, such as writing everything many handlers queued on one
  // connection in one system call. A callback may queue another; it runs in the same pass.
  // Loop thread only.
  void atEndOfPass(Callback cb) { endOfPass_.push_back(std::move(cb)); }

  // Destroys `object` after the current pass, when no callback can still be using it.
  template <typename T>
  void deferDelete(std::unique_ptr<T> object) {
    deferred_.push_back(std::shared_ptr<void>(std::move(object)));
  }

  // Runs until stop() is called (thread-safe stop()); returns no error then. Returns the
  // error when epoll_wait fails with anything but EINTR: the loop cannot go on, and the
  // process should say so and exit non-zero. Posted work and deferred objects are still run
  // and released before it returns.
  [[nodiscard]] std::error_code run();
  void stop();
  bool stopping() const { return stop_.load(std::memory_order_relaxed); }

  // One pass: waits in epoll_wait at most `maxWait` (less when a timer is due sooner, zero
  // to poll), then dispatches ready descriptors, runs posted work and due timers, and releases
  // deferred objects. For tests that drive the loop on their own thread; never from inside
  // a callback of this loop. Ignores stop().
  // Returns an error only when epoll_wait fails (EINTR is not a failure).
  [[nodiscard]] std::error_code runOnce(std::chrono::milliseconds maxWait);
  // Runs passes until `done()` is true (checked before every pass) or `limit` of real time has
  // passed (a safety net; with a ManualClock timers fire only when the clock is advanced).
  // Returns done(); false also when epoll_wait failed.
  [[nodiscard]] bool runUntil(const std::function<bool()>& done, std::chrono::milliseconds limit);

  // Thread-safe: makes the loop take a pass soon (it re-reads the clock and runs due timers).
  void wake();

  // The time at the start of the current pass (cheap, no syscall), from clock().
  Clock::time_point now() const { return now_; }
  const net::Clock& clock() const { return clock_; }

 private:
  struct Timer {
    TimerId id;
    std::chrono::milliseconds interval;  // zero for one-shot timers
    Callback cb;
  };

  void runDueTimers();
  void runPosted();
  void runEndOfPass();
  void releaseDeferred();
  int nextTimeoutMs(std::chrono::milliseconds cap) const;
  std::error_code pass(std::chrono::milliseconds maxWait);
  void closeFds();
  void onClockAdvanced() override { wake(); }
  TimerId addTimer(Clock::time_point when, std::chrono::milliseconds interval, Callback cb);

  const net::Clock& clock_;
  int epollFd_ = -1;
  int wakeFd_ = -1;
  std::atomic<bool> stop_{false};
  Clock::time_point now_;

  using TimerQueue = std::multimap<Clock::time_point, Timer>;
  TimerQueue timers_;
  // Every timer in timers_ by id, so that cancel() need not search the queue (reconnect storms
  // cancel thousands of timers). multimap iterators stay valid until their node is erased.
  std::unordered_map<TimerId, TimerQueue::iterator> timerIndex_;
  TimerId nextTimerId_ = 1;
  // The timer whose callback is running (it is out of timers_ meanwhile), so that it can
  // cancel itself.
  TimerId runningTimer_ = 0;
  bool runningTimerCancelled_ = false;

  std::mutex postedMutex_;
  std::vector<Callback> posted_;
  std::vector<Callback> running_;
  bool wakePending_ = false;  // guarded by postedMutex_
  std::atomic<std::size_t> postedPending_{0};
  std::atomic<std::size_t> postedHighWater_{0};  // written under postedMutex_

  std::vector<Callback> endOfPass_;
  std::vector<Callback> endOfPassRunning_;
  std::vector<std::shared_ptr<void>> deferred_;
};

}  // namespace impgate::net
