#include "gateway/base/net/event_loop.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <iterator>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/wait_until.h"

using impgate::net::EventLoop;
using impgate::net::IoHandler;
using impgate::net::ManualClock;
using namespace std::chrono_literals;

namespace {

// Counts the events it receives and remembers the last mask; reads what is readable when asked.
struct RecordingHandler final : IoHandler {
  int fd = -1;
  bool drain = false;
  int calls = 0;
  uint32_t lastEvents = 0;
  std::string received;
  std::function<void()> then;

  void onIoEvents(uint32_t events) override {
    ++calls;
    lastEvents = events;
    if (drain) {
      char buf[64];
      ssize_t n = ::read(fd, buf, sizeof buf);
      if (n > 0) received.append(buf, static_cast<std::size_t>(n));
    }
    if (then) then();
  }
};

// Sets a flag when destroyed.
struct Tracked {
  bool& destroyed;
  explicit Tracked(bool& flag) : destroyed(flag) {}
  ~Tracked() { destroyed = true; }
};

// A connected AF_UNIX stream pair, closed with the test.
struct SocketPair {
  int fds[2] = {-1, -1};
  SocketPair() {
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) == 0);
  }
  ~SocketPair() {
    ::close(fds[0]);
    ::close(fds[1]);
  }
};

// Whether thread `tid` of this process is blocked in a system call (state S in its stat).
bool threadSleeps(pid_t tid) {
  std::ifstream stat("/proc/self/task/" + std::to_string(tid) + "/stat");
  std::string line;
  std::getline(stat, line);
  // "tid (comm) S ...": the state follows the last ')', as comm may hold anything.
  auto paren = line.rfind(')');
  return paren != std::string::npos && paren + 2 < line.size() && line[paren + 2] == 'S';
}

// Stops `loop` from a timer after `limit`, so a test whose condition never comes still ends.
void stopAfter(EventLoop& loop, std::chrono::milliseconds limit) {
  loop.runAfter(limit, [&loop] { loop.stop(); });
}

}  // namespace

TEST_CASE("post() from another thread runs the callback on the loop thread") {
  EventLoop loop;
  stopAfter(loop, 5s);
  std::thread::id ranOn;
  std::thread poster([&] {
    loop.post([&] {
      ranOn = std::this_thread::get_id();
      loop.stop();
    });
  });
  CHECK_FALSE(loop.run());
  poster.join();
  CHECK(ranOn == std::this_thread::get_id());
}

TEST_CASE("callbacks posted from several threads all run, each thread's in order") {
  EventLoop loop;
  stopAfter(loop, 5s);
  constexpr int kThreads = 4;
  constexpr int kPerThread = 500;
  std::vector<std::vector<int>> seen(kThreads);
  int total = 0;
  std::vector<std::thread> posters;
  for (int t = 0; t < kThreads; ++t) {
    posters.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        loop.post([&, t, i] {
          seen[t].push_back(i);
          if (++total == kThreads * kPerThread) loop.stop();
        });
      }
    });
  }
  CHECK_FALSE(loop.run());
  for (auto& p : posters) p.join();
  REQUIRE(total == kThreads * kPerThread);
  for (const auto& s : seen) {
    REQUIRE(s.size() == kPerThread);
    CHECK(std::is_sorted(s.begin(), s.end()));
  }
}

TEST_CASE("runAfter() timers fire in the order of their deadlines, not of their creation") {
  EventLoop loop;
  std::vector<int> order;
  loop.runAfter(30ms, [&] { order.push_back(3); });
  loop.runAfter(10ms, [&] { order.push_back(1); });
  loop.runAfter(20ms, [&] { order.push_back(2); });
  loop.runAfter(40ms, [&] { loop.stop(); });
  CHECK_FALSE(loop.run());
  CHECK(order == std::vector<int>{1, 2, 3});
}

