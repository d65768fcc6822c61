// CodePush on a fake bus and a fake host: what a node does with deployments, versions, chunks,
// group assignments and device states from the bus, and with its devices' frames. Real
// Ed25519 keys, real hashing and a real cache directory; the bus and sessions are recorded.
#include "gateway/daemon/code_push.h"

#include <catch2/catch.hpp>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "bus/fleet/envelope.h"
#include "bus/fleet/release.h"
#include "gateway/base/code/hex.h"
#include "gateway/base/pki/code_signing.h"
#include "tests/support/testbed.h"
#include "tests/unit/daemon/fake_device_bus.h"

using namespace impgate;
using gateway::CodePush;
namespace fleet = bus::fleet;

namespace {

std::vector<uint8_t> program(std::size_t size, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> out(size);
  for (auto& b : out) b = static_cast<uint8_t>(rng());
  return out;
}

std::span<const uint8_t> bytesOf(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

struct FakeHost final : CodePush::Host {
  struct Offer {
    std::string device;
    std::string code;
    uint32_t deployment;
    bool mandatory;
    uint32_t size;
    std::size_t chunks;
  };
  std::vector<Offer> offers;
  std::map<std::string, std::string> installed;
  std::set<std::string> online;
  // Devices whose session closes while the offer is written (output full), as a real session
  // does: the Gateway tells CodePush the device is offline before sendCodeOffer returns.
  std::set<std::string> closeOnOffer;
  CodePush* push = nullptr;

  bool sendCodeOffer(std::string_view device, const protocol::CodeOffer& offer) override {
    if (closeOnOffer.contains(std::string(device))) {
      online.erase(std::string(device));
      push->onDeviceOffline(std::string(device));
      return false;
    }
    if (!online.contains(std::string(device))) return false;
    offers.push_back({std::string(device), code::toHex(offer.code), offer.deployment,
                      offer.mandatory, offer.size, offer.chunks.size()});
    return true;
  }
  void codeInstalled(std::string_view device, std::string_view code) override {
    installed[std::string(device)] = std::string(code);
  }
};

// A fleet operator in miniature: a signing key and what impctl would publish.
struct Fleet {
  testbed::TempDir dir{"code-push-test"};
  pki::PkeyPtr key;
  bus::TopicScheme topics{"imp"};

  Fleet() {
    auto k = pki::generateSigningKey();
    REQUIRE(k);
    key = std::move(*k);
    REQUIRE(pki::writeVerifyKey(dir.path() / "code-signing.pub", key.get(), pki::Replace::kNo));
  }

  fleet::VersionDescriptor version(const std::vector<uint8_t>& code) {
    return fleet::describeVersion(code, key.get(), "note", "test", 1);
  }
  fleet::DeploymentBody deployment(const std::string& group, uint32_t number,
                                   const fleet::VersionDescriptor& v) {
    fleet::DeploymentBody d;
    d.group = group;
    d.deployment = number;
    d.code = v.code;
    d.size = v.size;
    d.supported = {v.code};
    d.devices = 10;
    return d;
  }
};

// One node: CodePush over a FakeDeviceBus with its own cache directory.
struct Node {
  Fleet& fleet;
  testbed::TempDir cache{"code-push-cache"};
  testing::FakeDeviceBus bus;
  FakeHost host;
  std::unique_ptr<CodePush> push;

  explicit Node(Fleet& f) : fleet(f) { restart(); }

  void restart() {
    push = std::make_unique<CodePush>(
        CodePush::Options{"n1", fleet.dir.path() / "code-signing.pub", cache.path(), "imp"}, host);
    host.push = push.get();
    push->start(bus);
    REQUIRE(push->enabled());
  }
  void deliver(const fleet::Publication& p) { push->onFleetMessage(p.topic, bytesOf(p.payload)); }
  // In the order a node receives them: it subscribes to a version's chunks once it has read
  // the version's descriptor.
  void deliverVersion(const std::vector<uint8_t>& code, const fleet::VersionDescriptor& v) {
    auto pubs = fleet::versionPublications(fleet.topics, code, v);
    deliver(pubs.back());
    pubs.pop_back();
    for (const auto& p : pubs) deliver(p);
  }
  void deploy(const fleet::DeploymentBody& d) {
    deliver(fleet::deploymentPublication(fleet.topics, d, fleet.key.get()));
  }
  void online(const std::string& device, std::string_view running = "", bool capable = true,
              std::string_view certGroup = "g") {
    host.online.insert(device);
    push->onDeviceOnline(device, certGroup, running, capable);
  }
  // The last code state this node published for `device`.
  std::optional<fleet::DeviceCodeState> state(const std::string& device) const {
    std::string topic = fleet.topics.deviceCode(device);
    for (auto it = bus.fleetPublishes.rbegin(); it != bus.fleetPublishes.rend(); ++it) {
      if (it->topic == topic) {
        auto s = fleet::decodeDeviceCodeState(it->payload);
        REQUIRE(s);
        return *s;
      }
    }
    return std::nullopt;
  }
  // Fetches the whole offer as a device would, in GETs of `piece` bytes.
  std::vector<uint8_t> fetch(const std::string& device, const fleet::VersionDescriptor& v,
                             uint32_t piece = protocol::kMaxCodeData) {
    protocol::CodeGet get;
    get.code = *code::sha256FromHex(v.code);
    std::vector<uint8_t> out;
    while (out.size() < v.size) {
      get.offset = static_cast<uint32_t>(out.size());
      get.length = piece;
      auto data = push->serve(device, get);
      if (data.empty()) break;
      out.insert(out.end(), data.begin(), data.end());
    }
    return out;
  }
  void result(const std::string& device, const fleet::VersionDescriptor& v,
              protocol::CodeResultStatus status, std::string_view reason = "") {
    push->onResult(device, protocol::CodeResult{*code::sha256FromHex(v.code), status, reason});
  }
};

}  // namespace

TEST_CASE("a node offers its group's target to a capable device and serves the code",
          "[code_push]") {
  Fleet fleet;
  Node node(fleet);
  auto code = program(64 * 1024, 1);
  auto v = fleet.version(code);
  node.deliverVersion(code, v);
  node.deploy(fleet.deployment("g", 1, v));

  node.online("d1", "", true);
  REQUIRE(node.host.offers.size() == 1);
  CHECK(node.host.offers[0].device == "d1");
  CHECK(node.host.offers[0].code == v.code);
  CHECK(node.host.offers[0].size == code.size());
  CHECK(node.host.offers[0].chunks == v.chunks.size());
  CHECK(node.host.offers[0].mandatory);  // runs nothing of the supported codes
  CHECK(node.state("d1")->state == fleet::CodeState::kOffered);

  CHECK(node.fetch("d1", v, 5000) == code);
  CHECK(node.state("d1")->state == fleet::CodeState::kTransferring);
  CHECK(node.push->bytesServed() == code.size());
  node.result("d1", v, protocol::CodeResultStatus::kInstalled);
  CHECK(node.host.installed["d1"] == v.code);
  CHECK(node.state("d1")->state == fleet::CodeState::kInstalled);
  CHECK(node.state("d1")->running == v.code);
  CHECK(node.push->transfers() == 0);
}

TEST_CASE("devices on the target, without the capability, or of another group get no offer",
          "[code_push]") {
  Fleet fleet;
  Node node(fleet);
  auto code = program(10000, 2);
  auto v = fleet.version(code);
  node.deliverVersion(code, v);
  node.deploy(fleet.deployment("g", 1, v));

  node.online("current", v.code);
  node.online("old-firmware", "fw-1", false);
  node.online("elsewhere", "", true, "other");
  CHECK(node.host.offers.empty());
  CHECK(node.state("current")->state == fleet::CodeState::kCurrent);
  CHECK_FALSE(node.state("old-firmware"));
  // A GET without an offer gets nothing.
  CHECK(node.fetch("elsewhere", v).empty());
}

TEST_CASE("a group assignment on the bus moves a device to its new group's target", "[code_push]") {
  Fleet fleet;
  Node node(fleet);
  auto code = program(10000, 3);
  auto v = fleet.version(code);
  node.deliverVersion(code, v);
  node.deploy(fleet.deployment("beta", 1, v));
  node.online("d1", "", true, "g");
  CHECK(node.host.offers.empty());
  node.deliver(fleet::assignmentPublication(fleet.topics, {"d1", "beta", 5}, fleet.key.get()));
  REQUIRE(node.host.offers.size() == 1);
  CHECK(node.host.offers[0].device == "d1");
}

TEST_CASE("a node pushes nothing that the fleet key did not sign or whose bytes do not match",
          "[code_push]") {
  Fleet fleet;
  Node node(fleet);
  auto code = program(20000, 4);
  auto v = fleet.version(code);
  node.online("d1");

  // A deployment signed by another key is ignored.
  Fleet rogue;
  node.deliver(
      fleet::deploymentPublication(fleet.topics, fleet.deployment("g", 1, v), rogue.key.get()));
  // A tampered chunk (right name, other bytes) is refused; the version is not ready.
  auto pubs = fleet::versionPublications(fleet.topics, code, v);
  node.deliver(pubs.back());  // the descriptor
  pubs.pop_back();
  auto tampered = pubs.front();
  tampered.payload[0] ^= 1;
  node.deliver(tampered);
  for (std::size_t i = 1; i < pubs.size(); ++i) node.deliver(pubs[i]);
  node.deploy(fleet.deployment("g", 1, v));
  CHECK(node.host.offers.empty());
  // The good chunk arrives: now the version is complete and the device gets its offer.
  node.deliver(pubs.front());
  REQUIRE(node.host.offers.size() == 1);

  // A version whose signature is not the fleet's is never offered.
  auto code2 = program(3000, 5);
  auto forged = rogue.version(code2);
  node.deliverVersion(code2, forged);
  node.deploy(fleet.deployment("g", 2, forged));
  CHECK(node.host.offers.size() == 1);
}

TEST_CASE("max_concurrent bounds a node's transfers; the queue moves as results come",
          "[code_push]") {
  Fleet fleet;
  Node node(fleet);
  auto code = program(9000, 6);
  auto v = fleet.version(code);
  node.deliverVersion(code, v);
  auto d = fleet.deployment("g", 1, v);
  d.maxConcurrent = 2;
  node.deploy(d);
  for (int i = 0; i < 5; ++i) node.online("d" + std::to_string(i));
  CHECK(node.host.offers.size() == 2);
  CHECK(node.push->transfers() == 2);
  CHECK(node.push->queued() == 3);
  node.result("d0", v, protocol::CodeResultStatus::kInstalled);
  CHECK(node.host.offers.size() == 3);
  // A device that goes offline frees its slot too.
  node.push->onDeviceOffline("d1");
  CHECK(node.host.offers.size() == 4);
  CHECK(node.push->transfers() == 2);
}

TEST_CASE("a stage opens when the previous one has finished; failures halt until a resume",
          "[code_push]") {
  Fleet fleet;
  Node node(fleet);
  auto code = program(9000, 7);
  auto v = fleet.version(code);
  node.deliverVersion(code, v);
  auto d = fleet.deployment("g", 1, v);
  d.devices = 20;
  d.stages = {10, 100};  // 2 devices, then everyone
  d.haltFailures = 40;   // more than 40 % of 2: one failure is 50 %
  node.deploy(d);
  for (int i = 0; i < 20; ++i) node.online("d" + std::to_string(i));
  REQUIRE(node.host.offers.size() == 2);
  node.result(node.host.offers[0].device, v, protocol::CodeResultStatus::kInstalled);
  CHECK(node.host.offers.size() == 2);
  node.result(node.host.offers[1].device, v, protocol::CodeResultStatus::kFailed, "corrupt chunk");
  CHECK(node.state(node.host.offers[1].device)->reason == "corrupt chunk");
  CHECK(node.host.offers.size() == 2);  // halted
  // The operator resumes: the failure no longer counts, so the first stage takes one more
  // device; once that one has finished, the next stage opens to everyone, the failed device
  // included.
  d.resume = 1;
  node.deploy(d);
  REQUIRE(node.host.offers.size() == 3);
  node.result(node.host.offers[2].device, v, protocol::CodeResultStatus::kInstalled);
  CHECK(node.host.offers.size() == 21);
}

TEST_CASE("a restarted node serves from its cache, and restores what a broker lost",
          "[code_push]") {
  Fleet fleet;
  Node node(fleet);
  auto code = program(30000, 8);
  auto v = fleet.version(code);
  node.deliverVersion(code, v);
  node.deploy(fleet.deployment("g", 1, v));
  node.deliver(fleet::assignmentPublication(fleet.topics, {"d9", "g", 5}, fleet.key.get()));
  node.push->onFleetSyncStarted();
  node.deploy(fleet.deployment("g", 1, v));  // the broker still has them
  node.deliver(fleet::assignmentPublication(fleet.topics, {"d9", "g", 5}, fleet.key.get()));
  node.bus.fleetPublishes.clear();
  node.push->onFleetSynced();  // everything was seen: nothing to restore
  CHECK(node.bus.fleetPublishes.empty());

  // The node restarts and the broker comes back empty: no bus traffic needed to push, and the
  // deployment, the version, its chunks and the assignment are published again.
  node.restart();
  node.online("d1");
  REQUIRE(node.host.offers.size() == 1);
  CHECK(node.fetch("d1", v) == code);
  node.bus.fleetPublishes.clear();
  node.push->onFleetSyncStarted();
  node.push->onFleetSynced();
  std::set<std::string> topics;
  for (const auto& p : node.bus.fleetPublishes) {
    CHECK(p.retained);
    topics.insert(p.topic);
  }
  CHECK(topics.contains(fleet.topics.groupDeploy("g")));
  CHECK(topics.contains(fleet.topics.codeVersion(v.code)));
  CHECK(topics.contains(fleet.topics.deviceGroup("d9")));
  for (const auto& chunk : v.chunks) CHECK(topics.contains(fleet.topics.codeChunk(chunk.sha)));
}

TEST_CASE("an older deployment on the broker is answered with the newer one", "[code_push]") {
  Fleet fleet;
  Node node(fleet);
  auto v1 = fleet.version(program(1000, 9));
  auto v2 = fleet.version(program(1000, 10));
  node.deploy(fleet.deployment("g", 2, v2));
  node.bus.fleetPublishes.clear();
  node.deploy(fleet.deployment("g", 1, v1));
  REQUIRE(node.bus.fleetPublishes.size() == 1);
  auto body =
      fleet::openDeployment(node.bus.fleetPublishes[0].payload,
                            [](std::string_view, std::span<const uint8_t, 64>) { return true; });
  REQUIRE(body);
  CHECK(body->deployment == 2);
}

TEST_CASE("devices queued while a rollout is paused get their offers when it is unpaused",
          "[code_push]") {
  Fleet fleet;
  Node node(fleet);
  auto code = program(9000, 11);
  auto v = fleet.version(code);
  node.deliverVersion(code, v);
  auto d = fleet.deployment("g", 1, v);
  d.paused = true;
  node.deploy(d);
  for (int i = 0; i < 3; ++i) node.online("d" + std::to_string(i));
  CHECK(node.host.offers.empty());
  CHECK(node.push->queued() == 3);
  // The operator resumes the pause: nothing else happens on the bus, the queue must move.
  d.paused = false;
  node.deploy(d);
  CHECK(node.host.offers.size() == 3);
}

TEST_CASE("a device that deferred is offered again on its next HELLO, not before", "[code_push]") {
  Fleet fleet;
  Node node(fleet);
  auto code = program(9000, 13);
  auto v = fleet.version(code);
  node.deliverVersion(code, v);
  auto d = fleet.deployment("g", 1, v);
  const std::string old = fleet.version(program(1000, 14)).code;
  d.supported.push_back(old);  // d1 runs a supported code: the offer is not mandatory
  node.deploy(d);
  node.online("d1", old);
  REQUIRE(node.host.offers.size() == 1);
  node.result("d1", v, protocol::CodeResultStatus::kDeferred, "busy");
  CHECK(node.state("d1")->state == fleet::CodeState::kDeferred);
  // The operator pauses and unpauses the rollout: the deployment is evaluated again, but d1
  // said "not now" on this connection.
  d.paused = true;
  node.deploy(d);
  d.paused = false;
  node.deploy(d);
  CHECK(node.host.offers.size() == 1);
  node.online("d1", old);
  CHECK(node.host.offers.size() == 2);
}

TEST_CASE("a session that closes while its offer is written leaves no trace", "[code_push]") {
  Fleet fleet;
  Node node(fleet);
  auto code = program(9000, 12);
  auto v = fleet.version(code);
  node.deliverVersion(code, v);
  auto d = fleet.deployment("g", 1, v);
  d.maxConcurrent = 1;
  node.deploy(d);
  node.host.closeOnOffer.insert("d0");
  node.online("d0");
  node.online("d1");
  CHECK(node.push->transfers() == 1);
  CHECK(node.push->queued() == 0);
  REQUIRE(node.host.offers.size() == 1);
  CHECK(node.host.offers[0].device == "d1");
}

TEST_CASE("a device that goes offline in the middle of its transfer does not hold its stage",
          "[code_push]") {
  Fleet fleet;
  Node node(fleet);
  auto code = program(9000, 11);
  auto v = fleet.version(code);
  node.deliverVersion(code, v);
  auto d = fleet.deployment("g", 1, v);
  d.devices = 20;
  d.stages = {10, 100};  // 2 devices first
  node.deploy(d);
  for (int i = 0; i < 3; ++i) node.online("d" + std::to_string(i));
  REQUIRE(node.host.offers.size() == 2);
  node.fetch("d0", v, 1000);  // transferring
  node.host.online.erase("d0");
  node.push->onDeviceOffline("d0");
  // d0 counts as having put the update off (it resumes when it is back): once d1 has finished
  // too, the first stage is done and the next one takes the waiting device, instead of
  // waiting for d0 for ever.
  CHECK(node.state("d0")->state == fleet::CodeState::kDeferred);
  CHECK(node.host.offers.size() == 2);
  node.result("d1", v, protocol::CodeResultStatus::kInstalled);
  REQUIRE(node.host.offers.size() == 3);
  CHECK(node.host.offers[2].device == "d2");
  // Back online, d0 is offered the code again and resumes.
  node.online("d0");
  CHECK(node.host.offers.back().device == "d0");
}
