// Gateway deadlines on a manual clock: handshake and HELLO timeouts, keepalive, the delivery
// timeout and the end of a flapping ban, each crossed in milliseconds by advancing the clock.
#include <catch2/catch.hpp>

#include "tests/integration/gateway/raw_tls_client.h"
#include "tests/unit/daemon/gateway_harness.h"

using namespace impgate;
using namespace impgate::testing;
using namespace std::chrono_literals;
using Time = GatewayHarness::Time;

namespace {

double errors(GatewayHarness& h, gateway::ErrorReason reason) {
  return static_cast<double>(h.stats().errors[static_cast<std::size_t>(reason)]->value());
}

// A device that completes TLS (and HELLO when asked) and then says nothing at all: it never
// pings, answers pings or acknowledges messages.
std::unique_ptr<RawTlsClient> silentDevice(GatewayHarness& h, const std::string& id, bool hello) {
  h.fleet().enroll(id);
  auto raw = std::make_unique<RawTlsClient>();
  REQUIRE(raw->connectTcp(h.onLoop([&] { return h.gateway().port(); })));
  std::string error;
  const auto& home = h.fleet().home();
  REQUIRE(raw->handshake(home.caCert(), home.deviceCert(id), home.deviceKey(id), error));
  if (hello) {
    REQUIRE(raw->sendHello());
    REQUIRE(h.waitFor([&] { return h.stats().devicesOnline.value() == 1; }));
  }
  return raw;
}

}  // namespace

TEST_CASE("a TCP connection that never starts TLS is dropped at the handshake timeout") {
  GatewayHarness h([](gateway::GatewayConfig& c) { c.handshakeTimeout = 10s; }, Time::kManual);
  RawTlsClient raw;
  REQUIRE(raw.connectTcp(h.onLoop([&] { return h.gateway().port(); })));
  REQUIRE(h.waitFor([&] { return h.gateway().sessionCount() == 1; }));

  h.advance(9s);
  CHECK(h.gateway().sessionCount() == 1);
  h.advance(1s);
  REQUIRE(h.waitFor([&] { return h.gateway().sessionCount() == 0; }));
  CHECK(errors(h, gateway::ErrorReason::kHandshakeTimeout) == 1);
}

TEST_CASE("a device that completes TLS but sends no HELLO is dropped at the handshake timeout") {
  GatewayHarness h([](gateway::GatewayConfig& c) { c.handshakeTimeout = 10s; }, Time::kManual);
  auto raw = silentDevice(h, "mute", /*hello=*/false);
  h.advance(10s);
  auto ending = raw->readUntilClosed(5s);
  CHECK(ending.closed);
  REQUIRE(ending.bye);
  CHECK(*ending.bye == protocol::ByeReason::kProtocolError);
  CHECK(errors(h, gateway::ErrorReason::kHandshakeTimeout) == 1);
}

TEST_CASE("a silent device is pinged after keepalive and dropped after 1.5 times it") {
  GatewayHarness h([](gateway::GatewayConfig& c) { c.keepalive = 20s; }, Time::kManual);
  auto raw = silentDevice(h, "quiet", /*hello=*/true);
  auto framesOut = [&] { return h.stats().framesOut.value(); };
  const auto afterWelcome = framesOut();

  h.advance(19s);
  CHECK(framesOut() == afterWelcome);
  h.advance(1s);  // silent for the keepalive: a PING
  REQUIRE(h.waitFor([&] { return framesOut() == afterWelcome + 1; }));
  CHECK(h.stats().devicesOnline.value() == 1);

  h.advance(10s);  // silent for 1.5x: dropped
  auto ending = raw->readUntilClosed(5s);
  CHECK(ending.closed);
  REQUIRE(ending.bye);
  CHECK(*ending.bye == protocol::ByeReason::kKeepaliveTimeout);
  CHECK(errors(h, gateway::ErrorReason::kKeepaliveTimeout) == 1);
  auto presence = h.onLoop([&] { return h.bus().presence; });
  REQUIRE(presence.size() == 2);
  CHECK(presence[1].reason == "keepalive_timeout");
}

TEST_CASE("an agent message the device never acknowledges fails at the delivery timeout") {
  GatewayHarness h([](gateway::GatewayConfig& c) { c.deliveryTimeout = 30s; }, Time::kManual);
  auto raw = silentDevice(h, "deaf", /*hello=*/true);
  h.onLoop([&] {
    // Only the message that asked for a receipt (response topic) gets one.
    h.gateway().onAgentMessage(bus::AgentMessage{"deaf", "led", "on", 1, "c-0"});
    bus::AgentMessage asked{"deaf", "led", "on", 1, "c-1"};
    asked.responseTopic = "agents/a1/receipts";
    h.gateway().onAgentMessage(std::move(asked));
  });

  h.advance(29s);
  CHECK(h.onLoop([&] { return h.bus().receipts.size(); }) == 0);
  h.advance(1s);
  REQUIRE(h.waitFor([&] { return h.stats().deliveriesTimedOut.value() == 2; }));
  auto all = h.onLoop([&] { return h.bus().receipts; });
  REQUIRE(all.size() == 1);
  CHECK(all[0].status == "failed");
  CHECK(all[0].correlation == "c-1");
  CHECK(all[0].topic == "agents/a1/receipts");
  // The session itself carries on.
  CHECK(h.stats().devicesOnline.value() == 1);
}

TEST_CASE("a flapping device is let in again once its ban is over") {
  GatewayHarness h(
      [](gateway::GatewayConfig& c) {
        c.flapMaxSessions = 2;
        c.flapWindow = 60s;
        c.flapBan = 30s;
        c.keepalive = 3600s;  // no keepalive traffic while the clock jumps
      },
      Time::kManual);
  h.connectDevice("dev-1");
  h.connectDevice("dev-1");
  TestDevice& refused = h.startDevice("dev-1");
  REQUIRE(h.waitFor([&] { return !refused.offline.empty(); }));
  CHECK(h.onLoop([&] { return refused.offline.front(); }) == "bye:overloaded");

  h.advance(29s);
  TestDevice& stillRefused = h.startDevice("dev-1");
  REQUIRE(h.waitFor([&] { return !stillRefused.offline.empty(); }));
  CHECK(h.stats().flappingBans.value() == 1);

  h.advance(1s);
  h.connectDevice("dev-1");  // welcomed
  CHECK(h.stats().flappingBans.value() == 1);
}
