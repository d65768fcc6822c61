// impdev: a device from the command line (send, listen, log, demo) and the fleet simulator.
#include <CLI/CLI.hpp>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "gateway/base/home.h"
#include "gateway/base/log.h"
#include "gateway/device/blocking_device.h"
#include "tools/impdev/simulator.h"

namespace {

using namespace impgate;
using namespace std::chrono_literals;

std::atomic<bool> gStop{false};
void onSignal(int) {
  gStop.store(true);
}

void installSignals() {
  struct sigaction sa {};
  sa.sa_handler = onSignal;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  std::signal(SIGPIPE, SIG_IGN);
}

struct Common {
  std::string home;
  std::string gateway = "127.0.0.1:31314";
  std::string id;
  std::string serverName;
  std::string ca, cert, key;
  int timeoutSeconds = 10;
};

std::unique_ptr<device::BlockingDevice> makeDevice(const Common& c, bool reconnect,
                                                   std::string& error) {
  if (c.id.empty()) {
    error = "--id is required";
    return nullptr;
  }
  Home home = Home::resolve(c.home);
  device::BlockingDeviceConfig config;
  config.options.gateway = c.gateway;
  config.options.serverName = c.serverName;
  config.options.reconnect = reconnect;
  config.options.codeId = "impdev";
  config.caFile = c.ca.empty() ? home.caCert().string() : c.ca;
  config.certFile = c.cert.empty() ? home.deviceCert(c.id).string() : c.cert;
  config.keyFile = c.key.empty() ? home.deviceKey(c.id).string() : c.key;
  auto created = device::BlockingDevice::create(config);
  if (!created) {
    error = created.error().message;
    return nullptr;
  }
  return std::move(*created);
}

int fail(const std::string& what) {
  std::cerr << "impdev: " << what << "\n";
  return 1;
}

int runSend(const Common& c, const std::string& event, const std::string& payload, bool noAck) {
  std::string error;
  auto dev = makeDevice(c, false, error);
  if (!dev) return fail(error);
  auto timeout = std::chrono::seconds(c.timeoutSeconds);
  if (auto connected = dev->connect(timeout); !connected) {
    return fail("cannot connect: " + connected.error().message);
  }
  auto status = dev->send(event, payload, !noAck, timeout);
  if (!status) return fail("not sent: " + status.error().message);
  if (*status != protocol::AckStatus::kOk) {
    return fail("gateway answered " + std::string(protocol::ackStatusName(*status)));
  }
  dev->disconnect();
  return 0;
}

int runListen(const Common& c, long count) {
  std::string error;
  auto dev = makeDevice(c, true, error);
  if (!dev) return fail(error);
  if (auto connected = dev->connect(std::chrono::seconds(c.timeoutSeconds)); !connected) {
    return fail("cannot connect: " + connected.error().message);
  }
  std::fprintf(stderr, "impdev: %s online, listening\n", c.id.c_str());
  long seen = 0;
  while (!gStop.load() && (count <= 0 || seen < count)) {
    auto m = dev->nextMessage(200ms);
    if (!m) continue;
    std::printf("%s %s\n", m->event.c_str(), m->payload.c_str());
    std::fflush(stdout);
    ++seen;
  }
  return 0;
}

int runLog(const Common& c, const std::string& level, const std::string& text) {
  protocol::LogLevel l = protocol::LogLevel::kInfo;
  if (level == "debug")
    l = protocol::LogLevel::kDebug;
  else if (level == "warn")
    l = protocol::LogLevel::kWarn;
  else if (level == "error")
    l = protocol::LogLevel::kError;
  else if (level != "info")
    return fail("log level must be debug, info, warn or error");
  std::string error;
  auto dev = makeDevice(c, false, error);
  if (!dev) return fail(error);
  if (auto connected = dev->connect(std::chrono::seconds(c.timeoutSeconds)); !connected) {
    return fail("cannot connect: " + connected.error().message);
  }
  if (!dev->log(l, text)) return fail("log not sent");
  // A PING round trip would prove delivery; a clean BYE after the LOG keeps ordering.
  dev->disconnect();
  return 0;
}

// The demo device: sends a reading every `every` seconds and prints what its agent sends.
int runDemo(const Common& c, int every) {
  std::string error;
  auto dev = makeDevice(c, true, error);
  if (!dev) return fail(error);
  if (auto connected = dev->connect(std::chrono::seconds(c.timeoutSeconds)); !connected) {
    return fail("cannot connect: " + connected.error().message);
  }
  std::fprintf(stderr, "impdev: %s online; sending a reading every %d s\n", c.id.c_str(), every);
  auto next = std::chrono::steady_clock::now();
  long n = 0;
  while (!gStop.load()) {
    if (std::chrono::steady_clock::now() >= next) {
      next += std::chrono::seconds(every);
      nlohmann::json reading = {{"n", ++n}, {"temp", 20.0 + static_cast<double>(n % 7) / 2}};
      auto status = dev->send("reading", reading.dump(), true, 5s);
      if (status && *status == protocol::AckStatus::kOk) {
        std::printf("device -> agent  reading %s (acknowledged)\n", reading.dump().c_str());
      } else {
        std::printf("device -> agent  reading %s NOT acknowledged: %s\n", reading.dump().c_str(),
                    status ? std::string(protocol::ackStatusName(*status)).c_str()
                           : status.error().message.c_str());
      }
      std::fflush(stdout);
    }
    if (auto m = dev->nextMessage(200ms)) {
      std::printf("agent -> device  %s %s\n", m->event.c_str(), m->payload.c_str());
      std::fflush(stdout);
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  installSignals();
  Common c;
  CLI::App app{"impdev: an imp device from the command line, and a fleet simulator"};
  app.require_subcommand(1);
  app.add_option("--home", c.home, "impgate home (default $IMPGATE_HOME or ./.impgate)");
  app.add_option("--gateway", c.gateway, "Gateway HOST:PORT")->capture_default_str();
  app.add_option("--id", c.id, "Device id (its credentials are read from the home)");
  app.add_option("--server-name", c.serverName, "Name to verify in the gateway certificate");
  app.add_option("--ca", c.ca, "CA file (default: home/ca/ca.crt)");
  app.add_option("--cert", c.cert, "Device certificate (default: home/devices/ID/device.crt)");
  app.add_option("--key", c.key, "Device key (default: home/devices/ID/device.key)");
  app.add_option("--timeout", c.timeoutSeconds, "Seconds to wait for connect and ACK")
      ->capture_default_str();

  std::string event, payload, level, text;
  bool noAck = false;
  auto* send =
      app.add_subcommand("send", "Send EVENT PAYLOAD to the agent; exit 0 once acknowledged");
  send->add_option("event", event)->required();
  send->add_option("payload", payload)->required();
  send->add_flag("--no-ack", noAck, "Do not ask for an acknowledgement");

  long count = 0;
  auto* listen = app.add_subcommand("listen", "Print each agent message as `EVENT PAYLOAD`");
  listen->add_option("--count", count, "Exit after this many messages");

  auto* logCmd = app.add_subcommand("log", "Send a log line (LEVEL TEXT)");
  logCmd->add_option("level", level)->required();
  logCmd->add_option("text", text)->required();

  int every = 3;
  auto* demo = app.add_subcommand("demo", "Send readings periodically and print agent messages");
  demo->add_option("--every", every, "Seconds between readings")->capture_default_str();

  tools::SimulationOptions sim;
  std::string prefix = "sim-";
  long simCount = 100, first = 1;
  int durationSeconds = 60, sendEveryMs = 0;
  bool json = false;
  auto* simulate = app.add_subcommand("simulate", "Run many devices from this process");
  simulate->add_option("--count", simCount, "Number of devices")->capture_default_str();
  simulate->add_option("--prefix", prefix, "Device ids are PREFIX + 5-digit number")
      ->capture_default_str();
  simulate->add_option("--first", first, "First device number")->capture_default_str();
  simulate->add_option("--sources", sim.sources, "Local source addresses, e.g. 127.0.0.2")
      ->delimiter(',');
  simulate->add_option("--rate", sim.connectRate, "New connections per second")
      ->capture_default_str();
  simulate->add_option("--duration", durationSeconds, "Seconds to run")->capture_default_str();
  simulate->add_option("--send-every-ms", sendEveryMs, "Each device sends this often (0 = idle)");
  simulate->add_option("--payload-bytes", sim.payloadBytes, "Bytes per message")
      ->capture_default_str();
  simulate->add_flag("--exit-when-connected", sim.exitWhenAllConnected,
                     "Stop once every device is online");
  simulate->add_flag("--json", json, "Print the result as JSON");

  CLI11_PARSE(app, argc, argv);

  if (*send) return runSend(c, event, payload, noAck);
  if (*listen) return runListen(c, count);
  if (*logCmd) return runLog(c, level, text);
  if (*demo) return runDemo(c, every);
  if (*simulate) {
    sim.home = c.home;
    sim.gateway = c.gateway;
    sim.serverName = c.serverName;
    sim.duration = std::chrono::seconds(durationSeconds);
    sim.sendEvery = std::chrono::milliseconds(sendEveryMs);
    sim.stop = &gStop;  // Ctrl-C ends the run early and still prints the summary
    char id[96];
    for (long i = 0; i < simCount; ++i) {
      std::snprintf(id, sizeof id, "%s%05ld", prefix.c_str(), first + i);
      sim.ids.emplace_back(id);
    }
    tools::SimulationResult r;
    std::string error;
    if (!tools::runSimulation(sim, r, error)) return fail(error);
    nlohmann::json out = {{"devices", r.devices},
                          {"online", r.online},
                          {"peak_online", r.peakOnline},
                          {"connects", r.connects},
                          {"resumed", r.resumed},
                          {"drops", r.failures},
                          {"sent", r.sent},
                          {"acked", r.acked},
                          {"received", r.received},
                          {"seconds_to_all_online", r.secondsToAllOnline}};
    if (json) {
      std::printf("%s\n", out.dump().c_str());
    } else {
      std::printf("%s\n", out.dump(2).c_str());
    }
    return r.peakOnline == r.devices ? 0 : 3;
  }
  return 0;
}
