// Gateway: connections coming online and going away, and the presence the bus sees.
#include <algorithm>
#include <catch2/catch.hpp>

#include "tests/unit/daemon/gateway_harness.h"

using namespace impgate;
using namespace impgate::testing;
using Presence = FakeDeviceBus::PresenceRecord;

namespace {

std::vector<Presence> presenceOf(GatewayHarness& h) {
  return h.onLoop([&] { return h.bus().presence; });
}

}  // namespace

TEST_CASE("HELLO subscribes the device, publishes it online and is answered with WELCOME") {
  GatewayHarness h([](gateway::GatewayConfig& c) { c.keepalive = std::chrono::seconds(42); });
  TestDevice& dev = h.connectDevice("dev-1", "fw-1.4.2");

  auto calls = h.onLoop([&] { return h.bus().callsFor("dev-1"); });
  CHECK(calls == std::vector<std::string>{"subscribe dev-1", "presence dev-1 online"});

  auto presence = presenceOf(h);
  REQUIRE(presence.size() == 1);
  const Presence& online = presence[0];
  CHECK(online.device == "dev-1");
  CHECK(online.online);
  CHECK(online.node == GatewayHarness::kNode);
  CHECK(online.codeId == "fw-1.4.2");
  CHECK(online.epochMs > 0);
  CHECK(online.sinceMs == online.epochMs);
  CHECK(online.reason.empty());

  auto welcome = h.onLoop([&] { return *dev.welcome; });
  CHECK(welcome.node == GatewayHarness::kNode);
  CHECK(welcome.keepaliveSeconds == 42);
  // The session's epoch is the gateway's clock when it accepted HELLO.
  CHECK(welcome.serverTimeMs == online.epochMs);

  CHECK(h.onLoop([&] { return h.gateway().sessionCount(); }) == 1);
  CHECK(h.stats().devicesOnline.value() == 1);
  CHECK(h.stats().connectionsOpen.value() == 1);
  CHECK(h.stats().handshakesOk.value() == 1);
}

TEST_CASE("a second connection of the same device replaces the first without going offline") {
  GatewayHarness h;
  TestDevice& first = h.connectDevice("dev-1", "fw-1");
  TestDevice& second = h.connectDevice("dev-1", "fw-2");

  REQUIRE(h.waitFor([&] { return !first.offline.empty(); }));
  CHECK(h.onLoop([&] { return first.offline; }) == std::vector<std::string>{"bye:replaced"});
  CHECK(h.onLoop([&] { return second.offline.empty(); }));

  // Presence goes online twice, never offline; the subscription is made once and kept.
  auto calls = h.onLoop([&] { return h.bus().callsFor("dev-1"); });
  CHECK(calls == std::vector<std::string>{"subscribe dev-1", "presence dev-1 online",
                                          "presence dev-1 online"});
  auto presence = presenceOf(h);
  REQUIRE(presence.size() == 2);
  CHECK(presence[1].codeId == "fw-2");
  CHECK(presence[1].epochMs >= presence[0].epochMs);

  REQUIRE(h.waitFor([&] { return h.gateway().sessionCount() == 1; }));
  CHECK(h.stats().devicesOnline.value() == 1);
  CHECK(h.stats().connectionsOpen.value() == 1);

  // Agent messages now reach the newer connection.
  h.flushToDevice(second);
  CHECK(h.onLoop([&] { return first.messages.size(); }) == 0);
}

