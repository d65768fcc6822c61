// `impbench connections`: the whole run. Creates the fleet, measures impgate (with its bus),
// then the mosquitto baseline, then the in-memory OpenSSL baseline, one after the other in the
// same run so that only same-run ratios are compared. Every process it starts is stopped by
// pid and the temp dir removed before it returns, also on failure and on Ctrl-C.
#pragma once

#include <chrono>
#include <cstddef>
#include <filesystem>
#include <string>
#include <vector>

#include "tools/impbench/bench_report.h"

namespace impgate::bench {

// The command line of `impbench connections`, parsed.
struct ConnectionBenchOptions {
  std::size_t devices = 1000;
  double rate = 1000;                // connections started per second, each wave
  std::vector<std::string> sources;  // local addresses to connect from (127.0.0.x)
  std::string impgateBinary;
  std::string mosquittoBinary;  // empty: search PATH and /usr/sbin
  bool skipMosquitto = false;
  bool skipOpenssl = false;
  std::chrono::milliseconds idle{2000};
  std::size_t opensslIterations = 300;
  std::filesystem::path tempParent;  // where the run's temp dir goes
  bool keepTemp = false;             // leave the temp dir (logs, configs) for inspection
};

BenchReport runConnectionBench(const ConnectionBenchOptions& options);

}  // namespace impgate::bench
