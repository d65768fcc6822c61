#include "tests/unit/daemon/gateway_harness.h"

#include <csignal>

#include "gateway/base/log.h"
#include "gateway/device/device_credentials.h"
#include "tests/support/wait_until.h"

namespace impgate::testing {

GatewayHarness::GatewayHarness(const std::function<void(gateway::GatewayConfig&)>& tune, Time time)
    : loop_(time == Time::kManual ? static_cast<const net::Clock&>(manualClock_)
                                  : net::steadyClock()) {
  // Connections opening and closing are the point of these tests; keep stderr for surprises.
  log::setLevel(log::Level::kWarn);
  // As in impgate's main: a write to a connection the peer has closed is an error, not a signal.
  std::signal(SIGPIPE, SIG_IGN);
  config_.listen = "127.0.0.1:0";
  config_.metrics.clear();
  config_.node = kNode;
  if (tune) tune(config_);
  serverTls_ = fleet_.serverContext();
  clientTls_ = fleet_.clientContext();
  gateway_ = std::make_unique<gateway::Gateway>(loop_, config_, *serverTls_, stats_);
  gateway_->setBus(bus_);
  auto started = gateway_->start();
  INFO((started ? "" : started.error().message));
  REQUIRE(started);
  loopThread_ = std::thread([this] { loopError_ = loop_.run(); });
}

void GatewayHarness::advance(std::chrono::seconds by) {
  manualClock_.advance(by);
  // Timers due at the new time run in the pass after the clock moved; two round trips through
  // the loop make sure that pass has happened.
  onLoop([] {});
  onLoop([] {});
}

GatewayHarness::~GatewayHarness() {
  // Device clients belong to the loop thread: drop them there, then stop. The gateway and its
  // sessions go after the loop has returned.
  loop_.post([this] {
    devices_.clear();
    loop_.stop();
  });
  loopThread_.join();
  CHECK_FALSE(loopError_);
}

bool GatewayHarness::waitFor(const std::function<bool()>& condition) {
  return waitUntil([&] { return onLoop(condition); }, kDeadline);
}

TestDevice& GatewayHarness::startDevice(const std::string& id, const std::string& codeId) {
  fleet_.enroll(id);
  auto loaded =
      device::DeviceCredentials::load(fleet_.home().deviceCert(id), fleet_.home().deviceKey(id));
  INFO((loaded ? "" : loaded.error().message));
  REQUIRE(loaded);
  std::shared_ptr<device::DeviceCredentials> credentials = *loaded;
  device::DeviceOptions options;
  options.gateway = "127.0.0.1:" + std::to_string(gateway_->port());
  options.codeId = codeId;
  return *onLoop([&] {
    auto& d = *devices_.emplace_back(std::make_unique<TestDevice>());
    d.id = id;
    device::DeviceClient::Handlers handlers;
    handlers.onOnline = [&d](const protocol::Welcome& w) {
      d.welcome =
          TestDevice::Welcome{w.sessionId, w.keepaliveSeconds, w.serverTimeMs, std::string(w.node)};
    };
    handlers.onOffline = [&d](const std::string& reason) { d.offline.push_back(reason); };
    handlers.onMessage = [&d](std::string_view event, std::span<const uint8_t> payload) {
      d.messages.push_back({std::string(event), std::string(payload.begin(), payload.end())});
    };
    handlers.onAck = [&d](uint32_t msgId, protocol::AckStatus status) {
      d.acks.emplace_back(msgId, status);
    };
    d.client = std::make_unique<device::DeviceClient>(loop_, *clientTls_, credentials, options,
                                                      std::move(handlers));
    d.client->connect();
    return &d;
  });
}

TestDevice& GatewayHarness::connectDevice(const std::string& id, const std::string& codeId) {
  TestDevice& d = startDevice(id, codeId);
  bool answered = waitFor([&] { return d.welcome || !d.offline.empty(); });
  auto offline = onLoop([&] { return d.offline; });
  INFO("device " << id << " offline: " << (offline.empty() ? "-" : offline.front()));
  REQUIRE(answered);
  REQUIRE(onLoop([&] { return d.welcome.has_value(); }));
  return d;
}

void GatewayHarness::flushToDevice(TestDevice& device) {
  std::size_t before = onLoop([&] {
    gateway_->onAgentMessage(bus::AgentMessage{device.id, "flush", "", 0, ""});
    return device.messages.size();
  });
  REQUIRE(waitFor([&] { return device.messages.size() > before; }));
}

}  // namespace impgate::testing
