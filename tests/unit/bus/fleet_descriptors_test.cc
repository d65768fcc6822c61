// The code-push payloads (bus/fleet/descriptors.h): the documented JSON, round trips, and
// every kind of malformed field giving a clear error instead of a throw.
#include "bus/fleet/descriptors.h"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <cmath>
#include <functional>
#include <limits>
#include <string>

using namespace impgate::bus::fleet;
using nlohmann::json;

namespace {

const std::string kShaA(64, 'a');
const std::string kShaB(64, 'b');
const std::string kShaC = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

VersionDescriptor sampleVersion() {
  VersionDescriptor v;
  v.code = kShaA;
  v.size = 3000;
  for (std::size_t i = 0; i < v.signature.size(); ++i) v.signature[i] = static_cast<uint8_t>(i);
  v.chunks = {{kShaB, 1000}, {kShaC, 2000}};
  v.note = "fix \"quotes\" and caf\xc3\xa9";
  v.author = "impctl:ops";
  v.createdAtMs = 1764547200000;
  return v;
}

DeploymentBody sampleDeployment() {
  DeploymentBody d;
  d.group = "kitchen";
  d.deployment = 7;
  d.code = kShaA;
  d.size = 3000;
  d.supported = {kShaA, kShaB};
  d.stages = {10, 100};
  d.maxConcurrent = 0;
  d.haltFailures = 5.0;
  d.devices = 200;
  d.paused = false;
  d.resume = 1;
  d.createdAtMs = 1764547200000;
  d.author = "impctl:ops";
  d.note = "v2";
  return d;
}

DeviceCodeState sampleState() {
  DeviceCodeState s;
  s.device = "imp-1";
  s.group = "kitchen";
  s.deployment = 7;
  s.target = kShaA;
  s.running = kShaB;
  s.state = CodeState::kTransferring;
  s.reason = "";
  s.resume = 1;
  s.bytes = 4096;
  s.node = "gw-a";
  s.atMs = 1764547200123;
  return s;
}

NodeRolloutView sampleRollout() {
  NodeRolloutView r;
  r.node = "gw-a";
  r.group = "kitchen";
  r.deployment = 7;
  r.stage = 1;
  r.halted = true;
  r.paused = false;
  r.transfers = 3;
  r.queued = 40;
  r.atMs = 1764547200999;
  return r;
}

// The error message of decoding `doc` with `decode`, which must fail with kMalformed.
template <typename Decode>
std::string malformed(Decode decode, const std::string& doc) {
  auto result = decode(doc);
  REQUIRE_FALSE(result.ok());
  CHECK(result.error().code == ErrorCode::kMalformed);
  return result.error().message;
}

// `valid` with `edit` applied, as text.
std::string edited(const std::string& valid, const std::function<void(json&)>& edit) {
  json j = json::parse(valid);
  edit(j);
  return j.dump();
}

}  // namespace

TEST_CASE("the version descriptor's JSON is the documented one and round-trips") {
  VersionDescriptor v = sampleVersion();
  std::string text = encodeVersionDescriptor(v);
  CHECK(text == "{\"code\":\"" + kShaA +
                    "\",\"size\":3000,\"signature\":"
                    "\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4"
                    "OTo7PD0+Pw==\",\"chunks\":[[\"" +
                    kShaB + "\",1000],[\"" + kShaC +
                    "\",2000]],\"note\":\"fix \\\"quotes\\\" and caf\\u00e9\",\"author\":"
                    "\"impctl:ops\",\"created_at\":1764547200000}");
  auto back = decodeVersionDescriptor(text);
  REQUIRE(back.ok());
  CHECK(*back == v);
  CHECK(check(v).ok());
}

TEST_CASE("the deployment body's JSON is the documented one and round-trips") {
  DeploymentBody d = sampleDeployment();
  std::string text = encodeDeploymentBody(d);
  CHECK(text == "{\"group\":\"kitchen\",\"deployment\":7,\"code\":\"" + kShaA +
                    "\",\"size\":3000,\"supported\":[\"" + kShaA + "\",\"" + kShaB +
                    "\"],\"stages\":[10,100],\"max_concurrent\":0,\"halt_failures\":5.0,"
                    "\"devices\":200,\"paused\":false,\"resume\":1,\"created_at\":1764547200000,"
                    "\"author\":\"impctl:ops\",\"note\":\"v2\"}");
  auto back = decodeDeploymentBody(text);
  REQUIRE(back.ok());
  CHECK(*back == d);

  d.haltFailures = 2.5;
  d.paused = true;
  d.maxConcurrent = 50;
  d.stages = {1, 10, 100};
  auto again = decodeDeploymentBody(encodeDeploymentBody(d));
  REQUIRE(again.ok());
  CHECK(*again == d);
}

