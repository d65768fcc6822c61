// A server process impbench started (impgate, mosquitto), with its output in a log file.
//
// Only this pid is ever signalled. The child runs in its own process group, so a Ctrl-C at the
// terminal reaches impbench alone, which then stops its children in order; and it gets SIGTERM
// from the kernel if impbench dies first, so a crashed run leaves nothing behind. The owner
// stops it explicitly or by destroying the object.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

namespace impgate::bench {

class SpawnedProcess {
 public:
  SpawnedProcess() = default;
  ~SpawnedProcess();  // stop()
  SpawnedProcess(const SpawnedProcess&) = delete;
  SpawnedProcess& operator=(const SpawnedProcess&) = delete;

  // Starts argv[0] (a path) with stdout and stderr appended to `logPath`. False with `error`
  // when the log cannot be opened or fork fails; a failed exec shows up as exit status 127.
  bool start(const std::vector<std::string>& argv, const std::filesystem::path& logPath,
             std::string& error);
  // SIGTERM, up to `grace` to exit, then SIGKILL. Returns the wait status, -1 when nothing ran.
  int stop(std::chrono::milliseconds grace = std::chrono::seconds(10));
  // True once the process has exited (and reaps it).
  bool exited();
  // Waits for the process to exit by itself, up to `deadline`; false on timeout.
  bool waitExit(std::chrono::milliseconds deadline);

  pid_t pid() const { return pid_; }
  int exitStatus() const { return status_; }
  // The last `bytes` of the log, for error messages.
  std::string logTail(std::size_t bytes = 2000) const;

 private:
  pid_t pid_ = -1;
  int status_ = -1;
  std::filesystem::path logPath_;
};

}  // namespace impgate::bench
