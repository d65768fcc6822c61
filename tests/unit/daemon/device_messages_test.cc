// DeviceSession: device -> bus messages, their acknowledgements and backpressure.
#include <catch2/catch.hpp>

#include "tests/unit/daemon/gateway_harness.h"

using namespace impgate;
using namespace impgate::testing;
using protocol::AckStatus;
using Publish = FakeDeviceBus::Publish;
using Acks = std::vector<std::pair<uint32_t, AckStatus>>;

namespace {

std::span<const uint8_t> bytes(std::string_view text) {
  return {reinterpret_cast<const uint8_t*>(text.data()), text.size()};
}

// Sends a MSG from `dev` and returns its id.
uint32_t send(GatewayHarness& h, TestDevice& dev, std::string_view event, std::string_view payload,
              bool ackWanted) {
  auto [error, id] = h.onLoop([&] {
    uint32_t msgId = 0;
    auto e = dev.client->send(event, bytes(payload), ackWanted, &msgId);
    return std::pair(e, msgId);
  });
  REQUIRE(error == device::SendError::kNone);
  return id;
}

// Waits until the bus has `count` publishes and returns them.
std::vector<Publish> publishes(GatewayHarness& h, std::size_t count) {
  bool arrived = h.waitFor([&] { return h.bus().publishes.size() >= count; });
  auto all = h.onLoop([&] { return h.bus().publishes; });
  INFO("publishes: " << all.size());
  REQUIRE(arrived);
  return all;
}

Acks acksOf(GatewayHarness& h, TestDevice& dev) {
  return h.onLoop([&] { return dev.acks; });
}

}  // namespace

TEST_CASE("a device MSG is published, and ACKed only once the bus confirms it") {
  GatewayHarness h;
  TestDevice& dev = h.connectDevice("dev-1");

  uint32_t id = send(h, dev, "temp", "21.5", true);
  Publish p = publishes(h, 1).at(0);
  CHECK(p.device == "dev-1");
  CHECK(p.event == "temp");
  CHECK(p.payload == "21.5");
  CHECK(p.token != 0);
  CHECK(p.acknowledged);

  // Not confirmed yet: no ACK, even after everything the gateway wrote has arrived.
  h.flushToDevice(dev);
  CHECK(acksOf(h, dev).empty());

  h.onLoop([&] { h.gateway().onPublished(p.token, true); });
  REQUIRE(h.waitFor([&] { return !dev.acks.empty(); }));
  CHECK(acksOf(h, dev) == Acks{{id, AckStatus::kOk}});
  CHECK(h.stats().messagesPublished.value() == 1);
}

TEST_CASE("a publish the bus fails is answered with ACK failed") {
  GatewayHarness h;
  TestDevice& dev = h.connectDevice("dev-1");

  uint32_t id = send(h, dev, "temp", "x", true);
  Publish p = publishes(h, 1).at(0);
  h.onLoop([&] { h.gateway().onPublished(p.token, false); });
  REQUIRE(h.waitFor([&] { return !dev.acks.empty(); }));
  CHECK(acksOf(h, dev) == Acks{{id, AckStatus::kFailed}});
  CHECK(h.stats().messagesPublishFailed.value() == 1);
  // The session carries on.
  CHECK(h.onLoop([&] { return dev.client->online(); }));
}

TEST_CASE("a MSG without ack wanted is published fire-and-forget and never ACKed") {
  GatewayHarness h;
  TestDevice& dev = h.connectDevice("dev-1");

  uint32_t id = send(h, dev, "tick", "", false);
  Publish p = publishes(h, 1).at(0);
  CHECK(id != 0);
  CHECK(p.payload.empty());
  CHECK_FALSE(p.acknowledged);  // QoS 0 on the bus, like an MQTT device's fire-and-forget
  CHECK(p.token != 0);          // still paced: it counts against max-inflight until written

  h.onLoop([&] { h.gateway().onPublished(p.token, true); });
  h.flushToDevice(dev);
  CHECK(acksOf(h, dev).empty());
  CHECK(h.stats().messagesPublished.value() == 1);
}