TEST_CASE("group assignments, device code states and rollout views round-trip") {
  GroupAssignment g{"imp-1", "kitchen", 1764547200000};
  CHECK(encodeGroupAssignment(g) == R"({"device":"imp-1","group":"kitchen","at":1764547200000})");
  CHECK(*decodeGroupAssignment(encodeGroupAssignment(g)) == g);

  DeviceCodeState s = sampleState();
  CHECK(encodeDeviceCodeState(s) ==
        "{\"device\":\"imp-1\",\"group\":\"kitchen\",\"deployment\":7,\"target\":\"" + kShaA +
            "\",\"running\":\"" + kShaB +
            "\",\"state\":\"transferring\",\"reason\":\"\",\"resume\":1,\"bytes\":4096,"
            "\"node\":\"gw-a\",\"at\":1764547200123}");
  CHECK(*decodeDeviceCodeState(encodeDeviceCodeState(s)) == s);
  for (CodeState st : {CodeState::kCurrent, CodeState::kOffered, CodeState::kTransferring,
                       CodeState::kInstalled, CodeState::kDeferred, CodeState::kFailed}) {
    s.state = st;
    s.running = st == CodeState::kOffered ? "" : kShaB;  // a device that reported no code
    s.reason = st == CodeState::kFailed ? "bad signature" : "";
    auto back = decodeDeviceCodeState(encodeDeviceCodeState(s));
    REQUIRE(back.ok());
    CHECK(*back == s);
  }

  NodeRolloutView r = sampleRollout();
  CHECK(encodeNodeRolloutView(r) ==
        R"({"node":"gw-a","group":"kitchen","deployment":7,"stage":1,"halted":true,)"
        R"("paused":false,"transfers":3,"queued":40,"at":1764547200999})");
  CHECK(*decodeNodeRolloutView(encodeNodeRolloutView(r)) == r);
}

TEST_CASE("decoders accept integral numbers however JSON spells them and ignore unknown fields") {
  std::string text = edited(encodeDeploymentBody(sampleDeployment()), [](json& j) {
    j["halt_failures"] = 5;  // an integer where a number is asked for
    j["future_field"] = {{"x", 1}};
  });
  auto d = decodeDeploymentBody(text);
  REQUIRE(d.ok());
  CHECK(d->haltFailures == 5.0);
  // Whitespace and field order are free.
  auto g = decodeGroupAssignment(" {\n \"at\" : 5 , \"group\":\"g\",\"device\":\"d\"}\n");
  REQUIRE(g.ok());
  CHECK(g->atMs == 5);
}

TEST_CASE("documents that are not a JSON object are refused with a clear error") {
  CHECK(malformed(decodeVersionDescriptor, "") == "version descriptor: not JSON");
  CHECK(malformed(decodeDeploymentBody, "{\"group\":") == "deployment body: not JSON");
  CHECK(malformed(decodeGroupAssignment, "[1,2]") == "group assignment: not a JSON object");
  CHECK(malformed(decodeDeviceCodeState, "\"x\"") == "device code state: not a JSON object");
  CHECK(malformed(decodeNodeRolloutView, "{} trailing") == "rollout view: not JSON");
  CHECK(malformed(decodeNodeRolloutView, "{\"a\":\"\xff\"}") == "rollout view: not JSON");
  CHECK(malformed(decodeNodeRolloutView, std::string(20, '[') + std::string(20, ']')) ==
        "rollout view: nested deeper than 16");
  // Deep nesting is refused before parsing, also inside an otherwise valid object.
  std::string deep = "{\"x\":" + std::string(100000, '[') + std::string(100000, ']') + "}";
  CHECK(malformed(decodeGroupAssignment, deep) == "group assignment: nested deeper than 16");
  // Brackets inside strings do not count.
  auto g = decodeGroupAssignment("{\"device\":\"d\",\"group\":\"g\",\"at\":1,\"n\":\"" +
                                 std::string(40, '[') + "\\\"" + std::string(40, '{') + "\"}");
  CHECK(g.ok());
  std::string huge = "{\"note\":\"" + std::string(kMaxDocumentSize, 'x') + "\"}";
  CHECK(malformed(decodeVersionDescriptor, huge) ==
        "version descriptor: larger than 1048576 bytes");
}

