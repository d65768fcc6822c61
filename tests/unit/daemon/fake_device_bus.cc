#include "tests/unit/daemon/fake_device_bus.h"

namespace impgate::testing {

void FakeDeviceBus::publishDeviceMessage(std::string_view device, std::string_view event,
                                         std::span<const uint8_t> payload, bool acknowledged,
                                         uint64_t token) {
  publishes.push_back(Publish{std::string(device), std::string(event),
                              std::string(payload.begin(), payload.end()), token, acknowledged});
  calls.push_back("publish " + std::string(device) + " " + std::string(event));
}

void FakeDeviceBus::publishPresence(std::string_view device, const bus::Presence& p) {
  presence.push_back(PresenceRecord{std::string(device), p.online, std::string(p.node),
                                    std::string(p.codeId), p.sinceMs, p.epochMs,
                                    std::string(p.reason)});
  calls.push_back("presence " + std::string(device) + (p.online ? " online" : " offline"));
}

void FakeDeviceBus::publishLog(std::string_view device, std::string_view level,
                               std::string_view text, uint64_t token) {
  logs.push_back(LogRecord{std::string(device), std::string(level), std::string(text), token});
  calls.push_back("log " + std::string(device));
}

void FakeDeviceBus::publishReceipt(std::string_view device, const bus::Receipt& r) {
  receipts.push_back(ReceiptRecord{std::string(device), std::string(r.event), r.seq,
                                   std::string(r.status), std::string(r.correlation),
                                   std::string(r.node), std::string(r.topic)});
  calls.push_back("receipt " + std::string(device) + " " + std::string(r.status));
}

void FakeDeviceBus::publishNodeState(std::size_t devices) {
  nodeStates.push_back(devices);
  calls.push_back("node " + std::to_string(devices));
}

void FakeDeviceBus::subscribeDevice(std::string_view device) {
  subscribed.emplace_back(device);
  calls.push_back("subscribe " + std::string(device));
}

void FakeDeviceBus::unsubscribeDevice(std::string_view device) {
  unsubscribed.emplace_back(device);
  calls.push_back("unsubscribe " + std::string(device));
}

void FakeDeviceBus::subscribeFleet(std::string_view filter) {
  fleetFilters.emplace_back(filter);
}

void FakeDeviceBus::unsubscribeFleet(std::string_view filter) {
  std::erase(fleetFilters, std::string(filter));
}

void FakeDeviceBus::publishFleet(std::string_view topic, std::span<const uint8_t> payload,
                                 bool retained) {
  fleetPublishes.push_back(
      {std::string(topic), std::string(payload.begin(), payload.end()), retained});
}

std::vector<std::string> FakeDeviceBus::callsFor(std::string_view device) const {
  std::vector<std::string> out;
  for (const auto& c : calls) {
    auto space = c.find(' ');
    if (space == std::string::npos) continue;
    auto rest = std::string_view(c).substr(space + 1);
    if (rest.substr(0, rest.find(' ')) == device) out.push_back(c);
  }
  return out;
}

}  // namespace impgate::testing
