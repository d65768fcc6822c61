#include "bus/topics/topic_scheme.h"

#include <cassert>

#include "gateway/base/names.h"

namespace impgate::bus {
namespace {

// Splits off the next level of `rest`; returns false when there is none.
bool nextLevel(std::string_view& rest, std::string_view& level) {
  if (rest.empty()) return false;
  auto slash = rest.find('/');
  level = rest.substr(0, slash);
  rest = slash == std::string_view::npos ? std::string_view{} : rest.substr(slash + 1);
  return true;
}

template <typename Builder>
std::string build(Builder&& b) {
  std::string out;
  b(out);
  return out;
}

}  // namespace

TopicScheme::TopicScheme(std::string prefix) : prefix_(std::move(prefix)) {
  assert(isValidPrefix(prefix_));
}

bool TopicScheme::isValidPrefix(std::string_view prefix) {
  if (prefix.empty() || prefix.front() == '/' || prefix.back() == '/') return false;
  char prev = '/';
  for (char c : prefix) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-' || c == '/';
    if (!ok || (c == '/' && prev == '/')) return false;
    prev = c;
  }
  return true;
}

void TopicScheme::devicePrefix(std::string& out, std::string_view id) const {
  out.clear();
  out.append(prefix_).append("/dev/").append(id);
}

void TopicScheme::deviceOut(std::string& out, std::string_view id, std::string_view event) const {
  devicePrefix(out, id);
  out.append("/out/").append(event);
}
void TopicScheme::deviceIn(std::string& out, std::string_view id, std::string_view event) const {
  devicePrefix(out, id);
  out.append("/in/").append(event);
}
void TopicScheme::deviceAck(std::string& out, std::string_view id) const {
  devicePrefix(out, id);
  out.append("/ack");
}
void TopicScheme::deviceState(std::string& out, std::string_view id) const {
  devicePrefix(out, id);
  out.append("/state");
}
void TopicScheme::deviceLog(std::string& out, std::string_view id) const {
  devicePrefix(out, id);
  out.append("/log");
}
void TopicScheme::nodeState(std::string& out, std::string_view node) const {
  out.clear();
  out.append(prefix_).append("/gw/").append(node).append("/state");
}

std::string TopicScheme::deviceOut(std::string_view id, std::string_view event) const {
  return build([&](std::string& o) { deviceOut(o, id, event); });
}
std::string TopicScheme::deviceIn(std::string_view id, std::string_view event) const {
  return build([&](std::string& o) { deviceIn(o, id, event); });
}
std::string TopicScheme::deviceAck(std::string_view id) const {
  return build([&](std::string& o) { deviceAck(o, id); });
}
std::string TopicScheme::deviceState(std::string_view id) const {
  return build([&](std::string& o) { deviceState(o, id); });
}
std::string TopicScheme::deviceLog(std::string_view id) const {
  return build([&](std::string& o) { deviceLog(o, id); });
}
std::string TopicScheme::nodeState(std::string_view node) const {
  return build([&](std::string& o) { nodeState(o, node); });
}
std::string TopicScheme::deviceInFilter(std::string_view id) const {
  return deviceIn(id, "+");
}
std::string TopicScheme::allDeviceOut() const {
  return deviceOut("+", "+");
}
std::string TopicScheme::allDeviceState() const {
  return deviceState("+");
}
std::string TopicScheme::allDeviceAck() const {
  return deviceAck("+");
}
std::string TopicScheme::allDeviceLog() const {
  return deviceLog("+");
}

std::optional<TopicScheme::Parsed> TopicScheme::parse(std::string_view topic) const {
  if (topic.size() <= prefix_.size() || topic.substr(0, prefix_.size()) != prefix_ ||
      topic[prefix_.size()] != '/') {
    return std::nullopt;
  }
  std::string_view rest = topic.substr(prefix_.size() + 1);
  std::string_view area, name, leaf, event;
  if (!nextLevel(rest, area) || !nextLevel(rest, name) || !nextLevel(rest, leaf)) {
    return std::nullopt;
  }
  if (!isValidDeviceId(name)) return std::nullopt;
  if (area == "gw") {
    if (leaf == "state" && rest.empty()) return Parsed{Kind::kNodeState, name, {}};
    return std::nullopt;
  }
  if (area != "dev") return std::nullopt;
  if (leaf == "out" || leaf == "in") {
    if (!nextLevel(rest, event) || !rest.empty() || !isValidEventName(event)) return std::nullopt;
    // A trailing '/' leaves an empty last level, which nextLevel() does not report.
    if (topic.back() == '/') return std::nullopt;
    return Parsed{leaf == "out" ? Kind::kDeviceOut : Kind::kDeviceIn, name, event};
  }
  if (!rest.empty() || topic.back() == '/') return std::nullopt;
  if (leaf == "ack") return Parsed{Kind::kDeviceAck, name, {}};
  if (leaf == "state") return Parsed{Kind::kDeviceState, name, {}};
  if (leaf == "log") return Parsed{Kind::kDeviceLog, name, {}};
  return std::nullopt;
}

}  // namespace impgate::bus
