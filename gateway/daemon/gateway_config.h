// Everything an impgate node is told at start-up: where it listens, which broker it bridges
// to, its credentials and its limits.
//
// Values come from defaults, then a config file (`key = value` lines, '#' comments, keys named
// like the long command-line flags with '-' or '_'), then command-line flags.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "gateway/daemon/result.h"

namespace impgate::gateway {

// Which agent messages get a receipt (docs/topics.md, "Receipts").
enum class ReceiptMode {
  kRequested,  // only those that name an MQTT 5 Response Topic, published there
  kAll,        // also every QoS 1 message, on the device's ack topic (MQTT 3.1.1 agents)
};

struct GatewayConfig {
  std::string home;                        // impgate home (CA, gateway credentials)
  std::string listen = "0.0.0.0:31314";    // device listener
  std::string metrics = "127.0.0.1:9464";  // Prometheus endpoint; empty disables it
  std::string node;                        // node name; defaults to the host name
  bool reusePort = false;                  // SO_REUSEPORT: several processes share one port

  // Bus
  std::string broker = "tcp://127.0.0.1:1883";
  std::string prefix = "imp";
  std::optional<int> mqttVersion;  // 5 or 3 (3.1.1); none: MQTT 5, falling back to 3.1.1
  std::string mqttUsername;
  std::string mqttPassword;
  std::string mqttCaFile;
  std::string mqttCertFile;
  std::string mqttKeyFile;
  int mqttBuffer = 100000;  // publishes buffered while the broker is unreachable
  int mqttConnections = 4;  // connections to the broker, devices hashed onto them
  ReceiptMode receipts = ReceiptMode::kRequested;

  // TLS: credentials default to the home's gateway certificate and fleet CA.
  std::string tlsCert;
  std::string tlsKey;
  std::string tlsClientCa;
  bool allowTls12 = false;

  // Code push: the fleet's code-signing public key (default: home/ca/code-signing.pub; without
  // it the node pushes no code) and the node's own cache of deployments and code (default:
  // home/gateway/code-cache).
  std::string codeVerifyKey;
  std::string codeCache;

  // Limits
  std::chrono::seconds keepalive{60};         // the idle side pings after this much silence
  std::chrono::seconds handshakeTimeout{10};  // TLS handshake + HELLO must finish within it
  uint32_t maxFrame = 0;                      // 0 = protocol default
  std::size_t maxConnections = 100000;
  std::size_t maxInflightPublishes = 64;      // per device; reading pauses beyond it
  std::size_t maxPendingDeliveries = 256;     // per device, agent messages awaiting ACK
  std::chrono::seconds deliveryTimeout{60};   // an agent message not ACKed by then has failed
  std::size_t maxOutputBuffer = 1024 * 1024;  // per device, bytes not yet written
  // Every byte the node buffers for devices (partial frames, output, pending deliveries), in
  // total. Past it the node sheds load (see docs/architecture.md, "Memory budget").
  std::size_t memoryLimit = 512 * 1024 * 1024;

  // Flapping: a device that opens more than flapMaxSessions sessions within flapWindow is
  // refused for flapBan.
  std::chrono::seconds flapWindow{60};
  uint32_t flapMaxSessions = 10;
  std::chrono::seconds flapBan{60};

  std::string logLevel = "info";
  // Log lines per second at most, 0: no budget; unset: $IMPGATE_LOG_RATE or the log's default.
  std::optional<uint32_t> logRate;
};

// Applies `key = value` settings to `config`. The error names the first bad line or key
// (kInvalidSetting), or the file that cannot be read (kIo).
Status applyConfigFile(const std::string& path, GatewayConfig& config);
Status applySetting(const std::string& key, const std::string& value, GatewayConfig& config);
// Checks cross-field rules (valid prefix, node name, versions); kInvalidSetting when one fails.
Status validate(const GatewayConfig& config);

}  // namespace impgate::gateway
