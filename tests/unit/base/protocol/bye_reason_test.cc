#include <catch2/catch.hpp>
#include <set>
#include <string>

#include "gateway/base/protocol/bye_reason.h"
#include "gateway/base/protocol/decode_error.h"
#include "tests/unit/base/protocol/frame_bytes.h"

using namespace impgate::protocol;

TEST_CASE("every BYE reason has its own snake_case name") {
  std::set<std::string> seen;
  for (int r = 0; r <= static_cast<int>(kLastByeReason); ++r) {
    std::string name(byeReasonName(static_cast<ByeReason>(r)));
    INFO("reason " << r << " = " << name);
    CHECK(name != "unknown");
    CHECK(name.find_first_not_of("abcdefghijklmnopqrstuvwxyz_") == std::string::npos);
    CHECK(seen.insert(name).second);
  }
  CHECK(byeReasonName(ByeReason::kKeepaliveTimeout) == "keepalive_timeout");
  CHECK(byeReasonName(ByeReason::kFrameTooLarge) == "frame_too_large");
  CHECK(byeReasonName(ByeReason::kNotAuthorized) == "not_authorized");
  CHECK(byeReasonName(static_cast<ByeReason>(13)) == "unknown");
}

TEST_CASE("BYE reason codes are the wire values") {
  CHECK(static_cast<int>(ByeReason::kNormal) == 0);
  CHECK(static_cast<int>(ByeReason::kKeepaliveTimeout) == 6);
  CHECK(static_cast<int>(ByeReason::kReplaced) == 8);
  CHECK(static_cast<int>(kLastByeReason) == 12);
}

TEST_CASE("each decode error maps to the BYE reason a receiver sends") {
  CHECK(byeReasonFor(DecodeError::kTooLarge) == ByeReason::kFrameTooLarge);
  CHECK(byeReasonFor(DecodeError::kUnknownType) == ByeReason::kUnknownFrame);
  CHECK(byeReasonFor(DecodeError::kMalformed) == ByeReason::kMalformed);
  CHECK(byeReasonFor(DecodeError::kInvalidName) == ByeReason::kInvalidName);
  CHECK(byeReasonFor(DecodeError::kNone) == ByeReason::kNormal);
}

TEST_CASE("decode errors have names for logs") {
  CHECK(decodeErrorName(DecodeError::kNone) == "none");
  CHECK(decodeErrorName(DecodeError::kTooLarge) == "too_large");
  CHECK(decodeErrorName(DecodeError::kUnknownType) == "unknown_type");
  CHECK(decodeErrorName(DecodeError::kMalformed) == "malformed");
  CHECK(decodeErrorName(DecodeError::kInvalidName) == "invalid_name");
}
