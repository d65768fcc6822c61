// Simulator: many devices from one process, for load tests and benchmarks.
//
// Every simulated device is a DeviceClient with its own enrolled credentials, all on one
// EventLoop. Connections are opened at a bounded rate, spread over optional local source
// addresses (127.0.0.x) when one address runs out of ephemeral ports. The run is bounded in
// time and stops by itself.
//
// With `codePush` every device takes code push (docs/protocol.md, "Code push") with its own
// FileCodeStore (state directory `stateDir/<id>`, default home/devices/<id>/state) and its
// copy of the fleet key (home/devices/<id>/code-signing.pub; devices enrolled with one key share
// one in memory). A device keeps only its code's hash in memory between transfers.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "gateway/base/code/sha256.h"

namespace impgate::tools {

struct SimulationOptions {
  std::string home;
  std::string gateway = "127.0.0.1:31314";
  std::string serverName;
  std::vector<std::string> ids;            // devices to simulate (enrolled in `home`)
  std::vector<std::string> sources;        // local addresses to connect from; empty = any
  double connectRate = 500;                // new connections per second
  std::chrono::seconds duration{60};       // the whole run
  std::chrono::milliseconds sendEvery{0};  // per device; 0 = idle devices
  std::size_t payloadBytes = 64;
  bool reconnect = true;
  bool exitWhenAllConnected = false;  // stop as soon as every device is online
  std::chrono::seconds reportEvery{5};
  const std::atomic<bool>* stop = nullptr;  // set (e.g. by a signal handler) to end early
  // Code push.
  bool codePush = false;
  std::string stateDir;            // devices keep their code in stateDir/<id>; empty: the home's
  std::string deferUpdates;        // non-empty: every device defers normal updates with it
  std::size_t corruptDevices = 0;  // the first N devices corrupt their first download
  std::optional<code::Sha256> exitWhenRunning;  // stop once every device runs this code
};

struct SimulationResult {
  std::size_t devices = 0;
  std::size_t online = 0;  // at the end
  std::size_t peakOnline = 0;
  uint64_t connects = 0;  // connection attempts
  uint64_t resumed = 0;   // handshakes that resumed a TLS session
  uint64_t failures = 0;  // links that failed or dropped
  uint64_t sent = 0;
  uint64_t acked = 0;
  uint64_t received = 0;
  double secondsToAllOnline = -1;
  // Code push (with SimulationOptions::codePush): results by status, bytes over all devices.
  std::size_t codePushDevices = 0;  // devices that had a key and so set the capability
  uint64_t codeOffers = 0;
  uint64_t codeInstalled = 0;  // incl. offers of the code a device already ran
  uint64_t codeDeferred = 0;
  uint64_t codeFailed = 0;
  uint64_t codeSuperseded = 0;
  uint64_t codeBytesFetched = 0;
  uint64_t codeBytesCopied = 0;
  double secondsFirstOfferToLastInstall = -1;
  std::map<std::string, std::size_t> running;  // at the end: code (hex, "" for none) -> devices
};

// Runs the simulation; returns false with `error` when it cannot start (missing credentials)
// or its event loop fails.
bool runSimulation(const SimulationOptions& options, SimulationResult& result, std::string& error);

}  // namespace impgate::tools
