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
void TopicScheme::codeChunk(std::string& out, std::string_view sha) const {
  out.clear();
  out.append(prefix_).append("/code/chunk/").append(sha);
}
void TopicScheme::codeVersion(std::string& out, std::string_view sha) const {
  out.clear();
  out.append(prefix_).append("/code/ver/").append(sha);
}
void TopicScheme::groupDeploy(std::string& out, std::string_view group) const {
  out.clear();
  out.append(prefix_).append("/grp/").append(group).append("/deploy");
}
void TopicScheme::groupRollout(std::string& out, std::string_view group,
                               std::string_view node) const {
  out.clear();
  out.append(prefix_).append("/grp/").append(group).append("/rollout/").append(node);
}
void TopicScheme::deviceGroup(std::string& out, std::string_view id) const {
  devicePrefix(out, id);
  out.append("/group");
}
void TopicScheme::deviceCode(std::string& out, std::string_view id) const {
  devicePrefix(out, id);
  out.append("/code");
}

std::string TopicScheme::codeChunk(std::string_view sha) const {
  return build([&](std::string& o) { codeChunk(o, sha); });
}
std::string TopicScheme::codeVersion(std::string_view sha) const {
  return build([&](std::string& o) { codeVersion(o, sha); });
}
std::string TopicScheme::groupDeploy(std::string_view group) const {
  return build([&](std::string& o) { groupDeploy(o, group); });
}
std::string TopicScheme::groupRollout(std::string_view group, std::string_view node) const {
  return build([&](std::string& o) { groupRollout(o, group, node); });
}
std::string TopicScheme::deviceGroup(std::string_view id) const {
  return build([&](std::string& o) { deviceGroup(o, id); });
}
std::string TopicScheme::deviceCode(std::string_view id) const {
  return build([&](std::string& o) { deviceCode(o, id); });
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
std::string TopicScheme::allCodeChunks() const {
  return codeChunk("+");
}
std::string TopicScheme::allCodeVersions() const {
  return codeVersion("+");
}
std::string TopicScheme::allDeployments() const {
  return groupDeploy("+");
}
std::string TopicScheme::allRollouts() const {
  return groupRollout("+", "+");
}
std::string TopicScheme::groupRollouts(std::string_view group) const {
  return groupRollout(group, "+");
}
std::string TopicScheme::allDeviceGroups() const {
  return deviceGroup("+");
}
std::string TopicScheme::allDeviceCodeStates() const {
  return deviceCode("+");
}

std::optional<TopicScheme::Parsed> TopicScheme::parse(std::string_view topic) const {
  if (topic.size() <= prefix_.size() || topic.substr(0, prefix_.size()) != prefix_ ||
      topic[prefix_.size()] != '/') {
    return std::nullopt;
  }
  // A trailing '/' leaves an empty last level, which nextLevel() does not report.
  if (topic.back() == '/') return std::nullopt;
  std::string_view rest = topic.substr(prefix_.size() + 1);
  std::string_view area, name, leaf, extra;
  if (!nextLevel(rest, area) || !nextLevel(rest, name) || !nextLevel(rest, leaf)) {
    return std::nullopt;
  }
  if (area == "dev") {
    if (!isValidDeviceId(name)) return std::nullopt;
    if (leaf == "out" || leaf == "in") {
      if (!nextLevel(rest, extra) || !rest.empty() || !isValidEventName(extra)) {
        return std::nullopt;
      }
      return Parsed{leaf == "out" ? Kind::kDeviceOut : Kind::kDeviceIn, name, extra, {}};
    }
    if (!rest.empty()) return std::nullopt;
    if (leaf == "ack") return Parsed{Kind::kDeviceAck, name, {}, {}};
    if (leaf == "state") return Parsed{Kind::kDeviceState, name, {}, {}};
    if (leaf == "log") return Parsed{Kind::kDeviceLog, name, {}, {}};
    if (leaf == "group") return Parsed{Kind::kDeviceGroup, name, {}, {}};
    if (leaf == "code") return Parsed{Kind::kDeviceCode, name, {}, {}};
    return std::nullopt;
  }
  if (area == "gw") {
    if (!isValidDeviceId(name) || leaf != "state" || !rest.empty()) return std::nullopt;
    return Parsed{Kind::kNodeState, name, {}, {}};
  }
  if (area == "code") {
    // <prefix>/code/chunk/<sha>, <prefix>/code/ver/<sha>: the sha is the last level.
    if (!rest.empty() || !isValidCodeId(leaf)) return std::nullopt;
    if (name == "chunk") return Parsed{Kind::kCodeChunk, leaf, {}, {}};
    if (name == "ver") return Parsed{Kind::kCodeVersion, leaf, {}, {}};
    return std::nullopt;
  }
  if (area == "grp") {
    if (!isValidGroupName(name)) return std::nullopt;
    if (leaf == "deploy" && rest.empty()) return Parsed{Kind::kGroupDeploy, name, {}, {}};
    if (leaf == "rollout" && nextLevel(rest, extra) && rest.empty() && isValidDeviceId(extra)) {
      return Parsed{Kind::kGroupRollout, name, {}, extra};
    }
    return std::nullopt;
  }
  return std::nullopt;
}

}  // namespace impgate::bus
