// Why a connection is being closed: the reason byte carried by a BYE frame.
//
// Both sides send these; the gateway also uses byeReasonName() as the label of its
// disconnect metrics and in log lines, so the names are part of the operator interface.
#pragma once

#include <cstdint>
#include <string_view>

namespace impgate::protocol {

enum class ByeReason : uint8_t {
  kNormal = 0,              // orderly close, nothing went wrong
  kProtocolError = 1,       // a well-formed frame that is not allowed here (state, direction)
  kFrameTooLarge = 2,       // a header announced more than the receiver's frame limit
  kUnknownFrame = 3,        // a frame type this protocol version does not define
  kMalformed = 4,           // a frame whose body does not match its layout
  kInvalidName = 5,         // an event name that could not be used in an MQTT topic
  kKeepaliveTimeout = 6,    // the peer was silent for 1.5 keepalive periods
  kUnsupportedVersion = 7,  // HELLO asked for a protocol version the gateway does not speak
  kReplaced = 8,            // the same device connected again, elsewhere or here
  kShuttingDown = 9,        // the gateway is stopping
  kOverloaded = 10,         // the gateway refuses more work for now
  kNotAuthorized = 11,      // the device may not connect (revoked, unknown, disabled)
  kInternal = 12,           // the sender hit a bug or an environment failure
};

// The highest reason byte version 1 defines; larger values are malformed.
inline constexpr ByeReason kLastByeReason = ByeReason::kInternal;

// The snake_case name of a reason ("keepalive_timeout"), or "unknown" for a value outside
// the enumeration.
std::string_view byeReasonName(ByeReason reason);

}  // namespace impgate::protocol
