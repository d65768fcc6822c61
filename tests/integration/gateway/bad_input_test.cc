// Bad input closes only the offending connection, with a logged reason and (where the protocol
// allows) a BYE naming it; a witness device on the same gateway keeps working throughout.
#include <catch2/catch.hpp>

#include "gateway/base/pki/fleet_ca.h"
#include "tests/integration/gateway/gateway_fixture.h"
#include "tests/integration/gateway/raw_tls_client.h"
#include "tests/integration/gateway/witness.h"
#include "tests/support/wait_until.h"

using namespace impgate;
using namespace impgate::testing;
using namespace std::chrono_literals;
using protocol::ByeReason;

namespace {

std::unique_ptr<RawTlsClient> helloedRawDevice(GatewayFixture& gw, const std::string& id) {
  return rawDevice(gw, id);
}

std::vector<uint8_t> frame(uint8_t type, const std::vector<uint8_t>& body) {
  return rawFrame(type, body);
}

}  // namespace

TEST_CASE("a frame over the size limit is refused before it is read") {
  GatewayFixture gw(withArgs({"--max-frame", "1024"}));
  auto witness = gw.connectDevice("witness");
  auto raw = helloedRawDevice(gw, "big");
  // Only the header: the gateway must not wait for (or allocate) the announced body.
  REQUIRE(raw->send({0x00, 0x10, 0x00, 0x00, 0x10}));
  expectBye(*raw, ByeReason::kFrameTooLarge);
  CHECK(gw.metric("impgate_errors_total{reason=\"frame_too_large\"}") == 1);
  requireWitnessWorks(gw, *witness);
}

TEST_CASE("an unknown frame type is a protocol error for that connection only") {
  GatewayFixture gw;
  auto witness = gw.connectDevice("witness");
  auto raw = helloedRawDevice(gw, "unknown");
  REQUIRE(raw->send(frame(0x7e, {1, 2, 3})));
  expectBye(*raw, ByeReason::kUnknownFrame);
  CHECK(gw.metric("impgate_errors_total{reason=\"unknown_frame\"}") == 1);
  requireWitnessWorks(gw, *witness);
}

TEST_CASE("code push frames from a device are unknown while the gateway does not serve them") {
  GatewayFixture gw;
  auto witness = gw.connectDevice("witness");
  // Well-formed CODE_GET and CODE_RESULT, and a CODE_GET whose length is out of range: all
  // three are unknown_frame, as before the codec knew these types.
  std::vector<uint8_t> get(32, 0xab);
  get.insert(get.end(), {0, 0, 0, 0, 0, 0, 0x40, 0});
  std::vector<uint8_t> result(32, 0xab);
  result.insert(result.end(), {0, 0});
  std::vector<uint8_t> badGet(32, 0xab);
  badGet.insert(badGet.end(), {0, 0, 0, 0, 0, 0, 0, 0});
  const std::vector<std::pair<uint8_t, std::vector<uint8_t>>> frames = {
      {0x41, get}, {0x43, result}, {0x41, badGet}};
  for (const auto& [type, body] : frames) {
    auto raw = helloedRawDevice(gw, "coder");
    REQUIRE(raw->send(frame(type, body)));
    expectBye(*raw, ByeReason::kUnknownFrame);
  }
  CHECK(gw.metric("impgate_errors_total{reason=\"unknown_frame\"}") == 3);
  requireWitnessWorks(gw, *witness);
}

TEST_CASE("malformed fields close the connection with BYE malformed") {
  GatewayFixture gw;
  auto witness = gw.connectDevice("witness");
  auto raw = helloedRawDevice(gw, "malformed");
  // MSG whose event length runs past the end of the frame.
  REQUIRE(raw->send(frame(0x10, {0, 0, 0, 1, 0x01, 50, 'a'})));
  expectBye(*raw, ByeReason::kMalformed);
  CHECK(gw.metric("impgate_errors_total{reason=\"malformed\"}") == 1);
  requireWitnessWorks(gw, *witness);
}

TEST_CASE("an event name that would break the topic scheme is refused") {
  GatewayFixture gw;
  auto witness = gw.connectDevice("witness");
  MqttProbe spy(gw.broker().uri());
  REQUIRE(spy.connect());
  REQUIRE(spy.subscribe("imp/#"));
  for (const std::string& bad : std::vector<std::string>{"a/b", "+", "#", std::string("a\0b", 3)}) {
    auto raw = helloedRawDevice(gw, "badname");
    std::vector<uint8_t> body = {0, 0, 0, 1, 0x01, static_cast<uint8_t>(bad.size())};
    for (char c : bad) body.push_back(static_cast<uint8_t>(c));
    REQUIRE(raw->send(frame(0x10, body)));
    expectBye(*raw, ByeReason::kInvalidName);
  }
  CHECK(gw.metric("impgate_errors_total{reason=\"invalid_name\"}") == 4);
  // Nothing was published under a topic the device does not own.
  CHECK(spy.count([](const MqttProbe::Message& m) {
    return m.topic.find("/out/") != std::string::npos;
  }) == 0);
  requireWitnessWorks(gw, *witness);
}

