// The bus contract: how device ids, event names and node names map onto MQTT topics.
//
// Every topic impgate publishes or subscribes to is built here, and every topic that arrives
// from the broker is parsed here, so the scheme lives in one place. Builders append to a
// caller-owned string so the hot path can reuse one buffer instead of allocating per message.
//
//   <prefix>/dev/<id>/out/<event>   device -> agent message          (gateway publishes)
//   <prefix>/dev/<id>/in/<event>    agent -> device message          (agents publish)
//   <prefix>/dev/<id>/ack           receipt for a delivered agent message
//   <prefix>/dev/<id>/state         retained presence
//   <prefix>/dev/<id>/log           device log lines
//   <prefix>/gw/<node>/state        retained node status, last will marks it offline
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace impgate::bus {

class TopicScheme {
 public:
  // `prefix` must satisfy isValidPrefix(); the constructor asserts it (checked at start-up).
  explicit TopicScheme(std::string prefix = "imp");

  // One or more topic levels of [A-Za-z0-9._-], separated by single '/', no wildcards.
  static bool isValidPrefix(std::string_view prefix);

  const std::string& prefix() const { return prefix_; }

  void deviceOut(std::string& out, std::string_view id, std::string_view event) const;
  void deviceIn(std::string& out, std::string_view id, std::string_view event) const;
  void deviceAck(std::string& out, std::string_view id) const;
  void deviceState(std::string& out, std::string_view id) const;
  void deviceLog(std::string& out, std::string_view id) const;
  void nodeState(std::string& out, std::string_view node) const;

  std::string deviceOut(std::string_view id, std::string_view event) const;
  std::string deviceIn(std::string_view id, std::string_view event) const;
  std::string deviceAck(std::string_view id) const;
  std::string deviceState(std::string_view id) const;
  std::string deviceLog(std::string_view id) const;
  std::string nodeState(std::string_view node) const;

  // Subscription filters.
  std::string deviceInFilter(std::string_view id) const;  // <prefix>/dev/<id>/in/+
  std::string allDeviceOut() const;                       // <prefix>/dev/+/out/+
  std::string allDeviceState() const;                     // <prefix>/dev/+/state
  std::string allDeviceAck() const;                       // <prefix>/dev/+/ack
  std::string allDeviceLog() const;                       // <prefix>/dev/+/log

  enum class Kind { kDeviceOut, kDeviceIn, kDeviceAck, kDeviceState, kDeviceLog, kNodeState };
  struct Parsed {
    Kind kind;
    std::string_view name;   // device id, or node name for kNodeState
    std::string_view event;  // only for kDeviceOut / kDeviceIn
  };
  // Parses a topic of this scheme; nullopt for anything else, including a topic whose device
  // id or event name is not valid. The views point into `topic`.
  std::optional<Parsed> parse(std::string_view topic) const;

 private:
  void devicePrefix(std::string& out, std::string_view id) const;

  std::string prefix_;
};

}  // namespace impgate::bus
