#include "gateway/daemon/receipt_route.h"

namespace impgate::gateway {
namespace {

// Well-formed UTF-8 (no overlong forms, no surrogates, at most U+10FFFF) without C0 controls,
// NUL or DEL: what MQTT allows in a topic name, minus what no one means to route on.
bool isCleanUtf8(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      if (c < 0x20 || c == 0x7f) return false;
      ++i;
      continue;
    }
    std::size_t len = 0;
    uint32_t cp = 0;
    if ((c & 0xe0) == 0xc0) {
      len = 2;
      cp = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
      len = 3;
      cp = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
      len = 4;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + len > s.size()) return false;
    for (std::size_t k = 1; k < len; ++k) {
      auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3f);
    }
    static constexpr uint32_t kMinimum[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kMinimum[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
    i += len;
  }
  return true;
}

// `topic` is "<prefix>/dev/<device>/ack".
bool isOwnAckTopic(std::string_view topic, std::string_view prefix, std::string_view device) {
  constexpr std::string_view kDev = "/dev/";
  constexpr std::string_view kAck = "/ack";
  if (topic.size() != prefix.size() + kDev.size() + device.size() + kAck.size()) return false;
  return topic.starts_with(prefix) && topic.substr(prefix.size()).starts_with(kDev) &&
         topic.substr(prefix.size() + kDev.size(), device.size()) == device &&
         topic.ends_with(kAck);
}

}  // namespace

std::string_view refuseResponseTopic(std::string_view topic, std::string_view prefix,
                                     std::string_view device) {
  if (topic.empty()) return "empty response topic";
  if (isOwnAckTopic(topic, prefix, device)) return {};
  if (topic.size() > kMaxResponseTopic) return "response topic longer than 256 bytes";
  if (topic.find_first_of("+#") != std::string_view::npos) return "wildcard in response topic";
  if (!isCleanUtf8(topic)) return "response topic not UTF-8 or with control characters";
  if (topic.front() == '$') return "response topic is a broker topic ($...)";
  if (topic.size() > prefix.size() && topic.starts_with(prefix) && topic[prefix.size()] == '/') {
    return "response topic inside the gateway's topics";
  }
  return {};
}

ReceiptRoute routeReceipt(const bus::AgentMessage& message, ReceiptMode mode,
                          std::string_view prefix) {
  if (message.responseTopic) {
    std::string_view topic = *message.responseTopic;
    std::string_view refused = refuseResponseTopic(topic, prefix, message.device);
    if (!refused.empty()) return ReceiptRoute{true, {}, refused};
    // The device's own ack topic: where the receipt would go anyway.
    if (isOwnAckTopic(topic, prefix, message.device)) return ReceiptRoute{true, {}, {}};
    return ReceiptRoute{true, topic, {}};
  }
  if (mode == ReceiptMode::kAll && message.qos > 0) return ReceiptRoute{true, {}, {}};
  return ReceiptRoute{};
}

}  // namespace impgate::gateway
