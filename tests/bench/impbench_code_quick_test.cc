// The code-push regression guard: runs `impbench code --quick` for real (impgate, its mosquitto,
// 200 simulated devices taking code push, the wire-limit agent and a bystander device) twice:
// unbounded, where it fails when code push falls below 0.3 times the wire rate of the same run,
// and with --max-concurrent 20, where it fails when more transfers than that ran at once. Both
// reports must be complete: every device installed every version, the delta fetched only part
// of the code, the bystander's round trips went through. Timing-sensitive, so it runs in the
// release build only.
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

constexpr auto kRunDeadline = std::chrono::seconds(60);

int runQuick(const TempDir& dir, const std::string& extra, std::string& table, std::string& report,
             std::string& err) {
  std::string command = std::string("exec '") + IMPBENCH_BINARY + "' code --quick " + extra +
                        " --json-file '" + (dir / "report.json").string() + "' --temp-dir '" +
                        dir.path().string() + "' > '" + (dir / "table.txt").string() + "' 2> '" +
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

void checkPush(const json& push, uint64_t codeSize) {
  REQUIRE(push.is_object());
  CHECK(push["error"].is_null());
  CHECK(push["devices"] == 200);
  CHECK(push["installed"] == 200);
  CHECK(push["failed"] == 0);
  CHECK(push["gatewayInstalledStates"] == 200);
  CHECK(push["codeSize"].get<uint64_t>() >= codeSize);
  CHECK(push["devicesPerSecond"].get<double>() > 0);
  CHECK(push["gatewayCpuSeconds"].get<double>() > 0);
}

json checkedRun(const std::string& name, const std::string& extra) {
  TempDir dir(name);
  std::string table, text, err;
  int status = runQuick(dir, extra, table, text, err);
  INFO("impbench stderr:\n" << err << "\nstdout:\n" << table);
  REQUIRE(WIFEXITED(status));
  // 1 means a threshold crossed (listed in the table) or an incomplete run.
  CHECK(WEXITSTATUS(status) == 0);
  CHECK(table.find("quick thresholds: passed") != std::string::npos);
  json report = json::parse(text, nullptr, /*allow_exceptions=*/false);
  REQUIRE(report.is_object());
  CHECK(report["benchmark"] == "code");
  CHECK(report["complete"] == true);
  CHECK(report["regressions"].empty());
  CHECK(report["options"]["devices"] == 200);
  CHECK(report["options"]["repeat"] == 3);
  uint64_t codeSize = report["options"]["codeBytes"].get<uint64_t>();
  const json& wire = report["wire"];
  REQUIRE(wire.is_object());
  CHECK(wire["error"].is_null());
  CHECK(wire["bytesReceived"].get<uint64_t>() == 200 * codeSize);
  CHECK(wire["devicesPerSecond"].get<double>() > 0);
  CHECK(report["pushRuns"].size() == 3);
  for (const json& run : report["pushRuns"]) checkPush(run, codeSize);
  checkPush(report["delta"], codeSize);
  // A one-line change: only the chunks around it are served, everything else is copied.
  CHECK(report["delta"]["bytesServedPerDevice"].get<double>() < 0.25 * codeSize);
  CHECK(report["delta"]["bytesCopied"].get<uint64_t>() >
        report["delta"]["bytesFetched"].get<uint64_t>());
  CHECK(report["ratio"].get<double>() >= 0.3);
  for (const char* when : {"idle", "push"}) {
    INFO(when);
    CHECK(report["bystander"][when]["samples"].get<std::size_t>() > 10);
    CHECK(report["bystander"][when]["lost"] == 0);
  }
  // impbench removed its own temp dir inside ours.
  for (const auto& entry : std::filesystem::directory_iterator(dir.path())) {
    CHECK(entry.path().filename().string().rfind("impbench-", 0) != 0);
  }
  return report;
}

}  // namespace

TEST_CASE("impbench code --quick: code push keeps up with the wire limit", "[bench]") {
  json report = checkedRun("impbench-code", "");
  CHECK(report["options"]["maxConcurrent"] == 0);
}

TEST_CASE("impbench code --quick --max-concurrent 20: pacing holds the bound", "[bench]") {
  json report = checkedRun("impbench-code-paced", "--max-concurrent 20");
  CHECK(report["options"]["maxConcurrent"] == 20);
  for (const json& run : report["pushRuns"]) {
    CHECK(run["peakTransfersDevices"].get<long>() <= 20);
    CHECK(run["peakTransfersDevices"].get<long>() > 0);
    if (!run["peakTransfersRolloutView"].is_null())
      CHECK(run["peakTransfersRolloutView"].get<long>() <= 20);
    if (!run["peakTransfersMetrics"].is_null())
      CHECK(run["peakTransfersMetrics"].get<long>() <= 20);
  }
}
