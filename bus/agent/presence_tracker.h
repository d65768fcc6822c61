// Device presence as agents see it, built from the retained <prefix>/dev/<id>/state messages.
//
// States can arrive late, twice or out of order (a node that lost a device publishes its
// "offline" after the device already came back through another node). Each state carries the
// epoch of the device session it describes, so states are ordered by (epoch, online < offline):
// anything older than what is already known is stale and ignored, and callers see transitions
// only. Not thread-safe: its owner (Agent) serialises access.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

namespace impgate::bus {

struct DeviceState {
  bool online = false;
  int64_t epoch = 0;  // ms timestamp of the session's start; orders sessions of one device
  int64_t since = 0;  // ms timestamp of this state
  std::string node;
  std::string code;    // running code id (online only)
  std::string reason;  // why the session ended (offline only)
};

// Parses a state payload; nullopt when it is not a well-formed state (including a missing epoch).
std::optional<DeviceState> parseDeviceState(std::string_view json);

class PresenceTracker {
 public:
  enum class Change {
    kNone,          // nothing an agent needs to hear about (a repeat, or offline first seen)
    kStale,         // older than what is known: ignored
    kConnected,     // the device came online
    kDisconnected,  // the device went offline
    kReplaced,      // a newer session started while the older one still looked online: the old
                    // one ended (its offline was missed or is still on its way), the new began
  };

  Change apply(const std::string& device, const DeviceState& state);
  // The retained state was cleared (the device was removed): kDisconnected if it was online.
  // The epoch is kept so late states of old sessions stay stale.
  Change clear(const std::string& device);

  bool isOnline(std::string_view device) const;
  const DeviceState* find(std::string_view device) const;
  std::size_t size() const { return devices_.size(); }

 private:
  struct Hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  std::unordered_map<std::string, DeviceState, Hash, std::equal_to<>> devices_;
};

}  // namespace impgate::bus
