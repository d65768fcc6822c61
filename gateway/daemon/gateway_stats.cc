#include "gateway/daemon/gateway_stats.h"

#include "gateway/base/log.h"

namespace impgate::gateway {

std::string_view errorReasonName(ErrorReason reason) {
  switch (reason) {
    case ErrorReason::kHandshakeFailed:
      return "handshake_failed";
    case ErrorReason::kHandshakeTimeout:
      return "handshake_timeout";
    case ErrorReason::kBadIdentity:
      return "bad_identity";
    case ErrorReason::kFrameTooLarge:
      return "frame_too_large";
    case ErrorReason::kUnknownFrame:
      return "unknown_frame";
    case ErrorReason::kMalformed:
      return "malformed";
    case ErrorReason::kInvalidName:
      return "invalid_name";
    case ErrorReason::kUnsupportedVersion:
      return "unsupported_version";
    case ErrorReason::kProtocolError:
      return "protocol_error";
    case ErrorReason::kKeepaliveTimeout:
      return "keepalive_timeout";
    case ErrorReason::kOutputOverflow:
      return "output_overflow";
    case ErrorReason::kConnectionLimit:
      return "connection_limit";
    case ErrorReason::kIoError:
      return "io_error";
    case ErrorReason::kFlapping:
      return "flapping";
    case ErrorReason::kOverloaded:
      return "overloaded";
    case ErrorReason::kCount:
      break;
  }
  return "unknown";
}

namespace {

metrics::CounterFamily& overload(metrics::Registry& r) {
  return r.counterFamily("impgate_overload_actions_total",
                         "Load shed because buffered bytes passed the memory limit", {"action"});
}

metrics::CounterFamily& handshakes(metrics::Registry& r) {
  return r.counterFamily("impgate_handshakes_total", "TLS handshakes by result", {"result"});
}
}  // namespace

GatewayStats::GatewayStats(metrics::Registry& r)
    : connectionsOpen(r.gauge("impgate_connections", "Device connections held")),
      devicesOnline(r.gauge("impgate_devices_online", "Devices past HELLO on this node")),
      busConnected(r.gauge("impgate_bus_connected", "1 while connected to the MQTT broker")),
      connectionsAccepted(
          r.counter("impgate_connections_accepted_total", "TCP connections accepted")),
      handshakesOk(handshakes(r).with("ok")),
      handshakesResumed(handshakes(r).with("resumed")),
      handshakesFailed(handshakes(r).with("failed")),
      framesIn(r.counter("impgate_frames_in_total", "Frames received from devices")),
      framesOut(r.counter("impgate_frames_out_total", "Frames sent to devices")),
      bytesIn(r.counter("impgate_bytes_in_total", "Decrypted bytes received from devices")),
      bytesOut(r.counter("impgate_bytes_out_total", "Bytes sent to devices, before encryption")),
      messagesPublished(
          r.counter("impgate_messages_published_total", "Device messages the broker acknowledged")),
      messagesPublishFailed(r.counter("impgate_messages_publish_failed_total",
                                      "Device messages the bus could not take")),
      agentMessages(
          r.counter("impgate_agent_messages_total", "Agent messages that arrived at this node")),
      messagesDelivered(
          r.counter("impgate_messages_delivered_total", "Agent messages the device acknowledged")),
      messagesUndeliverable(r.counter("impgate_messages_undeliverable_total",
                                      "Agent messages for a device not here or backlogged")),
      deliveriesTimedOut(r.counter("impgate_deliveries_timed_out_total",
                                   "Agent messages a device did not acknowledge in time")),
      logsForwarded(r.counter("impgate_logs_forwarded_total", "Device log lines published")),
      readPauses(r.counter("impgate_read_pauses_total",
                           "Times reading a device paused because the broker was behind")),
      busDisconnects(r.counter("impgate_bus_disconnects_total", "Lost broker connections")),
      flappingBans(r.counter("impgate_flapping_bans_total",
                             "Devices refused for a while because they reconnected too often")),
      bufferedBytes(r.gauge("impgate_buffered_bytes",
                            "Bytes buffered for devices: partial frames, output, deliveries")),
      memoryLimit(r.gauge("impgate_memory_limit_bytes", "The node's limit on buffered bytes")),
      acceptPauses(overload(r).with("accept_paused")),
      deliveriesShed(overload(r).with("delivery_refused")),
      connectionsShed(overload(r).with("connection_closed")),
      reactorQueue(r.gauge("impgate_reactor_queue",
                           "Work posted to the reactor by other threads and not yet run")) {
  auto& family = r.counterFamily("impgate_errors_total", "Connections closed or refused, by reason",
                                 {"reason"});
  for (std::size_t i = 0; i < errors.size(); ++i) {
    errors[i] = &family.with(errorReasonName(static_cast<ErrorReason>(i)));
  }
  // The log counts its own drops (it sits below metrics and cannot use them); read per scrape.
  r.counterFunction("impgate_log_lines_dropped_total",
                    "Log lines not written: over the line budget, or stderr too slow",
                    [] { return log::droppedLines(); });
}

}  // namespace impgate::gateway
