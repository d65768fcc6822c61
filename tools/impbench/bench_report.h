// The figures of one `impbench connections` run, and how they are printed: a table of
// per-connection costs with same-run ratios for people, JSON for machines. Filled in by the
// phases; printed by main.
#pragma once

#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace impgate::bench {

// One wave of connections against a server process: how many, and the server's CPU for them.
struct HandshakeFigures {
  std::size_t attempted = 0;
  std::size_t completed = 0;  // reached WELCOME (impgate) or CONNACK (mosquitto)
  std::size_t resumed = 0;    // of those, TLS sessions resumed
  std::size_t failed = 0;
  std::string lastFailure;
  double seconds = 0;  // first connect until the wave settled
  // The most connections started but not yet through (as polled): when the server falls
  // behind the ramp this grows, and so does the memory its allocator keeps afterwards.
  std::size_t maxInFlight = 0;
  double serverCpuSeconds = 0;            // all server threads, from schedstat (ns precision)
  double serverCpuTickSeconds = 0;        // utime+stime from /proc/<pid>/stat, as a cross-check
  double serverMainThreadCpuSeconds = 0;  // impgate's reactor thread; the rest is Paho's
  // CPU of the bus broker impgate publishes to, over the same span: work impgate causes but
  // does not pay itself. Absent for servers without a bus.
  std::optional<double> busCpuSeconds;

  double cpuPerHandshakeUs() const;
  bool allResumed() const { return completed > 0 && resumed == completed; }
};

// A server's resident memory before the first wave and with every connection idle.
struct MemoryFigures {
  std::size_t connections = 0;
  uint64_t rssBeforeKiB = 0;
  uint64_t rssAfterKiB = 0;
  uint64_t anonBeforeKiB = 0;
  uint64_t anonAfterKiB = 0;
  double idleCpuUsPerSecond = 0;  // what the idle connections cost the server per second

  double perConnectionKiB() const;
};

// What was measured on one server process (impgate or the mosquitto baseline).
struct ServerFigures {
  bool ran = false;
  std::string error;  // empty when every step finished
  std::string version;
  std::optional<HandshakeFigures> full;
  std::optional<HandshakeFigures> resumed;
  std::optional<MemoryFigures> memory;
};

// The in-memory OpenSSL baseline: TLS 1.3 mutual-TLS handshakes through memory BIOs.
struct OpensslFigures {
  bool ran = false;
  std::string error;
  std::size_t fullHandshakes = 0;
  std::size_t resumedHandshakes = 0;
  std::size_t resumedAccepted = 0;  // resumption attempts the server accepted
  double fullServerUs = 0;          // server CPU per handshake
  double fullClientUs = 0;
  double resumedServerUs = 0;
  double resumedClientUs = 0;
  // Heap (malloc'd bytes in use) an idle server SSL keeps after a full handshake, with
  // impgate's settings: the floor under a gateway's memory per connection, without the kernel.
  std::size_t retainedConnections = 0;
  double heapPerIdleServerSslKiB = 0;
};

// Everything one run measured, with the facts that make it comparable (date, machine, options).
struct BenchReport {
  // The run.
  std::string date;  // UTC, ISO 8601
  std::string opensslVersion;
  std::string kernel;
  std::string cpuModel;
  unsigned cpus = 0;
  std::size_t devices = 0;
  double rate = 0;
  std::vector<std::string> sources;
  double idleSeconds = 0;
  double elapsedSeconds = 0;
  std::string error;  // a failure outside the phases (fleet creation, ...)

  ServerFigures impgate;
  ServerFigures mosquitto;
  OpensslFigures openssl;

  // True when every phase that ran finished and every connection of every wave completed.
  bool complete() const;
};

// The human-readable report: the figures table, then counts and warnings.
std::string formatReport(const BenchReport& report);
nlohmann::json toJson(const BenchReport& report);

}  // namespace impgate::bench
