// A real aedes broker (Node.js, tools/testbed/aedes/broker.js) on a free loopback port: a broker
// that speaks MQTT 3.1.1 only and answers an MQTT 5 CONNECT with "unacceptable protocol
// version", for the tests of impgate against such brokers (tests/support calls it
// AedesFixture). Owned by the test that needs it and used from that one thread; it stops the
// broker when destroyed.
//
// Needs `node` and the npm package in tools/testbed/aedes (node_modules), both installed by
// tools/install-deps.sh. When either is missing the constructor throws and says so: a test
// that needs this broker fails, it is never skipped.
//
// Only the process this object started is ever signalled (by pid). The child also receives
// SIGTERM if the thread that started it dies, so a crash leaves no broker behind.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>

#include "tools/testbed/child_process.h"
#include "tools/testbed/temp_dir.h"

namespace impgate::testbed {

struct AedesOptions {
  std::string node;  // path to node; empty: $IMPGATE_NODE, else findNode()
  // Holds broker.js and node_modules/aedes; empty: $IMPGATE_AEDES_DIR, else the source tree's
  // tools/testbed/aedes (where tools/install-deps.sh installs it).
  std::filesystem::path packageDir;
  std::filesystem::path dir;  // the log goes here; empty: a temp dir of its own
  // Names the log (`<name>-aedes.log`) and the broker in errors; empty: `aedes.log`.
  std::string name;
  // Polled while starting; when it returns true the start gives up with "interrupted".
  std::function<bool()> interrupted;
};

class AedesBroker {
 public:
  // Starts the broker on a port the kernel picks and returns once it says it is ready and the
  // port listens. Throws std::runtime_error when node or the package is missing (saying how to
  // install them) or when the broker does not come up within 10 s (with its log).
  explicit AedesBroker(AedesOptions options = {});
  ~AedesBroker();  // stop(), then removes its own temp dir

  AedesBroker(const AedesBroker&) = delete;
  AedesBroker& operator=(const AedesBroker&) = delete;

  uint16_t port() const { return port_; }
  std::string uri() const;                     // tcp://127.0.0.1:<port>
  pid_t pid() const { return broker_.pid(); }  // -1 while stopped
  bool running() const { return broker_.running(); }
  // aedes's version, "0.51.3", from the broker's ready line.
  const std::string& version() const { return version_; }

  // SIGTERM, wait up to 5 s, then SIGKILL. Clients see their connection drop. No-op if stopped.
  void stop();
  // stop(), then start again on the same port (a fresh broker: no sessions, no retained
  // messages). Throws like the constructor, also when another process took the port meanwhile.
  void restart();

  const std::filesystem::path& logPath() const { return logPath_; }
  std::string log() const { return broker_.log(); }  // output so far, for failure messages
  std::string logTail(std::size_t bytes = 2000) const { return broker_.logTail(bytes); }

 private:
  void launch(uint16_t port);  // Throws; leaves the broker stopped on failure.
  std::string label() const;

  AedesOptions options_;
  std::optional<TempDir> ownDir_;
  std::filesystem::path logPath_;
  uint16_t port_ = 0;
  std::string version_;
  ChildProcess broker_;
};

// The node binary: `given` when not empty (if it is executable), then `node` and `nodejs` on
// $PATH, then /usr/bin and /usr/local/bin. Empty when none is found.
std::string findNode(const std::string& given = {});

}  // namespace impgate::testbed
