// impgate: the gateway daemon. Accepts devices over mutual TLS and bridges them onto MQTT.
#include <malloc.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>
#include <iostream>

#include "bus/bridge/mqtt_bridge.h"
#include "gateway/base/home.h"
#include "gateway/base/log.h"
#include "gateway/base/metrics/metrics_server.h"
#include "gateway/daemon/gateway.h"

namespace {

using namespace impgate;

constexpr std::string_view kComp = "main";

// Blocks SIGINT/SIGTERM in every thread (the log writer's included, which inherit the mask) and
// returns a signalfd the reactor watches, so shutdown starts on the reactor thread. Returns -1
// (errno set) when no signalfd can be made.
int blockTerminationSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  signal(SIGPIPE, SIG_IGN);
  return signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
}

class SignalWatcher final : public net::IoHandler {
 public:
  SignalWatcher(int fd, std::function<void()> onSignal) : fd_(fd), onSignal_(std::move(onSignal)) {}
  void onIoEvents(uint32_t) override {
    signalfd_siginfo info{};
    while (::read(fd_, &info, sizeof info) == sizeof info) {
      log::info(kComp, "signal received, stopping", {{"signal", static_cast<int>(info.ssi_signo)}});
      onSignal_();
    }
  }

 private:
  int fd_;
  std::function<void()> onSignal_;
};

// Prints `impgate: <text>` on stderr for an operator or a script. Log lines go through the
// log's writer thread: flush them first and write the message in one piece, so the two never
// interleave.
void printError(const std::string& text) {
  log::flush();
  std::string line = "impgate: " + text + "\n";
  ssize_t ignored = ::write(STDERR_FILENO, line.data(), line.size());
  (void)ignored;
}

std::string defaultNodeName() {
  char host[HOST_NAME_MAX + 1] = {};
  if (gethostname(host, sizeof host) != 0 || host[0] == '\0') return "impgate";
  std::string name;
  for (char c : std::string(host)) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.';
    name.push_back(ok ? c : '-');
  }
  return name.substr(0, 64);
}

}  // namespace

