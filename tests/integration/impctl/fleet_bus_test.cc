// impctl's bus client (tools/impctl/fleet_bus.h) against a real mosquitto: retained publishes
// acknowledged in bulk, collected back with the marker, cleared; connection failures; the
// broker found through --broker / $IMPGATE_BROKER.
#include "tools/impctl/fleet_bus.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "bus/topics/topic_scheme.h"
#include "tests/support/mqtt_probe.h"
#include "tests/support/testbed.h"
#include "tests/support/wait_until.h"

using impgate::impctl::addBusOptions;
using impgate::impctl::BusErrorCode;
using impgate::impctl::BusOptions;
using impgate::impctl::FleetBus;
using impgate::impctl::RetainedMessage;
using impgate::testing::freeLoopbackPort;
using impgate::testing::MosquittoFixture;
using impgate::testing::MqttProbe;
using impgate::testing::waitUntil;
using namespace std::chrono_literals;

namespace {

// A code id for message i: 64 lower-case hex digits.
std::string shaOf(std::size_t i) {
  char buffer[65];
  std::snprintf(buffer, sizeof buffer, "%064zx", i * 2654435761u + 1);
  return buffer;
}

// 2000 chunk-like retained messages of 1..4 KiB, each payload distinct.
std::vector<RetainedMessage> chunkMessages(const impgate::bus::TopicScheme& topics,
                                           std::size_t count) {
  std::vector<RetainedMessage> messages;
  for (std::size_t i = 0; i < count; ++i) {
    std::string payload(1 + (i * 37) % 4096, static_cast<char>('a' + i % 26));
    payload.replace(0, std::min<std::size_t>(payload.size(), 8), std::to_string(i));
    messages.push_back({topics.codeChunk(shaOf(i)), std::move(payload)});
  }
  return messages;
}

BusOptions optionsFor(const MosquittoFixture& broker) {
  BusOptions options;
  options.broker = broker.uri();
  return options;
}

std::unique_ptr<FleetBus> connectTo(const BusOptions& options) {
  auto bus = FleetBus::connect(options);
  if (!bus) FAIL("connect: " << bus.error().message);
  return std::move(*bus);
}

// Publishes `count` retained messages, collects them back over a second connection, clears
// them and sees them gone: the round trip impctl relies on.
void roundTrip(MosquittoFixture& broker, std::size_t count, bool probeToo) {
  auto bus = connectTo(optionsFor(broker));
  auto messages = chunkMessages(bus->topics(), count);
  auto published = bus->publishRetained(messages, 60s);
  REQUIRE(published.ok());

  if (probeToo) {
    // Another client (Paho, not our code) sees every one retained. Only on a broker without
    // per-client limits: with mosquitto's stock ones it drops what Paho's client cannot take
    // in time, which is what collectRetained is built to avoid.
    MqttProbe probe(broker.uri());
    REQUIRE(probe.connect());
    REQUIRE(probe.subscribe(bus->topics().allCodeChunks()));
    auto retainedTopics = [&] {
      std::set<std::string> topics;
      for (const auto& m : probe.messages()) {
        if (m.retained) topics.insert(m.topic);
      }
      return topics.size();
    };
    bool all = waitUntil([&] { return retainedTopics() == count; }, 30s, 50ms);
    INFO("the probe saw " << retainedTopics() << " of " << count << " topics retained, in "
                          << probe.messages().size() << " messages");
    CHECK(all);
  }

  // mosquitto queues a SUBSCRIBE's retained messages before it routes the next PUBLISH, so on
  // it the marker alone is exact: no quiet period here.
  auto reader = connectTo(optionsFor(broker));
  auto collected = reader->collectRetained(bus->topics().allCodeChunks(), 60s, 0ms);
  REQUIRE(collected.ok());
  REQUIRE(collected->size() == count);
  for (const RetainedMessage& m : messages) {
    auto it = collected->find(m.topic);
    REQUIRE(it != collected->end());
    REQUIRE(it->second == m.payload);
  }

  std::vector<std::string> topics;
  for (const RetainedMessage& m : messages) topics.push_back(m.topic);
  auto cleared = bus->clearRetained(topics, 60s);
  REQUIRE(cleared.ok());
  auto after = reader->collectRetained(bus->topics().allCodeChunks(), 30s);
  REQUIRE(after.ok());
  CHECK(after->empty());
}

}  // namespace

