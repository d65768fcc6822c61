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

  // Starts argv[0] (a path) with stdout and stderr appended to `logPath`. Throws
  // std::runtime_error when it cannot fork or open the log.
  void start(const std::vector<std::string>& argv, const std::filesystem::path& logPath,
             const std::vector<std::string>& extraEnv = {});
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
  pid_t pid_ = -1;
  std::optional<int> status_;
  std::filesystem::path logPath_;
};

// Reads a whole file (empty when missing).
std::string readWholeFile(const std::filesystem::path& path);

}  // namespace impgate::testbed
