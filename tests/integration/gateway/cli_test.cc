// The command-line contract of impdev against the real gateway: what scripts and operators
// rely on (exit codes, output lines).
#include <sys/wait.h>

#include <catch2/catch.hpp>

#include "tests/integration/gateway/gateway_fixture.h"
#include "tests/support/wait_until.h"

using namespace impgate;
using namespace impgate::testing;
using namespace std::chrono_literals;

namespace {

// Runs impdev to completion (bounded); returns its exit code, -1 if it had to be killed.
int runImpdev(GatewayFixture& gw, const std::vector<std::string>& args, std::string& output,
              const std::string& gateway = {}) {
  std::vector<std::string> argv = {IMPDEV_BINARY,
                                   "--home",
                                   gw.home().root().string(),
                                   "--gateway",
                                   gateway.empty() ? gw.endpoint() : gateway,
                                   "--timeout",
                                   "5"};
  argv.insert(argv.end(), args.begin(), args.end());
  ChildProcess p;
  auto log = gw.home().root() / ("impdev-" + std::to_string(::getpid()) + ".log");
  std::filesystem::remove(log);
  p.start(argv, log);
  bool done = waitUntil([&] { return p.exited(); }, 20s);
  if (!done) p.kill();
  output = p.log();
  if (!done || !p.exitStatus() || !WIFEXITED(*p.exitStatus())) return -1;
  return WEXITSTATUS(*p.exitStatus());
}

}  // namespace

TEST_CASE("impdev send exits 0 once the gateway acknowledged the message") {
  GatewayFixture gw;
  gw.enroll("cli-1");
  MqttProbe agent(gw.broker().uri());
  REQUIRE(agent.connect());
  REQUIRE(agent.subscribe("imp/dev/cli-1/out/+"));
  std::string out;
  CHECK(runImpdev(gw, {"--id", "cli-1", "send", "temp", "42"}, out) == 0);
  auto m = agent.waitForTopic("imp/dev/cli-1/out/temp", 5s);
  REQUIRE(m);
  CHECK(m->payload == "42");
}

TEST_CASE("impdev send fails with a clear message when it cannot reach the gateway") {
  GatewayFixture gw;
  gw.enroll("cli-2");
  std::string out;
  // Port 1 on loopback: nothing listens there.
  int rc = runImpdev(gw, {"--id", "cli-2", "send", "temp", "42"}, out, "127.0.0.1:1");
  CHECK(rc == 1);
  CHECK(out.find("cannot connect") != std::string::npos);
}

TEST_CASE("impdev send refuses an event name the topic scheme cannot carry") {
  GatewayFixture gw;
  gw.enroll("cli-3");
  std::string out;
  CHECK(runImpdev(gw, {"--id", "cli-3", "send", "a/b", "42"}, out) == 1);
  CHECK(out.find("invalid_event") != std::string::npos);
}

TEST_CASE("impdev listen prints one `EVENT PAYLOAD` line per agent message") {
  GatewayFixture gw;
  gw.enroll("cli-4");
  MqttProbe agent(gw.broker().uri());
  REQUIRE(agent.connect());
  REQUIRE(agent.subscribe("imp/dev/cli-4/state"));
  ChildProcess listener;
  auto log = gw.home().root() / "listen.log";
  listener.start({IMPDEV_BINARY, "--home", gw.home().root().string(), "--gateway", gw.endpoint(),
                  "--id", "cli-4", "listen", "--count", "2"},
                 log);
  REQUIRE(agent.waitFor(
      [](const MqttProbe::Message& m) { return m.payload.find("\"online\"") != std::string::npos; },
      10s));
  REQUIRE(agent.publish("imp/dev/cli-4/in/led", "on", 1));
  REQUIRE(agent.publish("imp/dev/cli-4/in/led", "off", 1));
  REQUIRE(waitUntil([&] { return listener.exited(); }, 10s));
  std::string out = listener.log();
  auto first = out.find("led on\n");
  auto second = out.find("led off\n");
  CHECK(first != std::string::npos);
  CHECK(second != std::string::npos);
  CHECK(first < second);
}
