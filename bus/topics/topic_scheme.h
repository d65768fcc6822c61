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
//
// Code push (docs/topics.md, "Code push"; every one retained):
//   <prefix>/code/chunk/<sha>       a chunk's raw bytes                 (impctl, nodes restore)
//   <prefix>/code/ver/<sha>         version descriptor                  (impctl)
//   <prefix>/grp/<g>/deploy         signed deployment envelope          (impctl)
//   <prefix>/grp/<g>/rollout/<node> one node's view of g's rollout      (each node)
//   <prefix>/dev/<id>/group         signed group assignment envelope    (impctl)
//   <prefix>/dev/<id>/code          the device's code state             (the device's node)
// <sha> is a code id (64 lower-case hex, isValidCodeId), <g> a group name (device-id rules).
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

  // Code push. The caller passes valid names (parse() refuses topics with invalid ones).
  void codeChunk(std::string& out, std::string_view sha) const;
  void codeVersion(std::string& out, std::string_view sha) const;
  void groupDeploy(std::string& out, std::string_view group) const;
  void groupRollout(std::string& out, std::string_view group, std::string_view node) const;
  void deviceGroup(std::string& out, std::string_view id) const;
  void deviceCode(std::string& out, std::string_view id) const;

  std::string codeChunk(std::string_view sha) const;
  std::string codeVersion(std::string_view sha) const;
  std::string groupDeploy(std::string_view group) const;
  std::string groupRollout(std::string_view group, std::string_view node) const;
  std::string deviceGroup(std::string_view id) const;
  std::string deviceCode(std::string_view id) const;

  // Subscription filters.
  std::string deviceInFilter(std::string_view id) const;    // <prefix>/dev/<id>/in/+
  std::string allDeviceOut() const;                         // <prefix>/dev/+/out/+
  std::string allDeviceState() const;                       // <prefix>/dev/+/state
  std::string allDeviceAck() const;                         // <prefix>/dev/+/ack
  std::string allDeviceLog() const;                         // <prefix>/dev/+/log
  std::string allCodeChunks() const;                        // <prefix>/code/chunk/+
  std::string allCodeVersions() const;                      // <prefix>/code/ver/+
  std::string allDeployments() const;                       // <prefix>/grp/+/deploy
  std::string allRollouts() const;                          // <prefix>/grp/+/rollout/+
  std::string groupRollouts(std::string_view group) const;  // <prefix>/grp/<g>/rollout/+
  std::string allDeviceGroups() const;                      // <prefix>/dev/+/group
  std::string allDeviceCodeStates() const;                  // <prefix>/dev/+/code

  enum class Kind {
    kDeviceOut,
    kDeviceIn,
    kDeviceAck,
    kDeviceState,
    kDeviceLog,
    kNodeState,
    kCodeChunk,     // name: the chunk's sha
    kCodeVersion,   // name: the version's sha
    kGroupDeploy,   // name: the group
    kGroupRollout,  // name: the group, node: the node
    kDeviceGroup,   // name: the device id
    kDeviceCode,    // name: the device id
  };
  struct Parsed {
    Kind kind;
    std::string_view name;   // device id; node name for kNodeState; sha or group (see Kind)
    std::string_view event;  // only for kDeviceOut / kDeviceIn
    std::string_view node;   // only for kGroupRollout
  };
  // Parses a topic of this scheme; nullopt for anything else, including a topic whose device
  // id, event name, node, group name or sha is not valid. The views point into `topic`.
  std::optional<Parsed> parse(std::string_view topic) const;

 private:
  void devicePrefix(std::string& out, std::string_view id) const;

  std::string prefix_;
};

}  // namespace impgate::bus
