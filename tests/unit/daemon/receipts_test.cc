// Which agent messages get a receipt, and where: the node's `receipts` setting and the MQTT 5
// Response Topic of each message (docs/topics.md, "Receipts").
#include <catch2/catch.hpp>

#include "tests/unit/daemon/gateway_harness.h"

using namespace impgate;
using namespace impgate::testing;
using Receipt = FakeDeviceBus::ReceiptRecord;
using gateway::ReceiptMode;

namespace {

constexpr const char* kAgentTopic = "agents/a1/receipts";

bus::AgentMessage message(const std::string& event, int qos,
                          std::optional<std::string> responseTopic = {},
                          const std::string& correlation = {},
                          const std::string& device = "dev-1") {
  bus::AgentMessage m{device, event, "payload", qos, correlation};
  m.responseTopic = std::move(responseTopic);
  return m;
}

std::vector<Receipt> receipts(GatewayHarness& h, std::size_t count) {
  bool arrived = h.waitFor([&] { return h.bus().receipts.size() >= count; });
  auto all = h.onLoop([&] { return h.bus().receipts; });
  INFO("receipts: " << all.size());
  REQUIRE(arrived);
  return all;
}

std::vector<std::string> eventsOf(GatewayHarness& h, TestDevice& dev) {
  return h.onLoop([&] {
    std::vector<std::string> events;
    for (const auto& m : dev.messages) events.push_back(m.event);
    return events;
  });
}

void receiptsAll(gateway::GatewayConfig& c) {
  c.receipts = ReceiptMode::kAll;
}

}  // namespace

TEST_CASE("by default a QoS 1 agent message without a response topic gets no receipt") {
  GatewayHarness h;
  TestDevice& dev = h.connectDevice("dev-1");

  h.onLoop([&] { h.gateway().onAgentMessage(message("quiet", 1)); });
  REQUIRE(h.waitFor([&] { return dev.messages.size() == 1; }));
  // A later message that asks for a receipt: the device acknowledges in order and the gateway
  // reads in order, so once its receipt is here the first ACK has been handled too.
  h.onLoop([&] { h.gateway().onAgentMessage(message("asked", 1, kAgentTopic, "c-2")); });
  auto all = receipts(h, 1);
  h.flushToDevice(dev);
  all = h.onLoop([&] { return h.bus().receipts; });
  REQUIRE(all.size() == 1);
  CHECK(all[0].event == "asked");
  CHECK(all[0].seq == 2);
  CHECK(all[0].status == "delivered");
  CHECK(all[0].topic == kAgentTopic);
  // The first one was still acknowledged by the device (QoS 1 asks it to), just not reported.
  CHECK(h.stats().messagesDelivered.value() == 2);
  CHECK(eventsOf(h, dev) == std::vector<std::string>{"quiet", "asked", "flush"});
}

TEST_CASE("a response topic asks for a receipt there, with the message's correlation data") {
  auto mode = GENERATE(ReceiptMode::kRequested, ReceiptMode::kAll);
  INFO("mode " << static_cast<int>(mode));
  GatewayHarness h([mode](gateway::GatewayConfig& c) { c.receipts = mode; });
  TestDevice& dev = h.connectDevice("dev-1");

  h.onLoop([&] {
    h.gateway().onAgentMessage(message("qos1", 1, kAgentTopic, "c-1"));
    // Whatever its QoS: the device is asked to acknowledge it.
    h.gateway().onAgentMessage(message("qos0", 0, "other/topic", "c-2"));
    // The device's own ack topic is allowed: the receipt goes where it would have anyway.
    h.gateway().onAgentMessage(message("own-ack", 1, "imp/dev/dev-1/ack", "c-3"));
  });
  auto all = receipts(h, 3);
  h.flushToDevice(dev);
  all = h.onLoop([&] { return h.bus().receipts; });
  REQUIRE(all.size() == 3);
  CHECK(all[0].event == "qos1");
  CHECK(all[0].topic == kAgentTopic);
  CHECK(all[0].correlation == "c-1");
  CHECK(all[0].status == "delivered");
  CHECK(all[0].seq == 1);
  CHECK(all[1].event == "qos0");
  CHECK(all[1].topic == "other/topic");
  CHECK(all[1].correlation == "c-2");
  CHECK(all[1].status == "delivered");
  CHECK(all[2].event == "own-ack");
  CHECK(all[2].topic.empty());  // the ack topic
  CHECK(all[2].correlation == "c-3");
  CHECK(eventsOf(h, dev) == std::vector<std::string>{"qos1", "qos0", "own-ack", "flush"});
}

