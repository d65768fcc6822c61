// The metrics of one gateway node, as named series in a metrics::Registry.
//
// Updated on the reactor thread with relaxed atomics and rendered by the metrics endpoint on
// its own thread. Every series is created here at start-up, so the hot path only increments.
// impgate_log_lines_dropped_total is read from the log (log::droppedLines()) on each scrape.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>

#include "gateway/base/metrics/registry.h"

namespace impgate::gateway {

// Why a connection was closed or refused; the label of impgate_errors_total.
enum class ErrorReason : uint8_t {
  kHandshakeFailed,   // TLS handshake error: foreign certificate, plain TCP, ...
  kHandshakeTimeout,  // TLS + HELLO not finished in time (slowloris)
  kBadIdentity,       // certificate without a usable device id
  kFrameTooLarge,
  kUnknownFrame,
  kMalformed,
  kInvalidName,
  kUnsupportedVersion,
  kProtocolError,  // a valid frame at the wrong time
  kKeepaliveTimeout,
  kOutputOverflow,  // the device did not read fast enough
  kConnectionLimit,
  kIoError,
  kFlapping,    // the device opened too many sessions lately and is refused for a while
  kOverloaded,  // closed to bring the node back under its memory limit
  kCount
};

std::string_view errorReasonName(ErrorReason reason);

struct GatewayStats {
  explicit GatewayStats(metrics::Registry& registry);

  metrics::Gauge& connectionsOpen;  // TCP connections held, handshaking or not
  metrics::Gauge& devicesOnline;    // sessions past HELLO
  metrics::Gauge& busConnected;     // 1 while the MQTT connection is up
  metrics::Counter& connectionsAccepted;
  metrics::Counter& handshakesOk;
  metrics::Counter& handshakesResumed;
  metrics::Counter& handshakesFailed;
  metrics::Counter& framesIn;
  metrics::Counter& framesOut;
  metrics::Counter& bytesIn;
  metrics::Counter& bytesOut;
  metrics::Counter& messagesPublished;      // device -> bus, acknowledged by the broker
  metrics::Counter& messagesPublishFailed;  // device -> bus, refused or failed
  metrics::Counter& agentMessages;          // bus -> device, arrived at this node
  metrics::Counter& messagesDelivered;      // bus -> device, acknowledged by the device
  metrics::Counter& messagesUndeliverable;  // bus -> device, device gone or backlog full
  metrics::Counter& deliveriesTimedOut;     // bus -> device, no ACK within delivery-timeout
  metrics::Counter& logsForwarded;
  metrics::Counter& readPauses;  // backpressure: reading a device paused
  metrics::Counter& busDisconnects;
  metrics::Counter& flappingBans;     // bans started
  metrics::Gauge& bufferedBytes;      // MemoryBudget::used()
  metrics::Gauge& memoryLimit;        // MemoryBudget::limit()
  metrics::Counter& acceptPauses;     // overload: stopped accepting connections
  metrics::Counter& deliveriesShed;   // overload: agent messages refused
  metrics::Counter& connectionsShed;  // overload: connections closed
  metrics::Gauge& reactorQueue;       // work posted to the reactor, not yet run
  std::array<metrics::Counter*, static_cast<std::size_t>(ErrorReason::kCount)> errors{};

  void count(ErrorReason r) { errors[static_cast<std::size_t>(r)]->inc(); }
};

}  // namespace impgate::gateway
