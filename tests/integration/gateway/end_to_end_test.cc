// Devices and agents through the real impgate binary and a real mosquitto.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "tests/integration/gateway/gateway_fixture.h"
#include "tests/support/wait_until.h"

using namespace impgate;
using namespace impgate::testing;
using namespace std::chrono_literals;
using Message = MqttProbe::Message;

namespace {

nlohmann::json json(const Message& m) {
  return nlohmann::json::parse(m.payload);
}

auto statusIs(const std::string& status) {
  return [status](const Message& m) {
    auto j = nlohmann::json::parse(m.payload, nullptr, false);
    return !j.is_discarded() && j.value("status", "") == status;
  };
}

}  // namespace

TEST_CASE("a device message reaches its agent topic and is acknowledged after the broker") {
  GatewayFixture gw;
  MqttProbe agent(gw.broker().uri());
  REQUIRE(agent.connect());
  REQUIRE(agent.subscribe("imp/dev/+/out/+"));
  auto dev = gw.connectDevice("dev-1");

  auto status = dev->send("temp", "{\"c\":21.5}", true, 5s);
  REQUIRE(status);
  CHECK(*status == protocol::AckStatus::kOk);
  auto m = agent.waitForTopic("imp/dev/dev-1/out/temp", 5s);
  REQUIRE(m);
  CHECK(m->payload == "{\"c\":21.5}");
  CHECK(m->qos == 1);
  CHECK(gw.metric("impgate_messages_published_total") >= 1);
}

TEST_CASE("an agent message reaches the device and its ACK produces a receipt") {
  GatewayFixture gw;
  auto dev = gw.connectDevice("dev-2");
  MqttProbe agent(gw.broker().uri());
  REQUIRE(agent.connect());
  REQUIRE(agent.subscribe("imp/dev/dev-2/ack"));

  // Asks for the receipt on the device's ack topic, as the agent SDK does.
  REQUIRE(agent.publishRequest("imp/dev/dev-2/in/led", "on", 1, "imp/dev/dev-2/ack",
                               std::string_view("corr-17")));
  auto received = dev->nextMessage(5s);
  REQUIRE(received);
  CHECK(received->event == "led");
  CHECK(received->payload == "on");

  auto receipt = agent.waitForTopic("imp/dev/dev-2/ack", 5s);
  REQUIRE(receipt);
  auto j = json(*receipt);
  CHECK(j["status"] == "delivered");
  CHECK(j["event"] == "led");
  CHECK(j["corr"] == "corr-17");
  CHECK(j["node"] == gw.node());
  REQUIRE(receipt->correlationData);
  CHECK(*receipt->correlationData == "corr-17");
  CHECK(waitUntil([&] { return gw.metric("impgate_messages_delivered_total") == 1; }, 5s));
}

TEST_CASE("an agent message published at QoS 0 is delivered without a receipt") {
  GatewayFixture gw;
  auto dev = gw.connectDevice("dev-q0");
  MqttProbe agent(gw.broker().uri());
  REQUIRE(agent.connect());
  REQUIRE(agent.subscribe("imp/dev/dev-q0/ack"));
  REQUIRE(agent.publish("imp/dev/dev-q0/in/blink", "1", 0));
  auto received = dev->nextMessage(5s);
  REQUIRE(received);
  CHECK(received->event == "blink");
  // A message after it that asks for a receipt gets one, and it is the only one.
  REQUIRE(agent.publishRequest("imp/dev/dev-q0/in/blink", "2", 1, "imp/dev/dev-q0/ack"));
  REQUIRE(dev->nextMessage(5s));
  REQUIRE(agent.waitForTopic("imp/dev/dev-q0/ack", 5s));
  CHECK(agent.count([](const Message& m) { return m.topic == "imp/dev/dev-q0/ack"; }) == 1);
}

