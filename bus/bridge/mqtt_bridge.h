// MqttBridge: the gateway's connections to the MQTT broker, implementing DeviceBus on
// BrokerLinks (bus/mqtt/broker_link.h) that the gateway's reactor drives.
//
// A node holds `connections` links (4 by default) and hashes each device onto one of them, so
// everything of one device — its messages, presence, receipts and subscription — travels in
// order on one connection, while the broker's per-client limits (mosquitto: 20 messages in
// flight and 1000 queued per client by default) apply to a share of the devices each. Link 0
// also carries the node state and the node's last will.
//
// Owned by the gateway and used on its reactor thread only; every DeviceBusListener callback
// arrives on that thread, from inside the link's event handling. There is no other thread and
// no lock: a device message is encoded straight into the link's output buffer and leaves with
// everything else queued in the same pass of the event loop (docs/architecture.md).
//
// While the broker is unreachable, publishes wait in the link's queue (bounded by maxBuffered)
// and go out after reconnecting; one that does not fit fails at once, so the device is told.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <unordered_set>
#include <vector>

#include "bus/bridge/result.h"
#include "bus/device_bus/device_bus.h"
#include "bus/mqtt/broker_link.h"
#include "bus/topics/topic_scheme.h"
#include "gateway/base/net/event_loop.h"
#include "gateway/base/net/tls_context.h"

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
  int mqttVersion = 0;  // 5, 4 (3.1.1), or 0: MQTT 5, falling back to 3.1.1
  int maxBuffered = 100000;
  int maxInflight = 1024;  // unacknowledged publishes per link, at most (and never above the
                           // broker's receive maximum)
  int connections = 4;     // links to the broker; client ids impgate-<node>, impgate2-<node>, ...
  std::chrono::seconds keepAlive{20};
};

class MqttBridge final : public DeviceBus {
 public:
  MqttBridge(net::EventLoop& loop, MqttBridgeOptions options, DeviceBusListener& listener);
  ~MqttBridge() override;

  // Checks the options, loads the broker TLS files, and starts connecting (retrying until
  // stop()). kInvalidBroker for configuration errors such as an invalid URI.
  Status start();
  enum class StopOutcome {
    kClean,         // every publish acknowledged (offline states included), then DISCONNECT
    kWill,          // not all acknowledged in time: the connection ended so that the broker
                    // publishes the last will (node offline): MQTT 5 DISCONNECT 0x04, or
                    // under 3.1.1 a close without DISCONNECT
    kNotConnected,  // no broker connection: nothing could be published (the broker publishes
                    // the will when it notices the lost connection)
  };
  // Publishes the node's offline state and waits, at most `timeout`, until the broker has
  // acknowledged it and every publish queued before it (the offline presence of each device),
  // driving the event loop meanwhile (call it after the loop's run() returned). Then
  // disconnects so that the broker ends up with offline states either way.
  StopOutcome stop(std::chrono::milliseconds timeout);

  void publishDeviceMessage(std::string_view device, std::string_view event,
                            std::span<const uint8_t> payload, bool acknowledged,
                            uint64_t token) override;
  void publishPresence(std::string_view device, const Presence& presence) override;
  void publishLog(std::string_view device, std::string_view level, std::string_view text,
                  uint64_t token) override;
  void publishReceipt(std::string_view device, const Receipt& receipt) override;
  void publishNodeState(std::size_t devices) override;
  void subscribeDevice(std::string_view device) override;
  void unsubscribeDevice(std::string_view device) override;
  void subscribeFleet(std::string_view filter) override;
  void unsubscribeFleet(std::string_view filter) override;
  void publishFleet(std::string_view topic, std::span<const uint8_t> payload,
                    bool retained) override;
  // Every link is up.
  bool connected() const override { return upLinks_ == links_.size() && !links_.empty(); }
  const TopicScheme& topics() const { return topics_; }

  struct Stats {
    std::size_t inflight = 0;  // publishes the broker has not acknowledged yet, all links
    std::size_t queued = 0;    // publishes waiting for a receive window or a connection
    std::size_t linksUp = 0;
  };
  Stats stats() const;

 private:
  // One broker connection and what the bridge keeps of it.
  struct Link final : mqtt::LinkListener {
    Link(MqttBridge& bridge, std::size_t index) : bridge(bridge), index(index) {}
    void onLinkUp() override { bridge.onLinkUp(*this); }
    void onLinkDown(std::string_view reason) override { bridge.onLinkDown(*this, reason); }
    void onConnectFailed(std::string_view reason) override {
      bridge.onConnectFailed(*this, reason);
    }
    void onPublished(uint64_t token, bool ok) override { bridge.listener_.onPublished(token, ok); }
    void onMessage(const mqtt::PublishIn& message) override { bridge.onMessage(message); }

    MqttBridge& bridge;
    std::size_t index;
    std::unique_ptr<mqtt::BrokerLink> link;
    bool up = false;
    bool everUp = false;
  };

  void onLinkUp(Link& link);
  void onLinkDown(Link& link, std::string_view reason);
  void onConnectFailed(Link& link, std::string_view reason);
  void onMessage(const mqtt::PublishIn& message);
  void onSyncMarker(std::span<const uint8_t> payload);
  static mqtt::SubscribeFilter fleetFilterFor(std::string_view filter);
  mqtt::BrokerLink& linkFor(std::string_view device);
  // impgate-<node> for the first link, impgate<n>-<node> for the others (unique across nodes).
  std::string clientIdOf(std::size_t index) const;
  mqtt::BrokerLink& nodeLink() { return *links_.front()->link; }
  bool allIdle() const;
  void closeAll(bool will, std::chrono::milliseconds timeout);

  void resubscribe(Link& link);
  // Subscribes the fleet filters on the node link and sends the sync marker behind them.
  void resubscribeFleet();
  // <prefix>/gw/<node>/sync: the node's private marker topic (see onFleetSynced).
  std::string syncTopic() const { return topics_.prefix() + "/gw/" + options_.node + "/sync"; }
  mqtt::SubscribeFilter filterFor(std::string_view filter) const;
  // Publishes (QoS 1 unless told); reports the outcome under `token` (none when 0). A publish the
  // link cannot take fails at once (reported at the end of this pass, never from inside the call).
  void publish(mqtt::BrokerLink& link, std::string_view topic, std::span<const uint8_t> payload,
               bool retained, uint64_t token, std::string_view correlation = {}, uint8_t qos = 1);
  void publishText(mqtt::BrokerLink& link, std::string_view topic, std::string_view text,
                   bool retained) {
    publish(link, topic, std::span(reinterpret_cast<const uint8_t*>(text.data()), text.size()),
            retained, 0);
  }
  std::string nodeStateJson(bool online, std::size_t devices) const;

  net::EventLoop& loop_;
  MqttBridgeOptions options_;
  DeviceBusListener& listener_;
  TopicScheme topics_;
  std::unique_ptr<net::TlsContext> tls_;
  std::vector<std::unique_ptr<Link>> links_;
  std::size_t upLinks_ = 0;
  std::unordered_set<std::string> devices_;  // subscriptions to restore after a reconnect
  std::vector<std::string> fleetFilters_;    // fleet subscriptions, restored likewise
  uint64_t syncSent_ = 0;       // the marker awaited on the node link's current connection, 0: none
  uint64_t syncCount_ = 0;      // markers sent so far
  std::string topicScratch_;    // reused for every device message topic
  std::string receiptScratch_;  // reused for every receipt
  AgentMessage incoming_;       // reused for every agent message
  uint64_t startedMs_ = 0;
  std::size_t lastDeviceCount_ = 0;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace impgate::bus
