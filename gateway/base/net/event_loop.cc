#include "gateway/base/net/event_loop.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <climits>
#include <stdexcept>
#include <string>

namespace impgate::net {

namespace {
// Marks the wake-up eventfd in epoll_event.data.ptr; no handler lives at this address.
IoHandler* const kWakeMarker = nullptr;
}  // namespace

EventLoop::EventLoop(const net::Clock& clock) : clock_(clock), now_(clock.now()) {
  epollFd_ = ::epoll_create1(EPOLL_CLOEXEC);
  wakeFd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (epollFd_ < 0 || wakeFd_ < 0) {
    int err = errno;
    closeFds();
    throw std::runtime_error("event loop: cannot create epoll/eventfd: " +
                             std::system_category().message(err));
  }
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.ptr = kWakeMarker;
  // Without the wake-up fd, post() and stop() from other threads would go unnoticed.
  if (::epoll_ctl(epollFd_, EPOLL_CTL_ADD, wakeFd_, &ev) != 0) {
    int err = errno;
    closeFds();
    throw std::runtime_error("event loop: cannot watch the wake-up eventfd: " +
                             std::system_category().message(err));
  }
  clock_.subscribe(this);
}

void EventLoop::closeFds() {
  if (wakeFd_ >= 0) ::close(wakeFd_);
  if (epollFd_ >= 0) ::close(epollFd_);
  wakeFd_ = epollFd_ = -1;
}

EventLoop::~EventLoop() {
  clock_.unsubscribe(this);
  while (!deferred_.empty()) releaseDeferred();
  closeFds();
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

bool EventLoop::unwatch(int fd) {
  return ::epoll_ctl(epollFd_, EPOLL_CTL_DEL, fd, nullptr) == 0;
}

EventLoop::TimerId EventLoop::addTimer(Clock::time_point when, std::chrono::milliseconds interval,
                                       Callback cb) {
  TimerId id = nextTimerId_++;
  timerIndex_.emplace(id, timers_.emplace(when, Timer{id, interval, std::move(cb)}));
  return id;
}

EventLoop::TimerId EventLoop::runAfter(std::chrono::milliseconds delay, Callback cb) {
  return addTimer(clock_.now() + delay, std::chrono::milliseconds(0), std::move(cb));
}

EventLoop::TimerId EventLoop::runEvery(std::chrono::milliseconds interval, Callback cb) {
  return addTimer(clock_.now() + interval, interval, std::move(cb));
}

void EventLoop::cancel(TimerId id) {
  if (id == runningTimer_) {
    runningTimerCancelled_ = true;
    return;
  }
  auto found = timerIndex_.find(id);
  if (found == timerIndex_.end()) return;
  timers_.erase(found->second);
  timerIndex_.erase(found);
}

void EventLoop::post(Callback cb) {
  bool wake = false;
  {
    std::lock_guard<std::mutex> lock(postedMutex_);
    posted_.push_back(std::move(cb));
    std::size_t pending = postedPending_.fetch_add(1, std::memory_order_relaxed) + 1;
    if (pending > postedHighWater_.load(std::memory_order_relaxed)) {
      postedHighWater_.store(pending, std::memory_order_relaxed);
    }
    if (!wakePending_) wakePending_ = wake = true;
  }
  if (wake) this->wake();
}

void EventLoop::wake() {
  // An eventfd write only fails when the counter would overflow, and then the loop is awake.
  uint64_t one = 1;
  ssize_t ignored = ::write(wakeFd_, &one, sizeof one);
  (void)ignored;
}

void EventLoop::stop() {
  stop_.store(true);
  wake();
}

int EventLoop::nextTimeoutMs(std::chrono::milliseconds cap) const {
  auto capMs = std::max<std::chrono::milliseconds::rep>(cap.count(), 0);
  if (timers_.empty()) return static_cast<int>(std::min<decltype(capMs)>(capMs, INT_MAX));
  auto delta = timers_.begin()->first - clock_.now();
  auto ms = std::chrono::ceil<std::chrono::milliseconds>(delta).count();
  if (ms < 0) return 0;
  return static_cast<int>(std::min({ms, capMs, static_cast<decltype(ms)>(INT_MAX)}));
}

void EventLoop::runDueTimers() {
  while (!timers_.empty() && timers_.begin()->first <= now_) {
    auto node = timers_.extract(timers_.begin());
    Timer& timer = node.mapped();
    timerIndex_.erase(timer.id);
    runningTimer_ = timer.id;
    runningTimerCancelled_ = false;
    timer.cb();
    runningTimer_ = 0;
    if (timer.interval.count() > 0 && !runningTimerCancelled_) {
      node.key() = now_ + timer.interval;
      TimerId id = timer.id;
      timerIndex_.emplace(id, timers_.insert(std::move(node)));
    }
  }
}

void EventLoop::runPosted() {
  {
    std::lock_guard<std::mutex> lock(postedMutex_);
    running_.swap(posted_);
    wakePending_ = false;
  }
  for (auto& cb : running_) {
    cb();
    postedPending_.fetch_sub(1, std::memory_order_relaxed);
  }
  running_.clear();
}

std::error_code EventLoop::pass(std::chrono::milliseconds maxWait) {
  std::array<epoll_event, 256> events{};
  int n = ::epoll_wait(epollFd_, events.data(), static_cast<int>(events.size()),
                       nextTimeoutMs(maxWait));
  int err = errno;
  now_ = clock_.now();
  if (n < 0) {
    if (err != EINTR) return {err, std::system_category()};
    n = 0;  // A signal interrupted the wait: still run what is due.
  }
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
  runEndOfPass();
  releaseDeferred();
  return {};
}

void EventLoop::runEndOfPass() {
  while (!endOfPass_.empty()) {
    endOfPassRunning_.swap(endOfPass_);
    for (auto& cb : endOfPassRunning_) cb();
    endOfPassRunning_.clear();
  }
}

std::error_code EventLoop::runOnce(std::chrono::milliseconds maxWait) {
  return pass(maxWait);
}

bool EventLoop::runUntil(const std::function<bool()>& done, std::chrono::milliseconds limit) {
  // Real time on purpose: with a ManualClock the loop's own time may never reach a deadline.
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!done()) {
    auto left =
        std::chrono::ceil<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    // Short waits: done() may turn true through another thread without waking the loop.
    if (pass(std::min(left, std::chrono::milliseconds(10)))) return false;
  }
  return true;
}

std::error_code EventLoop::run() {
  std::error_code failure;
  while (!stop_.load(std::memory_order_relaxed)) {
    failure = pass(std::chrono::milliseconds(1000));
    if (failure) break;
  }
  runPosted();
  runEndOfPass();
  releaseDeferred();
  return failure;
}

void EventLoop::releaseDeferred() {
  // A destructor may defer more deletions; those wait for the next pass.
  std::vector<std::shared_ptr<void>> dying;
  dying.swap(deferred_);
}

}  // namespace impgate::net
