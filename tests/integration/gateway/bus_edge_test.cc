// The edges of the bus contract (docs/topics.md) through the real impgate binary and a real
// mosquitto: retained agent messages, and what a clean stop leaves behind when the broker is slow.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>
#include <vector>

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

// A TCP relay between impgate and the broker that can stall: while stalled it reads what the
// client sends but forwards none of it, as a broker too busy to read would look. Unlike a
// stopped broker it closes like a well-behaved peer: everything the client sent before closing
// is delivered, then FIN, so the broker sees exactly what the client said (a DISCONNECT, or none).
// (A SIGSTOPped broker is no good here: resumed after impgate exited, its first PUBACK to the
// closed socket draws a RST that discards the rest of what impgate sent, DISCONNECT included, so
// the broker publishes the will whatever impgate did.)
class StallingRelay {
 public:
  explicit StallingRelay(uint16_t brokerPort) : brokerPort_(brokerPort) {
    listenFd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(listenFd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    REQUIRE(::listen(listenFd_, 8) == 0);
    socklen_t len = sizeof addr;
    ::getsockname(listenFd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { run(); });
  }
  ~StallingRelay() {
    stop_ = true;
    thread_.join();
    for (auto& p : pairs_) {
      if (p.client >= 0) ::close(p.client);
      if (p.broker >= 0) ::close(p.broker);
    }
    ::close(listenFd_);
  }
  std::string uri() const { return "tcp://127.0.0.1:" + std::to_string(port_); }
  void stall(bool on) { stalled_ = on; }

 private:
  struct Pair {
    int client = -1;
    int broker = -1;
    std::string toBroker;  // read from the client, not yet forwarded
    bool clientEof = false;
    bool brokerEof = false;
  };

  void run() {
    auto end = std::chrono::steady_clock::now() + 120s;  // bounded even if never stopped
    while (!stop_ && std::chrono::steady_clock::now() < end) {
      std::vector<pollfd> fds{{listenFd_, POLLIN, 0}};
      for (auto& p : pairs_) {
        fds.push_back({p.clientEof || p.client < 0 ? -1 : p.client, POLLIN, 0});
        fds.push_back({p.brokerEof || p.broker < 0 ? -1 : p.broker, POLLIN, 0});
      }
      ::poll(fds.data(), fds.size(), 20);
      char buf[65536];
      for (std::size_t i = 0; i < (fds.size() - 1) / 2; ++i) {  // the pairs polled above
        Pair& p = pairs_[i];
        if (fds[1 + 2 * i].revents & (POLLIN | POLLHUP | POLLERR)) {
          ssize_t n = ::recv(p.client, buf, sizeof buf, 0);
          if (n > 0) {
            p.toBroker.append(buf, static_cast<std::size_t>(n));
          } else {
            p.clientEof = true;
          }
        }
        if (fds[2 + 2 * i].revents & (POLLIN | POLLHUP | POLLERR)) {
          ssize_t n = ::recv(p.broker, buf, sizeof buf, 0);
          if (n > 0) {
            // The client may be gone; what the broker says to it is dropped then.
            (void)::send(p.client, buf, static_cast<std::size_t>(n), MSG_NOSIGNAL);
          } else {
            p.brokerEof = true;
            ::shutdown(p.client, SHUT_WR);
          }
        }
        if (!stalled_ && !p.toBroker.empty()) {
          ssize_t n = ::send(p.broker, p.toBroker.data(), p.toBroker.size(), MSG_NOSIGNAL);
          if (n > 0) p.toBroker.erase(0, static_cast<std::size_t>(n));
        }
        if (!stalled_ && p.clientEof && p.toBroker.empty() && p.broker >= 0) {
          ::shutdown(p.broker, SHUT_WR);  // FIN after everything the client sent
        }
      }
      if (fds[0].revents & POLLIN) accept();  // after the loop: it may grow pairs_
    }
  }

  void accept() {
    int client = ::accept4(listenFd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (client < 0) return;
    int broker = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(brokerPort_);
    if (::connect(broker, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      ::close(client);
      ::close(broker);
      return;
    }
    pairs_.push_back(Pair{client, broker, {}, false, false});
  }

  uint16_t brokerPort_;
  uint16_t port_ = 0;
  int listenFd_ = -1;
  std::atomic<bool> stalled_{false};
  std::atomic<bool> stop_{false};
  std::vector<Pair> pairs_;  // relay thread only
  std::thread thread_;
};

}  // namespace

TEST_CASE("a retained agent message is never delivered to the device") {
  auto version = GENERATE(std::string("5"), std::string("3"));
  INFO("impgate --mqtt-version " << version);
  // Every QoS 1 message gets a receipt (MQTT 3.1.1 agents cannot ask), so the refusals show.
  GatewayFixture gw(withArgs({"--mqtt-version", version, "--receipts", "all"}));
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
  // More unacknowledged publishes than the MQTT client's in-flight window queue inside it, and
  // the offline states queue behind them. The window: under MQTT 5 the broker's receive maximum
  // (mosquitto's default of 20, which the fixture otherwise lifts), under 3.1.1 the bridge's own
  // limit of 1024.
  const int backlog = version == "5" ? 100 : 1100;
  MosquittoFixture broker(testbed::withConfig({"max_inflight_messages 20"}));
  StallingRelay relay(broker.port());
  GatewayFixtureOptions options;
  options.extraArgs = {"--mqtt-version", version, "--max-inflight", "4000"};
  options.brokerUri = relay.uri();
  GatewayFixture gw(options);
  auto dev = gw.connectDevice("dev-slow");
  MqttProbe watcher(broker.uri());
  REQUIRE(watcher.connect());
  REQUIRE(watcher.subscribe("imp/gw/" + gw.node() + "/state"));
  REQUIRE(watcher.subscribe("imp/dev/dev-slow/state"));
  REQUIRE(watcher.waitFor(statusIs("online"), 10s));
  double framesBefore = gw.metric("impgate_frames_in_total");

  relay.stall(true);
  for (int i = 0; i < backlog; ++i) {
    REQUIRE(dev->send("fill", std::to_string(i), false, 5s));
  }
  REQUIRE(waitUntil([&] { return gw.metric("impgate_frames_in_total") >= framesBefore + backlog; },
                    20s));
  watcher.clear();
  REQUIRE(::kill(gw.process().pid(), SIGTERM) == 0);
  REQUIRE(waitUntil([&] { return gw.process().exited(); }, 30s));
  relay.stall(false);

  // Either every offline state arrived, or the will did.
  auto isOffline = [&](const std::string& topic) {
    return [&, topic](const Message& m) { return m.topic == topic && statusIs("offline")(m); };
  };
  bool nodeOffline = watcher.waitFor(isOffline("imp/gw/" + gw.node() + "/state"), 10s).has_value();
  bool deviceOffline = watcher.waitFor(isOffline("imp/dev/dev-slow/state"), 1s).has_value();
  INFO("impgate log:\n" << gw.process().log() << "\nbroker log:\n" << broker.log());
  // A clean stop publishes the node's offline state itself, the will says the same: either way
  // it must be there. The device's own offline state comes only with a clean stop.
  CHECK(nodeOffline);
  INFO("device offline state seen: " << deviceOffline);
}

// Node names may contain '-': the broker connections of node "edge" must not share a client id
// with those of node "edge-2" (a broker drops the older of two connections with one id, so two
// such nodes would take each other's links down, again and again).
TEST_CASE("nodes whose names extend each other keep all their broker connections") {
  GatewayFixtureOptions first;
  first.node = "edge";
  GatewayFixture a(first);
  GatewayFixtureOptions second;
  second.node = "edge-2";
  second.brokerUri = a.broker().uri();
  GatewayFixture b(second);

  // Both nodes carry messages (each device lands on one of its node's links) ...
  MqttProbe agent(a.broker().uri());
  REQUIRE(agent.connect());
  REQUIRE(agent.subscribe("imp/dev/+/out/+"));
  for (auto* gw : {&a, &b}) {
    for (int i = 0; i < 8; ++i) {
      std::string id = gw->node() + "-dev-" + std::to_string(i);
      auto dev = gw->connectDevice(id);
      auto status = dev->send("ping", "x", true, 5s);
      REQUIRE(status);
      CHECK(*status == protocol::AckStatus::kOk);
      CHECK(agent.waitForTopic("imp/dev/" + id + "/out/ping", 5s));
    }
  }
  // ... and neither lost a connection to the broker on the way.
  for (auto* gw : {&a, &b}) {
    INFO("node " << gw->node() << ":\n" << gw->process().logTail(3000));
    CHECK(gw->process().log().find("lost broker connection") == std::string::npos);
    // The gauge is refreshed once a second.
    CHECK(waitUntil([&] { return gw->metric("impgate_bus_links_up") == 4; }, 3s));
  }
}
