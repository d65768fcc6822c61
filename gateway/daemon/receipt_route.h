// The one rule for receipts: whether an agent message gets a receipt, and on which topic.
//
// Decided once, when the message reaches the gateway (Gateway::onAgentMessage), from the node's
// `receipts` setting and the message's MQTT 5 Response Topic; every receipt the node publishes
// for that message (delivered, rejected or failed, from the gateway or its session) follows
// the decision. See docs/topics.md, "Receipts". Pure functions, no state.
#pragma once

#include <cstddef>
#include <string_view>

#include "bus/device_bus/device_bus.h"
#include "gateway/daemon/gateway_config.h"

namespace impgate::gateway {

// Longest response topic accepted, in bytes (receipts for the device's own ack topic are always
// accepted, whatever the prefix's length).
constexpr std::size_t kMaxResponseTopic = 256;

struct ReceiptRoute {
  bool wanted = false;  // the message gets exactly one receipt
  // Where: empty = the device's ack topic, otherwise the message's response topic (a view into
  // the message).
  std::string_view topic;
  // Non-empty: the response topic was refused, and why. The message must not be delivered; its
  // receipt ("rejected", seq 0) goes to the device's ack topic (`wanted` is true, `topic` empty).
  std::string_view refused;
};

// Why a response topic may not carry receipts for `device`'s messages under topic prefix
// `prefix`; empty when it may. Refused: empty topics, topics over kMaxResponseTopic bytes, not
// UTF-8 or with control characters (U+0000..U+001F, U+007F), wildcards ('+', '#'), topics
// starting with '$' (broker topics such as $SYS and mosquitto's $CONTROL), and every topic under
// "<prefix>/" except the device's own ack topic "<prefix>/dev/<device>/ack".
std::string_view refuseResponseTopic(std::string_view topic, std::string_view prefix,
                                     std::string_view device);

// The rule. A message with a response topic gets a receipt there (in either mode, at either
// QoS) unless the topic is refused; one without gets a receipt on the ack topic only under
// ReceiptMode::kAll and at QoS 1; otherwise none.
ReceiptRoute routeReceipt(const bus::AgentMessage& message, ReceiptMode mode,
                          std::string_view prefix);

}  // namespace impgate::gateway