TEST_CASE("a version descriptor with a bad field names the field") {
  const std::string valid = encodeVersionDescriptor(sampleVersion());
  auto bad = [&](const std::function<void(json&)>& edit) {
    return malformed(decodeVersionDescriptor, edited(valid, edit));
  };
  CHECK(bad([](json& j) { j.erase("code"); }) == "version descriptor: \"code\" is missing");
  CHECK(bad([](json& j) { j["code"] = 5; }) == "version descriptor: \"code\" must be a string");
  CHECK(bad([](json& j) { j["code"] = std::string(64, 'A'); }) ==
        "version descriptor: \"code\" must be 64 lower-case hex digits");
  CHECK(bad([](json& j) { j["code"] = std::string(63, 'a'); }).find("\"code\"") !=
        std::string::npos);
  CHECK(bad([](json& j) { j["size"] = -1; }) ==
        "version descriptor: \"size\" must be an integer 0..4294967295");
  CHECK(bad([](json& j) { j["size"] = 4294967296; }).find("\"size\"") != std::string::npos);
  CHECK(bad([](json& j) { j["size"] = 3000.5; }).find("\"size\"") != std::string::npos);
  CHECK(bad([](json& j) { j["size"] = "3000"; }).find("\"size\"") != std::string::npos);
  CHECK(bad([](json& j) { j["size"] = 0; }) == "version descriptor: \"size\" must be 1..4194304");
  CHECK(bad([](json& j) { j["size"] = 4194305; }).find("\"size\" must be 1..") !=
        std::string::npos);
  CHECK(bad([](json& j) { j["signature"] = "AAAA"; }) ==
        "version descriptor: \"signature\" must be 64 bytes in base64");
  CHECK(bad([](json& j) { j["signature"] = "not base64!"; }).find("\"signature\"") !=
        std::string::npos);
  CHECK(bad([](json& j) { j["signature"] = nullptr; }) ==
        "version descriptor: \"signature\" must be a string");
  CHECK(bad([](json& j) { j["chunks"] = json::object(); }) ==
        "version descriptor: \"chunks\" must be an array");
  CHECK(bad([](json& j) { j["chunks"] = json::array(); }) ==
        "version descriptor: \"chunks\" must list 1..4096 chunks");
  CHECK(bad([](json& j) { j["chunks"][0] = json::array({"x"}); }) ==
        "version descriptor: \"chunks\" entry 0 must be [\"<sha>\", length]");
  CHECK(bad([](json& j) { j["chunks"][1] = {{"sha", "x"}}; }).find("entry 1") != std::string::npos);
  CHECK(bad([](json& j) { j["chunks"][0][1] = -5; }).find("entry 0") != std::string::npos);
  CHECK(bad([](json& j) { j["chunks"][0][0] = "ABC"; }) ==
        "version descriptor: \"chunks\" entry 0: the sha must be 64 lower-case hex digits");
  CHECK(bad([](json& j) { j["chunks"][0][1] = 0; }) ==
        "version descriptor: \"chunks\" entry 0: the length must be 1..8192");
  CHECK(bad([](json& j) { j["chunks"][1][1] = 8193; }).find("entry 1: the length") !=
        std::string::npos);
  CHECK(bad([](json& j) { j["chunks"][1][1] = 1999; }) ==
        "version descriptor: \"chunks\" lengths add up to 2999, not the size 3000");
  CHECK(bad([](json& j) {
          json many = json::array();
          for (int i = 0; i < 4097; ++i) many.push_back(json::array({std::string(64, 'a'), 1}));
          j["chunks"] = many;
        }) == "version descriptor: \"chunks\" lists more than 4096");
  CHECK(bad([](json& j) { j["note"] = std::string(kMaxTextField + 1, 'n'); }) ==
        "version descriptor: \"note\" is longer than 1024 bytes");
  CHECK(bad([](json& j) { j.erase("author"); }) == "version descriptor: \"author\" is missing");
  CHECK(bad([](json& j) { j["created_at"] = -1; }) ==
        "version descriptor: \"created_at\" must not be negative");
  CHECK(bad([](json& j) { j["created_at"] = 18446744073709551615ull; }) ==
        "version descriptor: \"created_at\" must be an integer");
}

