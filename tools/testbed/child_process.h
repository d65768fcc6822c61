// A child process started by a test (the real impgate binary, mosquitto, ...), with its output
// in a log file. Only this process is ever signalled, by its pid; it also gets SIGTERM if the
// test process dies, so a crashed test leaves nothing running.
//
// impbench starts its servers with it too. The child runs in its own process group, so a
// Ctrl-C at the terminal reaches the parent alone, which then stops its children in order.
// Owned and driven by one thread.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace impgate::testbed {

class ChildProcess {
 public:
  ChildProcess() = default;
  ~ChildProcess();  // stop()
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  // Where the child's stderr goes.
  enum class Stderr {
    kLog,           // appended to the log file, like stdout
    kUndrainedPipe  // a pipe whose read end this object holds and never reads: once the pipe
                    // buffer is full, every blocking write(2) to stderr blocks (a stuck log
                    // collector, as far as the child can tell)
  };

  // Starts argv[0] (a path) with stdout (and, by default, stderr) appended to `logPath`.
  // Throws std::runtime_error when it cannot fork or open the log.
  void start(const std::vector<std::string>& argv, const std::filesystem::path& logPath,
             const std::vector<std::string>& extraEnv = {}, Stderr stderrTo = Stderr::kLog);
  // The same, with the error as a value: false with `error` (for impbench, which reports it).
  bool tryStart(const std::vector<std::string>& argv, const std::filesystem::path& logPath,
                std::string& error);

  // SIGTERM, wait up to `grace`, then SIGKILL. Returns the exit status (as from waitpid), or
  // nullopt when nothing was running.
  std::optional<int> stop(std::chrono::milliseconds grace = std::chrono::seconds(5));
  // SIGKILL at once: a crash, as far as peers can tell.
  void kill();
  // True once the process has exited (reaping it).
  bool exited();
  std::optional<int> exitStatus() const { return status_; }

  pid_t pid() const { return pid_; }
  bool running() const { return pid_ > 0; }
  std::string log() const;
  // The last `bytes` of the log, for error messages.
  std::string logTail(std::size_t bytes = 2000) const;

 private:
  void closeStderrPipe();

  pid_t pid_ = -1;
  std::optional<int> status_;
  std::filesystem::path logPath_;
  int stderrPipe_ = -1;  // read end of the Stderr::kUndrainedPipe pipe, closed once reaped
};

// Reads a whole file (empty when missing).
std::string readWholeFile(const std::filesystem::path& path);

}  // namespace impgate::testbed
