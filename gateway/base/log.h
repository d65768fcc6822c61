// Structured, levelled log lines for every impgate binary.
//
// One line per event on stderr: `ts=... level=info comp=gateway msg="..." key=value ...`.
//
// Logging never blocks the calling thread (a reactor, typically): write() formats the line and
// appends it to a bounded in-memory queue; one background writer thread, started on the first
// line, does the blocking write(2) to stderr. A stuck or slow stderr (a full pipe to a log
// collector) therefore stalls only that thread. Lines are dropped, and counted, when
//   - the queue is full (queueLimit bytes, 1 MiB by default), or
//   - the rate budget is spent (a token bucket, 2000 lines/s with a burst of 2000 by default;
//     error lines are exempt from the budget but not from the queue limit).
// $IMPGATE_LOG_RATE (lines/s, 0: no budget) and $IMPGATE_LOG_QUEUE (bytes) change the defaults
// at start; setRateLimit() and setQueueLimit() at any time.
// After lines were dropped the writer emits one line `msg="log lines suppressed" dropped=N`
// (at most once a second), so nothing is lost silently; the totals are in stats().
//
// The writer writes whole lines in order, so lines from several threads never interleave. At
// process exit (std::exit, return from main) the queue is flushed for up to two seconds; a
// forked child starts with an empty queue and its own writer. abort(), _exit() and fatal
// signals skip that: call flush() first where a line must survive them.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>

namespace impgate::log {

enum class Level { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };

// Lines below this level are dropped. Defaults to kInfo; IMPGATE_LOG_LEVEL overrides it at start.
void setLevel(Level level);
Level level();
// Parses "debug", "info", "warn", "error"; returns false for anything else.
bool parseLevel(std::string_view text, Level& out);

// The line budget: on average `linesPerSecond`, up to `burst` at once (0: the same as
// linesPerSecond). 0 lines per second: no budget. Any thread, any time.
void setRateLimit(uint32_t linesPerSecond, uint32_t burst = 0);
// Bytes of formatted lines the queue holds at most (default 1 MiB; at least one line fits).
void setQueueLimit(std::size_t bytes);

// Defaults of the line budget and the queue.
inline constexpr uint32_t kDefaultLinesPerSecond = 2000;
inline constexpr std::size_t kDefaultQueueLimit = 1024 * 1024;

struct Stats {
  uint64_t written = 0;           // lines handed to write(2)
  uint64_t droppedRate = 0;       // over the line budget
  uint64_t droppedQueueFull = 0;  // the queue was full: stderr is slower than the lines come
};
Stats stats();
// droppedRate + droppedQueueFull: the lines this process did not write.
uint64_t droppedLines();

// Waits until every line queued before the call is written (and a pending "suppressed" line
// too), at most `timeout`. False when stderr did not take them in time. Tools call it when the
// order of their log lines against other output matters; process exit calls it.
bool flush(std::chrono::milliseconds timeout = std::chrono::seconds(2));

struct Field {
  std::string_view key;
  std::string value;
  Field(std::string_view k, std::string_view v) : key(k), value(v) {}
  Field(std::string_view k, const char* v) : key(k), value(v) {}
  Field(std::string_view k, const std::string& v) : key(k), value(v) {}
  template <typename N, typename = decltype(std::to_string(N{}))>
  Field(std::string_view k, N v) : key(k), value(std::to_string(v)) {}
};

// Queues one line; never blocks on stderr. Any thread.
void write(Level level, std::string_view component, std::string_view message,
           std::initializer_list<Field> fields = {});

inline void debug(std::string_view comp, std::string_view msg,
                  std::initializer_list<Field> f = {}) {
  if (level() <= Level::kDebug) write(Level::kDebug, comp, msg, f);
}
inline void info(std::string_view comp, std::string_view msg, std::initializer_list<Field> f = {}) {
  write(Level::kInfo, comp, msg, f);
}
inline void warn(std::string_view comp, std::string_view msg, std::initializer_list<Field> f = {}) {
  write(Level::kWarn, comp, msg, f);
}
inline void error(std::string_view comp, std::string_view msg,
                  std::initializer_list<Field> f = {}) {
  write(Level::kError, comp, msg, f);
}

}  // namespace impgate::log