TEST_CASE("a frame other than HELLO first is a protocol error") {
  GatewayFixture gw;
  auto witness = gw.connectDevice("witness");
  gw.enroll("nohello");
  RawTlsClient raw;
  REQUIRE(raw.connectTcp(gw.port()));
  std::string error;
  REQUIRE(raw.handshake(gw.home().caCert(), gw.home().deviceCert("nohello"),
                        gw.home().deviceKey("nohello"), error));
  REQUIRE(raw.send(frame(0x20, {0, 0, 0, 0, 0, 0, 0, 1})));  // PING
  expectBye(raw, ByeReason::kProtocolError);
  requireWitnessWorks(gw, *witness);
}

TEST_CASE("an unsupported protocol version is refused with BYE unsupported_version") {
  GatewayFixture gw;
  gw.enroll("future");
  RawTlsClient raw;
  REQUIRE(raw.connectTcp(gw.port()));
  std::string error;
  REQUIRE(raw.handshake(gw.home().caCert(), gw.home().deviceCert("future"),
                        gw.home().deviceKey("future"), error));
  REQUIRE(raw.send(frame(0x01, {9, 0, 0, 0, 0, 0})));
  expectBye(raw, ByeReason::kUnsupportedVersion);
}

TEST_CASE("a TLS handshake that never finishes is dropped after the handshake timeout") {
  GatewayFixture gw(withArgs({"--handshake-timeout", "2"}));
  auto witness = gw.connectDevice("witness");
  RawTlsClient slow;
  REQUIRE(slow.connectTcp(gw.port()));
  REQUIRE(slow.send({0x16, 0x03, 0x01}));  // the first bytes of a ClientHello, then nothing
  auto ending = slow.readUntilClosed(10s);
  CHECK(ending.closed);
  CHECK(gw.metric("impgate_errors_total{reason=\"handshake_timeout\"}") == 1);
  requireWitnessWorks(gw, *witness);
}

TEST_CASE("a device that never sends HELLO is dropped after the handshake timeout") {
  GatewayFixture gw(withArgs({"--handshake-timeout", "2"}));
  gw.enroll("mute");
  RawTlsClient raw;
  REQUIRE(raw.connectTcp(gw.port()));
  std::string error;
  REQUIRE(raw.handshake(gw.home().caCert(), gw.home().deviceCert("mute"),
                        gw.home().deviceKey("mute"), error));
  auto ending = raw.readUntilClosed(10s);
  CHECK(ending.closed);
  CHECK_FALSE(ending.welcomed);
  CHECK(gw.metric("impgate_errors_total{reason=\"handshake_timeout\"}") == 1);
}

TEST_CASE("a certificate from another CA is refused") {
  GatewayFixture gw;
  auto witness = gw.connectDevice("witness");
  TempDir otherDir("impgate-other-ca");
  Home other(otherDir.path());
  REQUIRE(pki::FleetCa::init(other, {}).ok());
  REQUIRE(pki::FleetCa::load(other).value().issueDevice("witness").ok());
  // Same device id as the witness, signed by a foreign CA: it must not take over.
  RawTlsClient raw;
  REQUIRE(raw.connectTcp(gw.port()));
  std::string error;
  bool handshaken = raw.handshake(gw.home().caCert(), other.deviceCert("witness"),
                                  other.deviceKey("witness"), error);
  if (handshaken) {
    // TLS 1.3: the client finishes before the server has checked its certificate.
    raw.sendHello();
    auto ending = raw.readUntilClosed(10s);
    CHECK(ending.closed);
    CHECK_FALSE(ending.welcomed);
  }
  CHECK(
      waitUntil([&] { return gw.metric("impgate_handshakes_total{result=\"failed\"}") == 1; }, 5s));
  requireWitnessWorks(gw, *witness);
}

TEST_CASE("a plain TCP client on the TLS port is closed") {
  GatewayFixture gw;
  auto witness = gw.connectDevice("witness");
  RawTlsClient plain;
  REQUIRE(plain.connectTcp(gw.port()));
  std::string request = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
  REQUIRE(plain.send(std::vector<uint8_t>(request.begin(), request.end())));
  auto ending = plain.readUntilClosed(10s);
  CHECK(ending.closed);
  CHECK(gw.metric("impgate_errors_total{reason=\"handshake_failed\"}") == 1);
  requireWitnessWorks(gw, *witness);
}

TEST_CASE("a device that goes silent is dropped after 1.5x the keepalive") {
  GatewayFixture gw(withArgs({"--keepalive", "2"}));
  MqttProbe agent(gw.broker().uri());
  REQUIRE(agent.connect());
  REQUIRE(agent.subscribe("imp/dev/silent/state"));
  auto raw = helloedRawDevice(gw, "silent");
  // The raw client never answers the gateway's PING.
  expectBye(*raw, ByeReason::kKeepaliveTimeout);
  auto offline = agent.waitFor(
      [](const MqttProbe::Message& m) {
        return m.payload.find("keepalive_timeout") != std::string::npos;
      },
      5s);
  CHECK(offline);
}
