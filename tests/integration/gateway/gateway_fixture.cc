#include "tests/integration/gateway/gateway_fixture.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <exception>
#include <filesystem>
#include <sstream>
#include <stdexcept>

#include "gateway/base/pki/fleet_ca.h"
#include "tests/support/testbed.h"
#include "tests/support/wait_until.h"

namespace impgate::testing {
namespace {

testbed::MosquittoOptions brokerOptions(const GatewayFixtureOptions& options) {
  auto broker = testbed::withConfig(options.brokerConfig);
  broker.stockSettings = options.brokerStockSettings;
  return broker;
}

std::string httpGet(uint16_t port, const std::string& path) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  timeval tv{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  std::string response;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
    std::string request = "GET " + path + " HTTP/1.1\r\nHost: localhost\r\n\r\n";
    if (::send(fd, request.data(), request.size(), MSG_NOSIGNAL) ==
        static_cast<ssize_t>(request.size())) {
      char buf[8192];
      ssize_t n;
      while ((n = ::recv(fd, buf, sizeof buf, 0)) > 0) response.append(buf, n);
    }
  }
  ::close(fd);
  return response;
}

}  // namespace

bool waitNodeOnline(const std::string& brokerUri, const std::string& prefix,
                    const std::string& node, std::chrono::milliseconds deadline) {
  MqttProbe probe(brokerUri);
  return probe.connect() && probe.subscribe(prefix + "/gw/" + node + "/state") &&
         probe
             .waitFor(
                 [](const MqttProbe::Message& m) {
                   return m.payload.find("\"online\"") != std::string::npos;
                 },
                 deadline)
             .has_value();
}

GatewayFixture::GatewayFixture(GatewayFixtureOptions options)
    : options_(std::move(options)),
      broker_(brokerOptions(options_)),
      dir_("impgate-home"),
      home_(dir_.path()) {
  pki::InitOptions init;
  auto ca = pki::FleetCa::init(home_, init);
  if (!ca) throw std::runtime_error("ca init: " + ca.error().message);
  startGateway();
}

GatewayFixture::~GatewayFixture() {
  gateway_.stop();
  // In the sanitizer builds impgate reports memory errors, leaks (AddressSanitizer,
  // LeakSanitizer, UndefinedBehaviorSanitizer) and data races (ThreadSanitizer) in its log; a
  // test that passed with such a report has not passed.
  std::string log = gateway_.log();
  if (std::uncaught_exceptions() == 0 && log.find("Sanitizer") != std::string::npos) {
    FAIL_CHECK("impgate reported a sanitizer error:\n" << log);
  }
}

void GatewayFixture::startGateway() {
  // The ports are free when chosen; a clash shows up as impgate exiting, and we try again.
  for (int attempt = 1;; ++attempt) {
    if (port_ == 0 || attempt > 1) {
      port_ = freeLoopbackPort();
      metricsPort_ = freeLoopbackPort();
    }
    std::string broker = options_.brokerUri.empty() ? broker_.uri() : options_.brokerUri;
    std::vector<std::string> args = {
        IMPGATE_BINARY, "--home",      home_.root().string(),
        "--broker",     broker,        "--listen",
        endpoint(),     "--metrics",   "127.0.0.1:" + std::to_string(metricsPort_),
        "--node",       options_.node, "--log-level",
        "debug"};
    args.insert(args.end(), options_.extraArgs.begin(), options_.extraArgs.end());
    gateway_.start(args, home_.root() / "impgate.log", options_.extraEnv,
                   options_.stderrToUndrainedPipe ? ChildProcess::Stderr::kUndrainedPipe
                                                  : ChildProcess::Stderr::kLog);

    bool online = false;
    if (options_.brokerUri.empty()) {
      online =
          waitNodeOnline(broker_.uri(), options_.prefix, options_.node, std::chrono::seconds(15));
    } else {
      online = waitUntil([&] { return acceptsConnections(port_) || gateway_.exited(); },
                         std::chrono::seconds(15)) &&
               !gateway_.exited();
    }
    if (online && !gateway_.exited()) {
      // The node is on the bus; the device listener was bound before that.
      return;
    }
    gateway_.stop();
    if (attempt == 3) {
      throw std::runtime_error("impgate did not come up:\n" + gateway_.log());
    }
  }
}

