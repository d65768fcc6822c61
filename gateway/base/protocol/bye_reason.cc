#include "gateway/base/protocol/bye_reason.h"

namespace impgate::protocol {

std::string_view byeReasonName(ByeReason reason) {
  switch (reason) {
    case ByeReason::kNormal:
      return "normal";
    case ByeReason::kProtocolError:
      return "protocol_error";
    case ByeReason::kFrameTooLarge:
      return "frame_too_large";
    case ByeReason::kUnknownFrame:
      return "unknown_frame";
    case ByeReason::kMalformed:
      return "malformed";
    case ByeReason::kInvalidName:
      return "invalid_name";
    case ByeReason::kKeepaliveTimeout:
      return "keepalive_timeout";
    case ByeReason::kUnsupportedVersion:
      return "unsupported_version";
    case ByeReason::kReplaced:
      return "replaced";
    case ByeReason::kShuttingDown:
      return "shutting_down";
    case ByeReason::kOverloaded:
      return "overloaded";
    case ByeReason::kNotAuthorized:
      return "not_authorized";
    case ByeReason::kInternal:
      return "internal";
  }
  return "unknown";
}

}  // namespace impgate::protocol
