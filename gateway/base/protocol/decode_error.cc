#include "gateway/base/protocol/decode_error.h"

namespace impgate::protocol {

ByeReason byeReasonFor(DecodeError error) {
  switch (error) {
    case DecodeError::kNone:
      return ByeReason::kNormal;
    case DecodeError::kTooLarge:
      return ByeReason::kFrameTooLarge;
    case DecodeError::kUnknownType:
      return ByeReason::kUnknownFrame;
    case DecodeError::kMalformed:
      return ByeReason::kMalformed;
    case DecodeError::kInvalidName:
      return ByeReason::kInvalidName;
  }
  return ByeReason::kMalformed;
}

std::string_view decodeErrorName(DecodeError error) {
  switch (error) {
    case DecodeError::kNone:
      return "none";
    case DecodeError::kTooLarge:
      return "too_large";
    case DecodeError::kUnknownType:
      return "unknown_type";
    case DecodeError::kMalformed:
      return "malformed";
    case DecodeError::kInvalidName:
      return "invalid_name";
  }
  return "unknown";
}

}  // namespace impgate::protocol