TEST_CASE("2000 retained messages are acknowledged, collected back and cleared") {
  MosquittoFixture broker;
  roundTrip(broker, 2000, true);
}

TEST_CASE("the round trip holds on a broker with mosquitto's stock limits") {
  // 20 messages in flight and 1000 queued per client: more retained messages than the queue
  // holds arrive at one SUBSCRIBE.
  impgate::testbed::MosquittoOptions options;
  options.stockSettings = true;
  MosquittoFixture broker(options);
  roundTrip(broker, 2000, false);
}

TEST_CASE("collectRetained returns what is retained under the filter, and only that") {
  MosquittoFixture broker;
  MqttProbe other(broker.uri());
  REQUIRE(other.connect());
  impgate::bus::TopicScheme topics;
  const std::string sha = shaOf(1);
  REQUIRE(other.publish(topics.groupDeploy("kitchen"), "deploy-k", 1, true));
  REQUIRE(other.publish(topics.groupDeploy("cellar"), "deploy-c", 1, true));
  REQUIRE(other.publish(topics.codeVersion(sha), "version", 1, true));
  REQUIRE(other.publish(topics.groupRollout("kitchen", "gw-a"), "view", 1, true));

  auto bus = connectTo(optionsFor(broker));
  auto deployments = bus->collectRetained(topics.allDeployments(), 10s);
  REQUIRE(deployments.ok());
  CHECK(*deployments ==
        std::map<std::string, std::string>{{topics.groupDeploy("cellar"), "deploy-c"},
                                           {topics.groupDeploy("kitchen"), "deploy-k"}});
  // The same connection collects again, under another filter: nothing of the first leaks in.
  auto versions = bus->collectRetained(topics.allCodeVersions(), 10s);
  REQUIRE(versions.ok());
  CHECK(*versions == std::map<std::string, std::string>{{topics.codeVersion(sha), "version"}});
  auto everything = bus->collectRetained("imp/#", 10s);
  REQUIRE(everything.ok());
  CHECK(everything->size() == 4);
  // An empty filter answers at once (one round trip), not after a quiet period.
  auto started = std::chrono::steady_clock::now();
  auto none = bus->collectRetained(topics.allDeviceGroups(), 10s);
  REQUIRE(none.ok());
  CHECK(none->empty());
  CHECK(std::chrono::steady_clock::now() - started < 2s);

  // A clear by one client is seen by the next collection.
  REQUIRE(bus->clearRetained(topics.groupDeploy("cellar")).ok());
  auto left = bus->collectRetained(topics.allDeployments(), 10s);
  REQUIRE(left.ok());
  CHECK(left->size() == 1);
  CHECK(left->count(topics.groupDeploy("kitchen")) == 1);
}

TEST_CASE("bad topics and filters are refused before anything is sent") {
  MosquittoFixture broker;
  auto bus = connectTo(optionsFor(broker));
  auto wildcard = bus->publishRetained("imp/grp/+/deploy", "x");
  REQUIRE_FALSE(wildcard.ok());
  CHECK(wildcard.error().code == BusErrorCode::kInvalidOptions);
  CHECK(wildcard.error().message == "invalid topic 'imp/grp/+/deploy'");
  CHECK(bus->publishRetained("", "x").error().code == BusErrorCode::kInvalidOptions);
  auto badFilter = bus->collectRetained("imp/a#", 1s);
  REQUIRE_FALSE(badFilter.ok());
  CHECK(badFilter.error().message == "invalid topic filter 'imp/a#'");
  CHECK_FALSE(bus->collectRetained("imp/#/x", 1s).ok());
  CHECK_FALSE(bus->collectRetained("", 1s).ok());
  // The connection is still good.
  CHECK(bus->publishRetained("imp/grp/g/deploy", "x").ok());
}