TEST_CASE("a cancelled runAfter() timer never fires") {
  EventLoop loop;
  bool fired = false;
  auto id = loop.runAfter(10ms, [&] { fired = true; });
  loop.cancel(id);
  loop.runAfter(30ms, [&] { loop.stop(); });
  CHECK_FALSE(loop.run());
  CHECK_FALSE(fired);
}

TEST_CASE("runEvery() repeats until cancel() stops it") {
  EventLoop loop;
  stopAfter(loop, 5s);
  int count = 0;
  EventLoop::TimerId id = 0;
  id = loop.runEvery(1ms, [&] {
    if (++count == 3) {
      // Cancelled from a posted callback: the next pass runs it before any due timer.
      loop.post([&] {
        loop.cancel(id);
        // Several more intervals pass; a live timer would fire in them.
        loop.runAfter(20ms, [&] { loop.stop(); });
      });
    }
  });
  CHECK_FALSE(loop.run());
  CHECK(count == 3);
}

// The running timer is out of the timer queue while its callback runs; cancel() must still
// reach it.
TEST_CASE("a periodic timer that cancels itself from its own callback stops") {
  EventLoop loop;
  stopAfter(loop, 5s);
  int count = 0;
  EventLoop::TimerId id = 0;
  id = loop.runEvery(1ms, [&] {
    if (++count == 3) {
      loop.cancel(id);
      loop.runAfter(20ms, [&] { loop.stop(); });
    }
  });
  CHECK_FALSE(loop.run());
  CHECK(count == 3);
}

TEST_CASE("stop() from another thread makes run() return") {
  EventLoop loop;
  std::promise<void> running;
  loop.post([&] { running.set_value(); });
  auto returned = std::async(std::launch::async, [&] { return loop.run(); });
  REQUIRE(running.get_future().wait_for(5s) == std::future_status::ready);
  loop.stop();
  CHECK(loop.stopping());
  REQUIRE(returned.wait_for(5s) == std::future_status::ready);
  CHECK_FALSE(returned.get());
}

TEST_CASE("deferDelete() destroys the object after the current pass, not inside the callback") {
  EventLoop loop;
  stopAfter(loop, 5s);
  bool destroyed = false;
  bool aliveInCallback = false;
  bool aliveLaterInPass = false;
  bool goneNextPass = false;
  auto object = std::make_unique<Tracked>(destroyed);
  // Both callbacks are queued before the loop runs, so they run in the same pass.
  loop.post([&] {
    loop.deferDelete(std::move(object));
    aliveInCallback = !destroyed;
    // Posted from the loop thread: runs in the next pass.
    loop.post([&] {
      goneNextPass = destroyed;
      loop.stop();
    });
  });
  loop.post([&] { aliveLaterInPass = !destroyed; });
  CHECK_FALSE(loop.run());
  CHECK(aliveInCallback);
  CHECK(aliveLaterInPass);
  CHECK(goneNextPass);
}

TEST_CASE("objects still deferred when run() returns are destroyed") {
  EventLoop loop;
  bool destroyed = false;
  loop.post([&] {
    loop.deferDelete(std::make_unique<Tracked>(destroyed));
    loop.stop();
  });
  CHECK_FALSE(loop.run());
  CHECK(destroyed);
}

TEST_CASE("a watched socket delivers EPOLLIN to its handler until it is unwatched") {
  EventLoop loop;
  stopAfter(loop, 5s);
  SocketPair pair;
  RecordingHandler handler;
  handler.fd = pair.fds[0];
  handler.drain = true;
  handler.then = [&] {
    // Make it readable again, then unwatch it: level-triggered epoll would report it on every
    // following pass if it were still registered.
    REQUIRE(::write(pair.fds[1], "again", 5) == 5);
    loop.unwatch(pair.fds[0]);
    loop.post([&] { loop.post([&] { loop.stop(); }); });
  };
  REQUIRE(loop.watch(pair.fds[0], EPOLLIN, &handler));
  REQUIRE(::write(pair.fds[1], "ping", 4) == 4);
  CHECK_FALSE(loop.run());
  CHECK(handler.calls == 1);
  CHECK((handler.lastEvents & EPOLLIN) != 0);
  CHECK(handler.received == "ping");
}

