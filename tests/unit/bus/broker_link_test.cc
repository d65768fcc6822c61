// The contract of bus::mqtt::BrokerLink, against a scripted broker on the same event loop
// (tests/support/scripted_broker.h): flow control within the broker's receive maximum, one
// write per loop pass, onPublished exactly once per token, what survives a broken connection,
// the fallback to MQTT 3.1.1, keepalive, the bounded queue, the broker ending the connection,
// close() with and without the last will. Broker URIs: broker_uri_test.cc.
#include "bus/mqtt/broker_link.h"

#include <poll.h>
#include <sys/socket.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <cerrno>
#include <chrono>
#include <functional>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "gateway/base/net/event_loop.h"
#include "tests/support/scripted_broker.h"

namespace impgate::bus::mqtt {
namespace {

using namespace std::chrono_literals;
using testing::ConnackScript;
using testing::ReceivedPacket;
using testing::ScriptedBroker;

struct Events final : LinkListener {
  int up = 0;
  int down = 0;
  int failedAttempts = 0;
  std::vector<std::string> order;  // "up", "down", "failed" as they came
  std::vector<std::string> downReasons;
  std::vector<std::string> failReasons;
  std::vector<std::pair<uint64_t, bool>> published;
  std::vector<std::string> messages;  // payloads, while keepMessages
  std::size_t messageCount = 0;
  bool keepMessages = true;
  int workPerMessage = 0;  // a busy loop of this many steps per message
  std::atomic<int> sink{0};
  std::function<void()> whenUp;

  void onLinkUp() override {
    ++up;
    order.push_back("up");
    if (whenUp) whenUp();
  }
  void onLinkDown(std::string_view reason) override {
    ++down;
    order.push_back("down");
    downReasons.emplace_back(reason);
  }
  void onConnectFailed(std::string_view reason) override {
    ++failedAttempts;
    order.push_back("failed");
    failReasons.emplace_back(reason);
  }
  void onPublished(uint64_t token, bool ok) override { published.emplace_back(token, ok); }
  void onMessage(const PublishIn& message) override {
    ++messageCount;
    if (keepMessages) messages.emplace_back(message.payload.begin(), message.payload.end());
    for (int i = 0; i < workPerMessage; ++i) sink.fetch_add(1, std::memory_order_relaxed);
  }
  // How often onPublished reported `token`.
  int reports(uint64_t token) const {
    int n = 0;
    for (const auto& [t, ok] : published) n += t == token;
    return n;
  }
};

struct Rig {
  net::EventLoop loop;
  ScriptedBroker broker{loop};
  Events events;
  std::unique_ptr<BrokerLink> link;

