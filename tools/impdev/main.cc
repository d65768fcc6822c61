// impdev: a device from the command line (send, listen, log, demo) and the fleet simulator.
#include <CLI/CLI.hpp>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "gateway/base/code/hex.h"
#include "gateway/base/home.h"
#include "gateway/base/log.h"
#include "gateway/base/pki/code_signing.h"
#include "gateway/device/blocking_device.h"
#include "gateway/device/file_code_store.h"
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
  // Code push (docs/protocol.md, "Code push").
  std::string state;         // default <home>/devices/<id>/state
  std::string deferUpdates;  // a reason to defer normal updates with; empty: install them
  bool corruptDownload = false;
};

std::filesystem::path stateDir(const Common& c, const Home& home) {
  return c.state.empty() ? home.deviceDir(c.id) / "state" : std::filesystem::path(c.state);
}

// Code push for one device: its copy of the fleet key and a FileCodeStore in its state
// directory. Off (with one line on stderr) when the device has no key; an error when the state
// directory cannot be used.
bool setUpCodePush(const Common& c, const Home& home, device::CodePushOptions& out,
                   std::string& error) {
  auto keyPath = home.deviceCodeVerifyKey(c.id);
  auto key = pki::readVerifyKey(keyPath);
  if (!key) {
    std::fprintf(stderr, "impdev: no code push for %s: %s\n", c.id.c_str(),
                 key.error().message.c_str());
    return true;
  }
  auto store = device::FileCodeStore::open(stateDir(c, home));
  if (!store) {
    error = store.error().message;
    return false;
  }
  out.verifyKey = std::shared_ptr<EVP_PKEY>(std::move(*key));
  out.store = std::move(*store);
  out.corruptFirstFetch = c.corruptDownload;
  if (!c.deferUpdates.empty()) {
    std::string reason = c.deferUpdates;
    out.deferUpdate = [reason](const device::CodeOfferInfo&) -> std::optional<std::string> {
      return reason;
    };
  }
  return true;
}

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
  config.options.codeId = "impdev";  // reported only without code push
  if (!setUpCodePush(c, home, config.options.codePush, error)) return nullptr;
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

// Prints every code push event that has arrived, one line each (docs/operations.md lists
// them; integration tests wait for them):
//   code offered SHA deployment=N size=BYTES mandatory=0|1
//   code deferred SHA REASON
//   code bytes SHA fetched=N copied=N        (before installed/failed: this transfer's bytes)
//   code installed SHA
//   code failed SHA REASON
//   code superseded SHA                      (the gateway withdrew the offer)
void printCodeEvents(device::BlockingDevice& dev) {
  using Kind = device::CodeEvent::Kind;
  while (auto e = dev.nextCodeEvent(0ms)) {
    std::string sha = code::toHex(e->offer.code);
    switch (e->kind) {
      case Kind::kOffered:
        std::printf("code offered %s deployment=%u size=%u mandatory=%d\n", sha.c_str(),
                    e->offer.deployment, e->offer.size, e->offer.mandatory ? 1 : 0);
        break;
      case Kind::kDeferred:
        std::printf("code deferred %s %s\n", sha.c_str(), e->reason.c_str());
        break;
      case Kind::kInstalled:
      case Kind::kFailed:
        std::printf("code bytes %s fetched=%llu copied=%llu\n", sha.c_str(),
                    static_cast<unsigned long long>(e->bytesFetched),
                    static_cast<unsigned long long>(e->bytesCopied));
        if (e->kind == Kind::kInstalled) {
          std::printf("code installed %s\n", sha.c_str());
        } else {
          std::printf("code failed %s %s\n", sha.c_str(), e->reason.c_str());
        }
        break;
      case Kind::kSuperseded:
        std::printf("code superseded %s\n", sha.c_str());
        break;
    }
    std::fflush(stdout);
  }
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
    printCodeEvents(*dev);
    auto m = dev->nextMessage(100ms);
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
    printCodeEvents(*dev);
  }
  return 0;
}

// The code the device runs, from its state directory: "<sha> <size>", or "none".
int runCode(const Common& c) {
  if (c.id.empty() && c.state.empty()) return fail("--id (or --state) is required");
  Home home = Home::resolve(c.home);
  auto store = device::FileCodeStore::open(stateDir(c, home));
  if (!store) return fail(store.error().message);
  auto running = (*store)->runningCode();
  if (!running) {
    std::printf("none\n");
  } else {
    std::printf("%s %u\n", code::toHex(*running).c_str(), (*store)->runningSize());
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
  app.add_option("--state", c.state,
                 "Device state directory, holding its code (default: home/devices/ID/state; "
                 "simulate: DIR/ID)");
  app.add_option("--defer-updates", c.deferUpdates,
                 "Defer every code update that is not mandatory, with this reason");
  app.add_flag("--corrupt-download", c.corruptDownload,
               "Fault injection: flip one bit of the first chunk fetched, so that download "
               "fails and is not installed");
  // The options above may also follow the subcommand (impdev listen --id X ...).
  app.fallthrough();

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
  auto* codeCmd =
      app.add_subcommand("code", "Print the code the device runs: `SHA SIZE`, or `none`");

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
  simulate->add_flag("--code-push", sim.codePush,
                     "Take code push: each device keeps its code in STATE/ID (default "
                     "home/devices/ID/state) and verifies with home/devices/ID/code-signing.pub");
  simulate->add_option("--corrupt-devices", sim.corruptDevices,
                       "Only the first N devices corrupt their first download (with "
                       "--corrupt-download: all)");
  std::string exitWhenRunning;
  simulate->add_option("--exit-when-running", exitWhenRunning,
                       "Stop once every device runs this code (64 hex)");

  CLI11_PARSE(app, argc, argv);

  if (*send) return runSend(c, event, payload, noAck);
  if (*listen) return runListen(c, count);
  if (*logCmd) return runLog(c, level, text);
  if (*demo) return runDemo(c, every);
  if (*codeCmd) return runCode(c);
  if (*simulate) {
    sim.home = c.home;
    sim.gateway = c.gateway;
    sim.serverName = c.serverName;
    sim.duration = std::chrono::seconds(durationSeconds);
    sim.sendEvery = std::chrono::milliseconds(sendEveryMs);
    sim.stop = &gStop;  // Ctrl-C ends the run early and still prints the summary
    sim.stateDir = c.state;
    sim.deferUpdates = c.deferUpdates;
    if (c.corruptDownload) sim.corruptDevices = simCount;
    if (!exitWhenRunning.empty()) {
      auto sha = code::sha256FromHex(exitWhenRunning);
      if (!sha) return fail("--exit-when-running takes 64 lower-case hex digits");
      sim.exitWhenRunning = *sha;
    }
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
    if (sim.codePush) {
      nlohmann::json running = nlohmann::json::object();
      for (const auto& [sha, n] : r.running) running[sha] = n;
      out["code"] = {{"devices", r.codePushDevices},
                     {"offers", r.codeOffers},
                     {"installed", r.codeInstalled},
                     {"deferred", r.codeDeferred},
                     {"failed", r.codeFailed},
                     {"superseded", r.codeSuperseded},
                     {"bytes_fetched", r.codeBytesFetched},
                     {"bytes_copied", r.codeBytesCopied},
                     {"seconds_first_offer_to_last_install", r.secondsFirstOfferToLastInstall},
                     {"running", running}};
    }
    if (json) {
      std::printf("%s\n", out.dump().c_str());
    } else {
      std::printf("%s\n", out.dump(2).c_str());
    }
    return r.peakOnline == r.devices ? 0 : 3;
  }
  return 0;
}