TEST_CASE("rewatch() switches a registered descriptor to the new events") {
  EventLoop loop;
  stopAfter(loop, 5s);
  SocketPair pair;
  RecordingHandler handler;
  // Nothing to read, so EPOLLIN alone stays quiet; EPOLLOUT is ready at once.
  REQUIRE(loop.watch(pair.fds[0], EPOLLIN, &handler));
  REQUIRE(loop.rewatch(pair.fds[0], EPOLLIN | EPOLLOUT, &handler));
  handler.then = [&] {
    loop.unwatch(pair.fds[0]);
    loop.stop();
  };
  CHECK_FALSE(loop.run());
  CHECK(handler.calls == 1);
  CHECK((handler.lastEvents & EPOLLOUT) != 0);
}

TEST_CASE("watch() refuses a descriptor epoll cannot take") {
  EventLoop loop;
  RecordingHandler handler;
  CHECK_FALSE(loop.watch(-1, EPOLLIN, &handler));
  CHECK_FALSE(loop.rewatch(-1, EPOLLIN, &handler));
}

TEST_CASE("with a ManualClock, timers fire only when the clock is advanced past their deadline") {
  ManualClock clock;
  EventLoop loop(clock);
  const auto start = clock.now();
  CHECK(loop.now() == start);
  std::vector<int> fired;
  loop.runAfter(30s, [&] { fired.push_back(30); });
  loop.runAfter(10s, [&] { fired.push_back(10); });
  // Nothing is due: polling passes fire nothing, however many there are.
  for (int i = 0; i < 3; ++i) REQUIRE_FALSE(loop.runOnce(0ms));
  CHECK(fired.empty());
  clock.advance(10s - 1ms);
  REQUIRE_FALSE(loop.runOnce(0ms));
  CHECK(fired.empty());
  clock.advance(1ms);
  REQUIRE_FALSE(loop.runOnce(0ms));
  CHECK(fired == std::vector<int>{10});
  CHECK(loop.now() == start + 10s);
  clock.advance(1h);
  REQUIRE_FALSE(loop.runOnce(0ms));
  CHECK(fired == std::vector<int>{10, 30});
}

TEST_CASE("with a ManualClock, runEvery() fires once per interval the clock moves") {
  ManualClock clock;
  EventLoop loop(clock);
  int count = 0;
  auto id = loop.runEvery(5s, [&] { ++count; });
  for (int i = 1; i <= 4; ++i) {
    clock.advance(5s);
    REQUIRE_FALSE(loop.runOnce(0ms));
    CHECK(count == i);
  }
  loop.cancel(id);
  clock.advance(5s);
  REQUIRE_FALSE(loop.runOnce(0ms));
  CHECK(count == 4);
}

// A loop blocked in epoll_wait on a long timeout must notice at once that a ManualClock moved;
// otherwise a test advancing the clock would wait out the real timeout.
TEST_CASE("advancing a ManualClock from another thread wakes a loop waiting in runOnce()") {
  ManualClock clock;
  EventLoop loop(clock);
  bool fired = false;
  loop.runAfter(1h, [&] { fired = true; });
  std::atomic<pid_t> loopThread{0};
  // Would wait a minute of real time if advance() did not wake it.
  auto pass = std::async(std::launch::async, [&] {
    loopThread = static_cast<pid_t>(::syscall(SYS_gettid));
    return loop.runOnce(60s);
  });
  // Advance only once the loop sleeps in epoll_wait, the case a wake-up is needed for.
  REQUIRE(impgate::testing::waitUntil([&] { return loopThread != 0; }, 5s));
  REQUIRE(impgate::testing::waitUntil([&] { return threadSleeps(loopThread); }, 5s));
  clock.advance(1h);
  REQUIRE(pass.wait_for(5s) == std::future_status::ready);
  CHECK_FALSE(pass.get());
  CHECK(fired);
}

