// The test bed (tools/testbed) that integration tests and impbench both stand on, with real
// processes: a child's process group, signals and stop; a real mosquitto's start, restart on the
// same port, named files and stock settings; a real aedes that speaks MQTT 3.1.1 only; temp dirs
// that are kept on request.
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>

#include "tests/support/mqtt_probe.h"
#include "tests/support/testbed.h"
#include "tests/support/wait_until.h"

using namespace impgate::testing;
using namespace std::chrono_literals;

namespace {

// The hex mask of a /proc/<pid>/status line such as "SigIgn:", or empty.
std::string statusField(pid_t pid, const std::string& field) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(field, 0) == 0) return line.substr(line.find_first_not_of(" \t", field.size()));
  }
  return {};
}

bool ignores(pid_t pid, int signal) {
  std::string mask = statusField(pid, "SigIgn:");
  return !mask.empty() && (std::stoull(mask, nullptr, 16) >> (signal - 1) & 1) != 0;
}

}  // namespace

TEST_CASE("a child runs in its own process group, SIGPIPE at its default") {
  TempDir dir("impgate-testbed");
  // What impbench does before it starts its servers: a parent that ignores SIGPIPE.
  auto previous = ::signal(SIGPIPE, SIG_IGN);
  ChildProcess child;
  child.start({"/bin/sleep", "30"}, dir / "sleep.log");
  ::signal(SIGPIPE, previous);
  REQUIRE(child.running());
  // exec has happened once /proc shows sleep (before, the forked copy of this test runs).
  REQUIRE(waitUntil([&] { return statusField(child.pid(), "Name:") == "sleep"; }, 5s));
  // A Ctrl-C at the terminal goes to the foreground group: the parent's, not the child's.
  CHECK(::getpgid(child.pid()) == child.pid());
  CHECK(::getpgid(child.pid()) != ::getpgrp());
  // A server that writes to a peer that went away must see EPIPE or die of SIGPIPE as it
  // would when started from a shell, not inherit its parent's choice.
  CHECK_FALSE(ignores(child.pid(), SIGPIPE));
  auto status = child.stop(2s);
  REQUIRE(status);
  CHECK(WIFSIGNALED(*status));
  CHECK(WTERMSIG(*status) == SIGTERM);
}

TEST_CASE("a child that ignores SIGTERM is killed after the grace period") {
  TempDir dir("impgate-testbed");
  ChildProcess child;
  child.start({"/bin/sh", "-c", "trap '' TERM; echo ready; while :; do sleep 1; done"},
              dir / "stubborn.log");
  REQUIRE(waitUntil([&] { return child.log().find("ready") != std::string::npos; }, 5s));
  auto status = child.stop(200ms);
  REQUIRE(status);
  CHECK(WIFSIGNALED(*status));
  CHECK(WTERMSIG(*status) == SIGKILL);
  CHECK_FALSE(child.running());
}

TEST_CASE("start errors come as a value from tryStart and as an exception from start") {
  TempDir dir("impgate-testbed");
  ChildProcess child;
  std::string error;
  CHECK_FALSE(child.tryStart({"/bin/true"}, dir / "missing-dir" / "log", error));
  CHECK(error.find("missing-dir") != std::string::npos);
  CHECK_THROWS_AS(child.start({"/bin/true"}, dir / "missing-dir" / "log"), std::runtime_error);
}

TEST_CASE("the log tail is the end of the log") {
  TempDir dir("impgate-testbed");
  ChildProcess child;
  child.start({"/bin/sh", "-c", "echo first; echo last"}, dir / "echo.log");
  REQUIRE(waitUntil([&] { return child.exited(); }, 5s));
  CHECK(child.log() == "first\nlast\n");
  CHECK(child.logTail(5) == "last\n");
  CHECK(child.logTail(1000) == child.log());
}

TEST_CASE("a temp dir is removed unless kept, and is made where asked") {
  TempDir parent("impgate-testbed");
  std::filesystem::path removed, kept;
  {
    TempDir dir(parent.path(), "run");
    removed = dir.path();
    CHECK(removed.parent_path() == parent.path());
    CHECK(removed.filename().string().rfind("run-", 0) == 0);
    std::ofstream(dir / "file") << "x";
  }
  CHECK_FALSE(std::filesystem::exists(removed));
  {
    std::string error;
    auto dir = impgate::testbed::TempDir::create(parent.path(), "kept", error);
    REQUIRE(dir);
    kept = dir->path();
    dir->keep();
  }
  CHECK(std::filesystem::is_directory(kept));
  std::string error;
  CHECK_FALSE(impgate::testbed::TempDir::create(parent / "no-such-dir", "run", error));
  CHECK(error.find("no-such-dir") != std::string::npos);
}

