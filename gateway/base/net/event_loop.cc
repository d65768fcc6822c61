#include "gateway/base/net/event_loop.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <stdexcept>
#include <string>

namespace impgate::net {

namespace {
// Marks the wake-up eventfd in epoll_event.data.ptr; no handler lives at this address.
IoHandler* const kWakeMarker = nullptr;
}  // namespace

EventLoop::EventLoop() : now_(Clock::now()) {
  epollFd_ = ::epoll_create1(EPOLL_CLOEXEC);
  wakeFd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (epollFd_ < 0 || wakeFd_ < 0) {
    throw std::runtime_error("event loop: cannot create epoll/eventfd: " + std::to_string(errno));
  }
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.ptr = kWakeMarker;
  ::epoll_ctl(epollFd_, EPOLL_CTL_ADD, wakeFd_, &ev);
}

EventLoop::~EventLoop() {
  while (!deferred_.empty()) releaseDeferred();
  if (wakeFd_ >= 0) ::close(wakeFd_);
  if (epollFd_ >= 0) ::close(epollFd_);
}

bool EventLoop::watch(int fd, uint32_t events, IoHandler* handler) {
  epoll_event ev{};
  ev.events = events;
  ev.data.ptr = handler;
  return ::epoll_ctl(epollFd_, EPOLL_CTL_ADD, fd, &ev) == 0;
}

bool EventLoop::rewatch(int fd, uint32_t events, IoHandler* handler) {
  epoll_event ev{};
  ev.events = events;
  ev.data.ptr = handler;
  return ::epoll_ctl(epollFd_, EPOLL_CTL_MOD, fd, &ev) == 0;
}

void EventLoop::unwatch(int fd) {
  ::epoll_ctl(epollFd_, EPOLL_CTL_DEL, fd, nullptr);
}

EventLoop::TimerId EventLoop::addTimer(Clock::time_point when, std::chrono::milliseconds interval,
                                       Callback cb) {
  TimerId id = nextTimerId_++;
  timers_.emplace(when, Timer{id, interval, std::move(cb)});
  return id;
}

EventLoop::TimerId EventLoop::runAfter(std::chrono::milliseconds delay, Callback cb) {
  return addTimer(Clock::now() + delay, std::chrono::milliseconds(0), std::move(cb));
}

EventLoop::TimerId EventLoop::runEvery(std::chrono::milliseconds interval, Callback cb) {
  return addTimer(Clock::now() + interval, interval, std::move(cb));
}

void EventLoop::cancel(TimerId id) {
  if (id == runningTimer_) {
    runningTimerCancelled_ = true;
    return;
  }
  for (auto it = timers_.begin(); it != timers_.end(); ++it) {
    if (it->second.id == id) {
      timers_.erase(it);
      return;
    }
  }
}

void EventLoop::post(Callback cb) {
  bool wake = false;
  {
    std::lock_guard<std::mutex> lock(postedMutex_);
    posted_.push_back(std::move(cb));
    if (!wakePending_) wakePending_ = wake = true;
  }
  if (wake) {
    uint64_t one = 1;
    ssize_t ignored = ::write(wakeFd_, &one, sizeof one);
    (void)ignored;
  }
}

void EventLoop::stop() {
  stop_.store(true);
  uint64_t one = 1;
  ssize_t ignored = ::write(wakeFd_, &one, sizeof one);
  (void)ignored;
}

int EventLoop::nextTimeoutMs() const {
  if (timers_.empty()) return 1000;
  auto delta = timers_.begin()->first - Clock::now();
  auto ms = std::chrono::ceil<std::chrono::milliseconds>(delta).count();
  if (ms < 0) return 0;
  return ms > 1000 ? 1000 : static_cast<int>(ms);
}

void EventLoop::runDueTimers() {
  while (!timers_.empty() && timers_.begin()->first <= now_) {
    auto node = timers_.extract(timers_.begin());
    Timer& timer = node.mapped();
    runningTimer_ = timer.id;
    runningTimerCancelled_ = false;
    timer.cb();
    runningTimer_ = 0;
    if (timer.interval.count() > 0 && !runningTimerCancelled_) {
      node.key() = now_ + timer.interval;
      timers_.insert(std::move(node));
    }
  }
}

void EventLoop::runPosted() {
  {
    std::lock_guard<std::mutex> lock(postedMutex_);
    running_.swap(posted_);
    wakePending_ = false;
  }
  for (auto& cb : running_) cb();
  running_.clear();
}

void EventLoop::run() {
  std::array<epoll_event, 256> events{};
  while (!stop_.load(std::memory_order_relaxed)) {
    int n = ::epoll_wait(epollFd_, events.data(), static_cast<int>(events.size()), nextTimeoutMs());
    now_ = Clock::now();
    if (n < 0 && errno != EINTR) break;
    for (int i = 0; i < n; ++i) {
      auto* handler = static_cast<IoHandler*>(events[i].data.ptr);
      if (handler == kWakeMarker) {
        uint64_t drained;
        ssize_t ignored = ::read(wakeFd_, &drained, sizeof drained);
        (void)ignored;
        continue;
      }
      handler->onIoEvents(events[i].events);
    }
    runPosted();
    runDueTimers();
    releaseDeferred();
  }
  runPosted();
  releaseDeferred();
}

void EventLoop::releaseDeferred() {
  // A destructor may defer more deletions; those wait for the next pass.
  std::vector<std::shared_ptr<void>> dying;
  dying.swap(deferred_);
}

}  // namespace impgate::net
