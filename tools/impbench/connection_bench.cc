#include "tools/impbench/connection_bench.h"

#include <openssl/crypto.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cstdio>
#include <ctime>
#include <fstream>

#include "gateway/base/net/event_loop.h"
#include "gateway/base/net/socket.h"
#include "gateway/base/net/tls_context.h"
#include "tools/impbench/bench_fleet.h"
#include "tools/impbench/connection_phase.h"
#include "tools/impbench/device_client_pool.h"
#include "tools/impbench/impgate_server.h"
#include "tools/impbench/interrupt.h"
#include "tools/impbench/mqtt_client_pool.h"
#include "tools/impbench/openssl_handshake_bench.h"
#include "tools/impbench/progress.h"
#include "tools/testbed/mosquitto_broker.h"
#include "tools/testbed/temp_dir.h"

namespace impgate::bench {
namespace {

using Clock = std::chrono::steady_clock;

std::string utcNow() {
  std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return text;
}

std::string cpuModel() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) == 0) {
      auto colon = line.find(':');
      if (colon != std::string::npos) return line.substr(colon + 2);
    }
  }
  return "unknown";
}

void describeMachine(BenchReport& report) {
  report.date = utcNow();
  report.opensslVersion = OpenSSL_version(OPENSSL_VERSION);
  utsname uts{};
  if (::uname(&uts) == 0) report.kernel = uts.release;
  report.cpuModel = cpuModel();
  long cpus = ::sysconf(_SC_NPROCESSORS_ONLN);
  report.cpus = cpus > 0 ? static_cast<unsigned>(cpus) : 0;
}

std::unique_ptr<net::TlsContext> deviceTls(const BenchFleet& fleet, std::string& error) {
  net::TlsClientOptions options;
  options.caFile = fleet.home().caCert().string();
  auto tls = net::TlsContext::client(options);
  if (!tls) {
    error = tls.error().message;
    return nullptr;
  }
  return std::move(*tls);
}

// A private broker for one phase: its files in the run's dir, no client logging (the broker
// must not pay for it), and a Ctrl-C cuts its start-up short.
testbed::MosquittoOptions brokerOptions(const ConnectionBenchOptions& options,
                                        const std::filesystem::path& dir, const std::string& name,
                                        std::optional<testbed::MosquittoTls> tls) {
  testbed::MosquittoOptions broker;
  broker.binary = options.mosquittoBinary;
  broker.dir = dir;
  broker.name = name;
  broker.tls = std::move(tls);
  broker.logClients = false;
  broker.interrupted = [] { return interrupted(); };
  return broker;
}

void measureImpgate(const ConnectionBenchOptions& options, const BenchFleet& fleet,
                    const std::filesystem::path& dir, const std::vector<net::Endpoint>& sources,
                    ServerFigures& out) {
  out.ran = true;
  out.version = IMPGATE_VERSION;
  std::string error;
  auto bus =
      testbed::MosquittoBroker::start(brokerOptions(options, dir, "bus", std::nullopt), error);
  if (!bus) {
    out.error = "bus broker: " + error;
    return;
  }
  auto impgate =
      ImpgateServer::start({options.impgateBinary, fleet.home().root(), dir, bus->port()}, error);
  auto tls = impgate ? deviceTls(fleet, error) : nullptr;
  if (!impgate || !tls) {
    out.error = error;
    return;
  }
  progress("impgate pid %d on port %u, bus mosquitto pid %d on port %u", impgate->pid(),
           impgate->port(), bus->pid(), bus->port());
  {
    net::EventLoop loop;
    DeviceClientPool clients(loop, *tls, fleet, "127.0.0.1:" + std::to_string(impgate->port()),
                             sources);
    runConnectionPhase(loop, impgate->pid(), clients,
                       {"impgate", options.rate, options.idle, true, bus->pid()}, out);
  }
  if (!out.error.empty()) out.error += "\nimpgate log:\n" + impgate->logTail();
  progress("stopping impgate and its bus");
  impgate->stop();
  progress("impgate stopped");
  bus->stop();
}