TEST_CASE("a deployment body with a bad field names the field") {
  const std::string valid = encodeDeploymentBody(sampleDeployment());
  auto bad = [&](const std::function<void(json&)>& edit) {
    return malformed(decodeDeploymentBody, edited(valid, edit));
  };
  CHECK(bad([](json& j) { j["group"] = "a/b"; }).find("\"group\" must be 1-64 of") !=
        std::string::npos);
  CHECK(bad([](json& j) { j["group"] = ""; }).find("\"group\"") != std::string::npos);
  CHECK(bad([](json& j) { j["deployment"] = 0; }) ==
        "deployment body: \"deployment\" must be 1 or more");
  CHECK(bad([](json& j) { j["code"] = "+"; }).find("\"code\"") != std::string::npos);
  CHECK(bad([](json& j) { j["size"] = 0; }).find("\"size\"") != std::string::npos);
  CHECK(bad([](json& j) { j["supported"] = "x"; }).find("\"supported\" must be an array") !=
        std::string::npos);
  CHECK(bad([](json& j) { j["supported"][1] = 3; }) ==
        "deployment body: \"supported\" must hold strings");
  CHECK(bad([](json& j) { j["supported"][1] = "abc"; }) ==
        "deployment body: \"supported\" entry 1 must be 64 lower-case hex digits");
  CHECK(bad([](json& j) { j["stages"] = json::array(); }) ==
        "deployment body: \"stages\" must list 1..16 percentages");
  CHECK(bad([](json& j) {
          j["stages"] = {10, 10, 100};
        }) == "deployment body: \"stages\" must be percentages of 1..100 in increasing order");
  CHECK(bad([](json& j) { j["stages"] = {50, 10, 100}; }).find("increasing") != std::string::npos);
  CHECK(bad([](json& j) { j["stages"] = {0, 100}; }).find("increasing") != std::string::npos);
  CHECK(bad([](json& j) {
          j["stages"] = {10, 101};
        }) == "deployment body: \"stages\" must hold integer percentages 1..100");
  CHECK(bad([](json& j) {
          j["stages"] = {10.5, 100};
        }).find("integer percentages") != std::string::npos);
  CHECK(bad([](json& j) {
          j["stages"] = {10, 50};
        }) == "deployment body: \"stages\" must end with 100");
  CHECK(bad([](json& j) {
          j["stages"] = json::array();
          for (int i = 1; i <= 17; ++i) j["stages"].push_back(i);
        }).find("\"stages\" must be an array of at most 16") != std::string::npos);
  CHECK(bad([](json& j) { j["max_concurrent"] = -1; }).find("\"max_concurrent\"") !=
        std::string::npos);
  CHECK(bad([](json& j) { j["halt_failures"] = "5%"; }) ==
        "deployment body: \"halt_failures\" must be a number");
  CHECK(bad([](json& j) { j["halt_failures"] = 100.5; }) ==
        "deployment body: \"halt_failures\" must be a percentage 0..100");
  CHECK(bad([](json& j) { j["halt_failures"] = -0.1; }).find("\"halt_failures\"") !=
        std::string::npos);
  CHECK(bad([](json& j) { j["halt_failures"] = 1e308 * 10; }).find("\"halt_failures\"") !=
        std::string::npos);  // infinity is written as null
  CHECK(bad([](json& j) { j["devices"] = true; }).find("\"devices\"") != std::string::npos);
  CHECK(bad([](json& j) { j["paused"] = 0; }) ==
        "deployment body: \"paused\" must be true or false");
  CHECK(bad([](json& j) { j.erase("resume"); }) == "deployment body: \"resume\" is missing");
  CHECK(bad([](json& j) { j["created_at"] = -5; }).find("\"created_at\"") != std::string::npos);
  CHECK(bad([](json& j) { j["author"] = std::string(2000, 'a'); }).find("\"author\"") !=
        std::string::npos);
  CHECK(bad([](json& j) { j.erase("note"); }) == "deployment body: \"note\" is missing");
}

