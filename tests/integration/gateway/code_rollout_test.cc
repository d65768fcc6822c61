// The code-push scenario of issue 7, end to end with real processes: two gateway nodes with
// separate homes sharing only a real mosquitto, 200 devices simulated by two impdev processes
// (one per node) keeping their code in state directories, and the operator's impctl with its
// own registry. Deploy v2 in stages 10%,100% with a 5% halt; three devices corrupt their
// download; the rollout halts; the operator fixes them and resumes; all 200 end on v2; a late
// device joins; roll back to v1. At every step `impctl code status` must agree with what the
// devices run, read from their state directories.
#include <sys/wait.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "gateway/base/code/hex.h"
#include "gateway/base/code/sha256.h"
#include "tests/integration/gateway/gateway_fixture.h"
#include "tests/support/wait_until.h"

using namespace impgate;
using namespace impgate::testing;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

constexpr int kDevices = 200;

std::string writeProgram(const fs::path& file, std::size_t size, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string text;
  while (text.size() < size) text += "local reading_" + std::to_string(rng() % 100000) + " = 0;\n";
  text.resize(size);
  std::ofstream(file, std::ios::binary) << text;
  return code::toHex(code::sha256(text));
}

struct Run {
  int status = -1;
  std::string output;
};

// Runs impctl on the fixture's home (the operator's registry) against the fixture's broker.
Run impctl(GatewayFixture& fx, std::vector<std::string> args, std::chrono::seconds limit = 60s) {
  static int count = 0;
  std::vector<std::string> argv = {IMPCTL_BINARY, "--home", fx.home().root().string()};
  argv.insert(argv.end(), args.begin(), args.end());
  const bool bus = args.size() >= 1 && (args[0] == "code" || args[0] == "group" ||
                                        (args.size() >= 2 && args[1] == "move"));
  if (bus) {
    argv.push_back("--broker");
    argv.push_back(fx.broker().uri());
  }
  ChildProcess p;
  auto log = fx.dir().path() / ("impctl-" + std::to_string(++count) + ".log");
  p.start(argv, log);
  Run r;
  bool done = waitUntil([&] { return p.exited(); }, limit);
  if (!done) p.kill();
  r.output = p.log();
  if (done && p.exitStatus() && WIFEXITED(*p.exitStatus())) r.status = WEXITSTATUS(*p.exitStatus());
  return r;
}

// The code every device runs, from its own state directory (what it would report on HELLO).
std::map<std::string, int> runningByVersion(const fs::path& state, const std::string& prefix,
                                            int first, int count) {
  std::map<std::string, int> out;
  for (int i = first; i < first + count; ++i) {
    char id[64];
    std::snprintf(id, sizeof id, "%s%05d", prefix.c_str(), i);
    std::ifstream in(state / id / "code" / "current", std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    ++out[in ? code::toHex(code::sha256(bytes)) : std::string("none")];
  }
  return out;
}

nlohmann::json status(GatewayFixture& fx) {
  Run r = impctl(fx, {"code", "status", "--group", "fleet", "--json"});
  INFO(r.output);
  REQUIRE(r.status == 0);
  auto start = r.output.find('{');
  REQUIRE(start != std::string::npos);
  return nlohmann::json::parse(r.output.substr(start));
}

// Devices `code status --json` counts as running `sha`.
int runningCount(const nlohmann::json& s, const std::string& sha) {
  for (const auto& r : s["running"]) {
    if (r.value("code", "") == sha) return r.value("devices", 0);
  }
  return 0;
}

}  // namespace