  LinkOptions options() const {
    LinkOptions o;
    o.broker.host = "127.0.0.1";
    o.broker.port = broker.port();
    o.clientId = "link-test";
    o.retryMin = 20ms;
    o.retryMax = 200ms;
    o.connectTimeout = 2000ms;
    return o;
  }
  void make(LinkOptions o) { link = std::make_unique<BrokerLink>(loop, std::move(o), events); }
  void start(LinkOptions o) {
    make(std::move(o));
    link->start();
  }
  bool until(const std::function<bool()>& done, std::chrono::milliseconds limit = 5000ms) {
    return loop.runUntil(done, limit);
  }
  // Runs the loop for `span` of real time: only for checking that something does NOT happen.
  void settle(std::chrono::milliseconds span = 100ms) {
    (void)loop.runUntil([] { return false; }, span);
  }
  bool publish(std::string_view topic, std::string_view payload, uint64_t token) {
    PublishOptions p;
    p.topic = topic;
    p.payload = std::span(reinterpret_cast<const uint8_t*>(payload.data()), payload.size());
    p.qos = 1;
    return link->publish(p, token);
  }
  std::vector<std::string> payloadsOn(int connection) const {
    std::vector<std::string> out;
    for (const auto* r : broker.packets(PacketType::kPublish)) {
      if (r->connection == connection) out.push_back(r->payload);
    }
    return out;
  }
};

ConnackScript v5Connack(std::optional<uint16_t> receiveMaximum = std::nullopt) {
  ConnackScript c;
  c.receiveMaximum = receiveMaximum;
  return c;
}

ConnackScript v311Connack(uint8_t code) {
  ConnackScript c;
  c.as311 = true;
  c.code = code;
  return c;
}

// ---- flow control ----

TEST_CASE("BrokerLink keeps exactly the broker's receive maximum unacknowledged, in order") {
  Rig rig;
  rig.broker.defaultConnack = v5Connack(5);
  rig.broker.autoPuback = false;
  rig.start(rig.options());
  REQUIRE(rig.until([&] { return rig.link->up(); }));
  CHECK(rig.link->window() == 5);

  for (uint64_t i = 1; i <= 20; ++i) {
    REQUIRE(rig.publish("t/flow", "p" + std::to_string(i), i));
  }
  REQUIRE(rig.until([&] { return rig.broker.count(PacketType::kPublish) == 5; }));
  rig.settle();
  // The window is full, not over-used: five at the broker, fifteen waiting.
  CHECK(rig.broker.count(PacketType::kPublish) == 5);
  CHECK(rig.broker.withheldPubacks() == 5);
  CHECK(rig.link->inflight() == 5);
  CHECK(rig.link->queued() == 15);

  // Acknowledgements released one by one move the queue one by one, in publish order.
  for (std::size_t acked = 1; acked <= 15; ++acked) {
    rig.broker.releasePubacks(1);
    REQUIRE(rig.until([&] { return rig.broker.count(PacketType::kPublish) == 5 + acked; }));
    CHECK(rig.broker.withheldPubacks() == 5);
    CHECK(rig.link->inflight() == 5);
    CHECK(rig.link->queued() == 15 - acked);
  }
  rig.broker.releasePubacks(5);
  REQUIRE(rig.until([&] { return rig.events.published.size() == 20; }));
  CHECK(rig.link->idle());

  std::vector<std::string> expected;
  for (int i = 1; i <= 20; ++i) expected.push_back("p" + std::to_string(i));
  CHECK(rig.payloadsOn(1) == expected);
  for (uint64_t i = 1; i <= 20; ++i) {
    CHECK(rig.events.published[i - 1] == std::pair<uint64_t, bool>(i, true));
  }
}

TEST_CASE("BrokerLink's window is the smaller of maxInflight and the receive maximum") {
  Rig rig;
  rig.broker.autoPuback = false;
  LinkOptions o = rig.options();
  std::size_t expected = 0;
  SECTION("our cap below the broker's") {
    rig.broker.defaultConnack = v5Connack(5);
    o.maxInflight = 3;
    expected = 3;
  }
  SECTION("the broker's below ours") {
    rig.broker.defaultConnack = v5Connack(4);
    o.maxInflight = 8;
    expected = 4;
  }
  SECTION("MQTT 5 without a receive maximum: ours") {
    rig.broker.defaultConnack = v5Connack();
    o.maxInflight = 6;
    expected = 6;
  }
  SECTION("MQTT 3.1.1: ours") {
    rig.broker.defaultConnack = v311Connack(0);
    o.version = Version::k311;
    o.maxInflight = 7;
    expected = 7;
  }
  rig.start(o);
  REQUIRE(rig.until([&] { return rig.link->up(); }));
  CHECK(rig.link->window() == expected);
  for (uint64_t i = 1; i <= 12; ++i) REQUIRE(rig.publish("t/w", "x", i));
  REQUIRE(rig.until([&] { return rig.broker.count(PacketType::kPublish) == expected; }));
  rig.settle();
  CHECK(rig.broker.count(PacketType::kPublish) == expected);
  CHECK(rig.link->queued() == 12 - expected);
}

// ---- batching ----

TEST_CASE("BrokerLink writes what one loop pass queued in one go, publishes and PUBACKs alike") {
  Rig rig;
  rig.start(rig.options());
  REQUIRE(rig.until([&] { return rig.link->up(); }));
  rig.settle(50ms);  // CONNECT's segments are counted before

  SECTION("200 publishes") {
    const uint64_t segments = rig.broker.dataSegmentsIn();
    const std::size_t reads = rig.broker.reads();
    for (uint64_t i = 1; i <= 200; ++i) REQUIRE(rig.publish("t/batch", "payload", i));
    REQUIRE(rig.until([&] { return rig.events.published.size() == 200; }));
    CHECK(rig.broker.count(PacketType::kPublish) == 200);
    // One write of ~5 KB is one segment on loopback; a write per publish would be 200.
    CHECK(rig.broker.dataSegmentsIn() - segments <= 3);
    CHECK(rig.broker.reads() - reads <= 2);
  }
  SECTION("PUBACKs for 200 broker PUBLISHes") {
    const uint64_t segments = rig.broker.dataSegmentsIn();
    rig.broker.sendPublishes("in/batch", 200);
    REQUIRE(rig.until([&] { return rig.broker.count(PacketType::kPuback) == 200; }));
    CHECK(rig.events.messages.size() == 200);
    CHECK(rig.broker.dataSegmentsIn() - segments <= 3);
  }
}

TEST_CASE("BrokerLink reading a flood from the broker lets the rest of the loop run") {
  Rig rig;
  rig.start(rig.options());
  REQUIRE(rig.until([&] { return rig.link->up(); }));
  // The listener takes a little time per message, as the gateway's does, so that the broker
  // (a thread writing pre-encoded packets) sends faster than the link can take them.
  rig.events.keepMessages = false;
  rig.events.workPerMessage = 20;

  Bytes flood;
  for (int i = 0; i < 20000; ++i) {
    PublishOptions p;
    p.topic = "in/flood";
    static constexpr uint8_t kPayload[] = {'f', 'l', 'o', 'o', 'd'};
    p.payload = kPayload;
    p.qos = 0;
    encodePublish(flood, Version::k5, p);
  }
  const int fd = rig.broker.connectionFd();
  REQUIRE(fd >= 0);
  std::atomic<bool> floodDone{false};
  std::atomic<int> ticksDuringFlood{0};
  std::thread writer([&] {
    // Floods until the loop's timer has run a few times, or for 3 s. Every round is written
    // whole (a packet cut off would break the stream), within 2 s more at the most.
    const auto end = std::chrono::steady_clock::now() + 3s;
    while (ticksDuringFlood < 5 && std::chrono::steady_clock::now() < end) {
      std::size_t sent = 0;
      while (sent < flood.size() && std::chrono::steady_clock::now() < end + 2s) {
        ssize_t n = ::send(fd, flood.data() + sent, flood.size() - sent, MSG_NOSIGNAL);
        if (n > 0) {
          sent += static_cast<std::size_t>(n);
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
          pollfd p{fd, POLLOUT, 0};
          (void)::poll(&p, 1, 100);
        } else {
          break;
        }
      }
    }
    floodDone = true;
  });
  auto timer = rig.loop.runEvery(5ms, [&] {
    if (!floodDone) ++ticksDuringFlood;
  });
  const bool finished = rig.until([&] { return floodDone.load(); }, 10000ms);
  writer.join();
  rig.loop.cancel(timer);
  REQUIRE(finished);
  INFO("messages taken during the flood: " << rig.events.messageCount);
  CHECK(rig.events.messageCount > 0);
  // A fair link takes a budget per pass and lets timers and other sockets run between; a link
  // that reads until the socket is dry starves them for as long as the flood lasts.
  CHECK(ticksDuringFlood >= 5);
  CHECK(rig.link->up());
}

// ---- onPublished ----

TEST_CASE("BrokerLink reports each token exactly once; a refusing PUBACK gives ok=false") {
  Rig rig;
  rig.broker.autoPuback = false;
  rig.start(rig.options());
  REQUIRE(rig.until([&] { return rig.link->up(); }));
  REQUIRE(rig.publish("t/a", "1", 1));
  REQUIRE(rig.publish("t/a", "no token", 0));
  REQUIRE(rig.publish("t/a", "2", 2));
  REQUIRE(rig.publish("t/a", "3", 3));
  REQUIRE(rig.until([&] { return rig.broker.withheldPubacks() == 4; }));

  rig.broker.releasePubacks(1);  // success
  REQUIRE(rig.until([&] { return rig.events.published.size() == 1; }));
  rig.broker.releasePubacks(1);  // token 0: nothing to report
  REQUIRE(rig.until([&] { return rig.link->inflight() == 2; }));
  rig.broker.releasePubacks(1, 0x87);  // not authorized
  rig.broker.releasePubacks(1, 0x10);  // no matching subscribers: still a success
  REQUIRE(rig.until([&] { return rig.link->inflight() == 0; }));
  rig.settle();
  using Report = std::pair<uint64_t, bool>;
  CHECK(rig.events.published == std::vector<Report>{{1, true}, {2, false}, {3, true}});
}

// ---- a broken connection ----

TEST_CASE("BrokerLink after a broken connection: tokens fail once, token-0 publishes go first") {
  Rig rig;
  rig.broker.defaultConnack = v5Connack(4);
  rig.broker.autoPuback = false;
  rig.start(rig.options());
  REQUIRE(rig.until([&] { return rig.link->up(); }));

  REQUIRE(rig.publish("t/k", "keep1", 0));
  REQUIRE(rig.publish("t/k", "tok11", 11));
  REQUIRE(rig.publish("t/k", "keep2", 0));
  REQUIRE(rig.publish("t/k", "tok12", 12));
  REQUIRE(rig.publish("t/k", "queued0", 0));  // the window is full: these wait
  REQUIRE(rig.publish("t/k", "queued13", 13));
  REQUIRE(rig.until([&] { return rig.broker.withheldPubacks() == 4; }));
  CHECK(rig.link->queued() == 2);

  // What the owner publishes once the link is back comes after all of the above.
  rig.events.whenUp = [&] {
    if (rig.events.up == 2) CHECK(rig.publish("t/k", "later14", 14));
  };
  rig.broker.autoPuback = true;  // the next connection acknowledges everything
  rig.broker.dropConnection();

  REQUIRE(rig.until([&] { return rig.events.up == 2 && rig.link->idle(); }));
  rig.settle();
  CHECK(rig.events.order == std::vector<std::string>{"up", "down", "up"});
  CHECK(rig.events.downReasons.at(0).find("closed") != std::string::npos);
  CHECK(rig.payloadsOn(2) ==
        std::vector<std::string>{"keep1", "keep2", "queued0", "queued13", "later14"});
  CHECK(rig.events.reports(11) == 1);
  CHECK(rig.events.reports(12) == 1);
  CHECK(rig.events.reports(13) == 1);
  CHECK(rig.events.reports(14) == 1);
  CHECK(rig.events.reports(0) == 0);
  for (const auto& [token, ok] : rig.events.published) CHECK(ok == (token == 13 || token == 14));
  // The tokens failed after onLinkDown was told, before the link came back.
  REQUIRE(rig.events.published.size() == 4);
  CHECK(rig.events.published[0].first == 11);
  CHECK(rig.events.published[1].first == 12);
}

// ---- version fallback ----

TEST_CASE("BrokerLink falls back to MQTT 3.1.1 at once when no version is configured") {
  Rig rig;
  ConnackScript refuse = v311Connack(1);  // unacceptable protocol version
  SECTION("3.1.1-shaped refusal") {}
  SECTION("MQTT 5 reason 0x84") {
    refuse = v5Connack();
    refuse.code = reason::kUnsupportedProtocolVersion;
  }
  rig.broker.connacks.push_back(refuse);
  rig.broker.defaultConnack = v311Connack(0);
  LinkOptions o = rig.options();
  o.retryMin = 5000ms;  // "at once" must not mean "after the backoff"
  rig.make(o);
  // Queued before the first connection, so encoded for MQTT 5 at first.
  REQUIRE(rig.publish("t/v", "first", 1));
  REQUIRE(rig.publish("t/v", "second", 0));
  rig.link->start();

  REQUIRE(rig.until([&] { return rig.link->up(); }, 2000ms));
  CHECK(rig.link->version() == Version::k311);
  CHECK(rig.events.order == std::vector<std::string>{"failed", "up"});
  auto connects = rig.broker.packets(PacketType::kConnect);
  REQUIRE(connects.size() == 2);
  CHECK(connects[0]->protocolLevel == 5);
  CHECK(connects[1]->protocolLevel == 4);
  CHECK(connects[1]->protocolName == "MQTT");

  REQUIRE(rig.until([&] { return rig.events.published.size() == 1 && rig.link->idle(); }));
  // Decoded as 3.1.1: a left-over MQTT 5 property length would show in the payload.
  auto publishes = rig.broker.packets(PacketType::kPublish);
  REQUIRE(publishes.size() == 2);
  CHECK(publishes[0]->topic == "t/v");
  CHECK(publishes[0]->payload == "first");
  CHECK(publishes[1]->payload == "second");
  CHECK(publishes[0]->packetId != 0);
  CHECK(rig.events.published[0] == std::pair<uint64_t, bool>(1, true));
}

TEST_CASE("BrokerLink announces a Receive Maximum in its MQTT 5 CONNECT only when set") {
  // CONNECT body: "MQTT" (6 bytes), level, flags, keepalive (2), then the property length at
  // byte 10 and the properties: Receive Maximum (0x21) first when announced, then Maximum
  // Packet Size (0x27).
  auto propertiesOf = [](const ReceivedPacket& connect) {
    REQUIRE(connect.body.size() > 11);
    std::size_t length = connect.body[10];
    REQUIRE(connect.body.size() >= 11 + length);
    return std::vector<uint8_t>(connect.body.begin() + 11,
                                connect.body.begin() + 11 + static_cast<std::ptrdiff_t>(length));
  };
  SECTION("set: the link takes that many unacknowledged publishes from the broker") {
    Rig rig;
    LinkOptions o = rig.options();
    o.receiveMaximum = 65535;
    rig.start(o);
    REQUIRE(rig.until([&] { return rig.link->up(); }));
    auto connects = rig.broker.packets(PacketType::kConnect);
    REQUIRE(connects.size() == 1);
    auto properties = propertiesOf(*connects[0]);
    REQUIRE(properties.size() == 8);
    CHECK(properties[0] == 0x21);
    CHECK(properties[1] == 0xFF);
    CHECK(properties[2] == 0xFF);
    CHECK(properties[3] == 0x27);
  }
  SECTION("not set: none is announced (the broker's own setting applies)") {
    Rig rig;
    rig.start(rig.options());
    REQUIRE(rig.until([&] { return rig.link->up(); }));
    auto connects = rig.broker.packets(PacketType::kConnect);
    REQUIRE(connects.size() == 1);
    auto properties = propertiesOf(*connects[0]);
    REQUIRE(properties.size() == 5);
    CHECK(properties[0] == 0x27);
  }
}

TEST_CASE("BrokerLink takes an accepting CONNACK in MQTT 3.1.1's form as a 3.1.1 broker") {
  // Such a broker would misread every MQTT 5 property: reconnect in 3.1.1 instead of going on.
  Rig rig;
  rig.broker.defaultConnack = v311Connack(0);
  rig.start(rig.options());
  REQUIRE(rig.until([&] { return rig.link->up(); }, 2000ms));
  CHECK(rig.link->version() == Version::k311);
  auto connects = rig.broker.packets(PacketType::kConnect);
  REQUIRE(connects.size() == 2);
  CHECK(connects[0]->protocolLevel == 5);
  CHECK(connects[1]->protocolLevel == 4);
}

TEST_CASE("BrokerLink with MQTT 5 configured does not fall back, and says why") {
  Rig rig;
  rig.broker.connacks.push_back(v311Connack(1));
  LinkOptions o = rig.options();
  o.version = Version::k5;
  o.retryMin = 10000ms;
  rig.start(o);
  REQUIRE(rig.until([&] { return rig.events.failedAttempts == 1; }));
  CHECK(rig.events.failReasons[0].find("--mqtt-version") != std::string::npos);
  rig.settle(200ms);
  CHECK(rig.broker.count(PacketType::kConnect) == 1);
  CHECK(rig.link->version() == Version::k5);
  CHECK_FALSE(rig.link->up());
}

// ---- keepalive ----

TEST_CASE("BrokerLink pings when idle and drops a broker that stops answering") {
  Rig rig;
  LinkOptions o = rig.options();
  o.keepAlive = 2s;
  rig.start(o);
  REQUIRE(rig.until([&] { return rig.link->up(); }));
  REQUIRE(rig.broker.packets(PacketType::kConnect).at(0)->keepAlive == 2);

  REQUIRE(rig.until([&] { return rig.broker.count(PacketType::kPingreq) >= 2; }, 5000ms));
  CHECK(rig.link->up());
  CHECK(rig.events.down == 0);

  rig.broker.answerPings = false;
  const auto silentSince = std::chrono::steady_clock::now();
  REQUIRE(rig.until([&] { return rig.events.down == 1; }, 6000ms));
  CHECK(std::chrono::steady_clock::now() - silentSince >= 1s);
  CHECK(rig.events.downReasons[0].find("answered nothing") != std::string::npos);
  rig.broker.answerPings = true;
  REQUIRE(rig.until([&] { return rig.events.up == 2; }));
  CHECK(rig.broker.accepted() == 2);
}

TEST_CASE("BrokerLink pings at the keepalive the broker set in CONNACK") {
  Rig rig;
  ConnackScript connack = v5Connack();
  connack.serverKeepAlive = 2;
  rig.broker.defaultConnack = connack;
  LinkOptions o = rig.options();
  o.keepAlive = 600s;
  rig.start(o);
  REQUIRE(rig.until([&] { return rig.link->up(); }));
  REQUIRE(rig.until([&] { return rig.broker.count(PacketType::kPingreq) >= 1; }, 4000ms));
  CHECK(rig.events.down == 0);
}

TEST_CASE("BrokerLink gives up on an attempt the broker does not answer, and tries again") {
  Rig rig;
  ConnackScript silent;
  silent.silent = true;
  rig.broker.connacks.push_back(silent);
  LinkOptions o = rig.options();
  o.connectTimeout = 500ms;
  rig.start(o);
  REQUIRE(rig.until([&] { return rig.events.failedAttempts == 1; }, 4000ms));
  CHECK(rig.events.failReasons[0].find("no answer from the broker") != std::string::npos);
  REQUIRE(rig.until([&] { return rig.link->up(); }));
  CHECK(rig.broker.count(PacketType::kConnect) == 2);
}

TEST_CASE("BrokerLink keeps within the broker's maximum packet size") {
  Rig rig;
  ConnackScript connack = v5Connack();
  connack.maximumPacketSize = 64;
  rig.broker.defaultConnack = connack;
  rig.make(rig.options());
  const std::string big(100, 'b');
  // Queued before the limit was known: refused when it would go out.
  REQUIRE(rig.publish("t/size", big, 1));
  REQUIRE(rig.publish("t/size", "small", 2));
  rig.link->start();
  REQUIRE(rig.until([&] { return rig.events.published.size() == 2; }));
  using Report = std::pair<uint64_t, bool>;
  CHECK(rig.events.published == std::vector<Report>{{1, false}, {2, true}});
  // Known now: refused at once, nothing reported.
  CHECK_FALSE(rig.publish("t/size", big, 3));
  rig.settle();
  CHECK(rig.events.reports(3) == 0);
  CHECK(rig.payloadsOn(1) == std::vector<std::string>{"small"});
}

TEST_CASE("BrokerLink retries with a doubling backoff, reset by a successful connection") {
  Rig rig;
  for (int i = 0; i < 6; ++i) rig.broker.connacks.push_back(v5Connack());
  for (auto& c : rig.broker.connacks) c.code = 0x87;  // not authorized
  LinkOptions o = rig.options();
  o.retryMin = 50ms;
  o.retryMax = 400ms;
  std::vector<std::chrono::steady_clock::time_point> connects;
  rig.start(o);
  REQUIRE(rig.until(
      [&] {
        if (rig.broker.count(PacketType::kConnect) > connects.size()) {
          connects.push_back(std::chrono::steady_clock::now());
        }
        return rig.link->up();
      },
      10000ms));
  CHECK(rig.events.failedAttempts == 6);
  CHECK(rig.events.failReasons[0].find("refused the connection: reason 0x87") != std::string::npos);
  REQUIRE(connects.size() == 7);
  // 50, 100, 200, 400, 400, 400 ms: never sooner (later only when the machine is busy).
  const std::chrono::milliseconds least[] = {45ms, 90ms, 180ms, 360ms, 360ms, 360ms};
  for (std::size_t i = 0; i + 1 < connects.size(); ++i) {
    INFO("gap " << i);
    CHECK(connects[i + 1] - connects[i] >= least[i]);
    CHECK(connects[i + 1] - connects[i] < 3s);
  }
  // Up again: the next break is retried after retryMin, not after the 400 ms reached before.
  const auto dropped = std::chrono::steady_clock::now();
  rig.broker.dropConnection();
  REQUIRE(rig.until([&] { return rig.events.up == 2; }));
  CHECK(std::chrono::steady_clock::now() - dropped < 350ms);
}

TEST_CASE("BrokerLink carries large packets both ways") {
  Rig rig;
  rig.start(rig.options());
  REQUIRE(rig.until([&] { return rig.link->up(); }));
  SECTION("publishes larger than the socket buffers") {
    std::vector<std::string> payloads;
    for (int i = 0; i < 6; ++i)
      payloads.push_back(std::string(700 * 1024, static_cast<char>('a' + i)));
    for (std::size_t i = 0; i < payloads.size(); ++i)
      REQUIRE(rig.publish("t/big", payloads[i], i + 1));
    REQUIRE(rig.until([&] { return rig.events.published.size() == payloads.size(); }));
    CHECK(rig.payloadsOn(1) == payloads);
  }
  SECTION("a PUBLISH from the broker larger than one read budget") {
    const std::string payload(3 * 1024 * 1024 + 7, 'p');
    rig.broker.sendPublish("in/big", payload);
    REQUIRE(rig.until([&] { return rig.events.messages.size() == 1; }));
    CHECK(rig.events.messages[0] == payload);
    REQUIRE(rig.until([&] { return rig.broker.count(PacketType::kPuback) == 1; }));
  }
}

TEST_CASE("BrokerLink drops a broker packet larger than maxPacketIn") {
  Rig rig;
  LinkOptions o = rig.options();
  o.maxPacketIn = 4096;
  rig.start(o);
  REQUIRE(rig.until([&] { return rig.link->up(); }));
  rig.broker.sendPublish("in/big", std::string(5000, 'x'));
  REQUIRE(rig.until([&] { return rig.events.down == 1; }));
  CHECK(rig.events.downReasons[0].find("larger than allowed") != std::string::npos);
  CHECK(rig.events.messages.empty());
}

TEST_CASE("BrokerLink subscribes only while up, with ids apart from the publishes'") {
  Rig rig;
  LinkOptions o = rig.options();
  o.maxInflight = 10;
  rig.make(o);
  const SubscribeFilter filters[] = {{"a/#", 1}, {"b/+", 1}};
  rig.link->subscribe(filters);  // not up: nothing
  rig.link->start();
  REQUIRE(rig.until([&] { return rig.link->up(); }));
  rig.link->subscribe(filters);
  const std::string_view gone[] = {"a/#"};
  rig.link->unsubscribe(gone);
  REQUIRE(rig.until([&] { return rig.broker.count(PacketType::kUnsubscribe) == 1; }));
  rig.settle();
  auto subscribes = rig.broker.packets(PacketType::kSubscribe);
  REQUIRE(subscribes.size() == 1);
  const auto& body = subscribes[0]->body;
  REQUIRE(body.size() >= 2);
  const int id = (body[0] << 8) | body[1];
  CHECK(id > 10);
  CHECK(subscribes[0]->flags == 0x02);
}

// ---- the bounded queue ----

TEST_CASE("BrokerLink refuses a publish when maxQueued wait, and reports nothing for it") {
  Rig rig;
  rig.broker.defaultConnack = v5Connack(1);
  rig.broker.autoPuback = false;
  LinkOptions o = rig.options();
  o.maxQueued = 3;
  rig.make(o);
  SECTION("before the first connection") {
    for (uint64_t i = 1; i <= 3; ++i) CHECK(rig.publish("t/q", "x", i));
    CHECK_FALSE(rig.publish("t/q", "x", 99));
    CHECK(rig.link->queued() == 3);
    rig.link->start();
    REQUIRE(rig.until([&] { return rig.broker.withheldPubacks() == 1; }));
  }
  SECTION("while the window is full") {
    rig.link->start();
    REQUIRE(rig.until([&] { return rig.link->up(); }));
    CHECK(rig.publish("t/q", "x", 1));  // in flight
    for (uint64_t i = 2; i <= 4; ++i) CHECK(rig.publish("t/q", "x", i));
    CHECK_FALSE(rig.publish("t/q", "x", 99));
    CHECK(rig.link->queued() == 3);
    REQUIRE(rig.until([&] { return rig.broker.withheldPubacks() == 1; }));
  }
  const std::size_t total = rig.link->queued() + rig.link->inflight();
  for (int i = 0; i < 10 && !rig.link->idle(); ++i) {
    rig.broker.releasePubacks(1);
    (void)rig.until([&] { return rig.link->idle() || rig.broker.withheldPubacks() > 0; });
  }
  REQUIRE(rig.until([&] { return rig.link->idle(); }));
  rig.settle();
  CHECK(rig.events.published.size() == total);
  CHECK(rig.events.reports(99) == 0);
}

// ---- the broker ends the connection ----

TEST_CASE("BrokerLink on a broker DISCONNECT or malformed bytes: link down with the reason") {
  Rig rig;
  rig.start(rig.options());
  REQUIRE(rig.until([&] { return rig.link->up(); }));
  std::string expected;
  SECTION("DISCONNECT with a reason") {
    rig.broker.sendDisconnect(0x8B, "going away for maintenance");
    expected = "going away for maintenance";
  }
  SECTION("reserved packet type 0") {
    const uint8_t bytes[] = {0x00, 0x00};
    rig.broker.sendRaw(bytes);
    expected = "malformed";
  }
  SECTION("remaining length of five bytes") {
    const uint8_t bytes[] = {0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F};
    rig.broker.sendRaw(bytes);
    expected = "malformed";
  }
  SECTION("PUBLISH with QoS 3") {
    const uint8_t bytes[] = {0x36, 0x05, 0x00, 0x01, 't', 0x00, 0x01};
    rig.broker.sendRaw(bytes);
    expected = "malformed";
  }
  SECTION("truncated PUBACK") {
    const uint8_t bytes[] = {0x40, 0x01, 0x00};
    rig.broker.sendRaw(bytes);
    expected = "malformed";
  }
  SECTION("PUBLISH with QoS 2") {
    const uint8_t bytes[] = {0x34, 0x06, 0x00, 0x01, 't', 0x00, 0x01, 0x00};
    rig.broker.sendRaw(bytes);
    expected = "QoS 2";
  }
  SECTION("PUBLISH with a topic alias") {
    const uint8_t bytes[] = {0x30, 0x07, 0x00, 0x01, 't', 0x03, 0x23, 0x00, 0x01};
    rig.broker.sendRaw(bytes);
    expected = "topic alias";
  }
  SECTION("a CONNECT from the broker") {
    const uint8_t bytes[] = {0x10, 0x00};
    rig.broker.sendRaw(bytes);
    expected = "unexpected packet type 1";
  }
  REQUIRE(rig.until([&] { return rig.events.down == 1; }));
  INFO(rig.events.downReasons[0]);
  CHECK(rig.events.downReasons[0].find(expected) != std::string::npos);
  // And it comes back.
  REQUIRE(rig.until([&] { return rig.events.up == 2; }));
}

TEST_CASE("BrokerLink reports a malformed CONNACK as a failed attempt") {
  Rig rig;
  ConnackScript silent;
  silent.silent = true;
  rig.broker.connacks.push_back(silent);
  rig.start(rig.options());
  REQUIRE(rig.until([&] { return rig.broker.count(PacketType::kConnect) == 1; }));
  const uint8_t bytes[] = {0x20, 0x02, 0x02, 0x00};  // reserved acknowledge flag
  rig.broker.sendRaw(bytes);
  REQUIRE(rig.until([&] { return rig.events.failedAttempts == 1; }));
  CHECK(rig.events.failReasons[0].find("malformed CONNACK") != std::string::npos);
  REQUIRE(rig.until([&] { return rig.link->up(); }));
  CHECK(rig.events.down == 0);
}

// ---- close ----

TEST_CASE("BrokerLink close() ends with DISCONNECT, or without one to fire the 3.1.1 will") {
  Rig rig;
  LinkOptions o = rig.options();
  o.willTopic = "t/will";
  o.willPayload = "gone";
  bool will = false;
  bool expectDisconnect = true;
  uint8_t expectedCode = 0;
  SECTION("MQTT 5, no will") {
    rig.broker.defaultConnack = v5Connack();
  }
  SECTION("MQTT 5, will") {
    will = true;
    expectedCode = 0x04;
  }
  SECTION("MQTT 3.1.1, no will") {
    o.version = Version::k311;
    rig.broker.defaultConnack = v311Connack(0);
  }
  SECTION("MQTT 3.1.1, will") {
    o.version = Version::k311;
    rig.broker.defaultConnack = v311Connack(0);
    will = true;
    expectDisconnect = false;
  }
  rig.start(o);
  REQUIRE(rig.until([&] { return rig.link->up(); }));
  rig.link->close(will, 1000ms);
  CHECK_FALSE(rig.link->up());
  REQUIRE(rig.until([&] { return rig.broker.closedByClient() == 1; }));
  auto disconnects = rig.broker.packets(PacketType::kDisconnect);
  if (expectDisconnect) {
    REQUIRE(disconnects.size() == 1);
    CHECK(disconnects[0]->reasonCode == expectedCode);
    if (o.version == Version::k311) CHECK(disconnects[0]->body.empty());
  } else {
    CHECK(disconnects.empty());
  }
  rig.settle();
  CHECK(rig.broker.accepted() == 1);  // closed for good
  CHECK(rig.events.down == 0);
}

}  // namespace
}  // namespace impgate::bus::mqtt
