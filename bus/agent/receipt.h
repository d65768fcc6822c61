// A delivery receipt: the gateway's word that a device acknowledged (or refused) an agent
// message that asked for one (Agent::send asks for every QoS 1 send). Published on the message's
// Response Topic, which the SDK sets to <prefix>/dev/<id>/ack, as JSON:
//   {"event":"led","seq":17,"status":"delivered","node":"gw1","ts":1764115200000,"corr":"..."}
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace impgate::bus {

struct Receipt {
  std::string device;  // from the topic
  std::string event;
  uint64_t seq = 0;    // the gateway's per-device sequence number for the message
  std::string status;  // "delivered", "rejected" or "failed"; text, so new statuses pass through
  std::string node;    // the gateway node that held the device's connection
  int64_t ts = 0;      // ms since the Unix epoch, gateway clock
  std::string corr;    // the sender's correlation id; empty when the message carried none

  bool delivered() const { return status == "delivered"; }
};

// Parses a receipt payload. `correlationData` is the MQTT 5 property of the receipt message, used
// when the JSON has no "corr". Returns nullopt for anything that is not a well-formed receipt.
std::optional<Receipt> parseReceipt(std::string_view device, std::string_view json,
                                    std::string_view correlationData = {});

}  // namespace impgate::bus
