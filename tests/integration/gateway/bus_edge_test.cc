// The edges of the bus contract (docs/topics.md) through the real impgate binary and a real
// mosquitto: retained agent messages, and what a clean stop leaves behind when the broker is slow.
#include <signal.h>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "tests/integration/gateway/gateway_fixture.h"
#include "tests/support/wait_until.h"

using namespace impgate;
using namespace impgate::testing;
using namespace std::chrono_literals;
using Message = MqttProbe::Message;

namespace {

auto statusIs(const std::string& status) {
  return [status](const Message& m) {
    auto j = nlohmann::json::parse(m.payload, nullptr, false);
    return !j.is_discarded() && j.value("status", "") == status;
  };
}

// The broker stopped (SIGSTOP) for the lifetime of this object: connections stay open, the
// kernel still takes bytes, but nothing is read or acknowledged. Resumes (SIGCONT) when destroyed,
// so a failing test never leaves it stopped.
class FrozenBroker {
 public:
  explicit FrozenBroker(MosquittoFixture& broker) : pid_(broker.pid()) {
    REQUIRE(pid_ > 0);
    REQUIRE(::kill(pid_, SIGSTOP) == 0);
  }
  ~FrozenBroker() { resume(); }
  void resume() {
    if (pid_ > 0) ::kill(pid_, SIGCONT);
    pid_ = -1;
  }

 private:
  pid_t pid_;
};

}  // namespace

TEST_CASE("a retained agent message is never delivered to the device") {
  auto version = GENERATE(std::string("5"), std::string("3"));
  INFO("impgate --mqtt-version " << version);
  GatewayFixture gw(withArgs({"--mqtt-version", version}));
  MqttProbe agent(gw.broker().uri());
  REQUIRE(agent.connect());
  REQUIRE(agent.subscribe("imp/dev/dev-ret/ack"));
  REQUIRE(agent.subscribe("imp/dev/dev-ret/state"));

  // Stored by the broker before the device (and so the gateway's subscription) exists.
  REQUIRE(agent.publish("imp/dev/dev-ret/in/cmd", "stored", 1, true));
  auto dev = gw.connectDevice("dev-ret");
  // The gateway subscribes before it publishes the presence, on one connection: once the
  // presence is here, the subscription is in place.
  REQUIRE(agent.waitFor(statusIs("online"), 5s));

  auto rejected = [&](const std::string& corr) {
    auto receipt = agent.waitFor(
        [&](const Message& m) {
          auto j = nlohmann::json::parse(m.payload, nullptr, false);
          return m.topic == "imp/dev/dev-ret/ack" && !j.is_discarded() &&
                 j.value("corr", "") == corr;
        },
        5s);
    REQUIRE(receipt);
    auto j = nlohmann::json::parse(receipt->payload);
    CHECK(j["status"] == "rejected");
    CHECK(j["event"] == "cmd");
    CHECK(j["seq"] == 0);
    CHECK(j["node"] == gw.node());
    return *receipt;
  };
  if (version == "3") {
    // MQTT 3.1.1 sends the stored message when the gateway subscribes, with the retain flag.
    rejected("");
  } else {
    // MQTT 5: the stored message is not sent at all ("do not send retained"), and one published
    // with the retain flag while the device is online keeps the flag ("retain as published").
    // MQTT 3.1.1 cannot tell that one from a live message (the broker clears the flag).
    REQUIRE(
        agent.publish("imp/dev/dev-ret/in/cmd", "live-retained", 1, true, std::string_view("c-r")));
    auto receipt = rejected("c-r");
    REQUIRE(receipt.correlationData);
    CHECK(*receipt.correlationData == "c-r");
  }
  // A plain message after them is the first thing the device gets.
  REQUIRE(agent.publish("imp/dev/dev-ret/in/cmd", "plain", 1));
  auto m = dev->nextMessage(5s);
  REQUIRE(m);
  CHECK(m->payload == "plain");
  CHECK_FALSE(dev->nextMessage(300ms));
  // Clear the retained message, as an agent that published one by mistake should.
  REQUIRE(agent.publish("imp/dev/dev-ret/in/cmd", "", 1, true));
}

TEST_CASE("a clean stop with a stalled broker leaves the node offline through the last will") {
  auto version = GENERATE(std::string("5"), std::string("3"));
  INFO("impgate --mqtt-version " << version);
  // mosquitto's default in-flight window (the fixture lifts it): MQTT 5 clients may have 20
  // QoS 1 publishes unacknowledged. More than that queue in the MQTT client, and the offline
  // states queue behind them while the socket still takes bytes.
  constexpr int kBacklog = 100;
  GatewayFixtureOptions options;
  options.extraArgs = {"--mqtt-version", version, "--max-inflight", "4000"};
  options.brokerConfig = {"max_inflight_messages 20"};
  GatewayFixture gw(options);
  auto dev = gw.connectDevice("dev-slow");
  {
    MqttProbe watcher(gw.broker().uri());
    REQUIRE(watcher.connect());
    REQUIRE(watcher.subscribe("imp/dev/dev-slow/state"));
    REQUIRE(watcher.waitFor(statusIs("online"), 5s));
  }
  double framesBefore = gw.metric("impgate_frames_in_total");

  FrozenBroker frozen(gw.broker());
  std::string error;
  for (int i = 0; i < kBacklog; ++i) {
    REQUIRE(dev->send("fill", std::to_string(i), false, 5s, error));
  }
  REQUIRE(waitUntil([&] { return gw.metric("impgate_frames_in_total") >= framesBefore + kBacklog; },
                    20s));

  REQUIRE(::kill(gw.process().pid(), SIGTERM) == 0);
  REQUIRE(waitUntil([&] { return gw.process().exited(); }, 30s));
  frozen.resume();

  // Either every offline state arrived, or the will did: the retained states say so.
  MqttProbe observer(gw.broker().uri());
  REQUIRE(observer.connect(10s));
  REQUIRE(observer.subscribe("imp/gw/" + gw.node() + "/state", 1, 10s));
  REQUIRE(observer.subscribe("imp/dev/dev-slow/state", 1, 10s));
  auto isOffline = [&](const std::string& topic) {
    return [&, topic](const Message& m) { return m.topic == topic && statusIs("offline")(m); };
  };
  bool nodeOffline = observer.waitFor(isOffline("imp/gw/" + gw.node() + "/state"), 10s).has_value();
  bool deviceOffline = observer.waitFor(isOffline("imp/dev/dev-slow/state"), 1s).has_value();
  INFO("impgate log:\n" << gw.process().log());
  CHECK((nodeOffline || deviceOffline));
}
