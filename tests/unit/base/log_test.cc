// log: lines never block the caller, whatever stderr is connected to.
#include "gateway/base/log.h"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/wait_until.h"

using impgate::testing::waitUntil;
using namespace std::chrono_literals;
namespace ilog = impgate::log;

namespace {

void setNonBlocking(int fd, bool on) {
  int flags = ::fcntl(fd, F_GETFL);
  ::fcntl(fd, F_SETFL, on ? flags | O_NONBLOCK : flags & ~O_NONBLOCK);
}

// Puts a pipe in place of stderr and fills it, so that a blocking write(2) to stderr would
// block until someone reads. The destructor puts the old stderr back.
class FullStderrPipe {
 public:
  FullStderrPipe() {
    REQUIRE(::pipe2(fds_, O_CLOEXEC) == 0);
    setNonBlocking(fds_[1], true);
    std::string filler(4096, 'f');
    while (::write(fds_[1], filler.data(), filler.size()) > 0) {
    }
    // Blocking again: the next write to stderr would wait for a reader.
    setNonBlocking(fds_[1], false);
    setNonBlocking(fds_[0], true);
    saved_ = ::dup(STDERR_FILENO);
    REQUIRE(saved_ >= 0);
    REQUIRE(::dup2(fds_[1], STDERR_FILENO) == STDERR_FILENO);
  }
  ~FullStderrPipe() {
    ::dup2(saved_, STDERR_FILENO);
    ::close(saved_);
    ::close(fds_[0]);
    ::close(fds_[1]);
  }
  // Reads what is there now (non-blocking); appends it to `seen`.
  void drain() {
    char buf[65536];
    ssize_t n;
    while ((n = ::read(fds_[0], buf, sizeof buf)) > 0) seen.append(buf, static_cast<size_t>(n));
  }
  std::string seen;

 private:
  int fds_[2] = {-1, -1};
  int saved_ = -1;
};

// Writes `count` lines on another thread; true if they were all written within `deadline`.
// On false the pipe is drained until the writer thread is done, so the test can go on.
bool writesComplete(FullStderrPipe& pipe, int count, std::chrono::milliseconds deadline) {
  std::atomic<bool> done{false};
  std::thread writer([&] {
    for (int i = 0; i < count; ++i) {
      ilog::warn("logtest", "storm line", {{"i", i}, {"peer", "127.0.0.1:40000"}});
    }
    done = true;
  });
  bool prompt = waitUntil([&] { return done.load(); }, deadline);
  while (!done) {
    pipe.drain();
    std::this_thread::sleep_for(1ms);
  }
  writer.join();
  return prompt;
}

}  // namespace

namespace {

// Drains the pipe until every queued line (and any "suppressed" line) is written.
void drainUntilFlushed(FullStderrPipe& pipe) {
  CHECK(waitUntil(
      [&] {
        pipe.drain();
        bool flushed = ilog::flush(10ms);
        pipe.drain();
        return flushed;
      },
      5s));
}

// The lines of `text` that contain `needle`.
std::vector<std::string> linesWith(const std::string& text, const std::string& needle) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start < text.size()) {
    auto end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(start, end - start);
    if (line.find(needle) != std::string::npos) out.push_back(line);
    start = end + 1;
  }
  return out;
}

// The sum of `key=N` over the "log lines suppressed" lines in `text`.
uint64_t suppressedTotal(const std::string& text, const std::string& key) {
  uint64_t total = 0;
  for (const auto& line : linesWith(text, "msg=\"log lines suppressed\"")) {
    auto pos = line.find(" " + key + "=");
    REQUIRE(pos != std::string::npos);
    total += std::stoull(line.substr(pos + key.size() + 2));
  }
  return total;
}

}  // namespace

TEST_CASE("log lines do not block the caller when stderr is a full pipe nobody reads") {
  FullStderrPipe pipe;
  // 3000 lines of ~100 bytes are far more than the pipe holds: a blocking write would stall.
  CHECK(writesComplete(pipe, 3000, 2s));
  drainUntilFlushed(pipe);
}

