// `impbench code`: code push to a fleet of online devices on one impgate node, next to the wire
// limit measured in the same run (docs/benchmarks.md, "Code push").
//
// One mosquitto (plain loopback, no queue limits), the real impgate binary bridged to it with
// its metrics endpoint on, N devices (DeviceClients with code push and an in-memory CodeStore
// that runs v1 before they connect) plus one bystander device without code push, and one agent
// (MqttAgent), all on one impbench EventLoop; versions and deployments go on the bus as impctl
// publishes them (bus/fleet/release.h through impctl's FleetBus). The phases, in order:
//   wire     (--repeat times) the agent sends every device as many bytes as the code has, in MSG
//   frames of
//            --wire-message-bytes (QoS 1), over the same TLS connections: the wire limit;
//   idle     the bystander's request/response round trips with the agent, nothing else running;
//   push     (--repeat times, alternating v2 with another version, v2 last) a deployment of v2
//   (--code-bytes of random text lines): time until every device
//            runs v2, bytes served, gateway CPU, peak concurrent transfers; the bystander keeps
//            doing round trips;
//   delta    deployment 2 of v3 = v2 with one line inserted in the middle: bytes per device.
// Every process it starts is stopped by pid and the temp dir removed before it returns.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace impgate::bench {

struct CodeBenchOptions {
  std::size_t devices = 5000;
  std::size_t codeBytes = 65536;
  uint32_t maxConcurrent = 0;  // the deployments' max_concurrent; 0 = unbounded
  std::size_t wireMessageBytes = 16384;
  std::size_t wireWindow = 2;  // wire messages in flight per device
  double connectRate = 1000;   // device connections started per second
  std::vector<std::string> sources;
  std::chrono::milliseconds idleLatency{3000};
  std::chrono::milliseconds bystanderEvery{10};  // at most one round trip per this
  std::chrono::seconds phaseLimit{600};          // each of wire, push, delta
  unsigned repeat = 1;  // wire and push phases each run this often; the medians are reported
  bool quick = false;
  std::string impgateBinary;
  std::string mosquittoBinary;
  std::filesystem::path tempParent;
  bool keepTemp = false;
};

struct RoundTrips {
  std::size_t samples = 0;
  std::size_t lost = 0;  // no answer within 2 s
  double p50Us = 0, p99Us = 0, maxUs = 0;
};

// One code push (v2, or the delta v3) to every device.
struct PushFigures {
  bool ran = false;
  std::size_t devices = 0;
  std::size_t installed = 0;         // devices that reported v* installed (CodeEvent)
  std::size_t failed = 0;            // CODE_RESULT failed or superseded events
  std::size_t gatewayInstalled = 0;  // retained <prefix>/dev/+/code states: installed, this target
  uint32_t codeSize = 0;
  double seconds = 0;              // deployment published until the last device installed
  double secondsToFirstOffer = 0;  // deployment published until a device had its offer
  double devicesPerSecond = 0;
  uint64_t bytesServed = 0;                    // impgate_code_bytes_total, after - before
  uint64_t bytesFetched = 0, bytesCopied = 0;  // the devices' own counts
  double gatewayCpuSeconds = 0, brokerCpuSeconds = 0, benchCpuSeconds = 0;
  long peakTransfersMetrics = -1;  // sampled /metrics impgate_code_transfers (updated each 1 s)
  long peakTransfersRollout = -1;  // the node's retained rollout view, `transfers`
  long peakTransfersDevices = 0;   // devices between their CODE_OFFER and CODE_RESULT
  std::string error;
};

struct WireFigures {
  bool ran = false;
  std::size_t devices = 0;
  std::size_t messages = 0, received = 0;
  uint64_t bytesPerDevice = 0, bytesReceived = 0;
  double seconds = 0;
  double devicesPerSecond = 0;
  double gatewayCpuSeconds = 0, brokerCpuSeconds = 0, benchCpuSeconds = 0;
  std::string error;
};

struct CodeReport {
  std::string date, kernel, mosquittoVersion, impgateBinary;
  unsigned cpus = 0;
  CodeBenchOptions options;
  double secondsToAllOnline = 0;
  WireFigures wire;         // the median of wireRuns
  PushFigures push, delta;  // push: the median of pushRuns
  std::vector<WireFigures> wireRuns;
  std::vector<PushFigures> pushRuns;
  RoundTrips bystanderIdle, bystanderPush;
  std::vector<std::string> regressions;  // --quick: thresholds crossed
  std::string error;
  double elapsedSeconds = 0;

  // Code push devices/s over the wire limit's (0 when either is missing).
  double ratio() const;
  bool complete() const;
};

CodeReport runCodeBench(const CodeBenchOptions& options);

nlohmann::json toJson(const CodeReport& report);
std::string formatReport(const CodeReport& report);
// --quick: code push below 0.3 x the wire rate, or pacing above --max-concurrent.
void checkQuickThresholds(CodeReport& report);

}  // namespace impgate::bench
