// MqttBridge: the gateway's connection to the MQTT broker (Eclipse Paho C++), implementing
// DeviceBus.
//
// Owned by the gateway and driven from its reactor thread. Paho runs its own threads; its
// callbacks do nothing but post work into the reactor, so every DeviceBusListener callback
// arrives on the reactor thread. Paho exceptions stop at this class: they become failed
// publishes, logged errors and metrics.
//
// While the broker is unreachable, publishes are buffered by Paho (bounded by maxBuffered) and
// sent after reconnecting; a publish that does not fit fails at once, so the device is told.
#pragma once

#include <mqtt/async_client.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <unordered_set>

#include "bus/bridge/result.h"
#include "bus/device_bus/device_bus.h"
#include "bus/topics/topic_scheme.h"
#include "gateway/base/net/event_loop.h"

namespace impgate::bus {

struct MqttBridgeOptions {
  std::string brokerUri = "tcp://127.0.0.1:1883";  // tcp://, mqtt://, ssl:// or mqtts://
  std::string clientId;                            // defaults to "impgate-<node>"
  std::string username;
  std::string password;
  std::string caFile;    // verifies an ssl:// broker; empty = system trust store
  std::string certFile;  // optional client certificate for the broker
  std::string keyFile;
  std::string prefix = "imp";
  std::string node;
  int mqttVersion = 5;  // 5 or 4 (3.1.1)
  int maxBuffered = 100000;
  std::chrono::seconds keepAlive{20};
};

class MqttBridge final : public DeviceBus, private mqtt::iaction_listener {
 public:
  MqttBridge(net::EventLoop& loop, MqttBridgeOptions options, DeviceBusListener& listener);
  ~MqttBridge() override;

  // Creates the client and starts connecting (retrying until stop()). kInvalidBroker for
  // configuration errors such as an invalid URI.
  Status start();
  enum class StopOutcome {
    kClean,         // every publish acknowledged (offline states included), then DISCONNECT
    kWill,          // not all acknowledged in time: MQTT 5 DISCONNECT 0x04 made the broker
                    // publish the last will (node offline)
    kAbandoned,     // not all acknowledged in time, and no DISCONNECT 0x04 could be sent: the
                    // connection is left open, and closing it (the process exit) makes the
                    // broker publish the will. End the process soon; the bridge is unusable.
    kNotConnected,  // no broker connection: nothing could be published (the broker publishes
                    // the will when it notices the lost connection)
  };
  // Publishes the node's offline state and waits, at most `timeout`, until the broker has
  // acknowledged it and every publish queued before it (the offline presence of each device).
  // Then disconnects so that the broker ends up with offline states either way: a normal
  // DISCONNECT when everything was acknowledged, otherwise one that keeps the last will.
  StopOutcome stop(std::chrono::milliseconds timeout);

  void publishDeviceMessage(std::string_view device, std::string_view event,
                            std::span<const uint8_t> payload, uint64_t token) override;
  void publishPresence(std::string_view device, const Presence& presence) override;
  void publishLog(std::string_view device, std::string_view level, std::string_view text,
                  uint64_t token) override;
  void publishReceipt(std::string_view device, const Receipt& receipt) override;
  void publishNodeState(std::size_t devices) override;
  void subscribeDevice(std::string_view device) override;
  void unsubscribeDevice(std::string_view device) override;
  bool connected() const override { return connected_.load(); }
  const TopicScheme& topics() const { return topics_; }

 private:
  // mqtt::iaction_listener, for publishes that carry a token. Called on a Paho thread.
  void on_success(const mqtt::token& tok) override;
  void on_failure(const mqtt::token& tok) override;

  void connectNow();
  void onConnected();
  void onConnectionLost(const std::string& cause);
  void onMessage(mqtt::const_message_ptr msg);
  void resubscribeAll();
  StopOutcome leaveToWill();
  mqtt::subscribe_options subscribeOptions() const;
  void publish(const std::string& topic, std::string_view payload, bool retained,
               const mqtt::properties* props = nullptr);
  // Publishes at QoS 1 and reports the outcome to the listener under `token` (none when 0).
  void publishTracked(const std::string& topic, std::span<const uint8_t> payload, uint64_t token);
  std::string nodeStateJson(bool online, std::size_t devices) const;

  net::EventLoop& loop_;
  MqttBridgeOptions options_;
  DeviceBusListener& listener_;
  TopicScheme topics_;
  // Declared before client_, so it outlives the client even without the destructor's reset.
  std::shared_ptr<std::atomic<bool>> alive_ = std::make_shared<std::atomic<bool>>(true);
  std::unique_ptr<mqtt::async_client> client_;
  std::unordered_set<std::string> devices_;  // subscriptions to restore after a reconnect
  std::string topicScratch_;                 // reused for every device message topic
  uint64_t startedMs_ = 0;
  std::size_t lastDeviceCount_ = 0;
  net::EventLoop::TimerId retryTimer_ = 0;
  bool stopping_ = false;
  bool abandoned_ = false;  // stop() left the connection open for the process exit to close
  bool everConnected_ = false;
  std::atomic<bool> connected_{false};
};

}  // namespace impgate::bus