void GatewayFixture::restartGateway() {
  gateway_.stop();
  startGateway();
}

void GatewayFixture::enroll(const std::string& id) {
  if (std::filesystem::exists(home_.deviceCert(id))) return;
  auto ca = pki::FleetCa::load(home_);
  REQUIRE(ca.ok());
  auto issued = ca.value().issueDevice(id);
  if (!issued) FAIL("issue " << id << ": " << issued.error().message);
}

device::BlockingDeviceConfig GatewayFixture::deviceConfig(const std::string& id) {
  enroll(id);
  device::BlockingDeviceConfig c;
  c.options.gateway = endpoint();
  c.options.codeId = "test-code";
  c.caFile = home_.caCert().string();
  c.certFile = home_.deviceCert(id).string();
  c.keyFile = home_.deviceKey(id).string();
  return c;
}

std::unique_ptr<device::BlockingDevice> GatewayFixture::connectDevice(const std::string& id) {
  auto created = device::BlockingDevice::create(deviceConfig(id));
  if (!created) FAIL("device " << id << ": " << created.error().message);
  auto dev = std::move(*created);
  if (auto connected = dev->connect(std::chrono::seconds(10)); !connected) {
    FAIL("device " << id << " cannot connect: " << connected.error().message << "\n"
                   << gateway_.log());
  }
  return dev;
}

std::string GatewayFixture::scrapeMetrics() {
  return httpGet(metricsPort_, "/metrics");
}

double GatewayFixture::metric(const std::string& sample) {
  std::istringstream page(scrapeMetrics());
  std::string line;
  while (std::getline(page, line)) {
    if (line.size() > sample.size() && line.compare(0, sample.size(), sample) == 0 &&
        line[sample.size()] == ' ') {
      return std::stod(line.substr(sample.size() + 1));
    }
  }
  return -1;
}

GatewayNode::GatewayNode(GatewayFixture& fixture, std::string node,
                         std::vector<std::string> extraArgs)
    : fixture_(fixture),
      node_(std::move(node)),
      extraArgs_(std::move(extraArgs)),
      dir_("impgate-node"),
      home_(dir_.path()) {
  namespace fs = std::filesystem;
  const Home& from = fixture.home();
  fs::create_directories(home_.caCert().parent_path());
  fs::create_directories(home_.gatewayCert().parent_path());
  fs::copy_file(from.caCert(), home_.caCert());
  fs::copy_file(from.gatewayCert(), home_.gatewayCert());
  fs::copy_file(from.gatewayKey(), home_.gatewayKey());
  fs::copy_file(from.codeVerifyKey(), home_.codeVerifyKey());
}

GatewayNode::~GatewayNode() {
  stop();
}

void GatewayNode::start() {
  for (int attempt = 1;; ++attempt) {
    port_ = freeLoopbackPort();
    std::vector<std::string> args = {IMPGATE_BINARY,
                                     "--home",
                                     home_.root().string(),
                                     "--broker",
                                     fixture_.broker().uri(),
                                     "--listen",
                                     endpoint(),
                                     "--metrics",
                                     "off",
                                     "--node",
                                     node_,
                                     "--log-level",
                                     "debug"};
    args.insert(args.end(), extraArgs_.begin(), extraArgs_.end());
    process_.start(args, home_.root() / "impgate.log");
    if (waitNodeOnline(fixture_.broker().uri(), "imp", node_, std::chrono::seconds(15)) &&
        !process_.exited()) {
      return;
    }
    process_.stop();
    if (attempt == 3) FAIL("node " << node_ << " did not come up:\n" << process_.log());
  }
}

void GatewayNode::stop() {
  process_.stop();
}

void GatewayNode::kill() {
  process_.kill();
}

}  // namespace impgate::testing