TEST_CASE("a broker that cannot be reached gives a clear error naming it, quickly") {
  BusOptions options;
  options.broker = "tcp://127.0.0.1:" + std::to_string(freeLoopbackPort());
  options.connectTimeout = 5s;
  auto started = std::chrono::steady_clock::now();
  auto bus = FleetBus::connect(options);
  auto took = std::chrono::steady_clock::now() - started;
  REQUIRE_FALSE(bus.ok());
  CHECK(bus.error().code == BusErrorCode::kConnect);
  INFO(bus.error().message);
  CHECK(bus.error().message.rfind("cannot connect to the broker at " + options.broker + ": ", 0) ==
        0);
  CHECK(bus.error().message.size() >
        ("cannot connect to the broker at " + options.broker + ": ").size());
  CHECK(took < 4s);  // refused attempts end it before the timeout

  options.broker = "http://127.0.0.1:1883";
  auto invalid = FleetBus::connect(options);
  REQUIRE_FALSE(invalid.ok());
  CHECK(invalid.error().code == BusErrorCode::kInvalidOptions);
  CHECK(invalid.error().message.rfind("invalid broker URI 'http://127.0.0.1:1883'", 0) == 0);

  options.broker = "tcp://127.0.0.1:1883";
  options.prefix = "imp/+";
  auto prefix = FleetBus::connect(options);
  REQUIRE_FALSE(prefix.ok());
  CHECK(prefix.error().code == BusErrorCode::kInvalidOptions);

  // A port that accepts and never answers MQTT: the connect timeout bounds the wait.
  BusOptions silent;
  silent.connectTimeout = 1s;
  int listener = -1;
  {
    // A listening socket nobody accepts from: TCP connects, CONNACK never comes.
    listener = ::socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(listener >= 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(listener, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
    REQUIRE(::listen(listener, 4) == 0);
    socklen_t length = sizeof address;
    REQUIRE(::getsockname(listener, reinterpret_cast<sockaddr*>(&address), &length) == 0);
    silent.broker = "tcp://127.0.0.1:" + std::to_string(ntohs(address.sin_port));
  }
  started = std::chrono::steady_clock::now();
  auto mute = FleetBus::connect(silent);
  took = std::chrono::steady_clock::now() - started;
  ::close(listener);
  REQUIRE_FALSE(mute.ok());
  CHECK(mute.error().code == BusErrorCode::kConnect);
  CHECK(mute.error().message.find(silent.broker) != std::string::npos);
  CHECK(took < 3s);
}

TEST_CASE("the broker comes from --broker, else IMPGATE_BROKER, else the default") {
  MosquittoFixture broker;
  auto parse = [](std::vector<std::string> args, BusOptions& options) {
    CLI::App app{"test"};
    CLI::App* command = app.add_subcommand("code");
    addBusOptions(*command, options);
    std::vector<const char*> argv{"impctl", "code"};
    for (const std::string& a : args) argv.push_back(a.c_str());
    app.parse(static_cast<int>(argv.size()), argv.data());
  };

  ::unsetenv("IMPGATE_BROKER");
  BusOptions defaults;
  parse({}, defaults);
  CHECK(defaults.broker == "tcp://127.0.0.1:1883");
  CHECK(defaults.prefix == "imp");

  ::setenv("IMPGATE_BROKER", broker.uri().c_str(), 1);
  BusOptions fromEnv;
  parse({}, fromEnv);
  CHECK(fromEnv.broker == broker.uri());
  // ... and that broker is the one used.
  auto bus = FleetBus::connect(fromEnv);
  REQUIRE(bus.ok());
  CHECK((*bus)->brokerUri() == broker.uri());
  REQUIRE((*bus)->publishRetained("imp/dev/d1/group", "assignment").ok());
  MqttProbe probe(broker.uri());
  REQUIRE(probe.connect());
  REQUIRE(probe.subscribe("imp/dev/d1/group"));
  CHECK(probe.waitForTopic("imp/dev/d1/group", 5s));

  BusOptions flagWins;
  parse({"--broker", "tcp://127.0.0.9:1999", "--prefix", "acme/prod", "--mqtt-username", "u",
         "--mqtt-password", "p", "--mqtt-ca-file", "ca.pem", "--mqtt-cert", "c.pem",
         "--mqtt-key-file", "k.pem"},
        flagWins);
  ::unsetenv("IMPGATE_BROKER");
  CHECK(flagWins.broker == "tcp://127.0.0.9:1999");
  CHECK(flagWins.prefix == "acme/prod");
  CHECK(flagWins.username == "u");
  CHECK(flagWins.password == "p");
  CHECK(flagWins.caFile == "ca.pem");
  CHECK(flagWins.certFile == "c.pem");
  CHECK(flagWins.keyFile == "k.pem");
}

TEST_CASE("a prefix of several levels is used for every topic, the marker included") {
  MosquittoFixture broker;
  BusOptions options = optionsFor(broker);
  options.prefix = "acme/prod";
  auto bus = connectTo(options);
  CHECK(bus->topics().groupDeploy("g") == "acme/prod/grp/g/deploy");
  REQUIRE(bus->publishRetained(bus->topics().groupDeploy("g"), "d").ok());
  MqttProbe watcher(broker.uri());
  REQUIRE(watcher.connect());
  REQUIRE(watcher.subscribe("#"));
  auto collected = bus->collectRetained("acme/prod/#", 10s);
  REQUIRE(collected.ok());
  CHECK(collected->size() == 1);
  // The marker went to a topic under the prefix.
  auto marker = watcher.waitFor(
      [](const MqttProbe::Message& m) { return m.topic.find("/impctl/") != std::string::npos; },
      5s);
  REQUIRE(marker);
  CHECK(marker->topic.rfind("acme/prod/impctl/impctl-", 0) == 0);
  CHECK_FALSE(marker->retained);
}

TEST_CASE("the round trip works on an MQTT 3.1.1-only broker (aedes)") {
  impgate::testing::AedesFixture aedes;
  BusOptions options;
  options.broker = aedes.uri();
  auto bus = connectTo(options);
  auto messages = chunkMessages(bus->topics(), 500);
  REQUIRE(bus->publishRetained(messages, 60s).ok());
  auto reader = connectTo(options);
  auto collected = reader->collectRetained(bus->topics().allCodeChunks(), 60s);
  REQUIRE(collected.ok());
  CHECK(collected->size() == messages.size());
  for (const RetainedMessage& m : messages) {
    auto it = collected->find(m.topic);
    REQUIRE(it != collected->end());
    CHECK(it->second == m.payload);
  }
  std::vector<std::string> topics;
  for (const RetainedMessage& m : messages) topics.push_back(m.topic);
  REQUIRE(bus->clearRetained(topics, 60s).ok());
  auto after = reader->collectRetained(bus->topics().allCodeChunks(), 30s);
  REQUIRE(after.ok());
  CHECK(after->empty());
}

TEST_CASE("a publish the broker refuses is reported with its topic") {
  // An ACL that lets anonymous clients write deployments (and impctl's marker) but not chunks:
  // mosquitto answers an MQTT 5 publish to a chunk with PUBACK "not authorized".
  impgate::testing::TempDir dir;
  const auto acl = dir.path() / "acl";
  {
    std::FILE* f = std::fopen(acl.c_str(), "w");
    REQUIRE(f);
    std::fputs("topic readwrite imp/grp/#\ntopic readwrite imp/impctl/#\n", f);
    std::fclose(f);
  }
  MosquittoFixture broker(impgate::testbed::withConfig({"acl_file " + acl.string()}));
  auto bus = connectTo(optionsFor(broker));
  const std::string chunk = bus->topics().codeChunk(shaOf(3));
  std::vector<RetainedMessage> messages = {{bus->topics().groupDeploy("g"), "d"}, {chunk, "bytes"}};
  auto refused = bus->publishRetained(messages, 10s);
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.error().code == BusErrorCode::kRefused);
  CHECK(refused.error().message ==
        "the broker at " + broker.uri() + " refused the retained message for '" + chunk + "'");
  // What the broker took is there; the connection goes on.
  auto deployments = bus->collectRetained(bus->topics().allDeployments(), 10s);
  REQUIRE(deployments.ok());
  CHECK(deployments->size() == 1);
}

TEST_CASE("publishes cut by a broken connection are sent again after the reconnect") {
  MosquittoFixture broker;
  const BusOptions options = optionsFor(broker);
  // The broker takes the publishes into its socket but answers none (stopped), then dies and
  // comes back empty: every message must reach the new broker, so every one unacknowledged
  // when the connection broke was sent again. The bus runs on a thread of its own, because
  // the broker must be restarted from this one (a child of the test bed gets SIGTERM when the
  // thread that started it ends).
  std::atomic<bool> connected{false};
  std::atomic<bool> stopped{false};
  std::optional<impgate::impctl::BusStatus> published;
  std::string connectError;
  std::thread publisher([&] {
    auto bus = FleetBus::connect(options);
    if (!bus) {
      connectError = bus.error().message;
      connected = true;
      return;
    }
    auto messages = chunkMessages((*bus)->topics(), 2000);
    connected = true;
    while (!stopped) std::this_thread::sleep_for(1ms);
    published = (*bus)->publishRetained(messages, 60s);
  });
  REQUIRE(waitUntil([&] { return connected.load(); }, 10s));
  const pid_t pid = broker.pid();
  REQUIRE(::kill(pid, SIGSTOP) == 0);
  stopped = true;
  std::this_thread::sleep_for(500ms);  // the publishes are written meanwhile
  ::kill(pid, SIGKILL);
  broker.restart();
  publisher.join();
  REQUIRE(connectError.empty());
  REQUIRE(published);
  INFO((published->ok() ? std::string() : published->error().message));
  REQUIRE(published->ok());
  auto reader = connectTo(options);
  auto collected = reader->collectRetained(reader->topics().allCodeChunks(), 30s);
  REQUIRE(collected.ok());
  CHECK(collected->size() == 2000);
}

TEST_CASE("retained updates published during a collection neither enter it nor delay its end") {
  // A rollout in progress: device code states change all the time. The collection is the
  // snapshot at its SUBSCRIBE and ends one quiet period after the marker.
  MosquittoFixture broker;
  impgate::bus::TopicScheme topics;
  MqttProbe updater(broker.uri());
  REQUIRE(updater.connect());
  for (int i = 0; i < 20; ++i) {
    REQUIRE(updater.publish(topics.deviceCode("d" + std::to_string(i)), "v0", 1, true));
  }
  std::atomic<bool> stop{false};
  std::atomic<int> updates{0};
  std::thread churn([&] {
    for (int n = 1; !stop && n < 100000; ++n) {  // bounded: stopped long before
      if (updater.publish(topics.deviceCode("d" + std::to_string(n % 20)), "v" + std::to_string(n),
                          1, true)) {
        ++updates;
      }
      std::this_thread::sleep_for(20ms);
    }
  });
  REQUIRE(waitUntil([&] { return updates > 5; }, 10s));
  auto bus = connectTo(optionsFor(broker));
  auto started = std::chrono::steady_clock::now();
  auto states = bus->collectRetained(topics.allDeviceCodeStates(), 10s, 300ms);
  auto took = std::chrono::steady_clock::now() - started;
  stop = true;
  churn.join();
  REQUIRE(states.ok());
  CHECK(states->size() == 20);
  CHECK(took < 3s);
}
