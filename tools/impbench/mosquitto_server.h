// A private mosquitto broker for one benchmark run, on a free loopback port: either the plain
// bus impgate publishes to, or the mutual-TLS baseline whose cost impbench compares with
// impgate's. Owned by the phase that needs it; stopped by pid when destroyed.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>

#include "tools/impbench/spawned_process.h"

namespace impgate::bench {

// The mutual-TLS listener of the baseline broker.
struct MosquittoTls {
  std::string caFile;    // verifies client certificates (the fleet CA)
  std::string certFile;  // the broker's certificate (the gateway's)
  std::string keyFile;
};

// How to start one broker: which binary, where its files go, and whether it listens with TLS.
struct MosquittoConfig {
  std::string binary;         // path to mosquitto
  std::filesystem::path dir;  // config and log go here
  std::string name;           // file name stem: "bus", "baseline"
  std::optional<MosquittoTls> tls;
};

class MosquittoServer {
 public:
  // Starts the broker and waits (up to 10 s) until it says it is running and its port listens.
  // nullptr with `error` (and the broker's log) on failure.
  static std::unique_ptr<MosquittoServer> start(const MosquittoConfig& config, std::string& error);
  ~MosquittoServer() = default;  // the SpawnedProcess member stops the broker

  uint16_t port() const { return port_; }
  pid_t pid() const { return process_.pid(); }
  // "2.0.11", from the broker's start-up line; empty when not found.
  const std::string& version() const { return version_; }
  void stop() { process_.stop(); }
  std::string logTail() const { return process_.logTail(); }

 private:
  MosquittoServer() = default;
  bool launch(const MosquittoConfig& config, std::string& error);

  SpawnedProcess process_;
  uint16_t port_ = 0;
  std::string version_;
};

// The mosquitto binary: `flag` when given, then $PATH, then /usr/sbin and /usr/local/sbin (where
// Debian installs it, off a normal user's PATH). Empty when none is found.
std::string findMosquitto(const std::string& flag);

}  // namespace impgate::bench
