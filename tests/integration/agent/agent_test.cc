// The agent SDK against a real mosquitto. A MqttProbe plays the gateway: it publishes what the
// gateway would (device messages, presence, receipts) and watches what the agent sends.
#include "bus/agent/agent.h"

#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <mutex>
#include <string>
#include <vector>

#include "tests/support/mqtt_probe.h"
#include "tests/support/testbed.h"
#include "tests/support/wait_until.h"

using impgate::bus::Agent;
using impgate::bus::Receipt;
using impgate::bus::SendError;
using impgate::testing::MosquittoFixture;
using impgate::testing::MqttProbe;
using impgate::testing::waitUntil;
using namespace std::chrono_literals;

namespace {

// Lines recorded by handlers on Paho's thread, read by the test thread.
class Recorder {
 public:
  void add(std::string line) {
    std::lock_guard lock(mutex_);
    lines_.push_back(std::move(line));
  }
  std::size_t count(const std::string& line) const {
    std::lock_guard lock(mutex_);
    return static_cast<std::size_t>(std::count(lines_.begin(), lines_.end(), line));
  }
  bool has(const std::string& line) const { return count(line) > 0; }
  bool waitFor(const std::string& line, std::chrono::milliseconds deadline = 5s) const {
    return waitUntil([&] { return has(line); }, deadline);
  }
  std::vector<std::string> lines() const {
    std::lock_guard lock(mutex_);
    return lines_;
  }
  std::size_t size() const {
    std::lock_guard lock(mutex_);
    return lines_.size();
  }

 private:
  mutable std::mutex mutex_;
  std::vector<std::string> lines_;
};

std::string onlineState(int64_t epoch) {
  return R"({"status":"online","node":"gw1","code":"c1","since":)" + std::to_string(epoch + 1) +
         R"(,"epoch":)" + std::to_string(epoch) + "}";
}

std::string offlineState(int64_t epoch, const std::string& reason = "keepalive_timeout") {
  return R"({"status":"offline","node":"gw1","since":)" + std::to_string(epoch + 50) +
         R"(,"epoch":)" + std::to_string(epoch) + R"(,"reason":")" + reason + "\"}";
}

// A broker, a probe standing in for the gateway, and an agent that records everything.
struct Bench {
  MosquittoFixture broker;
  MqttProbe gateway{broker.uri(), "fake-gateway"};
  Recorder seen;
  Agent agent;

  explicit Bench(Agent::Options opts = {})
      : agent([&] {
          if (opts.brokerUri.empty()) opts.brokerUri = broker.uri();
          if (opts.clientId.empty()) opts.clientId = "agent-under-test";
          return opts;
        }()) {
    REQUIRE(gateway.connect());
    record(agent, seen);
  }

  static void record(Agent& agent, Recorder& seen) {
    agent.onConnect([&seen](const std::string& d) { seen.add("connect " + d); });
    agent.onDisconnect([&seen](const std::string& d, const std::string& r) {
      seen.add("disconnect " + d + " " + r);
    });
    agent.onReceipt([&seen](const Receipt& r) {
      seen.add("receipt " + r.device + " " + r.event + " " + std::to_string(r.seq) + " " +
               r.status + " " + r.node + " " + r.corr);
    });
  }

  // Device messages from one publisher arrive in order, so once this marker has been handled
  // everything published before it has been handled too.
  void sync(const std::string& marker) {
    REQUIRE(gateway.publish("imp/dev/sync/out/marker", marker));
    REQUIRE(seen.waitFor("marker " + marker));
  }
};

}  // namespace