TEST_CASE("a response topic that could reach other topics or is malformed is refused") {
  auto mode = GENERATE(ReceiptMode::kRequested, ReceiptMode::kAll);
  GatewayHarness h([mode](gateway::GatewayConfig& c) { c.receipts = mode; });
  TestDevice& dev = h.connectDevice("dev-1");

  const std::vector<std::string> refused = {
      "",                        // not a topic name
      "agents/+/receipts",       // wildcards: a publish there is a protocol error
      "agents/#",                //
      "#",                       //
      std::string(257, 'a'),     // longer than 256 bytes
      "imp/dev/dev-1/in/led",    // the device's own input: a loop
      "imp/dev/dev-2/ack",       // another device's receipts
      "imp/dev/dev-1/state",     // presence
      "imp/dev/dev-1/out/temp",  // device messages
      "imp/gw/node-a/state",     // node status
      "imp/agents/a1",           // anything else under the prefix
      "$SYS/broker/x",           // broker topics ($CONTROL is mosquitto's admin API)
      "$CONTROL/dynamic-security/v1",
      std::string("agents/a\0b", 10),  // NUL is not allowed in MQTT strings
      "agents/\xff\xfe",               // not UTF-8
      "agents/line\nbreak",            // control characters
  };
  h.onLoop([&] {
    int n = 0;
    for (const auto& topic : refused) {
      h.gateway().onAgentMessage(message("cmd", 1, topic, "c-" + std::to_string(++n)));
    }
  });
  h.flushToDevice(dev);
  auto all = h.onLoop([&] { return h.bus().receipts; });
  REQUIRE(all.size() == refused.size());
  for (std::size_t i = 0; i < all.size(); ++i) {
    INFO("response topic '" << refused[i] << "'");
    CHECK(all[i].device == "dev-1");
    CHECK(all[i].event == "cmd");
    CHECK(all[i].status == "rejected");
    CHECK(all[i].seq == 0);       // never reached the session
    CHECK(all[i].topic.empty());  // the device's ack topic
    CHECK(all[i].correlation == "c-" + std::to_string(i + 1));
  }
  // None of them reached the device.
  CHECK(eventsOf(h, dev) == std::vector<std::string>{"flush"});
  CHECK(h.stats().messagesUndeliverable.value() == refused.size());

  // Topics near the limits are fine.
  h.onLoop([&] {
    h.gateway().onAgentMessage(message("ok", 1, std::string(256, 'a')));
    h.gateway().onAgentMessage(message("ok", 1, "imp"));
    h.gateway().onAgentMessage(message("ok", 1, "impish/dev/dev-1/in/led"));
    h.gateway().onAgentMessage(message("ok", 1, "site/imp/dev/dev-1/ack"));
    h.gateway().onAgentMessage(message("ok", 1, "agents/caf\xc3\xa9"));
  });
  all = receipts(h, refused.size() + 5);
  for (std::size_t i = refused.size(); i < all.size(); ++i) {
    CHECK(all[i].status == "delivered");
    CHECK_FALSE(all[i].topic.empty());
  }
}

TEST_CASE("receipts all: every QoS 1 message gets a receipt on the ack topic, as before") {
  GatewayHarness h(receiptsAll);
  TestDevice& dev = h.connectDevice("dev-1");

  h.onLoop([&] {
    h.gateway().onAgentMessage(message("plain", 1, {}, "c-1"));
    h.gateway().onAgentMessage(message("fire-and-forget", 0));
    h.gateway().onAgentMessage(message("asked", 1, kAgentTopic, "c-3"));
  });
  auto all = receipts(h, 2);
  h.flushToDevice(dev);
  all = h.onLoop([&] { return h.bus().receipts; });
  REQUIRE(all.size() == 2);
  CHECK(all[0].event == "plain");
  CHECK(all[0].topic.empty());
  CHECK(all[0].correlation == "c-1");
  CHECK(all[0].seq == 1);
  // With a response topic the receipt goes there only, not to the ack topic as well.
  CHECK(all[1].event == "asked");
  CHECK(all[1].topic == kAgentTopic);
  CHECK(all[1].seq == 3);
}

