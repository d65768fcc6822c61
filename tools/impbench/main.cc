// impbench: the project's benchmark harness. `impbench connections` measures what a device
// connection costs impgate (server CPU per full and per resumed mutual-TLS handshake, RSS per
// idle connection) next to mosquitto and bare OpenSSL in the same run, and prints the figures
// with their ratios (a table, or JSON with --json). `impbench messages` measures the message path
// through impgate next to devices speaking MQTT straight to the same mosquitto: throughput,
// losses, gateway and broker CPU per message, latency. `impbench code` pushes a code version to
// a fleet of online devices on one node next to the wire limit of the same connections, a
// one-line delta, and a bystander device's round trip during the push. See docs/benchmarks.md.
#include <sys/resource.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <fstream>
#include <iostream>

#include "gateway/base/log.h"
#include "tools/impbench/code_bench.h"
#include "tools/impbench/connection_bench.h"
#include "tools/impbench/interrupt.h"
#include "tools/impbench/message_bench.h"

namespace {

using namespace impgate;

// Raises the soft descriptor limit to the hard one and returns it: impbench holds one
// descriptor per connection.
rlim_t raiseDescriptorLimit() {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) return 0;
  if (limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &limit);
  }
  return limit.rlim_cur;
}

// $TMPDIR, else /dev/shm, else /tmp. Every device key is written with fsync; on a tmpfs that
// costs nothing, on a disk 10 000 devices take minutes to issue.
std::filesystem::path defaultTempParent() {
  if (const char* tmp = std::getenv("TMPDIR"); tmp && *tmp) return tmp;
  if (::access("/dev/shm", W_OK | X_OK) == 0) return "/dev/shm";
  return "/tmp";
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"impbench: measures impgate next to mosquitto and OpenSSL in the same run."};
  app.require_subcommand(1);

  bench::ConnectionBenchOptions options;
  options.impgateBinary = IMPGATE_DEFAULT_BINARY;
  options.tempParent = defaultTempParent();
  bool json = false;
  std::string jsonFile;
  double idleSeconds = 2;
  auto* connections = app.add_subcommand(
      "connections",
      "Cost of a device connection: server CPU per full and resumed mutual-TLS handshake, RSS "
      "per idle connection; impgate, mosquitto and in-memory OpenSSL side by side");
  connections->add_option("--devices", options.devices, "Devices (connections) per wave")
      ->required()
      ->check(CLI::Range(1, 100000));
  connections->add_option("--rate", options.rate, "Connections started per second")
      ->check(CLI::Range(1.0, 100000.0))
      ->capture_default_str();
  connections
      ->add_option("--sources", options.sources,
                   "Local addresses to connect from, when ephemeral ports run short "
                   "(e.g. 127.0.0.2,127.0.0.3)")
      ->delimiter(',');
  connections->add_option("--impgate", options.impgateBinary, "The impgate binary")
      ->capture_default_str();
  connections->add_option("--mosquitto", options.mosquittoBinary,
                          "The mosquitto binary (default: PATH, then /usr/sbin)");
  connections
      ->add_option("--idle-seconds", idleSeconds,
                   "How long connections sit idle before RSS is read")
      ->check(CLI::Range(0.5, 600.0))
      ->capture_default_str();
  connections
      ->add_option("--openssl-iterations", options.opensslIterations,
                   "In-memory OpenSSL handshakes of each kind")
      ->check(CLI::Range(1, 100000))
      ->capture_default_str();
  connections->add_option("--temp-dir", options.tempParent, "Where the run's temp dir goes")
      ->capture_default_str();
  connections->add_flag("--keep-temp", options.keepTemp,
                        "Keep the temp dir (configs, server logs) after the run");
  connections->add_flag("--skip-mosquitto", options.skipMosquitto, "Skip the mosquitto baseline");
  connections->add_flag("--skip-openssl", options.skipOpenssl, "Skip the OpenSSL baseline");
  connections->add_flag("--json", json, "Print JSON instead of the table");
  connections->add_option("--json-file", jsonFile, "Also write the JSON report to this file");

  bench::MessageBenchOptions messageOptions;
  messageOptions.impgateBinary = IMPGATE_DEFAULT_BINARY;
  messageOptions.tempParent = defaultTempParent();
  std::string messageJson, plotFile;
  double runSeconds = 5, latencySeconds = 3;
  bool noBrokerDefault = false, noLatency = false;
  auto* messages = app.add_subcommand(
      "messages",
      "The message path: impgate next to devices speaking MQTT over mutual TLS straight to the "
      "same mosquitto; throughput, losses, gateway and broker CPU per message, latency");
  messages->add_option("--devices", messageOptions.devices, "Device counts (e.g. 1,4,16,100)")
      ->delimiter(',')
      ->check(CLI::Range(1, 1000))
      ->capture_default_str();
  messages->add_option("--payloads", messageOptions.payloads, "Payload sizes in bytes")
      ->delimiter(',')
      ->check(CLI::Range(8, 65536))
      ->capture_default_str();
  messages->add_option("--messages", messageOptions.messages, "Messages per run (case and path)")
      ->check(CLI::Range(100, 10000000))
      ->capture_default_str();
  messages->add_option("--seconds", runSeconds, "A run stops sending after this long")
      ->check(CLI::Range(0.5, 120.0))
      ->capture_default_str();
  messages->add_option("--window", messageOptions.window, "Messages in flight per device")
      ->check(CLI::Range(1, 60))
      ->capture_default_str();
  messages->add_option("--repeat", messageOptions.repeat, "Runs per case and path (medians)")
      ->check(CLI::Range(1, 20))
      ->capture_default_str();
  messages->add_flag("--no-broker-default", noBrokerDefault,
                     "Skip the case with mosquitto's default inflight and queue limits");
  messages
      ->add_option("--broker-default-devices", messageOptions.brokerDefaultDevices,
                   "Devices of the broker-default case")
      ->check(CLI::Range(1, 1000))
      ->capture_default_str();
  messages->add_flag("--no-latency", noLatency, "Skip the latency runs");
  messages
      ->add_option("--latency-rate", messageOptions.latencyRate,
                   "Messages per second of the latency runs, all devices together")
      ->check(CLI::Range(10.0, 100000.0))
      ->capture_default_str();
  messages->add_option("--latency-seconds", latencySeconds, "Length of each latency run")
      ->check(CLI::Range(1.0, 60.0))
      ->capture_default_str();
  messages
      ->add_option("--latency-devices", messageOptions.latencyDevices,
                   "Device count of the latency runs (one of --devices)")
      ->capture_default_str();
  messages->add_flag("--quick", messageOptions.quick,
                     "CI regression guard: two short cases with 4 devices; exits 1 on a gross "
                     "regression against the direct path");
  messages->add_option("--impgate", messageOptions.impgateBinary, "The impgate binary")
      ->capture_default_str();
  messages->add_option("--mosquitto", messageOptions.mosquittoBinary,
                       "The mosquitto binary (default: PATH, then /usr/sbin)");
  messages->add_option("--json", messageJson, "Also write the report as JSON to this file");
  messages->add_option("--plot", plotFile,
                       "Write a PNG of throughput against devices (needs gnuplot)");
  messages->add_option("--temp-dir", messageOptions.tempParent, "Where the run's temp dir goes")
      ->capture_default_str();
  messages->add_flag("--keep-temp", messageOptions.keepTemp,
                     "Keep the temp dir (configs, server logs) after the run");

  bench::CodeBenchOptions codeOptions;
  codeOptions.impgateBinary = IMPGATE_DEFAULT_BINARY;
  codeOptions.tempParent = defaultTempParent();
  bool codeJson = false;
  std::string codeJsonFile;
  double idleLatencySeconds = 3;
  auto* codePush = app.add_subcommand(
      "code",
      "Code push: a version pushed to N online devices on one node, next to the same bytes sent "
      "as messages over the same TLS connections (the wire limit); a one-line delta; a "
      "bystander device's round trip during the push");
  codePush->add_option("--devices", codeOptions.devices, "Devices in the group, all online")
      ->check(CLI::Range(1, 20000))
      ->capture_default_str();
  codePush->add_option("--code-bytes", codeOptions.codeBytes, "Size of the pushed version")
      ->check(CLI::Range(1024, 4 * 1024 * 1024))
      ->capture_default_str();
  codePush
      ->add_option("--max-concurrent", codeOptions.maxConcurrent,
                   "The deployments' max_concurrent (transfers per node; 0 = unbounded)")
      ->capture_default_str();
  codePush
      ->add_option("--wire-message-bytes", codeOptions.wireMessageBytes,
                   "Payload of each message of the wire-limit phase")
      ->check(CLI::Range(64, 65536))
      ->capture_default_str();
  codePush
      ->add_option("--wire-window", codeOptions.wireWindow,
                   "Wire-limit messages in flight per device")
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
  codePush
      ->add_option("--repeat", codeOptions.repeat,
                   "Runs of the wire and the push phase each (medians reported)")
      ->check(CLI::Range(1, 9))
      ->capture_default_str();
  codePush->add_option("--rate", codeOptions.connectRate, "Device connections started per second")
      ->check(CLI::Range(1.0, 100000.0))
      ->capture_default_str();
  codePush
      ->add_option("--sources", codeOptions.sources,
                   "Local addresses to connect from, when ephemeral ports run short "
                   "(e.g. 127.0.0.2,127.0.0.3)")
      ->delimiter(',');
  codePush
      ->add_option("--idle-latency-seconds", idleLatencySeconds,
                   "How long the bystander's idle round trips are measured before the push")
      ->check(CLI::Range(0.5, 60.0))
      ->capture_default_str();
  codePush->add_flag(
      "--quick", codeOptions.quick,
      "CI regression guard: 200 devices, 64 KiB, 3 runs; exits 1 when code push is below "
      "0.3x the wire rate or transfers exceed --max-concurrent");
  codePush->add_option("--impgate", codeOptions.impgateBinary, "The impgate binary")
      ->capture_default_str();
  codePush->add_option("--mosquitto", codeOptions.mosquittoBinary,
                       "The mosquitto binary (default: PATH, then /usr/sbin)");
  codePush->add_flag("--json", codeJson, "Print JSON instead of the table");
  codePush->add_option("--json-file", codeJsonFile, "Also write the JSON report to this file");
  codePush->add_option("--temp-dir", codeOptions.tempParent, "Where the run's temp dir goes")
      ->capture_default_str();
  codePush->add_flag("--keep-temp", codeOptions.keepTemp,
                     "Keep the temp dir (configs, server logs) after the run");
  CLI11_PARSE(app, argc, argv);

  if (codePush->parsed()) {
    codeOptions.idleLatency =
        std::chrono::milliseconds(static_cast<long>(idleLatencySeconds * 1000));
    if (codeOptions.quick) {
      if (codePush->count("--devices") == 0) codeOptions.devices = 200;
      if (codePush->count("--code-bytes") == 0) codeOptions.codeBytes = 65536;
      if (codePush->count("--repeat") == 0) codeOptions.repeat = 3;
      if (codePush->count("--idle-latency-seconds") == 0) {
        codeOptions.idleLatency = std::chrono::milliseconds(1000);
      }
    }
    bench::installInterruptHandler();
    log::setLevel(log::Level::kWarn);
    rlim_t fds = raiseDescriptorLimit();
    if (fds != RLIM_INFINITY && codeOptions.devices + 64 > fds) {
      std::fprintf(stderr, "impbench: %zu devices need more than the %llu descriptors allowed\n",
                   codeOptions.devices, static_cast<unsigned long long>(fds));
      return 2;
    }
    bench::CodeReport report;
    try {
      report = bench::runCodeBench(codeOptions);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "impbench: %s\n", e.what());
      return 1;
    }
    if (codeOptions.quick) bench::checkQuickThresholds(report);
    int status = report.complete() && report.regressions.empty() ? 0 : 1;
    if (!codeJsonFile.empty()) {
      std::ofstream out(codeJsonFile, std::ios::trunc);
      out << bench::toJson(report).dump(2) << "\n";
      if (!out) {
        std::fprintf(stderr, "impbench: cannot write %s\n", codeJsonFile.c_str());
        status = 1;
      }
    }
    if (codeJson) {
      std::cout << bench::toJson(report).dump(2) << std::endl;
    } else {
      std::cout << bench::formatReport(report) << std::flush;
    }
    if (bench::interrupted()) return 130;
    return status;
  }

  if (messages->parsed()) {
    messageOptions.runLimit = std::chrono::milliseconds(static_cast<long>(runSeconds * 1000));
    messageOptions.latencyDuration =
        std::chrono::milliseconds(static_cast<long>(latencySeconds * 1000));
    messageOptions.brokerDefault = !noBrokerDefault;
    messageOptions.latency = !noLatency;
    if (messageOptions.quick) {
      messageOptions.devices = {4};
      messageOptions.payloads = {64};
      messageOptions.messages = std::min<std::size_t>(messageOptions.messages, 10000);
      messageOptions.runLimit = std::min(messageOptions.runLimit, std::chrono::milliseconds(3000));
      messageOptions.repeat = 3;
      messageOptions.brokerDefault = false;
      messageOptions.latency = false;
    }
    if (std::find(messageOptions.devices.begin(), messageOptions.devices.end(),
                  messageOptions.latencyDevices) == messageOptions.devices.end()) {
      messageOptions.latencyDevices = messageOptions.devices.front();
    }
    if (!plotFile.empty() && !bench::gnuplotAvailable()) {
      std::fprintf(stderr,
                   "impbench: --plot needs gnuplot, which is not installed (Debian: apt-get "
                   "install gnuplot-nox; tools/install-deps.sh installs it)\n");
      return 2;
    }
    bench::installInterruptHandler();
    log::setLevel(log::Level::kWarn);
    raiseDescriptorLimit();
    bench::MessageReport report;
    try {
      report = bench::runMessageBench(messageOptions);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "impbench: %s\n", e.what());
      return 1;
    }
    if (messageOptions.quick) bench::checkQuickThresholds(report);
    std::cout << bench::formatReport(report) << std::flush;
    int status = report.complete() ? 0 : 1;
    if (!report.regressions.empty()) status = 1;
    if (!messageJson.empty()) {
      std::ofstream out(messageJson, std::ios::trunc);
      out << bench::toJson(report).dump(2) << "\n";
      if (!out) {
        std::fprintf(stderr, "impbench: cannot write %s\n", messageJson.c_str());
        status = 1;
      }
    }
    if (!plotFile.empty() && !report.cases.empty()) {
      std::string error;
      if (!bench::plotThroughput(report, plotFile, error)) {
        std::fprintf(stderr, "impbench: --plot: %s\n", error.c_str());
        status = 1;
      }
    }
    if (bench::interrupted()) return 130;
    return status;
  }

  options.idle = std::chrono::milliseconds(static_cast<long>(idleSeconds * 1000));
  bench::installInterruptHandler();
  log::setLevel(log::Level::kWarn);
  rlim_t fds = raiseDescriptorLimit();
  // impbench holds one descriptor per connection of the current wave, plus a few of its own.
  if (fds != RLIM_INFINITY && options.devices + 64 > fds) {
    std::fprintf(stderr, "impbench: %zu devices need more than the %llu descriptors allowed\n",
                 options.devices, static_cast<unsigned long long>(fds));
    return 2;
  }

  bench::BenchReport report;
  try {
    report = bench::runConnectionBench(options);
  } catch (const std::exception& e) {
    // Only allocation or the file system can throw here; the servers are stopped by then.
    std::fprintf(stderr, "impbench: %s\n", e.what());
    return 1;
  }
  if (!jsonFile.empty()) {
    std::ofstream out(jsonFile, std::ios::trunc);
    out << bench::toJson(report).dump(2) << "\n";
    if (!out) std::fprintf(stderr, "impbench: cannot write %s\n", jsonFile.c_str());
  }
  if (json) {
    std::cout << bench::toJson(report).dump(2) << std::endl;
  } else {
    std::cout << bench::formatReport(report) << std::flush;
  }
  if (bench::interrupted()) return 130;
  return report.complete() ? 0 : 1;
}
