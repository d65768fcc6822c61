// The gateway's view of the message bus: what a gateway node publishes for its devices and
// what it hears back from agents.
//
// The gateway depends only on these two interfaces; MqttBridge implements DeviceBus over an
// MQTT broker, and unit tests can provide a fake. Every method of DeviceBus and every callback
// of DeviceBusListener runs on the gateway's reactor thread.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace impgate::bus {

// Retained presence of one device, published on <prefix>/dev/<id>/state.
struct Presence {
  bool online = false;
  std::string_view node;
  std::string_view codeId;  // the code the device reported in HELLO
  uint64_t sinceMs = 0;     // when this state began (wall clock)
  uint64_t epochMs = 0;     // start of the session this state belongs to; orders states
  std::string_view reason;  // why the device went offline (empty when online)
};

// The gateway's answer about one agent message: the device acknowledged it, or it could not be
// delivered. Published only for messages that asked for one (see docs/topics.md, "Receipts");
// the gateway decides whether and where, the bus only publishes it.
struct Receipt {
  std::string_view event;
  uint64_t seq = 0;         // per-session sequence number of agent messages for this device; 0 when
                            // the message arrived after the device's session had ended
  std::string_view status;  // "delivered", "rejected" or "failed"
  std::string_view correlation;  // MQTT 5 correlation data of the agent's message, if any
  std::string_view node;
  // Where it is published: empty = the device's ack topic (<prefix>/dev/<id>/ack), otherwise
  // the response topic the agent's message named (already checked by the gateway).
  std::string_view topic = {};
};

// An agent -> device message as it arrived from the bus.
struct AgentMessage {
  std::string device;
  std::string event;
  std::string payload;
  int qos = 0;
  std::string correlation;
  // MQTT 5 Response Topic property: the agent asks for a receipt there. nullopt when the message
  // had none (always under MQTT 3.1.1). Untrusted: the gateway checks it before publishing to it.
  std::optional<std::string> responseTopic = {};
  // Published with the retain flag (see docs/topics.md): the gateway refuses it.
  bool retained = false;
};

class DeviceBusListener {
 public:
  virtual ~DeviceBusListener() = default;
  // The broker acknowledged (ok) or failed the publish started with `token`.
  virtual void onPublished(uint64_t token, bool ok) = 0;
  // `message` is valid during the call only (the bridge reuses its buffers for the next one).
  virtual void onAgentMessage(const AgentMessage& message) = 0;
  virtual void onBusConnection(bool connected) = 0;
  // A message on a fleet subscription (subscribeFleet), retained ones included. `topic` and
  // `payload` are valid during the call only.
  virtual void onFleetMessage(std::string_view /*topic*/, std::span<const uint8_t> /*payload*/) {}
  // The node's broker connection came (back) up and the fleet subscriptions were sent again:
  // their retained messages follow, then onFleetSynced().
  virtual void onFleetSyncStarted() {}
  // Every retained message of the fleet subscriptions has arrived since onFleetSyncStarted();
  // once per connection.
  virtual void onFleetSynced() {}
};

class DeviceBus {
 public:
  virtual ~DeviceBus() = default;

  // Publishes a device -> agent message: at QoS 1 when the device wants an ACK (onPublished
  // follows the broker's acknowledgement), else at QoS 0 (onPublished follows once the message
  // has been written to the broker's connection, which is what paces the device). No
  // onPublished when token is 0.
  virtual void publishDeviceMessage(std::string_view device, std::string_view event,
                                    std::span<const uint8_t> payload, bool acknowledged,
                                    uint64_t token) = 0;
  virtual void publishPresence(std::string_view device, const Presence& presence) = 0;
  // Publishes a device log line; onPublished(token, ...) follows unless token is 0, so log
  // lines count against the same per-device limits as messages.
  virtual void publishLog(std::string_view device, std::string_view level, std::string_view text,
                          uint64_t token) = 0;
  // Publishes `receipt` (QoS 1, not retained) on receipt.topic, or on the device's ack topic
  // when that is empty.
  virtual void publishReceipt(std::string_view device, const Receipt& receipt) = 0;
  // Retained node status; `devices` is the number of devices connected to this node.
  virtual void publishNodeState(std::size_t devices) = 0;

  // Starts / stops routing agent messages for `device` to this node. Subscriptions are
  // restored after every reconnect to the broker.
  virtual void subscribeDevice(std::string_view device) = 0;
  virtual void unsubscribeDevice(std::string_view device) = 0;

  // Fleet topics (code push, docs/topics.md): descriptors, chunks, group assignments and code
  // states, shared by every node through the broker. A fleet subscription delivers the retained
  // messages under `filter` and stays until unsubscribed; it is restored after every reconnect.
  // All fleet traffic travels on the node's own connection, in order.
  virtual void subscribeFleet(std::string_view filter) = 0;
  virtual void unsubscribeFleet(std::string_view filter) = 0;
  // Publishes at QoS 1 (retained when asked) on the node's connection; queued while the broker
  // is unreachable like every other publish.
  virtual void publishFleet(std::string_view topic, std::span<const uint8_t> payload,
                            bool retained) = 0;

  virtual bool connected() const = 0;
};

}  // namespace impgate::bus