TEST_CASE("a broker restarts on the same port and names its files") {
  TempDir dir("impgate-testbed");
  impgate::testbed::MosquittoOptions options;
  options.dir = dir.path();
  options.name = "bus";
  options.logClients = false;
  std::string error;
  auto broker = impgate::testbed::MosquittoBroker::start(options, error);
  REQUIRE(broker);
  CHECK(broker->logPath() == dir / "bus-mosquitto.log");
  CHECK(std::filesystem::exists(dir / "bus-mosquitto.conf"));
  CHECK_FALSE(broker->version().empty());
  CHECK(isListening(broker->port()));
  auto port = broker->port();
  auto firstPid = broker->pid();
  broker->restart();
  CHECK(broker->port() == port);
  CHECK(broker->pid() != firstPid);
  CHECK(acceptsConnections(port));
  broker->stop();
  CHECK_FALSE(broker->running());
  CHECK_FALSE(acceptsConnections(port));
}

TEST_CASE("a broker that cannot start is an error value with its name") {
  TempDir dir("impgate-testbed");
  impgate::testbed::MosquittoOptions options;
  options.dir = dir.path();
  options.name = "baseline";
  options.binary = "/bin/false";  // exits at once, on every port it is given
  std::string error;
  CHECK_FALSE(impgate::testbed::MosquittoBroker::start(options, error));
  CHECK(error.find("mosquitto (baseline) exited during start-up") != std::string::npos);
}

TEST_CASE("a broker with stock settings keeps mosquitto's queue and in-flight limits") {
  TempDir dir("impgate-testbed");
  impgate::testbed::MosquittoOptions options;
  options.dir = dir.path();
  std::string tuned;
  {
    impgate::testbed::MosquittoBroker broker(options);
    tuned = readWholeFile(dir / "mosquitto.conf");
  }
  CHECK(tuned.find("max_queued_messages 0") != std::string::npos);
  CHECK(tuned.find("max_inflight_messages 0") != std::string::npos);
  options.stockSettings = true;
  impgate::testbed::MosquittoBroker broker(options);
  auto stock = readWholeFile(dir / "mosquitto.conf");
  CHECK(stock.find("max_queued_messages") == std::string::npos);
  CHECK(stock.find("max_inflight_messages") == std::string::npos);
  CHECK(stock.find("set_tcp_nodelay") == std::string::npos);
  CHECK(acceptsConnections(broker.port()));
}

TEST_CASE("aedes speaks MQTT 3.1.1 only and restarts on the same port") {
  TempDir dir("impgate-testbed");
  impgate::testbed::AedesOptions options;
  options.dir = dir.path();
  options.name = "old";
  AedesFixture broker(options);
  CHECK(broker.logPath() == dir / "old-aedes.log");
  CHECK(broker.version().rfind("0.51.", 0) == 0);
  CHECK(isListening(broker.port()));
  {
    MqttProbe v311(broker.uri(), "", false);
    REQUIRE(v311.connect());
    REQUIRE(v311.subscribe("t/#"));
    REQUIRE(v311.publish("t/a", "x", 1));
    CHECK(v311.waitForTopic("t/a", 5s));
  }
  {
    MqttProbe v5(broker.uri(), "", true);
    CHECK_FALSE(v5.connect(3s));
  }
  CHECK(waitUntil(
      [&] { return broker.log().find("unacceptable protocol version") != std::string::npos; }, 5s));
  auto port = broker.port();
  auto firstPid = broker.pid();
  broker.restart();
  CHECK(broker.port() == port);
  CHECK(broker.pid() != firstPid);
  CHECK(acceptsConnections(port));
  broker.stop();
  CHECK_FALSE(broker.running());
  CHECK_FALSE(acceptsConnections(port));
}

TEST_CASE("aedes without node or its npm package is an error that says how to install them") {
  TempDir dir("impgate-testbed");
  auto failure = [&](impgate::testbed::AedesOptions options) -> std::string {
    options.dir = dir.path();
    try {
      AedesFixture broker(options);
    } catch (const std::runtime_error& e) {
      return e.what();
    }
    return "started";
  };
  impgate::testbed::AedesOptions noNode;
  noNode.node = (dir / "no-node").string();
  CHECK_THAT(failure(noNode), Catch::Contains("node (Node.js) not found") &&
                                  Catch::Contains("tools/install-deps.sh"));
  impgate::testbed::AedesOptions noScript;
  noScript.packageDir = dir / "empty";
  CHECK_THAT(failure(noScript), Catch::Contains("broker.js"));
  // The script without `npm ci` having run next to it.
  std::filesystem::create_directories(dir / "bare");
  std::filesystem::copy_file(IMPGATE_AEDES_DIR "/broker.js", dir / "bare" / "broker.js");
  impgate::testbed::AedesOptions noPackage;
  noPackage.packageDir = dir / "bare";
  CHECK_THAT(failure(noPackage), Catch::Contains("npm package aedes is not installed") &&
                                     Catch::Contains("tools/install-deps.sh"));
}
