// A real mosquitto broker for one test, on a free loopback port, with its own config and log in
// a temp dir. Integration tests create one per test case; it is torn down with the test.
//
// Only the process this fixture started is ever signalled (by pid). The child also receives
// SIGTERM if the thread that created the fixture dies, so a crashed test leaves no broker.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "tests/support/child_process.h"
#include "tests/support/temp_dir.h"

namespace impgate::testing {

class MosquittoFixture {
 public:
  // Starts the broker and returns once its port accepts connections. Throws std::runtime_error
  // (with the broker's log) if mosquitto is missing or does not come up within a few seconds.
  // `extraConfig`: more mosquitto.conf lines, after (and so overriding) the fixture's own.
  explicit MosquittoFixture(std::vector<std::string> extraConfig = {});
  ~MosquittoFixture();  // stop(), then removes the temp dir.

  MosquittoFixture(const MosquittoFixture&) = delete;
  MosquittoFixture& operator=(const MosquittoFixture&) = delete;

  uint16_t port() const { return port_; }
  std::string uri() const;                     // tcp://127.0.0.1:<port>
  pid_t pid() const { return broker_.pid(); }  // -1 while stopped
  bool running() const { return broker_.running(); }

  // SIGTERM, wait up to 5 s, then SIGKILL. Clients see their connection drop. No-op if stopped.
  void stop();
  // stop(), then start again on the same port (a fresh broker: no sessions, no retained
  // messages). Throws like the constructor.
  void restart();

  const std::filesystem::path& logPath() const { return logPath_; }
  std::string log() const { return broker_.log(); }  // output so far, for failure messages

 private:
  void writeConfig() const;
  void start();  // Throws; leaves the broker stopped on failure.

  TempDir dir_;
  std::filesystem::path confPath_;
  std::filesystem::path logPath_;
  std::string binary_;
  std::vector<std::string> extraConfig_;
  uint16_t port_ = 0;
  ChildProcess broker_;
};

}  // namespace impgate::testing