TEST_CASE(
    "staged rollout across two nodes: halt on corrupt downloads, resume, late device, "
    "rollback",
    "[code_push][rollout]") {
  GatewayFixtureOptions options;
  options.node = "n1";
  GatewayFixture fx(options);
  GatewayNode n2(fx, "n2");
  n2.start();
  TempDir work("rollout");
  const fs::path state = work.path() / "state";
  const std::string v1 = writeProgram(work.path() / "v1.nut", 64 * 1024, 1);
  const std::string v2 = writeProgram(work.path() / "v2.nut", 64 * 1024, 2);

  REQUIRE(impctl(fx, {"device", "enroll", "sim", "--count", std::to_string(kDevices), "--group",
                      "fleet"})
              .status == 0);
  // v1 first, to everyone at once: the devices start from it.
  Run d1 = impctl(fx, {"code", "deploy", (work.path() / "v1.nut").string(), "--group", "fleet"});
  INFO(d1.output);
  REQUIRE(d1.status == 0);

  // `corrupt`: the first `corrupt` devices of this process corrupt their next download.
  auto simulate = [&](ChildProcess& p, const std::string& gateway, int first, int corrupt,
                      const std::string& logName) {
    std::vector<std::string> argv = {IMPDEV_BINARY, "--home", fx.home().root().string(),
                                     "--gateway",   gateway,  "--state",
                                     state.string()};
    std::vector<std::string> sim = {"simulate",
                                    "--count",
                                    std::to_string(kDevices / 2),
                                    "--prefix",
                                    "sim",
                                    "--first",
                                    std::to_string(first),
                                    "--rate",
                                    "500",
                                    "--duration",
                                    "600",
                                    "--code-push"};
    if (corrupt > 0) {
      sim.push_back("--corrupt-devices");
      sim.push_back(std::to_string(corrupt));
    }
    argv.insert(argv.end(), sim.begin(), sim.end());
    p.start(argv, work.path() / logName);
  };
  ChildProcess a, b;
  simulate(a, fx.endpoint(), 1, 0, "sim-a.log");
  simulate(b, n2.endpoint(), kDevices / 2 + 1, 0, "sim-b.log");
  auto allOn = [&](const std::string& sha) {
    auto running = runningByVersion(state, "sim", 1, kDevices);
    return running.size() == 1 && running.begin()->first == sha;
  };
  REQUIRE(waitUntil([&] { return allOn(v1); }, 90s));
  REQUIRE(impctl(fx, {"code", "status", "--group", "fleet", "--until-done", "30"}).status == 0);

  // The first three devices of node n1 will corrupt their next download.
  a.stop();
  simulate(a, fx.endpoint(), 1, 3, "sim-a2.log");
  // Everyone back online before the deployment, so that the first stage finds the three.
  {
    nlohmann::json seen;
    if (!waitUntil(
            [&] {
              seen = status(fx);
              return seen.value("online", 0) == kDevices;
            },
            60s)) {
      FAIL("not all online again:\n" << seen.dump(1) << "\n" << a.logTail(2000));
    }
  }
  Run d2 = impctl(fx, {"code", "deploy", (work.path() / "v2.nut").string(), "--group", "fleet",
                       "--stage", "10%,100%", "--halt-failures", "5", "--max-concurrent", "5"});
  INFO(d2.output);
  REQUIRE(d2.status == 0);

  // The rollout halts: three failures among the first stage's 20 are more than 5 %. (At most 5
  // transfers per node, so the three, first in their node's queue, fail among the first.)
  nlohmann::json last;
  if (!waitUntil(
          [&] {
            last = status(fx);
            return !last["halted_by"].empty() && last["states"].value("failed", 0) == 3;
          },
          60s)) {
    FAIL("no halt with 3 failures; status:\n"
         << last.dump(1) << "\nsimulator a:\n"
         << a.logTail(3000) << "\nnode n1:\n"
         << fx.process().logTail(6000));
  }
  auto running = runningByVersion(state, "sim", 1, kDevices);
  CHECK(running[v2] < kDevices / 2);  // halted in the first stage (overshoot included)
  CHECK(running["none"] == 0);
  auto s = status(fx);
  CHECK(runningCount(s, v2) == running[v2]);
  CHECK(runningCount(s, v1) == running[v1]);

  // The operator fixes the three devices and resumes: everyone ends on v2.
  a.stop();
  simulate(a, fx.endpoint(), 1, 0, "sim-a3.log");
  REQUIRE(impctl(fx, {"code", "resume", "--group", "fleet"}).status == 0);
  REQUIRE(waitUntil([&] { return allOn(v2); }, 120s));
  Run done = impctl(fx, {"code", "status", "--group", "fleet", "--until-done", "30"});
  INFO(done.output);
  CHECK(done.status == 0);
  s = status(fx);
  CHECK(runningCount(s, v2) == kDevices);
  CHECK(s["states"].value("failed", 0) == 0);

  // A device enrolled later joins at the current stage (100 %): it gets v2 when it comes up.
  REQUIRE(impctl(fx, {"device", "enroll", "late", "--group", "fleet"}).status == 0);
  ChildProcess late;
  late.start({IMPDEV_BINARY, "--home", fx.home().root().string(), "--gateway", n2.endpoint(),
              "--id", "late", "--state", (state / "late").string(), "listen"},
             work.path() / "late.log");
  REQUIRE(
      waitUntil([&] { return late.log().find("code installed " + v2) != std::string::npos; }, 60s));

  // Roll back: a new deployment of v1 reaches every device.
  Run back = impctl(fx, {"code", "rollback", "--group", "fleet"});
  INFO(back.output);
  REQUIRE(back.status == 0);
  REQUIRE(waitUntil([&] { return allOn(v1); }, 120s));
  REQUIRE(
      waitUntil([&] { return late.log().find("code installed " + v1) != std::string::npos; }, 60s));
  s = status(fx);
  CHECK(runningCount(s, v1) == kDevices + 1);
}