TEST_CASE("a loop in run() on a ManualClock fires timers as another thread advances it") {
  ManualClock clock;
  EventLoop loop(clock);
  std::promise<void> running;
  loop.post([&] { running.set_value(); });
  std::atomic<int> ticks{0};
  loop.runEvery(1min, [&] {
    if (++ticks == 3) loop.stop();
  });
  auto returned = std::async(std::launch::async, [&] { return loop.run(); });
  REQUIRE(running.get_future().wait_for(5s) == std::future_status::ready);
  for (int i = 1; i <= 3; ++i) {
    clock.advance(1min);
    // The loop fires each step's tick before the next step, so each step fires exactly one.
    // (Within the deadline: the real epoll timeout of a run() pass is a second.)
    REQUIRE(impgate::testing::waitUntil([&] { return ticks.load() == i; }, 5s));
  }
  REQUIRE(returned.wait_for(5s) == std::future_status::ready);
  CHECK_FALSE(returned.get());
  CHECK(ticks.load() == 3);
}

TEST_CASE("runUntil() runs passes until its condition holds, and gives up at its limit") {
  ManualClock clock;
  EventLoop loop(clock);
  int count = 0;
  loop.runEvery(1s, [&] { ++count; });
  CHECK_FALSE(loop.runUntil([&] { return count > 0; }, 50ms));
  clock.advance(1s);
  CHECK(loop.runUntil([&] { return count > 0; }, 5s));
  CHECK(count == 1);
}

TEST_CASE("cancel() of an unknown, fired or already cancelled id changes nothing") {
  ManualClock clock;
  EventLoop loop(clock);
  std::vector<int> fired;
  auto first = loop.runAfter(1s, [&] { fired.push_back(1); });
  auto second = loop.runAfter(2s, [&] { fired.push_back(2); });
  auto third = loop.runAfter(3s, [&] { fired.push_back(3); });
  loop.cancel(0);
  loop.cancel(third + 1000);
  clock.advance(1s);
  REQUIRE_FALSE(loop.runOnce(0ms));
  REQUIRE(fired == std::vector<int>{1});
  loop.cancel(first);  // already fired
  loop.cancel(second);
  loop.cancel(second);  // already cancelled
  clock.advance(1min);
  REQUIRE_FALSE(loop.runOnce(0ms));
  CHECK(fired == std::vector<int>{1, 3});
}

TEST_CASE("a timer callback can cancel another timer due in the same pass") {
  ManualClock clock;
  EventLoop loop(clock);
  std::vector<int> fired;
  EventLoop::TimerId later = 0;
  EventLoop::TimerId repeating = 0;
  loop.runAfter(1s, [&] {
    fired.push_back(1);
    loop.cancel(later);
    loop.cancel(repeating);
  });
  later = loop.runAfter(1s, [&] { fired.push_back(2); });
  repeating = loop.runEvery(1s, [&] { fired.push_back(3); });
  clock.advance(1s);
  REQUIRE_FALSE(loop.runOnce(0ms));
  clock.advance(1s);
  REQUIRE_FALSE(loop.runOnce(0ms));
  CHECK(fired == std::vector<int>{1});
}

TEST_CASE("a repeating timer cancelled between its firings stops; the others keep going") {
  ManualClock clock;
  EventLoop loop(clock);
  int a = 0;
  int b = 0;
  auto idA = loop.runEvery(1s, [&] { ++a; });
  loop.runEvery(1s, [&] { ++b; });
  for (int i = 0; i < 3; ++i) {
    clock.advance(1s);
    REQUIRE_FALSE(loop.runOnce(0ms));
  }
  loop.cancel(idA);
  for (int i = 0; i < 3; ++i) {
    clock.advance(1s);
    REQUIRE_FALSE(loop.runOnce(0ms));
  }
  CHECK(a == 3);
  CHECK(b == 6);
}