TEST_CASE("after the bus reconnects, every online device's presence is published again") {
  GatewayHarness h;
  h.connectDevice("dev-1", "fw-a");
  h.connectDevice("dev-2", "fw-b");
  auto before = presenceOf(h);
  REQUIRE(before.size() == 2);

  h.onLoop([&] { h.gateway().onBusConnection(false); });
  CHECK(h.stats().busConnected.value() == 0);
  CHECK(h.stats().busDisconnects.value() == 1);
  CHECK(presenceOf(h).size() == 2);

  h.onLoop([&] { h.gateway().onBusConnection(true); });
  CHECK(h.stats().busConnected.value() == 1);
  auto after = presenceOf(h);
  REQUIRE(after.size() == 4);
  for (const Presence& old : before) {
    INFO(old.device);
    auto again = std::find_if(after.begin() + 2, after.end(),
                              [&](const Presence& p) { return p.device == old.device; });
    REQUIRE(again != after.end());
    CHECK(again->online);
    CHECK(again->node == GatewayHarness::kNode);
    CHECK(again->codeId == old.codeId);
    // The same sessions: same epochs, so agents do not take them for new ones.
    CHECK(again->epochMs == old.epochMs);
  }
}

TEST_CASE("shutdown() says BYE shutting_down to every device and marks each offline") {
  GatewayHarness h;
  TestDevice& one = h.connectDevice("dev-1");
  TestDevice& two = h.connectDevice("dev-2");

  h.onLoop([&] { h.gateway().shutdown(); });
  REQUIRE(h.waitFor([&] { return !one.offline.empty() && !two.offline.empty(); }));
  CHECK(h.onLoop([&] { return one.offline.front(); }) == "bye:shutting_down");
  CHECK(h.onLoop([&] { return two.offline.front(); }) == "bye:shutting_down");

  for (const char* id : {"dev-1", "dev-2"}) {
    INFO(id);
    auto calls = h.onLoop([&] { return h.bus().callsFor(id); });
    CHECK(calls == std::vector<std::string>{"subscribe " + std::string(id),
                                            "presence " + std::string(id) + " online",
                                            "unsubscribe " + std::string(id),
                                            "presence " + std::string(id) + " offline"});
  }
  for (const Presence& p : presenceOf(h)) {
    if (p.online) continue;
    CHECK(p.reason == "shutting_down");
    CHECK(p.node == GatewayHarness::kNode);
  }
  CHECK(h.onLoop([&] { return h.bus().nodeStates; }) == std::vector<std::size_t>{0});
  CHECK(h.stats().devicesOnline.value() == 0);

  // The listener is closed: a new device cannot connect.
  TestDevice& late = h.startDevice("dev-3");
  REQUIRE(h.waitFor([&] { return !late.offline.empty(); }));
  CHECK_FALSE(h.onLoop([&] { return late.welcome.has_value(); }));
}

TEST_CASE("a device that says BYE goes offline with reason bye and is unsubscribed") {
  GatewayHarness h;
  TestDevice& dev = h.connectDevice("dev-1");
  h.onLoop([&] { dev.client->disconnect(); });

  REQUIRE(h.waitFor([&] { return h.bus().unsubscribed.size() == 1; }));
  auto presence = presenceOf(h);
  REQUIRE(presence.size() == 2);
  CHECK_FALSE(presence[1].online);
  CHECK(presence[1].reason == "bye");
  CHECK(presence[1].epochMs == presence[0].epochMs);
  CHECK(presence[1].sinceMs >= presence[1].epochMs);
  REQUIRE(h.waitFor([&] { return h.gateway().sessionCount() == 0; }));
  CHECK(h.stats().devicesOnline.value() == 0);
  CHECK(h.stats().connectionsOpen.value() == 0);
}

TEST_CASE("a device that reconnects resumes its TLS session under the same identity") {
  GatewayHarness h;
  TestDevice& dev = h.connectDevice("dev-1");
  CHECK_FALSE(h.onLoop([&] { return dev.client->lastHandshakeResumed(); }));
  h.onLoop([&] { dev.client->disconnect(); });
  REQUIRE(h.waitFor([&] { return h.gateway().sessionCount() == 0; }));

  h.onLoop([&] {
    dev.welcome.reset();
    dev.client->connect();
  });
  REQUIRE(h.waitFor([&] { return dev.welcome.has_value(); }));
  CHECK(h.onLoop([&] { return dev.client->lastHandshakeResumed(); }));
  CHECK(h.stats().handshakesResumed.value() == 1);
  CHECK(h.stats().handshakesOk.value() == 2);
  auto presence = presenceOf(h);
  REQUIRE(presence.size() == 3);
  CHECK(presence[2].device == "dev-1");
  CHECK(presence[2].online);
}