TEST_CASE("failed and rejected receipts follow the same rule as delivered ones") {
  SECTION("a device lost with deliveries pending") {
    GatewayHarness h;
    TestDevice& dev = h.connectDevice("dev-1");
    h.onLoop([&] {
      h.gateway().onAgentMessage(message("silent", 1, {}, "c-1"));
      h.gateway().onAgentMessage(message("asked", 1, kAgentTopic, "c-2"));
      dev.client.reset();
    });
    REQUIRE(h.waitFor([&] { return !h.bus().unsubscribed.empty(); }));
    auto calls = h.onLoop([&] { return h.bus().callsFor("dev-1"); });
    CHECK(calls == std::vector<std::string>{"subscribe dev-1", "presence dev-1 online",
                                            "receipt dev-1 failed", "unsubscribe dev-1",
                                            "presence dev-1 offline"});
    auto all = h.onLoop([&] { return h.bus().receipts; });
    REQUIRE(all.size() == 1);
    CHECK(all[0].correlation == "c-2");
    CHECK(all[0].topic == kAgentTopic);
    CHECK(all[0].seq == 2);
  }
  SECTION("messages arriving just after the device's session ended") {
    GatewayHarness h;
    TestDevice& dev = h.connectDevice("dev-1");
    h.onLoop([&] { dev.client.reset(); });
    REQUIRE(h.waitFor([&] { return h.gateway().sessionCount() == 0; }));
    auto all = h.onLoop([&] {
      h.gateway().onAgentMessage(message("late", 1, {}, "c-1"));
      h.gateway().onAgentMessage(message("late-asked", 0, kAgentTopic, "c-2"));
      return h.bus().receipts;
    });
    REQUIRE(all.size() == 1);
    CHECK(all[0].event == "late-asked");
    CHECK(all[0].status == "failed");
    CHECK(all[0].topic == kAgentTopic);
    CHECK(all[0].correlation == "c-2");
  }
  SECTION("messages refused while the reactor is far behind") {
    GatewayHarness h;
    h.connectDevice("dev-1");
    auto all = h.onLoop([&] {
      for (int i = 0; i < 70000; ++i) h.gateway().loop().post([] {});
      h.gateway().onAgentMessage(message("shed", 1, {}, "c-1"));
      h.gateway().onAgentMessage(message("shed-asked", 1, kAgentTopic, "c-2"));
      return h.bus().receipts;
    });
    CHECK(h.stats().deliveriesShed.value() == 2);
    REQUIRE(all.size() == 1);
    CHECK(all[0].event == "shed-asked");
    CHECK(all[0].status == "failed");
    CHECK(all[0].topic == kAgentTopic);
  }
  SECTION("messages beyond max-pending-deliveries") {
    GatewayHarness h([](gateway::GatewayConfig& c) { c.maxPendingDeliveries = 1; });
    TestDevice& dev = h.connectDevice("dev-1");
    auto immediate = h.onLoop([&] {
      h.gateway().onAgentMessage(message("first", 1, kAgentTopic, "c-1"));
      h.gateway().onAgentMessage(message("over", 1, {}, "c-2"));
      h.gateway().onAgentMessage(message("over-asked", 1, kAgentTopic, "c-3"));
      return h.bus().receipts;
    });
    REQUIRE(immediate.size() == 1);
    CHECK(immediate[0].event == "over-asked");
    CHECK(immediate[0].status == "rejected");
    CHECK(immediate[0].topic == kAgentTopic);
    CHECK(immediate[0].seq == 3);
    CHECK(receipts(h, 2).at(1).event == "first");
    CHECK(eventsOf(h, dev) == std::vector<std::string>{"first"});
  }
  SECTION("retained messages") {
    GatewayHarness h;
    TestDevice& dev = h.connectDevice("dev-1");
    h.onLoop([&] {
      auto silent = message("retained", 1, {}, "c-1");
      silent.retained = true;
      auto asked = message("retained-asked", 1, kAgentTopic, "c-2");
      asked.retained = true;
      h.gateway().onAgentMessage(std::move(silent));
      h.gateway().onAgentMessage(std::move(asked));
    });
    h.flushToDevice(dev);
    auto all = h.onLoop([&] { return h.bus().receipts; });
    REQUIRE(all.size() == 1);
    CHECK(all[0].event == "retained-asked");
    CHECK(all[0].status == "rejected");
    CHECK(all[0].seq == 0);
    CHECK(all[0].topic == kAgentTopic);
    CHECK(all[0].correlation == "c-2");
    CHECK(eventsOf(h, dev) == std::vector<std::string>{"flush"});
  }
  SECTION("retained messages under receipts all") {
    GatewayHarness h(receiptsAll);
    TestDevice& dev = h.connectDevice("dev-1");
    h.onLoop([&] {
      auto m = message("retained", 1, {}, "c-1");
      m.retained = true;
      h.gateway().onAgentMessage(std::move(m));
    });
    h.flushToDevice(dev);
    auto all = h.onLoop([&] { return h.bus().receipts; });
    REQUIRE(all.size() == 1);
    CHECK(all[0].status == "rejected");
    CHECK(all[0].topic.empty());
    CHECK(eventsOf(h, dev) == std::vector<std::string>{"flush"});
  }
}
