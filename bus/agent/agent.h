// The C++ agent SDK: cloud-side code paired with devices, in the Electric Imp model, over MQTT.
//
// An Agent is one MQTT client (Paho, MQTT 5 by default) that subscribes to every device's
// messages, presence and receipts under a topic prefix, dispatches them to handlers registered
// per event name, and sends named messages back to devices:
//
//   impgate::bus::Agent agent({.brokerUri = "tcp://localhost:1883", .clientId = "thermo"});
//   agent.on("temp", [&](const std::string& device, const std::string& payload) {
//     agent.send(device, "setpoint", "21.5");
//   });
//   agent.onConnect([](const std::string& device) { /* device came online */ });
//   if (!agent.start(std::chrono::seconds(5))) return 1;
//
// Threads: handlers run on Paho's callback thread, one at a time, in arrival order. They may
// call any Agent method except start() and stop(), and should return quickly (hand long work to
// a thread of your own): while a handler runs, no other message is dispatched. Registering
// handlers and send() are safe from any thread. The Agent owns its Paho client; it never throws
// (Paho exceptions and handler exceptions are caught and logged at this boundary).
//
// Connection: automatic reconnect (1 s .. 30 s backoff) with a clean session; every reconnect
// subscribes again. Messages published while the agent is disconnected are not queued for it.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "bus/agent/receipt.h"

namespace impgate::bus {

enum class SendError {
  kNone,
  kInvalidDevice,  // fails isValidDeviceId()
  kInvalidEvent,   // fails isValidEventName()
  kInvalidQos,     // only 0 (fire and forget) and 1 (acknowledged, receipt) are defined
  kNotStarted,     // start() has not succeeded, stop() was called, or the options are invalid
  kNotConnected,   // the broker connection is down (the agent is reconnecting)
  kClient,         // the MQTT client refused the publish (e.g. 10 000 sends already wait for
                   // the broker's receive window); `message` says why
};

// What send() did. On success `corr` is the correlation id carried in the message's MQTT 5
// correlation data; the device's receipt comes back with the same id (empty under MQTT 3.1.1,
// which has no correlation data). Not [[nodiscard]]: fire-and-forget sends that ignore it are
// normal, since only the receipt confirms delivery anyway.
struct SendResult {
  SendError error = SendError::kNone;
  std::string corr;
  std::string message;  // why it failed

  bool ok() const { return error == SendError::kNone; }
  explicit operator bool() const { return ok(); }
};

class Agent {
 public:
  // Every member has a default, so designated initializers may name only what they set.
  struct Options {
    std::string brokerUri{};  // tcp://host:1883, ssl://host:8883
    std::string clientId{};   // empty: a random one
    std::string prefix = "imp";
    std::string username{};  // empty: none
    std::string password{};
    std::string caFile{};    // ssl://: CA bundle that verifies the broker (empty: system store)
    std::string certFile{};  // ssl://: client certificate (PEM), if the broker wants one
    std::string keyFile{};   // ssl://: its private key (PEM)
    bool mqtt5 = true;       // false: MQTT 3.1.1 (no correlation data, so no corr ids, and no
                             // receipts unless the gateway nodes run `--receipts all`)
    // Non-empty: device messages are subscribed as $share/<group>/..., so the broker spreads them
    // over every agent of the group. Presence and receipts are still seen by each instance
    // (everyone can answer isConnected()); onReceipt then reports only receipts for this
    // instance's own sends.
    std::string sharedGroup{};
  };

  using MessageHandler = std::function<void(const std::string& device, const std::string& payload)>;
  using AnyHandler = std::function<void(const std::string& device, const std::string& event,
                                        const std::string& payload)>;
  using ConnectHandler = std::function<void(const std::string& device)>;
  using DisconnectHandler =
      std::function<void(const std::string& device, const std::string& reason)>;
  using ReceiptHandler = std::function<void(const Receipt& receipt)>;

  explicit Agent(Options options);
  // Stops the agent: no handler starts once the destructor has begun, the connection is closed,
  // and the destructor returns only after every running handler has returned (from any thread
  // but a handler's own). A handler may destroy its own Agent (or another one): then the
  // destructor returns at once without waiting, no further handler of that Agent starts, and
  // disconnecting and releasing the MQTT client finish on a helper thread shortly after the
  // handler returns. A handler must not touch the Agent after destroying it.
  ~Agent();
  Agent(const Agent&) = delete;
  Agent& operator=(const Agent&) = delete;

  // The handler for device messages named `event`; replaces an earlier one, an empty function
  // removes it. A message whose event has no handler goes to onAny, or is dropped with a warning.
  void on(std::string event, MessageHandler handler);
  // Receives every device message whose event has no handler of its own.
  void onAny(AnyHandler handler);
  // Presence transitions. onConnect fires when a device comes online (also for devices already
  // online when the agent starts); onDisconnect when it goes offline, with the gateway's reason.
  // The two alternate per device: a new session that replaces one still marked online fires
  // onDisconnect(device, "session_replaced") then onConnect. Stale states never fire.
  void onConnect(ConnectHandler handler);
  void onDisconnect(DisconnectHandler handler);
  void onReceipt(ReceiptHandler handler);

  // Whether the device's newest known session is online.
  bool isConnected(const std::string& device) const;

  // Publishes `payload` to the device as event `event` on <prefix>/dev/<device>/in/<event>.
  // QoS 1 asks the device to acknowledge and asks for a receipt; QoS 0 is fire and forget. A
  // result only says the message was handed to the MQTT client. Same as
  // send(device, event, payload, qos, qos == 1).
  SendResult send(const std::string& device, const std::string& event, std::string_view payload,
                  int qos = 1);
  // `receipt` asks the gateway for a Receipt (onReceipt) whatever the QoS. Under MQTT 5 the
  // message then names the device's ack topic, <prefix>/dev/<device>/ack, as its Response Topic
  // (every agent already subscribes to it), with the correlation data it always carries; without
  // `receipt` it names none and no receipt comes. MQTT 3.1.1 cannot ask per message: `receipt`
  // has no effect there, and a receipt comes only for QoS 1 and only from nodes that run
  // `impgate --receipts all`.
  SendResult send(const std::string& device, const std::string& event, std::string_view payload,
                  int qos, bool receipt);

  // Connects and subscribes; true once the broker has acknowledged the subscriptions. Retries a
  // refused connection until `timeout`; on failure logs why, leaves the agent stopped and returns
  // false (start() may be called again). Must not be called from a handler.
  bool start(std::chrono::milliseconds timeout);
  // Disconnects and waits for running handlers to return. Idempotent; must not be called from a
  // handler (it is refused with an error log).
  void stop();
  // Connected to the broker with all subscriptions acknowledged. False while reconnecting.
  bool ready() const;

 private:
  class Impl;
  std::shared_ptr<Impl> impl_;  // shared with callbacks while they run (see ~Agent)
};

const char* toString(SendError error);

}  // namespace impgate::bus
