// Receipts the agent asked for, through the real impgate binary and a real mosquitto: the MQTT 5
// Response Topic of an agent message, and the node's --receipts setting.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <mutex>

#include "bus/agent/agent.h"
#include "tests/integration/gateway/gateway_fixture.h"
#include "tests/support/wait_until.h"

using namespace impgate;
using namespace impgate::testing;
using namespace std::chrono_literals;
using Message = MqttProbe::Message;

namespace {

// A receipt: a JSON object with the receipt's fields, on whatever topic.
bool isReceipt(const Message& m) {
  auto j = nlohmann::json::parse(m.payload, nullptr, false);
  return !j.is_discarded() && j.is_object() && j.contains("seq") && j.contains("status");
}

nlohmann::json json(const Message& m) {
  return nlohmann::json::parse(m.payload);
}

}  // namespace

TEST_CASE("an MQTT 5 agent gets its receipt on its response topic, with its correlation data") {
  GatewayFixture gw;
  auto dev = gw.connectDevice("rt-1");
  MqttProbe agent(gw.broker().uri());
  REQUIRE(agent.connect());
  REQUIRE(agent.subscribe("agents/probe/receipts"));
  REQUIRE(agent.subscribe("imp/dev/rt-1/ack"));

  REQUIRE(agent.publishRequest("imp/dev/rt-1/in/led", "on", 1, "agents/probe/receipts",
                               std::string_view("corr-5")));
  auto received = dev->nextMessage(5s);
  REQUIRE(received);
  CHECK(received->event == "led");
  auto receipt = agent.waitForTopic("agents/probe/receipts", 5s);
  REQUIRE(receipt);
  auto j = json(*receipt);
  CHECK(j["status"] == "delivered");
  CHECK(j["event"] == "led");
  CHECK(j["seq"] == 1);
  CHECK(j["corr"] == "corr-5");
  CHECK(j["node"] == gw.node());
  REQUIRE(receipt->correlationData);
  CHECK(*receipt->correlationData == "corr-5");
  CHECK_FALSE(receipt->retained);

  // At QoS 0 too: the device is asked to acknowledge it, and the receipt says it did.
  REQUIRE(agent.publishRequest("imp/dev/rt-1/in/blink", "1", 0, "agents/probe/receipts",
                               std::string_view("corr-6")));
  REQUIRE(dev->nextMessage(5s));
  auto second = agent.waitFor(
      [](const Message& m) {
        return m.topic == "agents/probe/receipts" && m.payload.find("corr-6") != std::string::npos;
      },
      5s);
  REQUIRE(second);
  CHECK(json(*second)["status"] == "delivered");
  CHECK(json(*second)["event"] == "blink");
  // None on the ack topic: a receipt goes to one place. It would have been published before
  // the second one, on the same connection.
  CHECK(agent.count([](const Message& m) { return m.topic == "imp/dev/rt-1/ack"; }) == 0);
}

TEST_CASE("by default a QoS 1 message without a response topic gets no receipt") {
  GatewayFixture gw;
  auto dev = gw.connectDevice("rt-2");
  MqttProbe agent(gw.broker().uri());
  REQUIRE(agent.connect());
  // Everything the node publishes, wherever a receipt might go.
  REQUIRE(agent.subscribe("#"));

  REQUIRE(agent.publish("imp/dev/rt-2/in/quiet", "1", 1, false, std::string_view("c-1")));
  auto first = dev->nextMessage(5s);
  REQUIRE(first);
  CHECK(first->event == "quiet");
  // The device acknowledged it; the node handles ACKs and publishes receipts in order, so once
  // the receipt of a later message that asks for one is here, one for the first would be too.
  REQUIRE(agent.publishRequest("imp/dev/rt-2/in/asked", "2", 1, "agents/probe/receipts",
                               std::string_view("c-2")));
  REQUIRE(dev->nextMessage(5s));
  REQUIRE(agent.waitForTopic("agents/probe/receipts", 5s));
  auto receipts = agent.count(isReceipt);
  CHECK(receipts == 1);
  CHECK(agent.count([](const Message& m) {
    return isReceipt(m) && m.payload.find("c-1") != std::string::npos;
  }) == 0);
  // The first message was acknowledged by the device all the same.
  CHECK(waitUntil([&] { return gw.metric("impgate_messages_delivered_total") == 2; }, 5s));
}

