// Code push across real processes: gateway nodes with separate homes that share only a real
// mosquitto, deployments published as impctl publishes them, and the broker read back.
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "bus/fleet/envelope.h"
#include "bus/fleet/release.h"
#include "gateway/base/code/hex.h"
#include "gateway/base/pki/code_signing.h"
#include "tests/integration/gateway/cut_relay.h"
#include "tests/integration/gateway/gateway_fixture.h"
#include "tests/support/wait_until.h"
#include "tools/impctl/fleet_bus.h"

using namespace impgate;
using namespace impgate::testing;
namespace fleet = bus::fleet;
namespace fs = std::filesystem;

namespace {

std::vector<uint8_t> program(std::size_t size, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> out(size);
  for (auto& b : out) b = static_cast<uint8_t>('a' + rng() % 26);
  return out;
}

// What `impctl code deploy` puts on the bus, with the fixture home's signing key.
struct Operator {
  GatewayFixture& fx;
  pki::PkeyPtr key;
  std::unique_ptr<impctl::FleetBus> bus;

  explicit Operator(GatewayFixture& f) : fx(f) {
    auto k = pki::readSigningKey(fx.home().codeSigningKey());
    REQUIRE(k);
    key = std::move(*k);
    impctl::BusOptions options;
    options.broker = fx.broker().uri();
    auto connected = impctl::FleetBus::connect(options);
    REQUIRE(connected);
    bus = std::move(*connected);
  }

  fleet::VersionDescriptor deploy(const std::string& group, uint32_t number,
                                  const std::vector<uint8_t>& code, uint32_t devices) {
    auto v = fleet::describeVersion(code, key.get(), "", "test", 1);
    std::vector<impctl::RetainedMessage> messages;
    for (auto& p : fleet::versionPublications(bus->topics(), code, v)) {
      messages.push_back({std::move(p.topic), std::move(p.payload)});
    }
    fleet::DeploymentBody d;
    d.group = group;
    d.deployment = number;
    d.code = v.code;
    d.size = v.size;
    d.supported = {v.code};
    d.devices = devices;
    auto p = fleet::deploymentPublication(bus->topics(), d, key.get());
    messages.push_back({std::move(p.topic), std::move(p.payload)});
    REQUIRE(bus->publishRetained(messages));
    return v;
  }
};

// `impdev listen` for `id` through `gateway`, its code kept in `state`, log in `log`.
void startListener(ChildProcess& p, GatewayFixture& fx, const std::string& id,
                   const std::string& gateway, const fs::path& state, const fs::path& log,
                   std::vector<std::string> extra = {}) {
  std::vector<std::string> argv = {
      IMPDEV_BINARY, "--home",      fx.home().root().string(), "--gateway", gateway, "--id", id,
      "--state",     state.string()};
  argv.insert(argv.end(), extra.begin(), extra.end());
  argv.push_back("listen");
  p.start(argv, log);
}

bool logHas(const ChildProcess& p, const std::string& text) {
  return p.log().find(text) != std::string::npos;
}

// The "code bytes SHA fetched=N copied=M" lines of an impdev log, in order.
std::vector<std::pair<uint64_t, uint64_t>> transfers(const ChildProcess& p,
                                                     const std::string& sha) {
  std::vector<std::pair<uint64_t, uint64_t>> out;
  std::istringstream in(p.log());
  std::string line;
  const std::string prefix = "code bytes " + sha + " fetched=";
  while (std::getline(in, line)) {
    if (line.rfind(prefix, 0) != 0) continue;
    unsigned long long fetched = 0, copied = 0;
    if (std::sscanf(line.c_str() + prefix.size(), "%llu copied=%llu", &fetched, &copied) == 2) {
      out.emplace_back(fetched, copied);
    }
  }
  return out;
}

}  // namespace

