#include "gateway/base/log.h"

#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <mutex>
#include <optional>
#include <system_error>
#include <thread>

namespace impgate::log {
namespace {

using Clock = std::chrono::steady_clock;

// A "log lines suppressed" line at most this often, so a storm yields one line a second.
constexpr std::chrono::seconds kSummaryInterval{1};
// How long process exit waits for stderr to take the queued lines.
constexpr std::chrono::seconds kExitFlush{2};

Level initialLevel() {
  Level l = Level::kInfo;
  if (const char* env = std::getenv("IMPGATE_LOG_LEVEL")) parseLevel(env, l);
  return l;
}

std::atomic<Level>& currentLevel() {
  static std::atomic<Level> level{initialLevel()};
  return level;
}

const char* levelName(Level l) {
  switch (l) {
    case Level::kDebug:
      return "debug";
    case Level::kInfo:
      return "info";
    case Level::kWarn:
      return "warn";
    case Level::kError:
      return "error";
  }
  return "info";
}

// Values with spaces, quotes or '=' are quoted so the line stays machine-readable.
void appendValue(std::string& out, std::string_view v) {
  bool quote = v.empty();
  for (char c : v) {
    if (c == ' ' || c == '"' || c == '=' || static_cast<unsigned char>(c) < 0x20) quote = true;
  }
  if (!quote) {
    out.append(v);
    return;
  }
  out.push_back('"');
  for (char c : v) {
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(c);
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", static_cast<unsigned char>(c));
      out.append(buf);
    } else {
      out.push_back(c);
    }
  }
  out.push_back('"');
}

std::string formatLine(Level l, std::string_view component, std::string_view message,
                       std::initializer_list<Field> fields) {
  auto now = std::chrono::system_clock::now();
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
  std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char ts[64];
  std::snprintf(ts, sizeof ts, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<int>(ms % 1000));
  std::string line;
  line.reserve(128);
  line.append("ts=").append(ts).append(" level=").append(levelName(l)).append(" comp=");
  line.append(component).append(" msg=");
  appendValue(line, message);
  for (const Field& f : fields) {
    line.push_back(' ');
    line.append(f.key).push_back('=');
    appendValue(line, f.value);
  }
  line.push_back('\n');
  return line;
}

// Writes all of `data` to stderr, however long that takes: only the writer thread (or a process
// without one) calls this. Gives up on an error other than EINTR/EAGAIN (stderr closed).
void writeAll(std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::write(STDERR_FILENO, data.data(), data.size());
    if (n > 0) {
      data.remove_prefix(static_cast<std::size_t>(n));
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      pollfd p{STDERR_FILENO, POLLOUT, 0};  // someone made stderr non-blocking
      ::poll(&p, 1, -1);
    } else {
      return;
    }
  }
}

// A whole decimal number from the environment, or nullopt.
std::optional<uint64_t> envNumber(const char* name) {
  const char* text = std::getenv(name);
  if (!text || *text == '\0') return std::nullopt;
  char* end = nullptr;
  int saved = errno;  // a caller may log between a failing call and its look at errno
  errno = 0;
  unsigned long long v = std::strtoull(text, &end, 10);
  bool ok = errno == 0 && *end == '\0' && *text != '-';
  errno = saved;
  if (!ok) return std::nullopt;
  return v;
}

// Everything the logger shares between threads, under `mutex`. Allocated once per process and
// never freed: the writer thread is detached and may still be blocked in write(2) while the
// process exits, so nothing it touches may be destroyed by static destruction.
struct State {
  std::mutex mutex;
  std::condition_variable wake;      // the writer waits here: lines queued, or a flush asked
  std::condition_variable progress;  // flush() waits here: the writer finished a batch
  std::string queue;                 // formatted lines, oldest first
  std::size_t queueLimit = kDefaultQueueLimit;
  uint64_t queuedLines = 0;   // lines ever queued
  uint64_t writtenLines = 0;  // of those, lines the writer is done with
  Stats stats;
  uint64_t reportedRate = 0;  // drops already told in a "suppressed" line
  uint64_t reportedFull = 0;
  bool summaryWanted = false;  // flush(): tell the drops now, not at the next interval
  bool started = false;        // the writer thread runs
  bool noThread = false;       // it could not be started: write synchronously, as before

  // The line budget, a token bucket.
  double rate = kDefaultLinesPerSecond;
  double burst = kDefaultLinesPerSecond;
  double tokens = kDefaultLinesPerSecond;
  Clock::time_point refilled = Clock::now();

  State() {
    if (auto r = envNumber("IMPGATE_LOG_RATE")) rate = burst = tokens = static_cast<double>(*r);
    if (auto q = envNumber("IMPGATE_LOG_QUEUE")) queueLimit = static_cast<std::size_t>(*q);
  }

  bool takeToken(Clock::time_point now) {
    if (rate <= 0) return true;
    double elapsed = std::chrono::duration<double>(now - refilled).count();
    refilled = now;
    tokens = std::min(burst, tokens + std::max(0.0, elapsed) * rate);
    if (tokens < 1) return false;
    tokens -= 1;
    return true;
  }
  uint64_t unreported() const {
    return stats.droppedRate - reportedRate + stats.droppedQueueFull - reportedFull;
  }
};

std::atomic<State*> gState{nullptr};

void writerLoop(State& s);
void flushAtExit() {
  flush(kExitFlush);
}

// A forked child has no writer thread (only the forking thread survives fork), and the parent's
// mutex may have been held by another thread at that moment: the child starts afresh, and the
// parent's queue stays the parent's to write.
void forgetInChild() {
  gState.store(nullptr, std::memory_order_relaxed);
}