TEST_CASE("connections beyond max-connections are closed at once and counted") {
  GatewayHarness h([](gateway::GatewayConfig& c) { c.maxConnections = 1; });
  h.connectDevice("dev-1");
  TestDevice& extra = h.startDevice("dev-2");
  REQUIRE(h.waitFor([&] { return !extra.offline.empty(); }));
  CHECK_FALSE(h.onLoop([&] { return extra.welcome.has_value(); }));
  CHECK(
      h.stats().errors[static_cast<std::size_t>(gateway::ErrorReason::kConnectionLimit)]->value() ==
      1);
  CHECK(h.onLoop([&] { return h.gateway().sessionCount(); }) == 1);
  CHECK(h.onLoop([&] { return h.bus().callsFor("dev-2").empty(); }));
}

TEST_CASE("a device that keeps opening sessions is refused as flapping, others are not") {
  GatewayHarness h([](gateway::GatewayConfig& c) {
    c.flapMaxSessions = 3;
    c.flapWindow = std::chrono::seconds(60);
    c.flapBan = std::chrono::seconds(60);
  });
  TestDevice& bystander = h.connectDevice("dev-2");
  for (int i = 0; i < 3; ++i) h.connectDevice("dev-1");

  TestDevice& fourth = h.startDevice("dev-1");
  REQUIRE(h.waitFor([&] { return !fourth.offline.empty(); }));
  CHECK(h.onLoop([&] { return fourth.offline; }) == std::vector<std::string>{"bye:overloaded"});
  CHECK_FALSE(h.onLoop([&] { return fourth.welcome.has_value(); }));
  CHECK(h.stats().flappingBans.value() == 1);
  CHECK(h.stats().errors[static_cast<std::size_t>(gateway::ErrorReason::kFlapping)]->value() == 1);

  // Refused again while the ban lasts, without starting another ban.
  TestDevice& fifth = h.startDevice("dev-1");
  REQUIRE(h.waitFor([&] { return !fifth.offline.empty(); }));
  CHECK(h.stats().flappingBans.value() == 1);

  // The third session is still the device's; the bystander never noticed.
  CHECK(h.stats().devicesOnline.value() == 2);
  h.flushToDevice(bystander);
}

TEST_CASE("connection ids wrap without ever naming a live connection twice") {
  GatewayHarness h;
  TestDevice& first = h.connectDevice("dev-1");  // connection id 1
  h.onLoop([&] { h.gateway().setNextConnectionId(gateway::Gateway::kConnectionIdLimit - 1); });
  TestDevice& second = h.connectDevice("dev-2");  // the last id
  TestDevice& third = h.connectDevice("dev-3");   // wraps: 1 is live, so 2

  // Each device's publishes are confirmed to it and to no other.
  for (TestDevice* dev : {&first, &second, &third}) {
    auto before = h.onLoop([&] { return h.bus().publishes.size(); });
    h.onLoop([&] { dev->client->send("ping", {}, true); });
    REQUIRE(h.waitFor([&] { return h.bus().publishes.size() > before; }));
    auto token = h.onLoop([&] { return h.bus().publishes.back().token; });
    h.onLoop([&] { h.gateway().onPublished(token, true); });
    REQUIRE(h.waitFor([&] { return dev->acks.size() == 1; }));
  }
  CHECK(h.onLoop([&] { return first.acks.size() + second.acks.size() + third.acks.size(); }) == 3);
  CHECK(h.onLoop([&] { return first.offline.empty() && second.offline.empty(); }));
  CHECK(h.gateway().sessionCount() == 3);
}
