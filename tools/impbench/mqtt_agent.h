// The agent of `impbench messages`: one MQTT 3.1.1 client over plain TCP on impbench's
// EventLoop, subscribed to the devices' topics or publishing to them, in both paths of the
// benchmark (impgate, MQTT-direct), so that only the device side differs.
//
// It must never be the bottleneck: it parses everything one read returned, answers QoS 1
// publishes with PUBACKs appended to one output buffer, and writes that buffer once per loop
// pass (a posted flush), together with any publishes queued meanwhile. The wire format comes
// from bus/mqtt's codec. Owned by the benchmark run; all calls on the loop's thread; events
// must not destroy it.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "bus/mqtt/mqtt_codec.h"
#include "gateway/base/net/event_loop.h"
#include "gateway/base/net/socket.h"

namespace impgate::bench {

class MqttAgent final : public net::IoHandler {
 public:
  struct Events {
    std::function<void()> onConnected;   // CONNACK accepted
    std::function<void()> onSubscribed;  // SUBACK for the last subscribe()
    // A publish arrived (a PUBACK is queued for QoS 1); views valid only during the call.
    std::function<void(std::string_view topic, std::span<const uint8_t> payload, uint8_t qos)>
        onPublish;
    std::function<void()> onPuback;  // the broker took one of our QoS 1 publishes
    std::function<void(const std::string& reason)> onFailed;  // the connection ended
  };

  MqttAgent(net::EventLoop& loop, net::Endpoint broker, std::string clientId, Events events);
  ~MqttAgent() override;
  MqttAgent(const MqttAgent&) = delete;
  MqttAgent& operator=(const MqttAgent&) = delete;

  void connect();
  void subscribe(std::span<const bus::mqtt::SubscribeFilter> filters);
  // Queues a publish; it goes out with the next flush (this loop pass).
  void publish(std::string_view topic, std::span<const uint8_t> payload, uint8_t qos);
  void disconnect();

  bool connected() const { return state_ == State::kConnected; }
  // QoS 1 publishes sent and not yet acknowledged by the broker.
  std::size_t unacknowledged() const { return unacknowledged_; }

  void onIoEvents(uint32_t events) override;

 private:
  enum class State { kIdle, kConnecting, kAwaitConnack, kConnected };

  void scheduleFlush();
  void flush();
  void readAvailable();
  void handle(const bus::mqtt::Packet& packet);
  void watchFor(uint32_t events);
  void fail(const std::string& reason);
  void closeSocket();
  uint16_t nextPacketId();

  net::EventLoop& loop_;
  net::Endpoint broker_;
  std::string clientId_;
  Events events_;
  int fd_ = -1;
  uint32_t interest_ = 0;
  State state_ = State::kIdle;
  bus::mqtt::Bytes output_;
  std::size_t written_ = 0;
  bool flushScheduled_ = false;
  std::vector<uint8_t> input_;
  uint16_t packetId_ = 0;
  std::size_t unacknowledged_ = 0;
  // Guards the posted flush against a destroyed agent.
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace impgate::bench
