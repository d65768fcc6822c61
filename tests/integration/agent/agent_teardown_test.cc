// Destroying an Agent while Paho's threads are busy with it (docs/agents.md, "Destroying an
// Agent"): while a handler runs on another thread, while messages keep arriving, and from inside
// its own handler. Meant to run under ThreadSanitizer and AddressSanitizer too (tools/test.sh);
// every loop is bounded in count and time.
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include "bus/agent/agent.h"
#include "tests/support/mqtt_probe.h"
#include "tests/support/testbed.h"
#include "tests/support/wait_until.h"

using impgate::bus::Agent;
using impgate::testing::MosquittoFixture;
using impgate::testing::MqttProbe;
using impgate::testing::waitUntil;
using namespace std::chrono_literals;

namespace {

std::unique_ptr<Agent> startedAgent(const MosquittoFixture& broker, const std::string& id) {
  auto agent = std::make_unique<Agent>(Agent::Options{.brokerUri = broker.uri(), .clientId = id});
  return agent;
}

// Publishes device messages as fast as the broker takes them until stopped (bounded by count and
// time).
class Flood {
 public:
  explicit Flood(const MosquittoFixture& broker) : probe_(broker.uri(), "flood") {
    REQUIRE(probe_.connect());
    thread_ = std::thread([this] {
      auto end = std::chrono::steady_clock::now() + 120s;
      for (int i = 0; i < 5000000 && !stop_ && std::chrono::steady_clock::now() < end; ++i) {
        // QoS 1 waits for the broker, which paces the flood.
        probe_.publish("imp/dev/d" + std::to_string(i % 7) + "/out/tick", std::to_string(i), 1);
      }
    });
  }
  ~Flood() {
    stop_ = true;
    thread_.join();
  }

 private:
  MqttProbe probe_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace

TEST_CASE("destroying an Agent waits for a handler running on Paho's thread") {
  MosquittoFixture broker;
  MqttProbe gateway(broker.uri(), "fake-gateway");
  REQUIRE(gateway.connect());
  for (int round = 0; round < 5; ++round) {
    auto agent = startedAgent(broker, "agent-wait-" + std::to_string(round));
    std::atomic<bool> entered{false};
    std::atomic<bool> finished{false};
    std::atomic<bool> destroyed{false};
    std::atomic<int> afterDestroy{0};
    // Plain (non-atomic) state the handler writes: TSan sees a race if the destructor does not
    // synchronise with the handler's end.
    int handlerWrites = 0;
    agent->on("slow", [&](const std::string&, const std::string&) {
      if (destroyed) ++afterDestroy;
      entered = true;
      std::this_thread::sleep_for(100ms);
      ++handlerWrites;
      finished = true;
    });
    REQUIRE(agent->start(5s));
    REQUIRE(gateway.publish("imp/dev/d1/out/slow", "x"));
    REQUIRE(waitUntil([&] { return entered.load(); }, 5s));
    agent.reset();
    destroyed = true;
    CHECK(finished);
    CHECK(handlerWrites == 1);
    // Nothing may run after the destructor returned, even with messages still arriving.
    REQUIRE(gateway.publish("imp/dev/d1/out/slow", "y"));
    std::this_thread::sleep_for(50ms);
    CHECK(afterDestroy == 0);
  }
}

TEST_CASE("destroying an Agent while messages keep arriving is clean") {
  MosquittoFixture broker;
  Flood flood(broker);
  for (int round = 0; round < 20; ++round) {
    std::atomic<int> handled{0};
    std::atomic<bool> destroyed{false};
    std::atomic<int> afterDestroy{0};
    auto agent = startedAgent(broker, "agent-flood-" + std::to_string(round));
    agent->on("tick", [&](const std::string&, const std::string&) {
      if (destroyed) ++afterDestroy;
      ++handled;
    });
    agent->onConnect([&](const std::string&) { ++handled; });
    REQUIRE(agent->start(5s));
    REQUIRE(waitUntil([&] { return handled.load() >= 20; }, 5s));
    agent.reset();
    destroyed = true;
    CHECK(afterDestroy == 0);
  }
}

TEST_CASE("a handler may destroy its own Agent; no handler runs after that") {
  MosquittoFixture broker;
  MqttProbe gateway(broker.uri(), "fake-gateway");
  REQUIRE(gateway.connect());
  for (int round = 0; round < 5; ++round) {
    std::unique_ptr<Agent> agent = startedAgent(broker, "agent-self-" + std::to_string(round));
    std::atomic<int> calls{0};
    std::atomic<bool> returned{false};
    agent->on("bye", [&](const std::string&, const std::string&) {
      if (++calls > 1) return;
      agent.reset();  // destroys the Agent whose handler this is
      returned = true;
    });
    REQUIRE(agent->start(5s));
    REQUIRE(gateway.publish("imp/dev/d1/out/bye", "1"));
    REQUIRE(gateway.publish("imp/dev/d1/out/bye", "2"));
    REQUIRE(waitUntil([&] { return returned.load(); }, 5s));
    std::this_thread::sleep_for(100ms);
    CHECK(calls == 1);
  }
}
