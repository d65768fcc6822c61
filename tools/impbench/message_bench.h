// `impbench messages`: the message path through impgate next to devices speaking MQTT over
// mutual TLS straight to the same mosquitto, in the same run, the two paths alternating case by
// case (docs/benchmarks.md, "Message path").
//
// One mosquitto per broker configuration, with a mutual-TLS listener (fleet CA, the gateway's
// server certificate) for the MQTT-direct devices and a plain loopback listener for impgate and
// the agent; the real impgate binary bridged to the plain one; one agent (MqttAgent) and, per
// device count, both device sets (ImpDevices, MqttDevices), all on one impbench EventLoop.
// Every process it starts is stopped by pid and the temp dir removed before it returns.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace impgate::bench {

struct MessageBenchOptions {
  std::vector<std::size_t> devices{4, 100};
  std::vector<std::size_t> payloads{64, 1024};
  std::size_t messages = 20000;              // per run (one case, one path)
  std::chrono::milliseconds runLimit{5000};  // sending stops after this long
  std::size_t window = 32;                   // messages in flight per device
  unsigned repeat = 1;
  bool brokerDefault = true;  // also the broker-default case
  std::size_t brokerDefaultDevices = 100;
  bool latency = true;
  double latencyRate = 5000;  // messages per second, all devices together
  std::chrono::milliseconds latencyDuration{3000};
  std::size_t latencyDevices = 4;
  bool quick = false;
  std::string impgateBinary;
  std::string mosquittoBinary;
  std::filesystem::path tempParent;
  bool keepTemp = false;
};

enum class Direction { kDeviceToAgent, kAgentToDevice };

struct MessageCase {
  Direction direction = Direction::kDeviceToAgent;
  bool acknowledged = true;  // imp ACK wanted / QoS 1; else fire-and-forget / QoS 0
  std::size_t payload = 64;
  std::size_t devices = 4;
  bool brokerDefault = false;
  std::string name() const;
};

// One run of one case over one path.
struct PathRun {
  std::size_t sent = 0;
  std::size_t received = 0;              // at the receiver (the agent, or the devices)
  std::size_t acknowledged = 0;          // ACK ok / PUBACK at the sender
  std::size_t refused = 0;               // ACK other than ok
  std::size_t receipts = 0;              // impgate's receipts on ack (agent→device QoS 1)
  std::size_t receiptsNotDelivered = 0;  // of those, status other than "delivered"
  std::string firstBadReceipt;
  double seconds = 0;  // first send until the last message arrived
  // CPU of impgate and of mosquitto over the run, every thread, from schedstat (ns); the
  // same from utime+stime (10 ms ticks) as a cross-check, too coarse for short runs.
  double gatewayCpuSeconds = 0;
  double brokerCpuSeconds = 0;
  double gatewayCpuTickSeconds = 0;
  double brokerCpuTickSeconds = 0;
  double benchCpuSeconds = 0;  // impbench's own thread (devices and agent)
  bool stalled = false;        // ended by the no-progress deadline
  bool cutOff = false;         // still arriving at --seconds + 11 s
  std::string error;

  // Sent, never arrived, and not refused with a receipt: lost without a word.
  // Arrived beyond what was sent: duplicates, or another run's tail.
  std::size_t extra() const {
    std::size_t accounted = received + receiptsNotDelivered;
    return accounted > sent ? accounted - sent : 0;
  }
  std::size_t lost() const {
    std::size_t accounted = received + receiptsNotDelivered;
    return sent > accounted ? sent - accounted : 0;
  }
  double messagesPerSecond() const { return seconds > 0 ? received / seconds : 0; }
};

// The figures of one path of one case: medians over --repeat runs, losses summed.
struct PathFigures {
  std::vector<PathRun> runs;
  double messagesPerSecond = 0;
  double gatewayCpuPer100k = 0;  // CPU seconds per 100 000 messages received
  double brokerCpuPer100k = 0;
  double benchCpuPer100k = 0;
  std::size_t sent = 0, received = 0, lost = 0, receipts = 0, refused = 0;
  std::size_t receiptsNotDelivered = 0;
  std::size_t stalledRuns = 0, cutOffRuns = 0;
  std::string error;
  void summarise();
};

struct CaseResult {
  MessageCase spec;
  PathFigures impgate;
  PathFigures direct;
};

struct LatencyFigures {
  std::size_t samples = 0;
  std::size_t sent = 0, received = 0;
  double p50Us = 0, p99Us = 0, p999Us = 0, maxUs = 0;
  std::string error;
};

struct MessageReport {
  std::string date, kernel, cpuModel, mosquittoVersion, impgateBinary, impgateSha256;
  unsigned cpus = 0;
  MessageBenchOptions options;
  std::vector<CaseResult> cases;
  bool latencyRan = false;
  LatencyFigures latencyImpgate, latencyDirect;
  std::vector<std::string> regressions;  // --quick: the thresholds crossed
  std::string error;
  double elapsedSeconds = 0;

  bool complete() const;
};

MessageReport runMessageBench(const MessageBenchOptions& options);

nlohmann::json toJson(const MessageReport& report);
std::string formatReport(const MessageReport& report);
// --quick: fills report.regressions from the same-run ratios (thresholds in the .cc and in
// docs/benchmarks.md).
void checkQuickThresholds(MessageReport& report);
// Writes a PNG of throughput against devices for both paths through gnuplot; false with
// `error` when gnuplot is missing or fails.
bool plotThroughput(const MessageReport& report, const std::string& file, std::string& error);
bool gnuplotAvailable();

}  // namespace impgate::bench