// A reconnect storm: thousands of timers, most cancelled before they fire, latest deadline
// first (the order in which a linear search of the queue finds them last). cancel() looks a timer
// up by id instead of walking the queue, so this takes milliseconds; with the former linear scan it
// took seconds. No timing is asserted: the test checks that exactly the survivors fire, in deadline
// order.
TEST_CASE("cancelling most of many timers leaves exactly the others, in deadline order") {
  ManualClock clock;
  EventLoop loop(clock);
  constexpr int kTimers = 20000;
  std::vector<EventLoop::TimerId> ids;
  std::vector<int> fired;
  for (int i = 0; i < kTimers; ++i) {
    // Deadlines in reverse creation order, with ties, so queue order differs from id order.
    auto delay = std::chrono::milliseconds((kTimers - i) / 2);
    ids.push_back(loop.runAfter(delay, [&fired, i] { fired.push_back(i); }));
  }
  std::vector<int> expected;
  for (int i = 0; i < kTimers; ++i) {
    if (i % 7 == 0) continue;
    loop.cancel(ids[static_cast<std::size_t>(i)]);
  }
  // Survivors: every 7th; deadline order is descending i, ties broken by creation (ascending i).
  for (int i = kTimers - 1; i >= 0; --i) {
    if (i % 7 == 0) expected.push_back(i);
  }
  std::stable_sort(expected.begin(), expected.end(),
                   [](int x, int y) { return (kTimers - x) / 2 < (kTimers - y) / 2; });
  clock.advance(std::chrono::milliseconds(kTimers));
  REQUIRE_FALSE(loop.runOnce(0ms));
  CHECK(fired == expected);
}

namespace {

// The descriptors of this process that are epoll instances.
std::set<int> epollFds() {
  std::set<int> fds;
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) {
    std::error_code ec;
    auto target = std::filesystem::read_symlink(entry.path(), ec);
    if (!ec && target.string() == "anon_inode:[eventpoll]") {
      fds.insert(std::stoi(entry.path().filename().string()));
    }
  }
  return fds;
}

}  // namespace

// epoll_wait failing (here: its descriptor replaced by a pipe, so it fails with EINVAL) must
// end run() with the error, not look like an orderly stop.
TEST_CASE("run() returns the error when epoll_wait fails") {
  auto before = epollFds();
  EventLoop loop;
  auto after = epollFds();
  std::vector<int> created;
  std::set_difference(after.begin(), after.end(), before.begin(), before.end(),
                      std::back_inserter(created));
  REQUIRE(created.size() == 1);
  int pipeFds[2];
  REQUIRE(::pipe2(pipeFds, O_CLOEXEC) == 0);
  REQUIRE(::dup2(pipeFds[0], created[0]) == created[0]);
  ::close(pipeFds[0]);
  ::close(pipeFds[1]);
  bool stoppedByTimer = false;
  loop.runAfter(2s, [&] {
    stoppedByTimer = true;
    loop.stop();
  });
  auto error = loop.run();
  CHECK_FALSE(stoppedByTimer);
  REQUIRE(error);
  CHECK(error.value() == EINVAL);
  CHECK(loop.runOnce(0ms).value() == EINVAL);
}

TEST_CASE("postedPending() counts callbacks posted but not yet run; the high-water mark stays") {
  EventLoop loop;
  CHECK(loop.postedPending() == 0);
  CHECK(loop.postedHighWater() == 0);
  std::size_t seenInside = 0;
  std::thread poster([&] {
    for (int i = 0; i < 5; ++i) loop.post([] {});
    loop.post([&] { seenInside = loop.postedPending(); });
  });
  poster.join();
  CHECK(loop.postedPending() == 6);
  CHECK(loop.postedHighWater() == 6);
  REQUIRE_FALSE(loop.runOnce(0ms));
  // The last callback ran after the five before it: only itself was still pending.
  CHECK(seenInside == 1);
  CHECK(loop.postedPending() == 0);
  CHECK(loop.postedHighWater() == 6);
  loop.post([] {});
  CHECK(loop.postedPending() == 1);
  CHECK(loop.postedHighWater() == 6);
}