void measureMosquitto(const ConnectionBenchOptions& options, const BenchFleet& fleet,
                      const std::filesystem::path& dir, const std::vector<net::Endpoint>& sources,
                      ServerFigures& out) {
  out.ran = true;
  std::string error;
  testbed::MosquittoTls tlsListener{fleet.home().caCert().string(),
                                    fleet.home().gatewayCert().string(),
                                    fleet.home().gatewayKey().string()};
  auto broker =
      testbed::MosquittoBroker::start(brokerOptions(options, dir, "baseline", tlsListener), error);
  if (!broker) {
    out.error = error;
    return;
  }
  out.version = broker->version();
  auto endpoint = net::parseEndpoint("127.0.0.1:" + std::to_string(broker->port()));
  if (!endpoint) {
    out.error = endpoint.error().message;
    return;
  }
  auto tls = deviceTls(fleet, error);
  if (!tls) {
    out.error = error;
    return;
  }
  progress("baseline mosquitto %s pid %d on port %u", out.version.c_str(), broker->pid(),
           broker->port());
  {
    net::EventLoop loop;
    MqttClientPool clients(loop, *tls, fleet, *endpoint, sources);
    runConnectionPhase(loop, broker->pid(), clients,
                       {"mosquitto", options.rate, options.idle, true, -1}, out);
  }
  if (!out.error.empty()) out.error += "\nmosquitto log:\n" + broker->logTail();
  progress("stopping the baseline mosquitto");
  broker->stop();
}

}  // namespace

BenchReport runConnectionBench(const ConnectionBenchOptions& options) {
  auto started = Clock::now();
  BenchReport report;
  describeMachine(report);
  report.devices = options.devices;
  report.rate = options.rate;
  report.sources = options.sources;
  report.idleSeconds = std::chrono::duration<double>(options.idle).count();
  auto finish = [&] {
    report.elapsedSeconds = std::chrono::duration<double>(Clock::now() - started).count();
    return report;
  };

  std::vector<net::Endpoint> sources;
  for (const auto& s : options.sources) {
    auto ep = net::parseEndpoint(s + ":0");
    if (!ep) {
      report.error = "--sources: " + ep.error().message;
      return finish();
    }
    sources.push_back(*ep);
  }
  ConnectionBenchOptions resolved = options;
  resolved.mosquittoBinary = testbed::findMosquitto(options.mosquittoBinary);
  if (resolved.mosquittoBinary.empty()) {
    report.error = "mosquitto not found (PATH, /usr/sbin); use --mosquitto PATH";
    return finish();
  }

  std::string error;
  auto scratch = testbed::TempDir::create(options.tempParent, "impbench", error);
  if (!scratch) {
    report.error = error;
    return finish();
  }
  if (options.keepTemp) {
    scratch->keep();
    progress("keeping %s", scratch->path().c_str());
  }
  progress("creating a fleet CA and %zu device credentials", options.devices);
  auto fleetStarted = Clock::now();
  auto fleet = BenchFleet::create(scratch->path() / "home", options.devices, error);
  if (!fleet) {
    report.error = error;
    return finish();
  }
  progress("fleet ready in %.1f s",
           std::chrono::duration<double>(Clock::now() - fleetStarted).count());

  measureImpgate(resolved, *fleet, scratch->path(), sources, report.impgate);
  if (!options.skipMosquitto && !interrupted()) {
    measureMosquitto(resolved, *fleet, scratch->path(), sources, report.mosquitto);
  }
  if (!options.skipOpenssl && !interrupted()) {
    progress("openssl: %zu full and %zu resumed handshakes in memory", options.opensslIterations,
             options.opensslIterations);
    runOpensslHandshakeBench(*fleet, options.opensslIterations, report.openssl);
  }
  progress("done; removing the temp dir");
  if (interrupted() && report.error.empty()) report.error = "interrupted";
  return finish();
}

}  // namespace impgate::bench
