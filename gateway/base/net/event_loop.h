// A single-threaded epoll reactor: fd readiness, timers, work posted from other threads and
// deferred destruction.
//
// One EventLoop is owned by one thread, which calls run(). Every other method except post()
// and stop() must be called from that thread. Handlers may close and release their own
// connection from inside a callback only through deferDelete(): the object is destroyed at the
// end of the current pass, after every callback of that pass has returned.
#pragma once

#include <sys/epoll.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <vector>

namespace impgate::net {

// Receives readiness events for a file descriptor registered with an EventLoop.
class IoHandler {
 public:
  virtual ~IoHandler() = default;
  // `events` is the epoll event mask (EPOLLIN, EPOLLOUT, EPOLLERR, EPOLLHUP, ...).
  virtual void onIoEvents(uint32_t events) = 0;
};

class EventLoop {
 public:
  using Clock = std::chrono::steady_clock;
  using Callback = std::function<void()>;
  using TimerId = uint64_t;

  EventLoop();
  ~EventLoop();
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  // Registers `fd` for `events` (EPOLLIN/EPOLLOUT; edge-triggered is not used). The handler
  // must outlive the registration. Returns false (errno set) when epoll refuses.
  bool watch(int fd, uint32_t events, IoHandler* handler);
  bool rewatch(int fd, uint32_t events, IoHandler* handler);
  void unwatch(int fd);

  // Runs `cb` on the loop thread once, after `delay`. Timers are meant for a few long-lived
  // jobs (sweeps, reconnects); per-connection deadlines are checked by the owner's sweep.
  TimerId runAfter(std::chrono::milliseconds delay, Callback cb);
  // Runs `cb` every `interval` until cancelled.
  TimerId runEvery(std::chrono::milliseconds interval, Callback cb);
  void cancel(TimerId id);

  // Thread-safe: queues `cb` to run on the loop thread and wakes the loop.
  void post(Callback cb);

  // Destroys `object` after the current pass, when no callback can still be using it.
  template <typename T>
  void deferDelete(std::unique_ptr<T> object) {
    deferred_.push_back(std::shared_ptr<void>(std::move(object)));
  }

  // Runs until stop() is called. Thread-safe stop().
  void run();
  void stop();
  bool stopping() const { return stop_.load(std::memory_order_relaxed); }

  // The time at the start of the current pass (cheap, no syscall).
  Clock::time_point now() const { return now_; }

 private:
  struct Timer {
    TimerId id;
    std::chrono::milliseconds interval;  // zero for one-shot timers
    Callback cb;
  };

  void runDueTimers();
  void runPosted();
  void releaseDeferred();
  int nextTimeoutMs() const;
  TimerId addTimer(Clock::time_point when, std::chrono::milliseconds interval, Callback cb);

  int epollFd_ = -1;
  int wakeFd_ = -1;
  std::atomic<bool> stop_{false};
  Clock::time_point now_;

  std::multimap<Clock::time_point, Timer> timers_;
  TimerId nextTimerId_ = 1;
  // The timer whose callback is running (it is out of timers_ meanwhile), so that it can
  // cancel itself.
  TimerId runningTimer_ = 0;
  bool runningTimerCancelled_ = false;

  std::mutex postedMutex_;
  std::vector<Callback> posted_;
  std::vector<Callback> running_;
  bool wakePending_ = false;  // guarded by postedMutex_

  std::vector<std::shared_ptr<void>> deferred_;
};

}  // namespace impgate::net