TEST_CASE("lines beyond the queue limit are dropped, counted and told in a suppressed line") {
  ilog::setRateLimit(0);  // no budget: only the queue limit drops lines here
  ilog::setQueueLimit(16 * 1024);
  {
    FullStderrPipe pipe;
    drainUntilFlushed(pipe);
    pipe.seen.clear();
    auto before = ilog::stats();
    CHECK(writesComplete(pipe, 3000, 2s));
    auto after = ilog::stats();
    uint64_t dropped = after.droppedQueueFull - before.droppedQueueFull;
    // 16 KiB hold about 150 lines of ~100 bytes; the rest cannot have been queued.
    CHECK(dropped >= 2000);
    CHECK(after.droppedRate == before.droppedRate);
    CHECK(ilog::droppedLines() == after.droppedRate + after.droppedQueueFull);

    // Once the pipe is read, the queued lines come out, then the line that tells the drops.
    drainUntilFlushed(pipe);
    auto summaries = linesWith(pipe.seen, "msg=\"log lines suppressed\"");
    REQUIRE_FALSE(summaries.empty());
    CHECK(summaries.front().starts_with("ts="));
    CHECK(summaries.front().find(" level=warn comp=log msg=\"log lines suppressed\" dropped=") !=
          std::string::npos);
    CHECK(suppressedTotal(pipe.seen, "dropped") == dropped);
    CHECK(suppressedTotal(pipe.seen, "queue_full") == dropped);
    // Every line that was not dropped was written, whole and in order.
    auto written = linesWith(pipe.seen, "msg=\"storm line\"");
    CHECK(written.size() + dropped == 3000);
    CHECK(written.front().find(" i=0 ") != std::string::npos);
    CHECK(ilog::stats().written - before.written == written.size());
  }
  ilog::setQueueLimit(ilog::kDefaultQueueLimit);
  ilog::setRateLimit(ilog::kDefaultLinesPerSecond);
}

TEST_CASE("lines over the budget are dropped and counted; error lines are not budgeted") {
  ilog::setRateLimit(100, 100);
  {
    FullStderrPipe pipe;
    drainUntilFlushed(pipe);
    pipe.seen.clear();
    auto before = ilog::stats();
    auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < 1000; ++i) ilog::info("logtest", "budget line", {{"i", i}});
    for (int i = 0; i < 20; ++i) ilog::error("logtest", "error line", {{"i", i}});
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    uint64_t dropped = ilog::stats().droppedRate - before.droppedRate;
    // 100 at once, then 100 a second.
    CHECK(dropped >= 1000 - 100 - static_cast<uint64_t>(seconds * 100) - 1);
    drainUntilFlushed(pipe);
    CHECK(linesWith(pipe.seen, "msg=\"error line\"").size() == 20);
    CHECK(linesWith(pipe.seen, "msg=\"budget line\"").size() + dropped == 1000);
    CHECK(suppressedTotal(pipe.seen, "rate_limited") == dropped);
  }
  ilog::setRateLimit(ilog::kDefaultLinesPerSecond);
}

TEST_CASE("a forked child logs with its own writer, and exit writes what is queued") {
  int fds[2];
  REQUIRE(::pipe2(fds, O_CLOEXEC) == 0);
  ilog::info("logtest", "parent started its writer");
  REQUIRE(ilog::flush(2s));
  pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::dup2(fds[1], STDERR_FILENO);
    for (int i = 0; i < 500; ++i) ilog::info("logtest", "child line", {{"i", i}});
    std::exit(0);  // exit flushes the queue
  }
  ::close(fds[1]);
  std::string seen;
  char buf[65536];
  ssize_t n;
  while ((n = ::read(fds[0], buf, sizeof buf)) > 0) seen.append(buf, static_cast<size_t>(n));
  ::close(fds[0]);
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  CHECK(WIFEXITED(status));
  auto lines = linesWith(seen, "msg=\"child line\"");
  REQUIRE(lines.size() == 500);
  CHECK(lines.back().find(" i=499") != std::string::npos);
}
