// impctl's connection to the MQTT bus, for the code-push commands (`impctl code ...`, `group`,
// `device move`): publish retained descriptors and wait until the broker has them, clear them,
// and read back what is retained under a filter. Blocking calls, each bounded by a deadline.
//
// It is the gateway's own MQTT client (bus::mqtt::BrokerLink: MQTT 5, falling back to 3.1.1;
// TLS and credentials as the gateway takes them) on a private net::EventLoop that only the
// calls below drive, on the calling thread. One FleetBus per command run; not thread-safe.
//
// BusOptions are what every bus command of impctl shares; addBusOptions() puts them on a CLI11
// subcommand: --broker URI (else $IMPGATE_BROKER, else tcp://127.0.0.1:1883), --prefix,
// --mqtt-username, --mqtt-password, --mqtt-ca, --mqtt-cert, --mqtt-key (the gateway's names;
// --mqtt-ca-file, --mqtt-cert-file, --mqtt-key-file are accepted as well).
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "gateway/base/result.h"

namespace CLI {
class App;
}

namespace impgate::bus {
class TopicScheme;
}

namespace impgate::impctl {

inline constexpr std::string_view kDefaultBroker = "tcp://127.0.0.1:1883";
inline constexpr std::string_view kBrokerEnv = "IMPGATE_BROKER";

struct BusOptions {
  std::string broker = std::string(kDefaultBroker);
  std::string prefix = "imp";
  std::string username;
  std::string password;
  std::string caFile;  // verifies an ssl:// broker; empty: the system's trust store
  std::string certFile;
  std::string keyFile;
  // How long connect() tries (attempts are retried within it, quickly).
  std::chrono::milliseconds connectTimeout{5000};
};

// Adds the options above to `command`, writing into `options` (which must outlive parsing).
// $IMPGATE_BROKER is read by CLI11 when --broker is not given.
void addBusOptions(CLI::App& command, BusOptions& options);

enum class BusErrorCode {
  kInvalidOptions,  // broker URI, prefix, TLS files or credentials unusable; a bad topic
  kConnect,         // no connection to the broker within the connect timeout
  kRefused,         // the broker refused a publish (PUBACK with an error; too large a packet)
  kTimeout,         // the broker did not acknowledge or answer before the deadline
};
using BusError = base::Error<BusErrorCode>;
using BusStatus = base::Status<BusErrorCode>;
template <typename T>
using BusResult = base::Result<T, BusErrorCode>;

struct RetainedMessage {
  std::string topic;
  std::string payload;  // empty: clears the topic's retained message
};

class FleetBus {
 public:
  // Connects, waiting at most options.connectTimeout. kConnect names the URI and the last
  // reason ("cannot connect to the broker at tcp://...: connection refused").
  static BusResult<std::unique_ptr<FleetBus>> connect(const BusOptions& options);
  ~FleetBus();  // close()
  FleetBus(const FleetBus&) = delete;
  FleetBus& operator=(const FleetBus&) = delete;

  const bus::TopicScheme& topics() const;
  const std::string& brokerUri() const;

  // Publishes every message retained at QoS 1 and returns once the broker has acknowledged all
  // of them. At most a window's worth is in flight (the broker's receive maximum, at most
  // 1024) and a bounded number waits encoded, so a large batch (every chunk of a version)
  // does not sit in memory twice. A publish cut by a dropped connection is sent again after
  // the link reconnects (retained publishes are idempotent). kRefused when the broker refuses
  // one (naming its topic), kTimeout when not all are acknowledged by `deadline` (saying how
  // many were).
  BusStatus publishRetained(std::span<const RetainedMessage> messages,
                            std::chrono::milliseconds deadline = std::chrono::seconds(60));
  BusStatus publishRetained(std::string_view topic, std::string_view payload,
                            std::chrono::milliseconds deadline = std::chrono::seconds(10));

  // Removes the retained message of each topic (an empty retained publish), acknowledged.
  BusStatus clearRetained(std::span<const std::string> topics,
                          std::chrono::milliseconds deadline = std::chrono::seconds(60));
  BusStatus clearRetained(std::string_view topic,
                          std::chrono::milliseconds deadline = std::chrono::seconds(10));

  // Topic -> payload of every retained message under `filter` (MQTT wildcards allowed).
  //
  // How it knows it has them all: it subscribes to `filter` and to a private marker topic
  // (<prefix>/impctl/<client id>/sync) in one SUBSCRIBE, then publishes a QoS 1 non-retained
  // marker there. mosquitto handles a client's packets in order and queues the retained
  // messages of a subscription when it takes the SUBSCRIBE, so they all reach us before the
  // marker comes back. MQTT does not promise that order, and other brokers do not keep it
  // (aedes streams retained messages from its store while it already routes the marker), so
  // the collection ends only once the marker is back AND no retained message has arrived for
  // `quietFor`. On mosquitto that costs `quietFor` once; an empty result comes just as fast.
  //
  // The result is the snapshot the broker holds when it takes the SUBSCRIBE: only messages
  // flagged retained count, and a broker clears that flag on live publishes it forwards, so
  // updates made meanwhile (a rollout in progress) neither enter it nor delay the end. If the
  // connection drops, the collection starts over after the reconnect. Under MQTT 5 the
  // subscription is QoS 1 with a Receive Maximum of 65535 announced, so a broker sends even
  // thousands of retained messages in flight instead of dropping what its per-client queue
  // cannot hold (mosquitto: 1000 by default); under 3.1.1 it is QoS 0 (see fleet_bus.cc).
  // kTimeout when the marker has not come back, or messages keep coming, until `deadline`.
  BusResult<std::map<std::string, std::string>> collectRetained(
      std::string_view filter, std::chrono::milliseconds deadline = std::chrono::seconds(60),
      std::chrono::milliseconds quietFor = std::chrono::milliseconds(300));

  // Sends DISCONNECT (no last will is set) and closes; waits at most 2 s. Idempotent.
  void close();

 private:
  class Impl;
  explicit FleetBus(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace impgate::impctl