TEST_CASE("assignments, code states and rollout views with a bad field name it") {
  const std::string assignment = encodeGroupAssignment({"imp-1", "kitchen", 1});
  auto badAssignment = [&](const std::function<void(json&)>& edit) {
    return malformed(decodeGroupAssignment, edited(assignment, edit));
  };
  CHECK(badAssignment([](json& j) { j["device"] = ".x"; }).find("\"device\"") != std::string::npos);
  CHECK(badAssignment([](json& j) { j["group"] = "a+b"; }).find("\"group\"") != std::string::npos);
  CHECK(badAssignment([](json& j) { j["at"] = "now"; }) ==
        "group assignment: \"at\" must be an integer");

  const std::string state = encodeDeviceCodeState(sampleState());
  auto badState = [&](const std::function<void(json&)>& edit) {
    return malformed(decodeDeviceCodeState, edited(state, edit));
  };
  CHECK(badState([](json& j) { j["state"] = "done"; }) ==
        "device code state: \"state\" must be current, offered, transferring, installed, "
        "deferred or failed");
  CHECK(badState([](json& j) { j["state"] = "Installed"; }).find("\"state\"") != std::string::npos);
  CHECK(badState([](json& j) { j["target"] = ""; }).find("\"target\"") != std::string::npos);
  CHECK(badState([](json& j) { j["running"] = "abc"; }) ==
        "device code state: \"running\" must be empty or 64 lower-case hex digits");
  CHECK(badState([](json& j) { j["reason"] = std::string(1025, 'r'); }).find("\"reason\"") !=
        std::string::npos);
  CHECK(badState([](json& j) { j["bytes"] = -1; }) ==
        "device code state: \"bytes\" must be a non-negative integer");
  CHECK(badState([](json& j) { j["node"] = "a b"; }).find("\"node\"") != std::string::npos);
  CHECK(badState([](json& j) { j.erase("resume"); }).find("\"resume\" is missing") !=
        std::string::npos);

  const std::string rollout = encodeNodeRolloutView(sampleRollout());
  auto badRollout = [&](const std::function<void(json&)>& edit) {
    return malformed(decodeNodeRolloutView, edited(rollout, edit));
  };
  CHECK(badRollout([](json& j) { j["stage"] = 16; }) == "rollout view: \"stage\" must be 0..15");
  CHECK(badRollout([](json& j) { j["halted"] = "yes"; }).find("\"halted\"") != std::string::npos);
  CHECK(badRollout([](json& j) { j["transfers"] = 1.5; }).find("\"transfers\"") !=
        std::string::npos);
  CHECK(badRollout([](json& j) { j["node"] = ""; }).find("\"node\"") != std::string::npos);
  CHECK(badRollout([](json& j) { j.erase("queued"); }) == "rollout view: \"queued\" is missing");
}

TEST_CASE("check() applies the decoders' rules to structs built in code") {
  DeploymentBody d = sampleDeployment();
  CHECK(check(d).ok());
  d.haltFailures = std::numeric_limits<double>::quiet_NaN();
  REQUIRE_FALSE(check(d).ok());
  CHECK(check(d).error().message ==
        "deployment body: \"halt_failures\" must be a percentage 0..100");
  // NaN is not JSON: the encoder writes something the decoder reads (and check() refused).
  CHECK(decodeDeploymentBody(encodeDeploymentBody(d)).ok());

  VersionDescriptor v = sampleVersion();
  v.chunks.clear();
  CHECK_FALSE(check(v).ok());
  GroupAssignment g{"d", "", 0};
  CHECK_FALSE(check(g).ok());
  DeviceCodeState s = sampleState();
  s.atMs = -1;
  CHECK_FALSE(check(s).ok());
  NodeRolloutView r = sampleRollout();
  r.group = "#";
  CHECK_FALSE(check(r).ok());
}

TEST_CASE("code state names") {
  CodeState s{};
  CHECK(codeStateFromName("deferred", s));
  CHECK(s == CodeState::kDeferred);
  CHECK(codeStateName(CodeState::kCurrent) == "current");
  CHECK_FALSE(codeStateFromName("", s));
  CHECK_FALSE(codeStateFromName("current ", s));
}
