// The message-path regression guard: runs `impbench messages --quick` for real (impgate, its
// mosquitto, MQTT-direct devices and the agent) and fails when impbench reports a gross
// regression against the direct path of the same run (its exit status, thresholds in
// docs/benchmarks.md), or when its report is incomplete: both cases, both paths, every message
// arrived, every figure present. Timing-sensitive, so it runs in the release build only.
#include <sys/wait.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "tests/support/testbed.h"

namespace {

using impgate::testing::ChildProcess;
using impgate::testing::readWholeFile;
using impgate::testing::TempDir;
using json = nlohmann::json;

constexpr auto kRunDeadline = std::chrono::seconds(100);

int runQuick(const TempDir& dir, std::string& table, std::string& report, std::string& err) {
  std::string command = std::string("exec '") + IMPBENCH_BINARY + "' messages --quick --json '" +
                        (dir / "report.json").string() + "' --temp-dir '" + dir.path().string() +
                        "' > '" + (dir / "table.txt").string() + "' 2> '" +
                        (dir / "progress.log").string() + "'";
  ChildProcess impbench;
  impbench.start({"/bin/sh", "-c", command}, dir / "shell.log");
  auto deadline = std::chrono::steady_clock::now() + kRunDeadline;
  while (!impbench.exited() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  // SIGTERM lets impbench stop its own servers and remove its temp dir.
  if (!impbench.exited()) impbench.stop(std::chrono::seconds(20));
  table = readWholeFile(dir / "table.txt");
  report = readWholeFile(dir / "report.json");
  err = readWholeFile(dir / "progress.log") + readWholeFile(dir / "shell.log");
  return impbench.exitStatus().value_or(-1);
}

void checkPath(const json& path, bool impgate) {
  REQUIRE(path.is_object());
  CHECK(path["runs"].size() == 3);
  CHECK(path["sent"].get<std::size_t>() > 0);
  CHECK(path["received"] == path["sent"]);
  CHECK(path["lost"] == 0);
  CHECK(path["messagesPerSecond"].get<double>() > 0);
  CHECK(path["brokerCpuSecondsPer100k"].get<double>() > 0);
  if (impgate) CHECK(path["gatewayCpuSecondsPer100k"].get<double>() > 0);
  for (const json& run : path["runs"]) CHECK(run["error"].is_null());
}

}  // namespace

TEST_CASE("impbench messages --quick finds no gross regression of the message path", "[bench]") {
  TempDir dir("impbench-messages");
  std::string table, text, err;
  int status = runQuick(dir, table, text, err);
  INFO("impbench stderr:\n" << err << "\nstdout:\n" << table);
  REQUIRE(WIFEXITED(status));
  // 1 means a regression (listed in the table) or an incomplete run.
  CHECK(WEXITSTATUS(status) == 0);
  CHECK(table.find("quick thresholds:") != std::string::npos);

  json report = json::parse(text, nullptr, /*allow_exceptions=*/false);
  REQUIRE(report.is_object());
  CHECK(report["benchmark"] == "messages");
  CHECK(report["complete"] == true);
  CHECK(report["regressions"].empty());
  const json& cases = report["cases"];
  REQUIRE(cases.size() == 2);
  CHECK(cases[0]["direction"] == "device-to-agent");
  CHECK(cases[1]["direction"] == "agent-to-device");
  for (const json& c : cases) {
    INFO(c["name"].get<std::string>());
    CHECK(c["acknowledged"] == true);
    CHECK(c["devices"] == 4);
    checkPath(c["impgate"], true);
    checkPath(c["direct"], false);
    // The agent asks for no receipts (like the direct path, where there are none), and the
    // node publishes receipts only on request.
    if (c["direction"] == "agent-to-device") CHECK(c["impgate"]["receipts"] == 0);
    for (const char* key : {"throughput", "gatewayCpuToDirectBroker", "serverCpu"}) {
      INFO(key);
      CHECK(c["ratios"][key].get<double>() > 0);
    }
  }
  // impbench removed its own temp dir inside ours.
  for (const auto& entry : std::filesystem::directory_iterator(dir.path())) {
    CHECK(entry.path().filename().string().rfind("impbench-", 0) != 0);
  }
}