State& state() {
  if (State* s = gState.load(std::memory_order_acquire)) return *s;
  static const bool hooks = [] {
    ::pthread_atfork(nullptr, nullptr, forgetInChild);
    std::atexit(flushAtExit);
    return true;
  }();
  (void)hooks;
  auto* fresh = new State();
  State* expected = nullptr;
  if (gState.compare_exchange_strong(expected, fresh, std::memory_order_acq_rel)) return *fresh;
  delete fresh;
  return *expected;
}

// Under s.mutex. The writer blocks every signal: signals meant for the process (SIGTERM for a
// daemon that takes it through a signalfd) must never be delivered to it.
void startWriter(State& s) {
  sigset_t all;
  sigset_t old;
  sigfillset(&all);
  ::pthread_sigmask(SIG_SETMASK, &all, &old);
  try {
    std::thread([&s] { writerLoop(s); }).detach();
    s.started = true;
  } catch (const std::system_error&) {
    s.noThread = true;
  }
  ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
}

void writerLoop(State& s) {
  std::string batch;
  auto nextSummary = Clock::now();
  std::unique_lock lock(s.mutex);
  for (;;) {
    auto summaryDue = [&] {
      return s.unreported() > 0 && (s.summaryWanted || Clock::now() >= nextSummary);
    };
    while (s.queue.empty() && !summaryDue()) {
      if (s.unreported() > 0) {
        s.wake.wait_until(lock, nextSummary);
      } else {
        s.wake.wait(lock);
      }
    }
    batch.swap(s.queue);
    uint64_t upTo = s.queuedLines;
    uint64_t lines = upTo - s.writtenLines;
    bool summarize = summaryDue();
    uint64_t rate = s.stats.droppedRate;
    uint64_t full = s.stats.droppedQueueFull;
    uint64_t newRate = rate - s.reportedRate;
    uint64_t newFull = full - s.reportedFull;
    lock.unlock();

    writeAll(batch);
    batch.clear();
    if (summarize) {
      writeAll(formatLine(
          Level::kWarn, "log", "log lines suppressed",
          {{"dropped", newRate + newFull}, {"rate_limited", newRate}, {"queue_full", newFull}}));
      nextSummary = Clock::now() + kSummaryInterval;
    }

    lock.lock();
    s.writtenLines = upTo;
    s.stats.written += lines;
    if (summarize) {
      s.reportedRate = rate;
      s.reportedFull = full;
    }
    // A flush() that came in while we wrote may be owed drops counted after our snapshot.
    if (s.unreported() == 0) s.summaryWanted = false;
    s.progress.notify_all();
  }
}

}  // namespace

void setLevel(Level l) {
  currentLevel().store(l);
}
Level level() {
  return currentLevel().load(std::memory_order_relaxed);
}

bool parseLevel(std::string_view text, Level& out) {
  if (text == "debug")
    out = Level::kDebug;
  else if (text == "info")
    out = Level::kInfo;
  else if (text == "warn")
    out = Level::kWarn;
  else if (text == "error")
    out = Level::kError;
  else
    return false;
  return true;
}

void setRateLimit(uint32_t linesPerSecond, uint32_t burst) {
  State& s = state();
  std::lock_guard lock(s.mutex);
  s.rate = linesPerSecond;
  s.burst = burst > 0 ? burst : linesPerSecond;
  s.tokens = s.burst;
  s.refilled = Clock::now();
}

void setQueueLimit(std::size_t bytes) {
  State& s = state();
  std::lock_guard lock(s.mutex);
  s.queueLimit = bytes;
}

Stats stats() {
  State& s = state();
  std::lock_guard lock(s.mutex);
  return s.stats;
}

uint64_t droppedLines() {
  Stats st = stats();
  return st.droppedRate + st.droppedQueueFull;
}

bool flush(std::chrono::milliseconds timeout) {
  State* sp = gState.load(std::memory_order_acquire);
  if (!sp) return true;
  State& s = *sp;
  std::unique_lock lock(s.mutex);
  if (!s.started) return true;
  uint64_t target = s.queuedLines;
  uint64_t rate = s.stats.droppedRate;
  uint64_t full = s.stats.droppedQueueFull;
  if (s.unreported() > 0) {
    s.summaryWanted = true;
    s.wake.notify_one();
  }
  return s.progress.wait_for(lock, timeout, [&] {
    return s.writtenLines >= target && s.reportedRate >= rate && s.reportedFull >= full;
  });
}

void write(Level l, std::string_view component, std::string_view message,
           std::initializer_list<Field> fields) {
  if (l < level()) return;
  std::string line = formatLine(l, component, message, fields);
  auto now = Clock::now();
  State& s = state();
  std::unique_lock lock(s.mutex);
  if (!s.started && !s.noThread) startWriter(s);
  if (s.noThread) {
    ++s.stats.written;
    lock.unlock();
    writeAll(line);
    return;
  }
  // Error lines skip the budget (they are rare and matter most), not the queue limit.
  bool budget = l == Level::kError || s.takeToken(now);
  bool room = s.queue.empty() || s.queue.size() + line.size() <= s.queueLimit;
  if (!budget || !room) {
    bool firstUnreported = s.unreported() == 0;
    ++(budget ? s.stats.droppedQueueFull : s.stats.droppedRate);
    // The writer may be asleep with nothing to do; it owes a "suppressed" line now.
    if (firstUnreported) s.wake.notify_one();
    return;
  }
  bool wasEmpty = s.queue.empty();
  s.queue.append(line);
  ++s.queuedLines;
  if (wasEmpty) s.wake.notify_one();
}

}  // namespace impgate::log