TEST_CASE("reading pauses at max-inflight unconfirmed publishes and resumes at half of it") {
  GatewayHarness h([](gateway::GatewayConfig& c) { c.maxInflightPublishes = 4; });
  TestDevice& dev = h.connectDevice("dev-1");

  // Ten messages in one go: all are in the gateway's socket buffer before it reads the first.
  auto ids = h.onLoop([&] {
    std::vector<uint32_t> sent;
    for (int i = 1; i <= 10; ++i) {
      uint32_t id = 0;
      dev.client->send("n", bytes(std::to_string(i)), true, &id);
      sent.push_back(id);
    }
    return sent;
  });
  auto first = publishes(h, 4);
  // A few more loop passes: a socket still watched for reading would be read in them.
  for (int i = 0; i < 3; ++i) h.onLoop([] {});
  CHECK(h.onLoop([&] { return h.bus().publishes.size(); }) == 4);
  CHECK(h.stats().readPauses.value() == 1);

  // 3 in flight is still above half of 4.
  h.onLoop([&] { h.gateway().onPublished(first[0].token, true); });
  CHECK(h.onLoop([&] { return h.bus().publishes.size(); }) == 4);

  // 2 in flight: reading resumes until 4 are in flight again.
  h.onLoop([&] { h.gateway().onPublished(first[1].token, true); });
  CHECK(h.onLoop([&] { return h.bus().publishes.size(); }) == 6);
  CHECK(h.stats().readPauses.value() == 2);

  // Confirming as they come lets everything through, in order.
  std::size_t confirmed = 2;
  while (confirmed < 10) {
    auto all = publishes(h, confirmed + 1);
    h.onLoop([&] { h.gateway().onPublished(all[confirmed].token, true); });
    ++confirmed;
  }
  auto all = publishes(h, 10);
  REQUIRE(all.size() == 10);
  for (std::size_t i = 0; i < all.size(); ++i) CHECK(all[i].payload == std::to_string(i + 1));

  REQUIRE(h.waitFor([&] { return dev.acks.size() == 10; }));
  auto acks = acksOf(h, dev);
  for (std::size_t i = 0; i < acks.size(); ++i) {
    CHECK(acks[i].first == ids[i]);
    CHECK(acks[i].second == AckStatus::kOk);
  }
}

TEST_CASE("a bus confirmation for a connection that has gone is counted and dropped") {
  GatewayHarness h;
  TestDevice& dev = h.connectDevice("dev-1");
  send(h, dev, "temp", "1", true);
  Publish p = publishes(h, 1).at(0);

  h.onLoop([&] { dev.client.reset(); });
  REQUIRE(h.waitFor([&] { return h.gateway().sessionCount() == 0; }));
  h.onLoop([&] { h.gateway().onPublished(p.token, true); });
  CHECK(h.stats().messagesPublished.value() == 1);
}

TEST_CASE("a device LOG line is passed to the bus with its level") {
  GatewayHarness h;
  TestDevice& dev = h.connectDevice("dev-1");
  auto error = h.onLoop([&] { return dev.client->log(protocol::LogLevel::kWarn, "low battery"); });
  REQUIRE(error == device::SendError::kNone);
  REQUIRE(h.waitFor([&] { return !h.bus().logs.empty(); }));
  auto log = h.onLoop([&] { return h.bus().logs.front(); });
  CHECK(log.device == "dev-1");
  CHECK(log.level == "warn");
  CHECK(log.text == "low battery");
  CHECK(h.stats().logsForwarded.value() == 1);
}

TEST_CASE("LOG lines count against max-inflight like messages") {
  GatewayHarness h([](gateway::GatewayConfig& c) { c.maxInflightPublishes = 4; });
  TestDevice& dev = h.connectDevice("dev-1");
  h.onLoop([&] {
    for (int i = 1; i <= 10; ++i) dev.client->log(protocol::LogLevel::kInfo, std::to_string(i));
  });
  REQUIRE(h.waitFor([&] { return h.bus().logs.size() >= 4; }));
  for (int i = 0; i < 3; ++i) h.onLoop([] {});
  CHECK(h.onLoop([&] { return h.bus().logs.size(); }) == 4);
  CHECK(h.stats().readPauses.value() == 1);

  // Confirming them lets the rest through, in order.
  std::size_t confirmed = 0;
  while (confirmed < 10) {
    REQUIRE(h.waitFor([&] { return h.bus().logs.size() > confirmed; }));
    auto logs = h.onLoop([&] { return h.bus().logs; });
    CHECK(logs[confirmed].token != 0);
    h.onLoop([&] { h.gateway().onPublished(logs[confirmed].token, true); });
    ++confirmed;
  }
  auto logs = h.onLoop([&] { return h.bus().logs; });
  REQUIRE(logs.size() == 10);
  for (std::size_t i = 0; i < logs.size(); ++i) CHECK(logs[i].text == std::to_string(i + 1));
  // Log lines are not acknowledged to the device.
  h.flushToDevice(dev);
  CHECK(acksOf(h, dev).empty());
}