TEST_CASE(
    "a transfer cut by a dropped link resumes where it stopped, and the device runs the "
    "code from then on",
    "[code_push]") {
  GatewayFixture fx;
  fx.enroll("d1");
  TempDir state("impdev-state");
  // 1 MiB that does not compress: the link drops after about 300 KiB of it.
  auto code = program(1 << 20, 7);
  for (auto& b : code) b = static_cast<uint8_t>(b * 37 + 11);
  CutRelay relay(fx.port(), 300 * 1024);
  ChildProcess device;
  startListener(device, fx, "d1", "127.0.0.1:" + std::to_string(relay.port()), state.path(),
                state.path() / "impdev.log");
  REQUIRE(waitUntil([&] { return logHas(device, "online"); }, std::chrono::seconds(10)));

  fleet::VersionDescriptor v;
  {
    Operator op(fx);
    v = op.deploy("default", 1, code, 1);
  }
  bool installed = waitUntil([&] { return logHas(device, "code installed " + v.code); },
                             std::chrono::seconds(30));
  if (!installed)
    FAIL("no install; device log:\n" << device.log() << "\nnode:\n" << fx.process().logTail(4000));
  CHECK(relay.cut());
  // One transfer line per attempt that ended; the one that installed fetched only what the
  // cut one had not, and copied the rest from the partial download.
  auto t = transfers(device, v.code);
  REQUIRE(!t.empty());
  const auto [fetched, copied] = t.back();
  INFO("fetched " << fetched << ", copied " << copied);
  CHECK(fetched + copied == code.size());
  CHECK(copied > 0);
  CHECK(fetched < code.size());

  // The node republished the device's presence with the new code, and its code state.
  impctl::BusOptions options;
  options.broker = fx.broker().uri();
  auto bus = impctl::FleetBus::connect(options);
  REQUIRE(bus);
  auto& topics = (*bus)->topics();
  REQUIRE(waitUntil(
      [&] {
        auto got = (*bus)->collectRetained(topics.deviceState("d1"), std::chrono::seconds(5));
        return got && (*got)[topics.deviceState("d1")].find(v.code) != std::string::npos;
      },
      std::chrono::seconds(10)));
  auto states = (*bus)->collectRetained(topics.deviceCode("d1"), std::chrono::seconds(5));
  REQUIRE(states);
  auto st = fleet::decodeDeviceCodeState((*states)[topics.deviceCode("d1")]);
  REQUIRE(st);
  CHECK(st->state == fleet::CodeState::kInstalled);
  CHECK(st->running == v.code);

  // Restarted, the device runs the new code (HELLO says so) and is not offered it again.
  device.stop();
  ChildProcess again;
  startListener(again, fx, "d1", fx.endpoint(), state.path(), state.path() / "impdev2.log");
  REQUIRE(waitUntil([&] { return logHas(again, "online"); }, std::chrono::seconds(10)));
  REQUIRE(waitUntil(
      [&] {
        auto got = (*bus)->collectRetained(topics.deviceState("d1"), std::chrono::seconds(5));
        if (!got) return false;
        const std::string& presence = (*got)[topics.deviceState("d1")];
        return presence.find("\"online\"") != std::string::npos &&
               presence.find("\"code\":\"" + v.code + "\"") != std::string::npos;
      },
      std::chrono::seconds(10)));
  CHECK(fx.metric("impgate_code_transfers") == 0);
  CHECK_FALSE(logHas(again, "code offered"));
}

TEST_CASE("a broker restarted without persistence gets its deployments back from the nodes",
          "[code_push]") {
  GatewayFixture fx;
  auto code = program(64 * 1024, 1);
  fleet::VersionDescriptor v;
  {
    Operator op(fx);
    v = op.deploy("default", 1, code, 10);
  }
  // The node fetched the version from the bus and keeps a copy.
  const fs::path cached = fx.codeCache() / "ver" / (v.code + ".bin");
  REQUIRE(waitUntil([&] { return fs::exists(cached); }, std::chrono::seconds(15)));

  // A fresh broker on the same port: no retained message survives.
  fx.broker().restart();
  impctl::BusOptions options;
  options.broker = fx.broker().uri();
  options.connectTimeout = std::chrono::seconds(10);
  auto probe = impctl::FleetBus::connect(options);
  REQUIRE(probe);
  auto& topics = (*probe)->topics();

  // The node reconnects and publishes again what the broker lost: the signed deployment,
  // unchanged, the version descriptor and every chunk.
  std::map<std::string, std::string> restored;
  bool back = waitUntil(
      [&] {
        auto got = (*probe)->collectRetained(topics.prefix() + "/#", std::chrono::seconds(10));
        if (!got) return false;
        restored = std::move(*got);
        return restored.contains(topics.groupDeploy("default")) &&
               restored.contains(topics.codeVersion(v.code)) &&
               std::all_of(v.chunks.begin(), v.chunks.end(), [&](const auto& c) {
                 return restored.contains(topics.codeChunk(c.sha));
               });
      },
      std::chrono::seconds(30));
  if (!back) FAIL("the broker did not get the deployment back; node log:\n" << fx.process().log());
  auto pub = pki::readVerifyKey(fx.home().codeVerifyKey());
  REQUIRE(pub);
  auto body = fleet::openDeployment(restored[topics.groupDeploy("default")],
                                    [&](std::string_view b, std::span<const uint8_t, 64> sig) {
                                      return pki::verifyDescriptor(pub->get(), b, sig);
                                    });
  REQUIRE(body);
  CHECK(body->deployment == 1);
  CHECK(body->code == v.code);

  // A second node that has never seen the deployment (its own home, empty cache) learns it
  // and fetches the code from the restored broker.
  GatewayNode second(fx, "second");
  second.start();
  CHECK(waitUntil([&] { return fs::exists(second.codeCache() / "ver" / (v.code + ".bin")); },
                  std::chrono::seconds(15)));
  std::ifstream in(second.codeCache() / "ver" / (v.code + ".bin"), std::ios::binary);
  std::vector<uint8_t> copy((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  CHECK(copy == code);
}
