// FakeDeviceBus: a bus::DeviceBus that records what the gateway publishes and subscribes, for
// unit tests of Gateway and DeviceSession without a broker. Broker answers (onPublished, agent
// messages, connection changes) are the test's to give, by calling the Gateway's
// DeviceBusListener methods directly.
//
// Like the real bridge, it is used on the gateway's reactor thread only.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "bus/device_bus/device_bus.h"

namespace impgate::testing {

class FakeDeviceBus final : public bus::DeviceBus {
 public:
  struct Publish {
    std::string device;
    std::string event;
    std::string payload;
    uint64_t token = 0;
    bool acknowledged = true;  // QoS 1 (the device wants an ACK) or fire-and-forget
  };
  struct PresenceRecord {
    std::string device;
    bool online = false;
    std::string node;
    std::string codeId;
    uint64_t sinceMs = 0;
    uint64_t epochMs = 0;
    std::string reason;
  };
  struct ReceiptRecord {
    std::string device;
    std::string event;
    uint64_t seq = 0;
    std::string status;
    std::string correlation;
    std::string node;
    std::string topic;  // empty: the device's ack topic
  };
  struct LogRecord {
    std::string device;
    std::string level;
    std::string text;
    uint64_t token = 0;
  };

  std::vector<Publish> publishes;
  std::vector<PresenceRecord> presence;
  std::vector<ReceiptRecord> receipts;
  std::vector<LogRecord> logs;
  std::vector<std::size_t> nodeStates;
  std::vector<std::string> subscribed;
  std::vector<std::string> unsubscribed;
  struct FleetPublish {
    std::string topic;
    std::string payload;
    bool retained = false;
  };
  std::vector<std::string> fleetFilters;  // current fleet subscriptions
  std::vector<FleetPublish> fleetPublishes;
  // Every call in order, e.g. "subscribe dev-1", "presence dev-1 online", "receipt dev-1 failed",
  // "unsubscribe dev-1", "presence dev-1 offline": for checks on ordering.
  std::vector<std::string> calls;
  bool isConnected = true;

  void publishDeviceMessage(std::string_view device, std::string_view event,
                            std::span<const uint8_t> payload, bool acknowledged,
                            uint64_t token) override;
  void publishPresence(std::string_view device, const bus::Presence& presence) override;
  void publishLog(std::string_view device, std::string_view level, std::string_view text,
                  uint64_t token) override;
  void publishReceipt(std::string_view device, const bus::Receipt& receipt) override;
  void publishNodeState(std::size_t devices) override;
  void subscribeDevice(std::string_view device) override;
  void unsubscribeDevice(std::string_view device) override;
  void subscribeFleet(std::string_view filter) override;
  void unsubscribeFleet(std::string_view filter) override;
  void publishFleet(std::string_view topic, std::span<const uint8_t> payload,
                    bool retained) override;
  bool connected() const override { return isConnected; }

  // The calls about `device`, in order.
  std::vector<std::string> callsFor(std::string_view device) const;
};

}  // namespace impgate::testing
