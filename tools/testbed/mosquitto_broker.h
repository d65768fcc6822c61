// A real mosquitto broker on a free loopback port, with its own config and log in a directory:
// one per integration test (tests/support calls it MosquittoFixture), and impbench's plain bus
// and mutual-TLS baseline. Owned by the test or the benchmark phase that needs it and used from
// that one thread; it stops the broker when destroyed.
//
// Only the process this object started is ever signalled (by pid). The child also receives
// SIGTERM if the thread that started it dies, so a crash leaves no broker behind.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "tools/testbed/child_process.h"
#include "tools/testbed/temp_dir.h"

namespace impgate::testbed {

// A mutual-TLS listener: TLS 1.3 only, a client certificate from `caFile` required, its CN the
// client's user name (the checks impgate makes).
struct MosquittoTls {
  std::string caFile;    // verifies client certificates (the fleet CA)
  std::string certFile;  // the broker's certificate
  std::string keyFile;
};

struct MosquittoOptions {
  std::string binary;         // path to mosquitto; empty: $IMPGATE_MOSQUITTO, else findMosquitto()
  std::filesystem::path dir;  // config and log go here; empty: a temp dir of its own
  // Names the files (`<name>-mosquitto.conf`, `.log`) and the broker in errors; empty:
  // `mosquitto.conf`, `mosquitto.log`.
  std::string name;
  std::optional<MosquittoTls> tls;
  // Connections, subscriptions and unsubscriptions in the log, which tests read; a benchmark
  // turns them off so that the broker does not pay for logging them.
  bool logClients = true;
  // false (the test bed's tuning): no limit on the per-client queue and in-flight window
  // (max_queued_messages 0, max_inflight_messages 0), so a test never loses a QoS 1 message to
  // them, which mosquitto does silently; and set_tcp_nodelay. true: mosquitto's stock settings
  // for all of these (1000 queued and 20 in flight per client, Nagle's algorithm on), as a
  // broker in production has them; only what a test broker needs is still set (listener,
  // anonymous clients, no persistence, logging, `user root`).
  bool stockSettings = false;
  // More mosquitto.conf lines, after (and so overriding) the broker's own, e.g. a limit a
  // test is about.
  std::vector<std::string> extraConfig;
  // Polled while starting; when it returns true the start gives up with "interrupted".
  std::function<bool()> interrupted;
};

// Default options plus these mosquitto.conf lines.
inline MosquittoOptions withConfig(std::vector<std::string> extraConfig) {
  MosquittoOptions options;
  options.extraConfig = std::move(extraConfig);
  return options;
}

class MosquittoBroker {
 public:
  // Starts the broker and returns once it says it is running and its port listens. Throws
  // std::runtime_error (with the broker's log) if mosquitto is missing or does not come up
  // within 10 s; another port is tried when the chosen one was taken meanwhile.
  explicit MosquittoBroker(MosquittoOptions options = {});
  // The same with the error as a value: nullptr with `error` (for impbench, which reports it).
  static std::unique_ptr<MosquittoBroker> start(MosquittoOptions options, std::string& error);
  ~MosquittoBroker();  // stop(), then removes its own temp dir

  MosquittoBroker(const MosquittoBroker&) = delete;
  MosquittoBroker& operator=(const MosquittoBroker&) = delete;

  uint16_t port() const { return port_; }
  std::string uri() const;                     // tcp://127.0.0.1:<port>
  pid_t pid() const { return broker_.pid(); }  // -1 while stopped
  bool running() const { return broker_.running(); }
  // "2.0.11", from the broker's start-up line; empty when not found.
  const std::string& version() const { return version_; }

  // SIGTERM, wait up to 5 s, then SIGKILL. Clients see their connection drop. No-op if stopped.
  void stop();
  // stop(), then start again on the same port (a fresh broker: no sessions, no retained
  // messages). Throws like the constructor.
  void restart();

  const std::filesystem::path& logPath() const { return logPath_; }
  std::string log() const { return broker_.log(); }  // output so far, for failure messages
  std::string logTail(std::size_t bytes = 2000) const { return broker_.logTail(bytes); }

 private:
  void writeConfig() const;
  void launch();  // Throws; leaves the broker stopped on failure.
  std::string label() const;

  MosquittoOptions options_;
  std::optional<TempDir> ownDir_;
  std::filesystem::path confPath_;
  std::filesystem::path logPath_;
  uint16_t port_ = 0;
  std::string version_;
  ChildProcess broker_;
};

// The mosquitto binary: `given` when not empty (if it is executable), then $PATH, then
// /usr/sbin and /usr/local/sbin (where Debian installs it, off a normal user's PATH). Empty
// when none is found.
std::string findMosquitto(const std::string& given = {});

}  // namespace impgate::testbed
