#include "tools/impbench/message_devices.h"

namespace impgate::bench {

namespace mqtt = bus::mqtt;

void MessageDevices::failed(bool wasReady, const std::string& reason) {
  if (leaving_) return;
  if (wasReady && ready_ > 0) --ready_;
  ++failures_;
  lastFailure_ = reason;
}

ImpDevices::ImpDevices(net::EventLoop& loop, const net::TlsContext& tls, const BenchFleet& fleet,
                       std::size_t count, const std::string& gateway)
    : MessageDevices(count), online_(count, 0) {
  clients_.reserve(count);
  for (std::size_t i = 0; i < count; ++i) {
    device::DeviceOptions options;
    options.gateway = gateway;
    options.codeId = "impbench";
    options.reconnect = false;  // a lost device is reported, not hidden by a reconnect
    options.connectTimeout = std::chrono::seconds(60);
    device::DeviceClient::Handlers handlers;
    handlers.onOnline = [this, i](const protocol::Welcome&) {
      if (online_[i]) return;
      online_[i] = 1;
      becameReady();
    };
    handlers.onOffline = [this, i](const std::string& reason) {
      bool was = online_[i] != 0;
      online_[i] = 0;
      failed(was, reason);
    };
    handlers.onMessage = [this, i](std::string_view, std::span<const uint8_t> payload) {
      if (onReceived) onReceived(i, payload);
    };
    handlers.onAck = [this, i](uint32_t, protocol::AckStatus status) {
      if (status == protocol::AckStatus::kOk) {
        if (onAcknowledged) onAcknowledged(i);
      } else if (onRefused) {
        onRefused(i);
      }
    };
    clients_.push_back(std::make_unique<device::DeviceClient>(
        loop, tls, fleet.credentials(i), std::move(options), std::move(handlers)));
  }
}

ImpDevices::~ImpDevices() {
  leaving_ = true;
  clients_.clear();
}

void ImpDevices::connectAll() {
  for (auto& client : clients_) client->connect();
}

void ImpDevices::disconnectAll() {
  leaving_ = true;
  for (auto& client : clients_) client->disconnect();
  std::fill(online_.begin(), online_.end(), 0);
  ready_ = 0;
  leaving_ = false;
}

bool ImpDevices::send(std::size_t index, std::span<const uint8_t> payload, bool acknowledged) {
  return clients_[index]->send(kBenchEvent, payload, acknowledged) == device::SendError::kNone;
}

MqttDevices::MqttDevices(net::EventLoop& loop, const net::TlsContext& tls, const BenchFleet& fleet,
                         std::size_t count, const net::Endpoint& broker, const std::string& prefix)
    : MessageDevices(count), packetIds_(count, 0), subscribed_(count, 0) {
  clients_.reserve(count);
  for (std::size_t i = 0; i < count; ++i) {
    outTopics_.push_back(prefix + "/dev/" + fleet.id(i) + "/out/" + std::string(kBenchEvent));
    inFilters_.push_back(prefix + "/dev/" + fleet.id(i) + "/in/+");
    MqttTlsClient::Events events;
    events.onConnected = [this, i] {
      // Ready once the broker confirmed the subscription to the device's inbound topic.
      scratch_.clear();
      mqtt::SubscribeFilter filter{inFilters_[i], 1};
      mqtt::encodeSubscribe(scratch_, mqtt::Version::k311, 1,
                            std::span<const mqtt::SubscribeFilter>(&filter, 1));
      clients_[i]->send(scratch_);
    };
    events.onFailed = [this, i](const std::string& reason) {
      bool was = subscribed_[i] != 0;
      subscribed_[i] = 0;
      failed(was, reason);
    };
    events.onPacket = [this, i](const mqtt::Packet& packet) { onPacket(i, packet); };
    clients_.push_back(std::make_unique<MqttTlsClient>(loop, tls, fleet.credentials(i), fleet.id(i),
                                                       broker, std::nullopt, std::move(events)));
  }
}

MqttDevices::~MqttDevices() {
  leaving_ = true;
  clients_.clear();
}

void MqttDevices::connectAll() {
  for (auto& client : clients_) client->connect();
}

void MqttDevices::disconnectAll() {
  leaving_ = true;
  for (auto& client : clients_) client->disconnect();
  std::fill(subscribed_.begin(), subscribed_.end(), 0);
  ready_ = 0;
  leaving_ = false;
}

void MqttDevices::onPacket(std::size_t index, const mqtt::Packet& packet) {
  switch (packet.type) {
    case mqtt::PacketType::kPublish: {
      mqtt::PublishIn publish;
      if (mqtt::decodePublish(packet, mqtt::Version::k311, publish).status !=
          mqtt::DecodeStatus::kOk) {
        return;
      }
      if (publish.qos == 1) {
        // Acknowledged at once with its own write, as DeviceClient answers a MSG.
        scratch_.clear();
        mqtt::encodePuback(scratch_, publish.packetId);
        clients_[index]->send(scratch_);
      }
      if (onReceived) onReceived(index, publish.payload);
      return;
    }
    case mqtt::PacketType::kPuback:
      if (onAcknowledged) onAcknowledged(index);
      return;
    case mqtt::PacketType::kSuback:
      if (!subscribed_[index]) {
        subscribed_[index] = 1;
        becameReady();
      }
      return;
    default:
      return;
  }
}

bool MqttDevices::send(std::size_t index, std::span<const uint8_t> payload, bool acknowledged) {
  if (!subscribed_[index]) return false;
  mqtt::PublishOptions publish;
  publish.topic = outTopics_[index];
  publish.payload = payload;
  publish.qos = acknowledged ? 1 : 0;
  if (acknowledged) {
    if (++packetIds_[index] == 0) packetIds_[index] = 1;
    publish.packetId = packetIds_[index];
  }
  scratch_.clear();
  mqtt::encodePublish(scratch_, mqtt::Version::k311, publish);
  return clients_[index]->send(scratch_);
}

}  // namespace impgate::bench
