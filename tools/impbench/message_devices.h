// The device side of `impbench messages`, one class per path behind one interface, so that the
// benchmark drives both paths with the same code:
//  - ImpDevices: DeviceClients (the device SDK) speaking the imp protocol to impgate;
//  - MqttDevices: MqttTlsClients speaking MQTT 3.1.1 over mutual TLS straight to mosquitto,
//    publishing on the topics impgate would use (imp/dev/<id>/out/<event>) and subscribed to
//    their own inbound topic (imp/dev/<id>/in/+), which they PUBACK at QoS 1.
// Both send every message with its own write as soon as it is asked for (DeviceClient::send
// does, so MqttDevices does too) and acknowledge what they receive at once.
//
// Owned by the benchmark run for one device count; all calls on the loop's thread. The event
// callbacks are set by the owner and must not destroy the devices.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "gateway/base/net/event_loop.h"
#include "gateway/base/net/socket.h"
#include "gateway/base/net/tls_context.h"
#include "gateway/device/device_client.h"
#include "tools/impbench/bench_fleet.h"
#include "tools/impbench/mqtt_tls_client.h"

namespace impgate::bench {

// The event name every benchmark message carries (the last topic level).
inline constexpr std::string_view kBenchEvent = "m";

class MessageDevices {
 public:
  virtual ~MessageDevices() = default;

  std::size_t size() const { return count_; }
  // Devices connected and ready to send and receive (WELCOME, or CONNACK + SUBACK).
  std::size_t ready() const { return ready_; }
  std::size_t failures() const { return failures_; }
  const std::string& lastFailure() const { return lastFailure_; }

  virtual void connectAll() = 0;
  virtual void disconnectAll() = 0;
  // Sends one device→agent message from device `index`: acknowledged (imp ACK wanted / QoS 1)
  // or not. False when the device is not connected.
  virtual bool send(std::size_t index, std::span<const uint8_t> payload, bool acknowledged) = 0;

  // Device `index` got the acknowledgement of one of its messages (ACK ok / PUBACK).
  std::function<void(std::size_t index)> onAcknowledged;
  // Device `index` got an ACK other than ok.
  std::function<void(std::size_t index)> onRefused;
  // An agent message reached device `index`.
  std::function<void(std::size_t index, std::span<const uint8_t> payload)> onReceived;

 protected:
  explicit MessageDevices(std::size_t count) : count_(count) {}
  void becameReady() { ++ready_; }
  void failed(bool wasReady, const std::string& reason);

  std::size_t count_;
  std::size_t ready_ = 0;
  std::size_t failures_ = 0;
  std::string lastFailure_;
  bool leaving_ = false;
};

// The first `count` fleet devices as imp-protocol devices of impgate at `gateway` (HOST:PORT).
class ImpDevices final : public MessageDevices {
 public:
  ImpDevices(net::EventLoop& loop, const net::TlsContext& tls, const BenchFleet& fleet,
             std::size_t count, const std::string& gateway);
  ~ImpDevices() override;
  void connectAll() override;
  void disconnectAll() override;
  bool send(std::size_t index, std::span<const uint8_t> payload, bool acknowledged) override;

 private:
  std::vector<std::unique_ptr<device::DeviceClient>> clients_;
  std::vector<uint8_t> online_;
};

// The first `count` fleet devices as MQTT clients of mosquitto's mutual-TLS listener.
class MqttDevices final : public MessageDevices {
 public:
  MqttDevices(net::EventLoop& loop, const net::TlsContext& tls, const BenchFleet& fleet,
              std::size_t count, const net::Endpoint& broker, const std::string& prefix);
  ~MqttDevices() override;
  void connectAll() override;
  void disconnectAll() override;
  bool send(std::size_t index, std::span<const uint8_t> payload, bool acknowledged) override;

 private:
  void onPacket(std::size_t index, const bus::mqtt::Packet& packet);

  std::vector<std::unique_ptr<MqttTlsClient>> clients_;
  std::vector<std::string> outTopics_;
  std::vector<std::string> inFilters_;
  std::vector<uint16_t> packetIds_;
  std::vector<uint8_t> subscribed_;
  bus::mqtt::Bytes scratch_;
};

}  // namespace impgate::bench
