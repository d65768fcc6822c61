// DeviceSession: agent -> device messages and the receipts the bus gets for them. These run the
// node with `receipts = all` (every QoS 1 message gets a receipt on the ack topic), so they are
// about the receipts' contents; receipts_test.cc is about which messages get one, and where.
#include <algorithm>
#include <catch2/catch.hpp>

#include "tests/unit/daemon/gateway_harness.h"

using namespace impgate;
using namespace impgate::testing;
using Receipt = FakeDeviceBus::ReceiptRecord;

namespace {

bus::AgentMessage agentMessage(const std::string& event, const std::string& payload, int qos,
                               const std::string& correlation = {}) {
  return bus::AgentMessage{"dev-1", event, payload, qos, correlation};
}

void receiptsAll(gateway::GatewayConfig& c) {
  c.receipts = gateway::ReceiptMode::kAll;
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

}  // namespace

TEST_CASE("an agent message reaches the device, and its ACK publishes a delivered receipt") {
  GatewayHarness h(receiptsAll);
  TestDevice& dev = h.connectDevice("dev-1");

  h.onLoop([&] { h.gateway().onAgentMessage(agentMessage("led", "on", 1, "corr-9")); });
  auto first = receipts(h, 1);
  auto message = h.onLoop([&] { return dev.messages.at(0); });
  CHECK(message.event == "led");
  CHECK(message.payload == "on");
  const Receipt& r = first.at(0);
  CHECK(r.device == "dev-1");
  CHECK(r.event == "led");
  CHECK(r.seq == 1);
  CHECK(r.status == "delivered");
  CHECK(r.correlation == "corr-9");
  CHECK(r.node == GatewayHarness::kNode);

  h.onLoop([&] { h.gateway().onAgentMessage(agentMessage("led", "off", 1)); });
  auto second = receipts(h, 2).at(1);
  CHECK(second.seq == 2);
  CHECK(second.status == "delivered");
  CHECK(second.correlation.empty());
  CHECK(h.stats().messagesDelivered.value() == 2);
}

TEST_CASE("a QoS 0 agent message is delivered without a receipt but still counts in seq") {
  GatewayHarness h(receiptsAll);
  TestDevice& dev = h.connectDevice("dev-1");

  h.onLoop([&] {
    h.gateway().onAgentMessage(agentMessage("fire-and-forget", "", 0));
    h.gateway().onAgentMessage(agentMessage("confirmed", "", 1));
  });
  auto all = receipts(h, 1);
  CHECK(eventsOf(h, dev) == std::vector<std::string>{"fire-and-forget", "confirmed"});
  REQUIRE(all.size() == 1);
  CHECK(all[0].event == "confirmed");
  CHECK(all[0].seq == 2);
}

TEST_CASE("agent messages beyond max-pending-deliveries get a rejected receipt") {
  GatewayHarness h([](gateway::GatewayConfig& c) {
    receiptsAll(c);
    c.maxPendingDeliveries = 2;
  });
  TestDevice& dev = h.connectDevice("dev-1");

  // In one pass, before the device can acknowledge anything.
  auto immediate = h.onLoop([&] {
    for (int i = 1; i <= 3; ++i) {
      h.gateway().onAgentMessage(
          agentMessage("cmd", std::to_string(i), 1, "c-" + std::to_string(i)));
    }
    return h.bus().receipts;
  });
  REQUIRE(immediate.size() == 1);
  CHECK(immediate[0].status == "rejected");
  CHECK(immediate[0].seq == 3);
  CHECK(immediate[0].correlation == "c-3");
  CHECK(h.stats().messagesUndeliverable.value() == 1);

  auto all = receipts(h, 3);
  REQUIRE(all.size() == 3);
  CHECK(all[1].status == "delivered");
  CHECK(all[1].seq == 1);
  CHECK(all[1].correlation == "c-1");
  CHECK(all[2].status == "delivered");
  CHECK(all[2].seq == 2);
  // The rejected one never reached the device.
  auto messages = h.onLoop([&] { return dev.messages; });
  REQUIRE(messages.size() == 2);
  CHECK(messages[0].payload == "1");
  CHECK(messages[1].payload == "2");

  // Acknowledged deliveries free their places.
  h.onLoop([&] { h.gateway().onAgentMessage(agentMessage("cmd", "4", 1)); });
  CHECK(receipts(h, 4).at(3).status == "delivered");
}

TEST_CASE("a device lost with deliveries pending: failed receipts, then unsubscribed and offline") {
  GatewayHarness h(receiptsAll);
  TestDevice& dev = h.connectDevice("dev-1");

  // Delivered and dropped in the same pass: the device never reads them.
  h.onLoop([&] {
    h.gateway().onAgentMessage(agentMessage("led", "on", 1, "c-1"));
    h.gateway().onAgentMessage(agentMessage("led", "off", 1, "c-2"));
    dev.client.reset();
  });
  REQUIRE(h.waitFor([&] { return !h.bus().unsubscribed.empty(); }));

  auto calls = h.onLoop([&] { return h.bus().callsFor("dev-1"); });
  CHECK(calls == std::vector<std::string>{"subscribe dev-1", "presence dev-1 online",
                                          "receipt dev-1 failed", "receipt dev-1 failed",
                                          "unsubscribe dev-1", "presence dev-1 offline"});
  auto all = receipts(h, 2);
  REQUIRE(all.size() == 2);
  CHECK(all[0].seq == 1);
  CHECK(all[0].correlation == "c-1");
  CHECK(all[1].seq == 2);
  CHECK(all[1].correlation == "c-2");
  for (const auto& r : all) {
    CHECK(r.status == "failed");
    CHECK(r.event == "led");
  }

  auto offline = h.onLoop([&] { return h.bus().presence.back(); });
  CHECK_FALSE(offline.online);
  CHECK(offline.reason == "connection_lost");
  CHECK(offline.epochMs == h.onLoop([&] { return h.bus().presence.front().epochMs; }));
  REQUIRE(h.waitFor([&] { return h.gateway().sessionCount() == 0; }));
  CHECK(h.stats().devicesOnline.value() == 0);
}

TEST_CASE("an agent message for a device not on this node is counted and dropped") {
  GatewayHarness h(receiptsAll);
  h.onLoop([&] {
    h.gateway().onAgentMessage(agentMessage("led", "on", 1, "c-1"));
    // Not even a refusal: whatever it asked for, it is another node's business.
    auto refused = agentMessage("led", "on", 1, "c-2");
    refused.responseTopic = "imp/dev/other/in/x";
    h.gateway().onAgentMessage(std::move(refused));
    auto retained = agentMessage("led", "on", 1, "c-3");
    retained.retained = true;
    h.gateway().onAgentMessage(std::move(retained));
  });
  CHECK(h.stats().messagesUndeliverable.value() == 3);
  CHECK(h.onLoop([&] { return h.bus().calls.empty(); }));
}

// The message whose MSG overflows the output buffer closes the session; it was accepted for an
// online device, so it must get a receipt like every other pending one.
TEST_CASE("the agent message that overflows a device's output buffer gets a failed receipt") {
  GatewayHarness h([](gateway::GatewayConfig& c) {
    receiptsAll(c);
    c.maxOutputBuffer = 64 * 1024;
    c.maxPendingDeliveries = 1000;
  });
  h.connectDevice("dev-1");

  // A device that does not read: in one pass, the socket buffers fill and then the gateway's
  // own output buffer overflows.
  const std::string payload(200 * 1024, 'p');
  auto accepted = h.onLoop([&] {
    int n = 0;
    auto offline = [&] {
      return std::any_of(h.bus().presence.begin(), h.bus().presence.end(),
                         [](const auto& p) { return !p.online; });
    };
    while (n < 200 && !offline()) {
      ++n;
      h.gateway().onAgentMessage(agentMessage("blob", payload, 1, "c-" + std::to_string(n)));
    }
    return n;
  });
  auto presence = h.onLoop([&] { return h.bus().presence; });
  REQUIRE(presence.back().reason == "output_overflow");

  auto all = h.onLoop([&] { return h.bus().receipts; });
  INFO(accepted << " messages accepted for the online device");
  CHECK(all.size() == static_cast<std::size_t>(accepted));
  for (std::size_t i = 0; i < all.size(); ++i) {
    CHECK(all[i].status == "failed");
    CHECK(all[i].seq == i + 1);
  }
}

TEST_CASE("QoS 1 agent messages arriving after the device's session ended get a failed receipt") {
  GatewayHarness h(receiptsAll);
  TestDevice& dev = h.connectDevice("dev-1");
  h.onLoop([&] { dev.client.reset(); });
  REQUIRE(h.waitFor([&] { return h.gateway().sessionCount() == 0; }));

  h.onLoop([&] {
    h.gateway().onAgentMessage(agentMessage("late", "1", 1, "c-1"));
    h.gateway().onAgentMessage(agentMessage("late-qos0", "2", 0));
    // Never on this node: another node's business, no receipt from here.
    h.gateway().onAgentMessage(bus::AgentMessage{"elsewhere", "x", "", 1, {}});
  });
  auto all = receipts(h, 1);
  h.onLoop([] {});
  all = h.onLoop([&] { return h.bus().receipts; });
  REQUIRE(all.size() == 1);
  CHECK(all[0].device == "dev-1");
  CHECK(all[0].event == "late");
  CHECK(all[0].status == "failed");
  CHECK(all[0].correlation == "c-1");
}

TEST_CASE("agent messages are refused with a failed receipt while the reactor is far behind") {
  GatewayHarness h(receiptsAll);
  TestDevice& dev = h.connectDevice("dev-1");
  h.onLoop([&] {
    // A backlog of posted work, as a flood from the bus thread would leave.
    for (int i = 0; i < 70000; ++i) h.gateway().loop().post([] {});
    h.gateway().onAgentMessage(agentMessage("late", "1", 1, "c-1"));
  });
  auto all = receipts(h, 1);
  CHECK(all.at(0).status == "failed");
  CHECK(all.at(0).correlation == "c-1");
  CHECK(h.stats().deliveriesShed.value() == 1);
  // Once the backlog has drained, messages are delivered again.
  h.onLoop([&] { h.gateway().onAgentMessage(agentMessage("again", "2", 1)); });
  CHECK(receipts(h, 2).at(1).status == "delivered");
  CHECK(h.onLoop([&] { return dev.messages.size(); }) == 1);
}

// Acknowledging the first of two pending deliveries moves the second into its place; a short
// event name moved into a long one's string keeps the long one's capacity. The session must
// give back what it counted, not recount, or its buffered bytes wrap below zero and the node
// sheds the device for being over its memory budget.
TEST_CASE("acknowledged deliveries with events of different lengths give back what they held") {
  GatewayHarness h;
  TestDevice& dev = h.connectDevice("dev-1");
  h.onLoop([&] {
    h.gateway().onAgentMessage(agentMessage("a-rather-long-event-name-01", "1", 1, "c-1"));
    h.gateway().onAgentMessage(agentMessage("led", "2", 1, "c-2"));
  });
  REQUIRE(h.waitFor([&] { return h.stats().messagesDelivered.value() == 2; }));
  h.flushToDevice(dev);
  CHECK(h.stats().bufferedBytes.value() < 1024 * 1024);
  CHECK(h.stats().devicesOnline.value() == 1);
  CHECK(h.onLoop([&] { return h.gateway().budget().used(); }) < 1024 * 1024);
  CHECK(h.onLoop([&] { return dev.offline.empty(); }));
}
