// The real impgate binary under test, started for one benchmark run with settings that keep
// the measurement clean: no metrics endpoint (unless the run reads it), warnings only, a keepalive
// far longer than the run (no PINGs), a connection limit above the fleet size and a handshake
// timeout long enough that a saturated machine does not turn slow handshakes into failures. Stopped
// by pid when destroyed.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>

#include "tools/testbed/child_process.h"

namespace impgate::bench {

// What impgate needs from the run: its binary, the fleet home, a log dir and the bus port.
struct ImpgateConfig {
  std::string binary;
  std::filesystem::path home;    // the fleet's home (CA, gateway credential)
  std::filesystem::path logDir;  // impgate.log goes here
  uint16_t busPort = 0;          // the plain mosquitto it bridges to
  std::string metrics = "off";   // --metrics: HOST:PORT for runs that read /metrics
};

class ImpgateServer {
 public:
  // Starts impgate and waits (up to 15 s) until its device port listens and it holds its
  // connection to the bus. nullptr with `error` (and impgate's log) on failure.
  static std::unique_ptr<ImpgateServer> start(const ImpgateConfig& config, std::string& error);
  ~ImpgateServer() { stop(); }

  uint16_t port() const { return port_; }
  pid_t pid() const { return process_.pid(); }
  // Stops impgate (SIGTERM: it says goodbye to its devices and leaves the bus).
  void stop() { process_.stop(kStopGrace); }
  std::string logTail() const { return process_.logTail(); }

 private:
  ImpgateServer() = default;
  bool launch(const ImpgateConfig& config, std::string& error);

  // Saying goodbye to a large fleet takes a while.
  static constexpr std::chrono::seconds kStopGrace{10};

  testbed::ChildProcess process_;
  uint16_t port_ = 0;
};

}  // namespace impgate::bench