TEST_CASE("messages from one device reach the agent in order") {
  GatewayFixture gw;
  MqttProbe agent(gw.broker().uri());
  REQUIRE(agent.connect());
  REQUIRE(agent.subscribe("imp/dev/dev-order/out/+"));
  auto dev = gw.connectDevice("dev-order");
  constexpr int kCount = 300;
  for (int i = 0; i < kCount; ++i) {
    bool last = i == kCount - 1;
    auto status = dev->send("seq", std::to_string(i), last, 10s);
    REQUIRE(status);
  }
  REQUIRE(waitUntil(
      [&] {
        return agent.count([](const Message& m) {
          return m.topic == "imp/dev/dev-order/out/seq";
        }) == kCount;
      },
      10s));
  int expected = 0;
  for (const auto& m : agent.messages()) {
    if (m.topic != "imp/dev/dev-order/out/seq") continue;
    CHECK(m.payload == std::to_string(expected));
    ++expected;
  }
}

TEST_CASE("agent messages reach the device in order") {
  GatewayFixture gw;
  auto dev = gw.connectDevice("dev-in-order");
  MqttProbe agent(gw.broker().uri());
  REQUIRE(agent.connect());
  constexpr int kCount = 200;
  for (int i = 0; i < kCount; ++i) {
    REQUIRE(agent.publish("imp/dev/dev-in-order/in/n", std::to_string(i), 1));
  }
  for (int i = 0; i < kCount; ++i) {
    auto m = dev->nextMessage(5s);
    REQUIRE(m);
    CHECK(m->payload == std::to_string(i));
  }
}

TEST_CASE("presence is retained: online with the code id, offline with a reason") {
  GatewayFixture gw;
  MqttProbe agent(gw.broker().uri());
  REQUIRE(agent.connect());
  REQUIRE(agent.subscribe("imp/dev/dev-p/state"));
  auto dev = gw.connectDevice("dev-p");
  auto online = agent.waitFor(statusIs("online"), 5s);
  REQUIRE(online);
  CHECK(online->retained == false);  // live delivery; the retained copy is checked below
  auto j = json(*online);
  CHECK(j["node"] == gw.node());
  CHECK(j["code"] == "test-code");
  CHECK(j["epoch"].get<uint64_t>() > 0);

  dev->disconnect();
  auto offline = agent.waitFor(statusIs("offline"), 5s);
  REQUIRE(offline);
  auto off = json(*offline);
  CHECK(off["reason"] == "bye");
  CHECK(off["epoch"] == j["epoch"]);

  // A late subscriber gets the retained, latest state.
  MqttProbe late(gw.broker().uri());
  REQUIRE(late.connect());
  REQUIRE(late.subscribe("imp/dev/dev-p/state"));
  auto retained = late.waitForTopic("imp/dev/dev-p/state", 5s);
  REQUIRE(retained);
  CHECK(retained->retained);
  CHECK(json(*retained)["status"] == "offline");
}

TEST_CASE("device log lines are published on the log topic") {
  GatewayFixture gw;
  MqttProbe agent(gw.broker().uri());
  REQUIRE(agent.connect());
  REQUIRE(agent.subscribe("imp/dev/dev-log/log"));
  auto dev = gw.connectDevice("dev-log");
  REQUIRE(dev->log(protocol::LogLevel::kWarn, "battery low"));
  auto m = agent.waitForTopic("imp/dev/dev-log/log", 5s);
  REQUIRE(m);
  auto j = json(*m);
  CHECK(j["level"] == "warn");
  CHECK(j["text"] == "battery low");
}

TEST_CASE("a second connection of the same device replaces the first") {
  GatewayFixture gw;
  MqttProbe agent(gw.broker().uri());
  REQUIRE(agent.connect());
  REQUIRE(agent.subscribe("imp/dev/dev-dup/state"));
  auto first = gw.connectDevice("dev-dup");
  auto second = gw.connectDevice("dev-dup");
  auto reason = first->waitOffline(5s);
  REQUIRE(reason);
  CHECK(*reason == "bye:replaced");
  // Presence never went offline, and agent messages reach the new connection.
  CHECK(agent.count(statusIs("offline")) == 0);
  REQUIRE(agent.publish("imp/dev/dev-dup/in/ping", "x", 1));
  auto m = second->nextMessage(5s);
  REQUIRE(m);
  CHECK(m->event == "ping");
}