TEST_CASE("device messages reach the handler for their event; unhandled ones are dropped") {
  Bench b;
  b.agent.on("temp", [&](const std::string& d, const std::string& p) {
    b.seen.add("temp " + d + " " + p);
  });
  b.agent.on("hum",
             [&](const std::string& d, const std::string& p) { b.seen.add("hum " + d + " " + p); });
  b.agent.on("marker",
             [&](const std::string&, const std::string& p) { b.seen.add("marker " + p); });
  REQUIRE(b.agent.start(5s));
  CHECK(b.agent.ready());

  REQUIRE(b.gateway.publish("imp/dev/d1/out/temp", "21.5"));
  REQUIRE(b.gateway.publish("imp/dev/d2/out/hum", std::string("4\0"
                                                              "0",
                                                              3)));
  REQUIRE(b.gateway.publish("imp/dev/d1/out/nobody", "lost"));
  b.sync("1");
  CHECK(b.seen.count("temp d1 21.5") == 1);
  CHECK(b.seen.count("hum d2 " + std::string("4\0"
                                             "0",
                                             3)) == 1);
  CHECK(b.seen.size() == 3);  // temp, hum, marker: "nobody" went nowhere

  // With onAny, events without their own handler land there instead.
  b.agent.onAny([&](const std::string& d, const std::string& e, const std::string& p) {
    b.seen.add("any " + d + " " + e + " " + p);
  });
  REQUIRE(b.gateway.publish("imp/dev/d1/out/nobody", "found"));
  REQUIRE(b.gateway.publish("imp/dev/d1/out/temp", "22"));
  b.sync("2");
  CHECK(b.seen.count("any d1 nobody found") == 1);
  CHECK(b.seen.count("temp d1 22") == 1);
  CHECK(b.seen.count("any d1 temp 22") == 0);

  // Topics outside the contract (bad ids, extra levels) are ignored.
  REQUIRE(b.gateway.publish("imp/dev/.bad/out/temp", "x"));
  b.sync("3");
  CHECK(b.seen.count("temp .bad x") == 0);
}

TEST_CASE("presence fires each transition once and ignores stale states") {
  Bench b;
  b.agent.on("marker",
             [&](const std::string&, const std::string& p) { b.seen.add("marker " + p); });
  // Retained before the agent starts: the agent learns it on subscribing.
  REQUIRE(b.gateway.publish("imp/dev/early/state", onlineState(500), 1, true));
  REQUIRE(b.agent.start(5s));
  REQUIRE(b.seen.waitFor("connect early"));
  CHECK(b.agent.isConnected("early"));

  const std::string topic = "imp/dev/d1/state";
  REQUIRE(b.gateway.publish(topic, onlineState(1000), 1, true));
  REQUIRE(b.gateway.publish(topic, onlineState(1000), 1, true));  // duplicate
  REQUIRE(b.seen.waitFor("connect d1"));
  CHECK(b.agent.isConnected("d1"));
  REQUIRE(b.gateway.publish(topic, offlineState(1000), 1, true));
  REQUIRE(b.gateway.publish(topic, offlineState(1000), 1, true));  // duplicate
  REQUIRE(b.seen.waitFor("disconnect d1 keepalive_timeout"));
  CHECK_FALSE(b.agent.isConnected("d1"));

  // The device comes back through another node; the old node's late offline must not win.
  REQUIRE(b.gateway.publish(topic, onlineState(2000), 1, true));
  REQUIRE(b.gateway.publish(topic, offlineState(1000, "node_lost"), 1, true));
  b.sync("1");
  CHECK(b.agent.isConnected("d1"));
  CHECK(b.seen.count("connect d1") == 2);
  CHECK(b.seen.count("disconnect d1 keepalive_timeout") == 1);
  CHECK(b.seen.count("disconnect d1 node_lost") == 0);

  // A new session while the previous one still looks online: it ended, the new one began.
  REQUIRE(b.gateway.publish(topic, onlineState(3000), 1, true));
  REQUIRE(b.seen.waitFor("disconnect d1 session_replaced"));
  REQUIRE(waitUntil([&] { return b.seen.count("connect d1") == 3; }, 5s));

  // Malformed states change nothing.
  REQUIRE(b.gateway.publish(topic, "not json", 1, true));
  b.sync("2");
  CHECK(b.agent.isConnected("d1"));
  CHECK_FALSE(b.agent.isConnected("never-seen"));
}

