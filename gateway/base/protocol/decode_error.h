// What was wrong with bytes received from a peer, as found by FrameReader or decode().
//
// Received bytes are untrusted input, so these are ordinary return values, never asserts.
// Each error closes only the connection it happened on: the session sends BYE with
// byeReasonFor(error) and closes.
#pragma once

#include <cstdint>
#include <string_view>

#include "gateway/base/protocol/bye_reason.h"

namespace impgate::protocol {

enum class DecodeError : uint8_t {
  kNone,         // no error
  kTooLarge,     // a header announced a frame longer than the receiver's limit
  kUnknownType,  // a type byte this version does not define (reserved types included)
  kMalformed,    // a body too short, too long, or holding a value outside its range
  kInvalidName,  // a MSG event name that fails isValidEventName()
};

// The BYE reason a receiver sends for `error`: kTooLarge -> kFrameTooLarge,
// kUnknownType -> kUnknownFrame, kMalformed -> kMalformed, kInvalidName -> kInvalidName.
// kNone has no reason to close and maps to kNormal.
ByeReason byeReasonFor(DecodeError error);

// The snake_case name of `error` ("too_large"), for logs and metric labels.
std::string_view decodeErrorName(DecodeError error);

}  // namespace impgate::protocol
