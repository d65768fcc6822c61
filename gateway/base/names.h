// Validation of the names that end up inside MQTT topics: device ids, event names, group names
// and code ids.
//
// Both are checked wherever they enter the system (certificates at enrolment, frames from
// devices, topics from the bus) so that no name can add a topic level or a wildcard.
#pragma once

#include <cstddef>
#include <string_view>

namespace impgate {

inline constexpr std::size_t kMaxDeviceIdLength = 64;
inline constexpr std::size_t kMaxEventNameLength = 64;
// A code id in text: the SHA-256 of the code's bytes as lower-case hex.
inline constexpr std::size_t kCodeIdHexLength = 64;

// Device ids: 1..64 characters from [A-Za-z0-9._-], not starting with '.'.
bool isValidDeviceId(std::string_view id);

// Event names: 1..64 printable ASCII characters (0x21..0x7e) other than '+', '#' and '/'.
bool isValidEventName(std::string_view event);

// Group names follow the device-id rules (they are a topic level too).
bool isValidGroupName(std::string_view group);

// Code ids in text (topics, JSON): exactly 64 lower-case hex digits. Upper case is refused so
// that one version has one spelling, and so one topic.
bool isValidCodeId(std::string_view code);

}  // namespace impgate