TEST_CASE("send() publishes agent->device messages with QoS and correlation data") {
  Bench b;
  REQUIRE(b.gateway.subscribe("imp/dev/+/in/+"));
  auto early = b.agent.send("d1", "led", "on");
  CHECK(early.error == SendError::kNotStarted);
  REQUIRE(b.agent.start(5s));

  auto sent = b.agent.send("d1", "led", "on");
  REQUIRE(sent.ok());
  CHECK_FALSE(sent.corr.empty());
  auto msg = b.gateway.waitForTopic("imp/dev/d1/in/led", 5s);
  REQUIRE(msg);
  CHECK(msg->payload == "on");
  CHECK(msg->qos == 1);
  CHECK_FALSE(msg->retained);
  REQUIRE(msg->correlationData);
  CHECK(*msg->correlationData == sent.corr);
  // QoS 1 asks for a receipt on the device's ack topic (MQTT 5 Response Topic).
  REQUIRE(msg->responseTopic);
  CHECK(*msg->responseTopic == "imp/dev/d1/ack");

  auto fireAndForget = b.agent.send("d1", "blink", std::string("\x00\xff", 2), 0);
  REQUIRE(fireAndForget.ok());
  CHECK(fireAndForget.corr != sent.corr);
  auto msg0 = b.gateway.waitForTopic("imp/dev/d1/in/blink", 5s);
  REQUIRE(msg0);
  CHECK(msg0->qos == 0);
  CHECK(msg0->payload == std::string("\x00\xff", 2));
  CHECK_FALSE(msg0->responseTopic);

  // The receipt request, explicitly: at QoS 0 too, or not at QoS 1.
  REQUIRE(b.agent.send("d1", "ask0", "x", 0, true).ok());
  auto ask0 = b.gateway.waitForTopic("imp/dev/d1/in/ask0", 5s);
  REQUIRE(ask0);
  CHECK(ask0->qos == 0);
  REQUIRE(ask0->responseTopic);
  CHECK(*ask0->responseTopic == "imp/dev/d1/ack");
  CHECK(ask0->correlationData);
  REQUIRE(b.agent.send("d1", "quiet1", "x", 1, false).ok());
  auto quiet1 = b.gateway.waitForTopic("imp/dev/d1/in/quiet1", 5s);
  REQUIRE(quiet1);
  CHECK(quiet1->qos == 1);
  CHECK_FALSE(quiet1->responseTopic);

  CHECK(b.agent.send("a/b", "led", "x").error == SendError::kInvalidDevice);
  CHECK(b.agent.send("+", "led", "x").error == SendError::kInvalidDevice);
  CHECK(b.agent.send("d1", "le#d", "x").error == SendError::kInvalidEvent);
  CHECK(b.agent.send("d1", "", "x").error == SendError::kInvalidEvent);
  CHECK(b.agent.send("d1", "led", "x", 2).error == SendError::kInvalidQos);

  b.agent.stop();
  CHECK(b.agent.send("d1", "led", "x").error == SendError::kNotStarted);
}

TEST_CASE("receipts reach onReceipt with the sender's correlation id") {
  Bench b;
  REQUIRE(b.agent.start(5s));
  auto sent = b.agent.send("d1", "led", "on");
  REQUIRE(sent.ok());

  std::string ack =
      R"({"event":"led","seq":17,"status":"delivered","node":"gw1","ts":1764115200000,"corr":")" +
      sent.corr + "\"}";
  REQUIRE(b.gateway.publish("imp/dev/d1/ack", ack, 1, false, sent.corr));
  CHECK(b.seen.waitFor("receipt d1 led 17 delivered gw1 " + sent.corr));

  // The corr may travel only as the MQTT 5 property.
  REQUIRE(b.gateway.publish("imp/dev/d1/ack", R"({"event":"led","seq":18,"status":"rejected"})", 1,
                            false, std::string_view("prop-only")));
  CHECK(b.seen.waitFor("receipt d1 led 18 rejected  prop-only"));
}

