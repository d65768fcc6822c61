#include "bus/agent/presence_tracker.h"

#include "bus/agent/json_fields.h"

namespace impgate::bus {
namespace {

// Within one session "offline" is final, so it ranks after "online" of the same epoch.
bool olderThan(const DeviceState& a, const DeviceState& b) {
  if (a.epoch != b.epoch) return a.epoch < b.epoch;
  return a.online && !b.online;
}

}  // namespace

std::optional<DeviceState> parseDeviceState(std::string_view json) {
  auto obj = json_fields::parseObject(json);
  if (!obj) return std::nullopt;
  auto status = json_fields::string(*obj, "status");
  auto epoch = json_fields::integer(*obj, "epoch");
  if (!status || !epoch || (*status != "online" && *status != "offline")) return std::nullopt;

  DeviceState s;
  s.online = *status == "online";
  s.epoch = *epoch;
  s.since = json_fields::integer(*obj, "since").value_or(0);
  s.node = json_fields::string(*obj, "node").value_or("");
  s.code = json_fields::string(*obj, "code").value_or("");
  s.reason = json_fields::string(*obj, "reason").value_or("");
  return s;
}

PresenceTracker::Change PresenceTracker::apply(const std::string& device,
                                               const DeviceState& state) {
  auto it = devices_.find(device);
  if (it == devices_.end()) {
    devices_.emplace(device, state);
    return state.online ? Change::kConnected : Change::kNone;
  }
  DeviceState& known = it->second;
  if (olderThan(state, known)) return Change::kStale;
  bool wasOnline = known.online;
  bool newSession = state.epoch != known.epoch;
  known = state;
  if (wasOnline && !state.online) return Change::kDisconnected;
  if (!wasOnline && state.online) return Change::kConnected;
  if (wasOnline && state.online && newSession) return Change::kReplaced;
  return Change::kNone;
}

PresenceTracker::Change PresenceTracker::clear(const std::string& device) {
  auto it = devices_.find(device);
  if (it == devices_.end() || !it->second.online) return Change::kNone;
  it->second.online = false;
  it->second.reason = "state_cleared";
  return Change::kDisconnected;
}

bool PresenceTracker::isOnline(std::string_view device) const {
  auto it = devices_.find(device);
  return it != devices_.end() && it->second.online;
}

const DeviceState* PresenceTracker::find(std::string_view device) const {
  auto it = devices_.find(device);
  return it == devices_.end() ? nullptr : &it->second;
}

}  // namespace impgate::bus