TEST_CASE("a response topic inside the gateway's topics is refused with a rejected receipt") {
  GatewayFixture gw;
  auto dev = gw.connectDevice("rt-3");
  gw.enroll("victim");
  MqttProbe agent(gw.broker().uri());
  REQUIRE(agent.connect());
  REQUIRE(agent.subscribe("imp/dev/rt-3/ack"));
  REQUIRE(agent.subscribe("imp/dev/victim/#"));

  // An attempt to make the node publish into another device's input.
  REQUIRE(agent.publishRequest("imp/dev/rt-3/in/cmd", "evil", 1, "imp/dev/victim/in/unlock",
                               std::string_view("c-evil")));
  auto receipt = agent.waitForTopic("imp/dev/rt-3/ack", 5s);
  REQUIRE(receipt);
  auto j = json(*receipt);
  CHECK(j["status"] == "rejected");
  CHECK(j["seq"] == 0);
  CHECK(j["corr"] == "c-evil");
  // Anything published to the victim's topics would have come before the receipt.
  CHECK(agent.count([](const Message& m) { return m.topic.starts_with("imp/dev/victim/"); }) == 0);

  // Not delivered: the next message is the first the device gets.
  REQUIRE(agent.publishRequest("imp/dev/rt-3/in/cmd", "fine", 1, "imp/dev/rt-3/ack"));
  auto m = dev->nextMessage(5s);
  REQUIRE(m);
  CHECK(m->payload == "fine");
  CHECK(gw.process().log().find("refusing agent message with an unusable response topic") !=
        std::string::npos);
}

TEST_CASE("a node running --receipts all gives MQTT 3.1.1 agents a receipt for QoS 1") {
  GatewayFixture gw(withArgs({"--receipts", "all"}));
  auto dev = gw.connectDevice("rt-4");
  MqttProbe agent(gw.broker().uri(), {}, /*mqtt5=*/false);
  REQUIRE(agent.connect());
  REQUIRE(agent.subscribe("imp/dev/rt-4/ack"));

  REQUIRE(agent.publish("imp/dev/rt-4/in/led", "on", 1));
  REQUIRE(dev->nextMessage(5s));
  auto receipt = agent.waitForTopic("imp/dev/rt-4/ack", 5s);
  REQUIRE(receipt);
  CHECK(json(*receipt)["status"] == "delivered");
  CHECK(json(*receipt)["seq"] == 1);
}

TEST_CASE("impgate refuses a --receipts value other than requested or all") {
  TempDir dir("impgate-receipts");
  ChildProcess p;
  p.start({IMPGATE_BINARY, "--receipts", "some"}, dir.path() / "out.log");
  REQUIRE(waitUntil([&] { return p.exited(); }, 10s));
  REQUIRE(p.exitStatus());
  CHECK(WEXITSTATUS(*p.exitStatus()) == 2);
  CHECK(p.log().find("setting 'receipts' must be 'requested' or 'all', got 'some'") !=
        std::string::npos);
}

TEST_CASE("the agent SDK gets the receipts it asks for from a real node, and only those") {
  GatewayFixture gw;
  auto dev = gw.connectDevice("rt-5");
  bus::Agent agent({.brokerUri = gw.broker().uri(), .clientId = "receipts-sdk"});
  std::mutex mutex;
  std::vector<bus::Receipt> seen;
  agent.onReceipt([&](const bus::Receipt& r) {
    std::lock_guard lock(mutex);
    seen.push_back(r);
  });
  REQUIRE(agent.start(5s));

  auto quiet = agent.send("rt-5", "quiet", "1", 1, /*receipt=*/false);
  REQUIRE(quiet.ok());
  REQUIRE(dev->nextMessage(5s));
  auto asked = agent.send("rt-5", "asked", "2");  // QoS 1: asks for one
  REQUIRE(asked.ok());
  REQUIRE(dev->nextMessage(5s));
  REQUIRE(waitUntil(
      [&] {
        std::lock_guard lock(mutex);
        return !seen.empty();
      },
      5s));
  std::lock_guard lock(mutex);
  REQUIRE(seen.size() == 1);
  CHECK(seen[0].device == "rt-5");
  CHECK(seen[0].event == "asked");
  CHECK(seen[0].status == "delivered");
  CHECK(seen[0].corr == asked.corr);
  CHECK(seen[0].seq == 2);
}