TEST_CASE("after the broker restarts the agent subscribes again and keeps receiving") {
  Bench b;
  b.agent.on("temp", [&](const std::string& d, const std::string& p) {
    b.seen.add("temp " + d + " " + p);
  });
  REQUIRE(b.agent.start(5s));
  REQUIRE(b.gateway.publish("imp/dev/d1/out/temp", "before"));
  REQUIRE(b.seen.waitFor("temp d1 before"));

  b.broker.restart();
  REQUIRE(waitUntil([&] { return !b.agent.ready(); }, 5s));
  // Paho retries after 1 s, then backs off; a fresh broker is up well before that.
  REQUIRE(waitUntil([&] { return b.agent.ready(); }, 20s));
  REQUIRE(waitUntil([&] { return b.gateway.connected(); }, 20s));
  REQUIRE(b.gateway.publish("imp/dev/d1/out/temp", "after"));
  CHECK(b.seen.waitFor("temp d1 after"));

  // Sending works again too.
  REQUIRE(b.gateway.subscribe("imp/dev/+/in/+"));
  REQUIRE(b.agent.send("d1", "led", "back").ok());
  CHECK(b.gateway.waitForTopic("imp/dev/d1/in/led", 5s));
}

TEST_CASE("stop() returns promptly while the broker is down, and start() works again") {
  Bench b;
  REQUIRE(b.agent.start(5s));
  b.broker.stop();
  REQUIRE(waitUntil([&] { return !b.agent.ready(); }, 5s));
  auto t0 = std::chrono::steady_clock::now();
  b.agent.stop();
  CHECK(std::chrono::steady_clock::now() - t0 < 3s);
  CHECK(b.agent.send("d1", "led", "x").error == SendError::kNotStarted);

  b.broker.restart();
  REQUIRE(b.agent.start(5s));
  CHECK(b.agent.ready());
}

TEST_CASE("agents in a shared group split device messages and see only their own receipts") {
  MosquittoFixture broker;
  MqttProbe gateway(broker.uri(), "fake-gateway");
  REQUIRE(gateway.connect());
  Recorder seenA, seenB;
  Agent a({.brokerUri = broker.uri(), .clientId = "agent-a", .sharedGroup = "workers"});
  Agent b({.brokerUri = broker.uri(), .clientId = "agent-b", .sharedGroup = "workers"});
  for (auto [agent, seen] : {std::pair{&a, &seenA}, std::pair{&b, &seenB}}) {
    Recorder* rec = seen;
    agent->on("n", [rec](const std::string&, const std::string& p) { rec->add("n " + p); });
    Bench::record(*agent, *rec);
    REQUIRE(agent->start(5s));
  }

  constexpr int kMessages = 20;
  for (int i = 0; i < kMessages; ++i) {
    REQUIRE(gateway.publish("imp/dev/d1/out/n", std::to_string(i)));
  }
  REQUIRE(waitUntil([&] { return seenA.size() + seenB.size() == kMessages; }, 5s));
  for (int i = 0; i < kMessages; ++i) {
    CHECK(seenA.count("n " + std::to_string(i)) + seenB.count("n " + std::to_string(i)) == 1);
  }

  // Presence still reaches every instance, so each can answer isConnected().
  REQUIRE(gateway.publish("imp/dev/d1/state", onlineState(1000), 1, true));
  CHECK(seenA.waitFor("connect d1"));
  CHECK(seenB.waitFor("connect d1"));

  auto sentA = a.send("d1", "x", "1");
  auto sentB = b.send("d1", "x", "2");
  REQUIRE(sentA.ok());
  REQUIRE(sentB.ok());
  auto ackFor = [](const std::string& corr, int seq) {
    return R"({"event":"x","seq":)" + std::to_string(seq) +
           R"(,"status":"delivered","node":"gw1","ts":1,"corr":")" + corr + "\"}";
  };
  REQUIRE(gateway.publish("imp/dev/d1/ack", ackFor(sentA.corr, 1)));
  REQUIRE(gateway.publish("imp/dev/d1/ack", ackFor(sentB.corr, 2)));
  REQUIRE(seenA.waitFor("receipt d1 x 1 delivered gw1 " + sentA.corr));
  REQUIRE(seenB.waitFor("receipt d1 x 2 delivered gw1 " + sentB.corr));
  CHECK_FALSE(seenA.has("receipt d1 x 2 delivered gw1 " + sentB.corr));
  CHECK_FALSE(seenB.has("receipt d1 x 1 delivered gw1 " + sentA.corr));
}