int main(int argc, char** argv) {
  gateway::GatewayConfig config;
  std::string configFile;
  std::map<std::string, std::string> flags;

  CLI::App app{
      "impgate: the imp gateway. Devices connect over mutual TLS; their messages are "
      "bridged onto an MQTT broker where agents subscribe."};
  app.add_option("--config", configFile, "Config file of `key = value` lines");
  // Every setting is also a flag; flags override the config file.
  const std::vector<std::pair<std::string, std::string>> settings = {
      {"home", "impgate home (CA, gateway credentials); default $IMPGATE_HOME or ./.impgate"},
      {"broker",
       "MQTT broker URI: tcp://HOST:PORT or ssl://HOST:PORT (default tcp://127.0.0.1:1883)"},
      {"listen", "Device listener HOST:PORT (default 0.0.0.0:31314)"},
      {"node", "Node name (default: host name)"},
      {"metrics", "Prometheus endpoint HOST:PORT, or 'off' (default 127.0.0.1:9464)"},
      {"prefix", "Topic prefix (default imp)"},
      {"mqtt-version",
       "MQTT protocol version: 5 or 3 (3.1.1) (default: 5, falling back to 3.1.1 when the "
       "broker speaks only that)"},
      {"mqtt-username", "Broker user name"},
      {"mqtt-password", "Broker password"},
      {"mqtt-ca", "CA file verifying an ssl:// broker"},
      {"mqtt-cert", "Client certificate for the broker"},
      {"mqtt-key", "Client key for the broker"},
      {"mqtt-buffer", "Messages buffered while the broker is unreachable"},
      {"mqtt-connections", "Connections to the broker; devices are hashed onto them (default 4)"},
      {"receipts",
       "Which agent messages get a receipt: 'requested' (those with an MQTT 5 response topic, "
       "the default) or 'all' (also every QoS 1 message, on the ack topic)"},
      {"tls-cert", "Gateway certificate (default: home/gateway/gateway.crt)"},
      {"tls-key", "Gateway key (default: home/gateway/gateway.key)"},
      {"tls-client-ca", "CA that issues device certificates (default: home/ca/ca.crt)"},
      {"allow-tls12", "Accept TLS 1.2 as well as 1.3 (true/false)"},
      {"code-verify-key",
       "Fleet code-signing public key; code push is off without it (default: "
       "home/ca/code-signing.pub)"},
      {"code-cache",
       "This node's cache of deployments and code (default: home/gateway/code-cache)"},
      {"keepalive", "Seconds of silence before a PING; silence of 1.5x drops the device"},
      {"handshake-timeout", "Seconds allowed for TLS handshake and HELLO"},
      {"max-frame", "Largest frame accepted, in bytes"},
      {"max-connections", "Connections held at most"},
      {"max-inflight", "Unacknowledged publishes per device before reading pauses"},
      {"max-pending-deliveries", "Agent messages awaiting a device ACK, per device"},
      {"delivery-timeout", "Seconds a device has to ACK an agent message before it has failed"},
      {"max-output-buffer", "Bytes queued for a device that does not read"},
      {"memory-limit", "Bytes buffered for all devices together before the node sheds load"},
      {"flap-window", "Seconds over which a device's sessions are counted for flapping"},
      {"flap-max-sessions", "Sessions a device may open within flap-window"},
      {"flap-ban", "Seconds a flapping device is refused"},
      {"reuse-port", "SO_REUSEPORT on the listener (true/false)"},
      {"log-level", "debug, info, warn or error"},
      {"log-rate", "Log lines per second at most (bursts of as many); 0: no limit"},
  };
  for (const auto& [name, help] : settings) {
    app.add_option("--" + name, flags[name], help);
  }
  CLI11_PARSE(app, argc, argv);

  if (!configFile.empty()) {
    if (auto applied = gateway::applyConfigFile(configFile, config); !applied) {
      printError(applied.error().message);
      return 2;
    }
  }
  for (const auto& [name, value] : flags) {
    if (app.count("--" + name) == 0) continue;
    if (auto applied = gateway::applySetting(name, value, config); !applied) {
      printError(applied.error().message);
      return 2;
    }
  }
  if (config.node.empty()) config.node = defaultNodeName();
  if (config.metrics == "off") config.metrics.clear();
  log::Level level;
  if (!log::parseLevel(config.logLevel, level)) {
    printError("invalid log level '" + config.logLevel + "'");
    return 2;
  }
  log::setLevel(level);
  if (config.logRate) log::setRateLimit(*config.logRate);
  if (auto valid = gateway::validate(config); !valid) {
    printError(valid.error().message);
    return 2;
  }

  Home home = Home::resolve(config.home);
  net::TlsServerOptions tlsOptions;
  tlsOptions.certFile = config.tlsCert.empty() ? home.gatewayCert().string() : config.tlsCert;
  tlsOptions.keyFile = config.tlsKey.empty() ? home.gatewayKey().string() : config.tlsKey;
  tlsOptions.clientCaFile =
      config.tlsClientCa.empty() ? home.caCert().string() : config.tlsClientCa;
  tlsOptions.allowTls12 = config.allowTls12;
  if (config.codeVerifyKey.empty()) config.codeVerifyKey = home.codeVerifyKey().string();
  if (config.codeCache.empty())
    config.codeCache = (home.root() / "gateway" / "code-cache").string();
  auto tls = net::TlsContext::server(tlsOptions);
  if (!tls) {
    printError(tls.error().message +
               "\nimpgate: create the fleet CA and gateway credentials with `impctl ca init`");
    return 1;
  }

  // Buffers of 128 KiB and more (large partial frames, backlogs) get their own mappings, which
  // go back to the system when freed; glibc would otherwise raise this threshold after the
  // first such free and keep a spike's memory in the heap.
  mallopt(M_MMAP_THRESHOLD, 128 * 1024);
  int signalFd = blockTerminationSignals();
  if (signalFd < 0) {
    // Without it SIGTERM could not stop the gateway: refuse to start.
    printError(std::string("cannot create the signal descriptor: ") + std::strerror(errno));
    return 1;
  }
  net::EventLoop loop;
  metrics::Registry registry;
  gateway::GatewayStats stats(registry);
  gateway::Gateway gw(loop, config, **tls, stats);

  bus::MqttBridgeOptions busOptions;
  busOptions.brokerUri = config.broker;
  busOptions.username = config.mqttUsername;
  busOptions.password = config.mqttPassword;
  busOptions.caFile = config.mqttCaFile;
  busOptions.certFile = config.mqttCertFile;
  busOptions.keyFile = config.mqttKeyFile;
  busOptions.prefix = config.prefix;
  busOptions.node = config.node;
  busOptions.mqttVersion = !config.mqttVersion ? 0 : *config.mqttVersion == 5 ? 5 : 4;
  busOptions.maxBuffered = config.mqttBuffer;
  busOptions.connections = config.mqttConnections;
  bus::MqttBridge bridge(loop, busOptions, gw);
  gw.setBus(bridge);

  if (auto started = gw.start(); !started) {
    printError(started.error().message);
    return 1;
  }
  if (auto started = bridge.start(); !started) {
    printError(started.error().message);
    return 1;
  }
  metrics::Gauge& busInflight = registry.gauge(
      "impgate_bus_inflight", "publishes sent to the broker and not yet acknowledged, all links");
  metrics::Gauge& busQueued = registry.gauge(
      "impgate_bus_queued", "publishes waiting for the broker's receive window or a connection");
  metrics::Gauge& busLinks =
      registry.gauge("impgate_bus_links_up", "connections to the broker that are up");
  metrics::Gauge& codeTransfers = registry.gauge(
      "impgate_code_transfers", "code transfers running on this node (offers not yet answered)");
  metrics::Gauge& codeQueued = registry.gauge(
      "impgate_code_queued", "devices waiting for a code transfer slot or their rollout stage");
  metrics::Counter& codeBytes =
      registry.counter("impgate_code_bytes_total", "code bytes sent to devices in CODE_DATA");
  (void)loop.runEvery(std::chrono::seconds(1), [&] {
    auto bus = bridge.stats();
    busInflight.set(static_cast<int64_t>(bus.inflight));
    busQueued.set(static_cast<int64_t>(bus.queued));
    busLinks.set(static_cast<int64_t>(bus.linksUp));
    const auto& code = gw.codePush();
    codeTransfers.set(static_cast<int64_t>(code.transfers()));
    codeQueued.set(static_cast<int64_t>(code.queued()));
    codeBytes.inc(code.bytesServed() - codeBytes.value());
  });

  std::unique_ptr<metrics::MetricsServer> metricsServer;
  if (!config.metrics.empty()) {
    metrics::MetricsServer::Options metricsOptions;
    auto colon = config.metrics.rfind(':');
    unsigned long metricsPort = 0;
    if (colon == std::string::npos ||
        !CLI::detail::lexical_cast(config.metrics.substr(colon + 1), metricsPort) ||
        metricsPort > 65535) {
      printError("--metrics needs HOST:PORT, got '" + config.metrics + "'");
      return 2;
    }
    metricsOptions.host = config.metrics.substr(0, colon);
    metricsOptions.port = static_cast<uint16_t>(metricsPort);
    metricsServer = std::make_unique<metrics::MetricsServer>(registry, metricsOptions);
    if (auto started = metricsServer->start(); !started) {
      printError("metrics: " + started.error().message);
      return 1;
    }
    log::info(kComp, "metrics endpoint", {{"address", config.metrics}});
  }

  SignalWatcher signals(signalFd, [&] { loop.stop(); });
  if (!loop.watch(signalFd, EPOLLIN, &signals)) {
    printError(std::string("cannot watch the signal descriptor: ") + std::strerror(errno));
    return 1;
  }
  log::info(kComp, "impgate started",
            {{"node", config.node}, {"broker", config.broker}, {"home", home.root().string()}});
  std::error_code loopError = loop.run();
  if (loopError) {
    // The reactor cannot go on; shut down what can be shut down and exit non-zero.
    log::error(kComp, "event loop failed, stopping", {{"error", loopError.message()}});
  }

  // Devices get BYE and an offline presence each (queued on the bus), then the bridge waits for
  // the broker to acknowledge them all. If it does not in time, the bridge disconnects so that
  // the broker publishes the last will: the node is offline either way (docs/topics.md).
  gw.shutdown();
  auto outcome = bridge.stop(std::chrono::seconds(3));
  if (metricsServer) metricsServer->stop();
  ::close(signalFd);
  log::info(kComp, "impgate stopped",
            {{"bus", outcome == bus::MqttBridge::StopOutcome::kClean  ? "clean disconnect"
                     : outcome == bus::MqttBridge::StopOutcome::kWill ? "left to the last will"
                                                                      : "not connected"}});
  return loopError ? 1 : 0;
}