TEST_CASE("the node state is retained online, and the last will marks a dead node offline") {
  GatewayFixture gw;
  MqttProbe watcher(gw.broker().uri());
  REQUIRE(watcher.connect());
  REQUIRE(watcher.subscribe("imp/gw/" + gw.node() + "/state"));
  auto online = watcher.waitFor(statusIs("online"), 5s);
  REQUIRE(online);
  CHECK(online->retained);
  gw.process().kill();
  auto offline = watcher.waitFor(statusIs("offline"), 10s);
  REQUIRE(offline);
  CHECK(json(*offline)["node"] == gw.node());
}

TEST_CASE("after the broker restarts the gateway restores subscriptions and presence") {
  GatewayFixture gw;
  auto dev = gw.connectDevice("dev-restart");
  gw.broker().restart();
  MqttProbe agent(gw.broker().uri());
  REQUIRE(agent.connect());
  REQUIRE(agent.subscribe("imp/dev/dev-restart/state"));
  // The restarted broker kept nothing; the gateway announces the device again.
  REQUIRE(agent.waitFor(statusIs("online"), 15s));
  REQUIRE(agent.subscribe("imp/dev/dev-restart/ack"));
  REQUIRE(
      agent.publishRequest("imp/dev/dev-restart/in/hello", "again", 1, "imp/dev/dev-restart/ack"));
  auto m = dev->nextMessage(10s);
  REQUIRE(m);
  CHECK(m->payload == "again");
  REQUIRE(agent.waitForTopic("imp/dev/dev-restart/ack", 5s));
  // And device messages flow again, acknowledged.
  auto status = dev->send("up", "1", true, 10s);
  REQUIRE(status);
  CHECK(*status == protocol::AckStatus::kOk);
}

TEST_CASE("after the broker restarts, every one of several devices is subscribed again") {
  GatewayFixture gw;
  std::vector<std::unique_ptr<device::BlockingDevice>> devices;
  for (int i = 0; i < 5; ++i) devices.push_back(gw.connectDevice("many-" + std::to_string(i)));
  gw.broker().restart();
  MqttProbe agent(gw.broker().uri());
  REQUIRE(agent.connect());
  REQUIRE(agent.subscribe("imp/dev/many-4/state"));
  REQUIRE(agent.waitFor(statusIs("online"), 15s));
  for (int i = 0; i < 5; ++i) {
    REQUIRE(agent.publish("imp/dev/many-" + std::to_string(i) + "/in/hello", "again", 1));
    auto m = devices[i]->nextMessage(10s);
    REQUIRE(m);
    CHECK(m->payload == "again");
  }
  CHECK(gw.process().running());
}

TEST_CASE("a clean gateway stop says BYE to devices and marks them offline") {
  GatewayFixture gw;
  MqttProbe agent(gw.broker().uri());
  REQUIRE(agent.connect());
  REQUIRE(agent.subscribe("imp/dev/dev-stop/state"));
  auto dev = gw.connectDevice("dev-stop");
  REQUIRE(agent.waitFor(statusIs("online"), 5s));
  auto exitStatus = gw.process().stop();
  REQUIRE(exitStatus);
  CHECK(WIFEXITED(*exitStatus));
  CHECK(WEXITSTATUS(*exitStatus) == 0);
  auto reason = dev->waitOffline(5s);
  REQUIRE(reason);
  CHECK(*reason == "bye:shutting_down");
  auto offline = agent.waitFor(statusIs("offline"), 5s);
  REQUIRE(offline);
  CHECK(json(*offline)["reason"] == "shutting_down");
}