TEST_CASE("an MQTT 3.1.1 agent works without correlation ids") {
  Bench b({.mqtt5 = false});
  b.agent.on("temp", [&](const std::string& d, const std::string& p) {
    b.seen.add("temp " + d + " " + p);
  });
  REQUIRE(b.gateway.subscribe("imp/dev/+/in/+"));
  REQUIRE(b.agent.start(5s));
  REQUIRE(b.gateway.publish("imp/dev/d1/out/temp", "20"));
  CHECK(b.seen.waitFor("temp d1 20"));
  auto sent = b.agent.send("d1", "led", "on");
  REQUIRE(sent.ok());
  CHECK(sent.corr.empty());
  auto msg = b.gateway.waitForTopic("imp/dev/d1/in/led", 5s);
  REQUIRE(msg);
  CHECK_FALSE(msg->correlationData);
  CHECK_FALSE(msg->responseTopic);  // 3.1.1 has no properties: receipts need --receipts all
}

TEST_CASE("start() gives up at its deadline when no broker answers, and bad options fail") {
  auto port = impgate::testing::freeLoopbackPort();
  Agent agent({.brokerUri = "tcp://127.0.0.1:" + std::to_string(port), .clientId = "lonely"});
  auto t0 = std::chrono::steady_clock::now();
  CHECK_FALSE(agent.start(600ms));
  CHECK(std::chrono::steady_clock::now() - t0 < 3s);
  CHECK_FALSE(agent.ready());

  Agent badPrefix({.brokerUri = "tcp://127.0.0.1:1", .prefix = "imp/+"});
  CHECK_FALSE(badPrefix.start(100ms));
  CHECK(badPrefix.send("d1", "e", "x").error == SendError::kNotStarted);
  Agent badUri({.brokerUri = "bogus://nowhere"});
  CHECK_FALSE(badUri.start(100ms));
}

// mosquitto's stock settings announce a receive maximum of 20 to MQTT 5 clients: sends beyond
// it wait in the client instead of being refused (Paho's default buffer held 100). Paho sends
// what waits only about once a second once the window is full (docs/agents.md), so the burst
// is kept small: 20 in flight and 110 waiting.
TEST_CASE("an MQTT 5 agent's burst of QoS 1 messages beyond the broker's window is not refused") {
  impgate::testbed::MosquittoOptions stock;
  stock.stockSettings = true;
  MosquittoFixture broker(stock);
  MqttProbe gateway(broker.uri());
  REQUIRE(gateway.connect());
  REQUIRE(gateway.subscribe("imp/dev/+/in/+", 0));
  Agent::Options options;
  options.brokerUri = broker.uri();
  Agent agent(options);
  REQUIRE(agent.start(5s));
  constexpr int kCount = 130;
  for (int i = 0; i < kCount; ++i) {
    auto sent = agent.send("d1", "n", std::to_string(i), 1, false);
    INFO("send " << i << ": " << sent.message);
    REQUIRE(sent.ok());
  }
  auto any = [](const MqttProbe::Message&) { return true; };
  bool all = waitUntil([&] { return gateway.count(any) >= kCount; }, 30s);
  INFO("received " << gateway.count(any) << "\n" << broker.logTail(2000));
  CHECK(all);
}
