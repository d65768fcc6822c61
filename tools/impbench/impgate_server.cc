#include "tools/impbench/impgate_server.h"

#include <unistd.h>

#include <chrono>
#include <thread>

#include "tools/impbench/interrupt.h"
#include "tools/testbed/free_port.h"
#include "tools/testbed/tcp_table.h"

namespace impgate::bench {
namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kStartDeadline = std::chrono::seconds(15);
constexpr int kPortAttempts = 3;

}  // namespace

std::unique_ptr<ImpgateServer> ImpgateServer::start(const ImpgateConfig& config,
                                                    std::string& error) {
  if (::access(config.binary.c_str(), X_OK) != 0) {
    error = "impgate binary not found at " + config.binary + " (use --impgate PATH)";
    return nullptr;
  }
  std::unique_ptr<ImpgateServer> server(new ImpgateServer());
  for (int attempt = 1; attempt <= kPortAttempts; ++attempt) {
    if (server->launch(config, error)) return server;
    if (interrupted()) break;
  }
  return nullptr;
}

bool ImpgateServer::launch(const ImpgateConfig& config, std::string& error) {
  port_ = testbed::freeLoopbackPort();
  if (port_ == 0) {
    error = "no free loopback port";
    return false;
  }
  std::vector<std::string> args = {
      config.binary,
      "--home",
      config.home.string(),
      "--broker",
      "tcp://127.0.0.1:" + std::to_string(config.busPort),
      "--listen",
      "127.0.0.1:" + std::to_string(port_),
      "--node",
      "impbench",
      "--metrics",
      config.metrics,
      "--keepalive",
      "600",
      "--handshake-timeout",
      "120",
      "--max-connections",
      "1000000",
      "--log-level",
      "warn",
  };
  if (!process_.tryStart(args, config.logDir / "impgate.log", error)) return false;
  auto deadline = Clock::now() + kStartDeadline;
  for (;;) {
    if (process_.exited()) {
      error = "impgate exited during start-up:\n" + process_.logTail();
      return false;
    }
    // Ready: devices can connect and presence has somewhere to go. Neither check opens a
    // connection impgate would see.
    if (testbed::isListening(port_) && testbed::establishedTo(config.busPort) > 0) return true;
    if (Clock::now() >= deadline || interrupted()) {
      process_.stop(kStopGrace);
      error = interrupted()
                  ? "interrupted"
                  : "impgate did not listen and reach the bus within 15 s:\n" + process_.logTail();
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

}  // namespace impgate::bench
