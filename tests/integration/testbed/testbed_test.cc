// The test bed (tools/testbed) that integration tests and impbench both stand on, with real
// processes: a child's process group, signals and stop; a real mosquitto's start, restart on the
// same port and named files; temp dirs that are kept on request.
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>

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
