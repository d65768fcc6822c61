// GatewayFixture: a real mosquitto, a fresh impgate home (fleet CA, gateway credentials) and the
// real impgate binary on free loopback ports, for one integration test.
//
// Ready means the node announced itself online on the bus, so devices and agents can be used
// at once. Devices are enrolled on demand with the fleet CA and connect with the device SDK.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "gateway/base/home.h"
#include "gateway/device/blocking_device.h"
#include "tests/support/mqtt_probe.h"
#include "tests/support/testbed.h"

namespace impgate::testing {

struct GatewayFixtureOptions {
  std::string node = "itest";
  std::vector<std::string> extraArgs;  // more impgate flags, e.g. {"--keepalive", "2"}
  std::string prefix = "imp";          // the topic prefix impgate is configured with
  // Another broker than the fixture's own mosquitto (then readiness is the device port
  // accepting connections, since the fixture cannot watch that broker).
  std::string brokerUri;
  // impgate's stderr (where its log lines go) is a pipe the test never reads, like a stuck log
  // collector; the log file then holds stdout only.
  bool stderrToUndrainedPipe = false;
  std::vector<std::string> extraEnv;      // NAME=value for impgate's environment
  std::vector<std::string> brokerConfig;  // more mosquitto.conf lines for the fixture's broker
  // The fixture's broker with mosquitto's stock limits (MosquittoOptions::stockSettings):
  // 1000 queued and 20 in flight per client, as in production, instead of the test bed's none.
  bool brokerStockSettings = false;
};

// Default options plus these impgate flags.
inline GatewayFixtureOptions withArgs(std::vector<std::string> extraArgs) {
  GatewayFixtureOptions o;
  o.extraArgs = std::move(extraArgs);
  return o;
}

// Waits until `node` has announced itself online on <prefix>/gw/<node>/state of `brokerUri`.
bool waitNodeOnline(const std::string& brokerUri, const std::string& prefix,
                    const std::string& node, std::chrono::milliseconds deadline);

class GatewayFixture {
 public:
  explicit GatewayFixture(GatewayFixtureOptions options = {});
  ~GatewayFixture();

  MosquittoFixture& broker() { return broker_; }
  const Home& home() const { return home_; }
  const std::string& node() const { return options_.node; }
  const TempDir& dir() const { return dir_; }
  uint16_t port() const { return port_; }
  std::string endpoint() const { return "127.0.0.1:" + std::to_string(port_); }
  ChildProcess& process() { return gateway_; }

  // Issues credentials for `id` (once).
  void enroll(const std::string& id);
  device::BlockingDeviceConfig deviceConfig(const std::string& id);
  // Enrolls if needed, connects and waits for WELCOME; fails the test when it cannot.
  std::unique_ptr<device::BlockingDevice> connectDevice(const std::string& id);

  uint16_t metricsPort() const { return metricsPort_; }
  // The Prometheus page, fetched over HTTP.
  std::string scrapeMetrics();
  // The value of one sample line, e.g. `impgate_errors_total{reason="malformed"}`; -1 if absent.
  double metric(const std::string& sample);

  // Stops impgate (SIGTERM) and starts it again with the same home and ports.
  void restartGateway();
  // Starts impgate and waits until it is online on the bus.
  void startGateway();
  // The directory where the node keeps its copy of deployments and code.
  std::filesystem::path codeCache() const { return home_.root() / "gateway" / "code-cache"; }

 private:
  GatewayFixtureOptions options_;
  MosquittoFixture broker_;
  TempDir dir_;
  Home home_;
  uint16_t port_ = 0;
  uint16_t metricsPort_ = 0;
  ChildProcess gateway_;
};

// Another gateway node beside a fixture's, as on another machine: its own home holds only what
// a gateway host is given (the fleet CA certificate, the gateway's credentials, the fleet's
// code-verify key) — no CA key, no database, no cache — and it shares only the broker.
class GatewayNode {
 public:
  GatewayNode(GatewayFixture& fixture, std::string node, std::vector<std::string> extraArgs = {});
  ~GatewayNode();  // stop()

  // Starts the node and waits until it is online on the bus; fails the test when it cannot.
  void start();
  void stop();
  // SIGKILL, as a crash.
  void kill();
  const Home& home() const { return home_; }
  const std::string& node() const { return node_; }
  std::string endpoint() const { return "127.0.0.1:" + std::to_string(port_); }
  std::filesystem::path codeCache() const { return home_.root() / "gateway" / "code-cache"; }
  ChildProcess& process() { return process_; }

 private:
  GatewayFixture& fixture_;
  std::string node_;
  std::vector<std::string> extraArgs_;
  TempDir dir_;
  Home home_;
  uint16_t port_ = 0;
  ChildProcess process_;
};

}  // namespace impgate::testing
