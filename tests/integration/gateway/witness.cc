#include "tests/integration/gateway/witness.h"

#include <catch2/catch.hpp>

namespace impgate::testing {

using namespace std::chrono_literals;

void requireWitnessWorks(GatewayFixture& gw, device::BlockingDevice& witness) {
  MqttProbe agent(gw.broker().uri());
  REQUIRE(agent.connect());
  REQUIRE(agent.subscribe("imp/dev/witness/out/+"));
  auto status = witness.send("still", "alive", true, 5s);
  REQUIRE(status);
  CHECK(*status == protocol::AckStatus::kOk);
  REQUIRE(agent.waitForTopic("imp/dev/witness/out/still", 5s));
  REQUIRE(agent.publish("imp/dev/witness/in/check", "ok", 1));
  auto m = witness.nextMessage(5s);
  REQUIRE(m);
  CHECK(m->event == "check");
}

std::unique_ptr<RawTlsClient> rawDevice(GatewayFixture& gw, const std::string& id, bool hello) {
  gw.enroll(id);
  auto raw = std::make_unique<RawTlsClient>();
  REQUIRE(raw->connectTcp(gw.port()));
  std::string error;
  REQUIRE(
      raw->handshake(gw.home().caCert(), gw.home().deviceCert(id), gw.home().deviceKey(id), error));
  if (hello) REQUIRE(raw->sendHello());
  return raw;
}

std::vector<uint8_t> rawFrame(uint8_t type, const std::vector<uint8_t>& body) {
  auto length = static_cast<uint32_t>(body.size() + 1);
  std::vector<uint8_t> out;
  out.reserve(body.size() + 5);
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<uint8_t>(length >> shift));
  out.push_back(type);
  out.insert(out.end(), body.begin(), body.end());
  return out;
}

void expectBye(RawTlsClient& raw, protocol::ByeReason reason, std::chrono::milliseconds deadline) {
  auto ending = raw.readUntilClosed(deadline);
  CHECK(ending.closed);
  REQUIRE(ending.bye);
  CHECK(*ending.bye == reason);
}

}  // namespace impgate::testing
