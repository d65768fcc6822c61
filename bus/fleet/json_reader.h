// Typed, non-throwing reads of the fields of an untrusted JSON object, for the decoders of
// bus/fleet. Internal to the module.
//
// Each read returns false and records the first error (naming the document and the field);
// reads after a failure do nothing, so a decoder chains them with && and returns error().
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "bus/fleet/result.h"

namespace impgate::bus::fleet::detail {

// `text` as a JSON object, or kMalformed: too large, nested deeper than 16, not JSON, not an
// object. `what` names the document in the message ("deployment body").
Result<nlohmann::json> parseObject(std::string_view text, std::string_view what);

// Compact ASCII JSON; bytes that are not UTF-8 become U+FFFD instead of throwing.
std::string dumpAscii(const nlohmann::ordered_json& j);

class FieldReader {
 public:
  FieldReader(const nlohmann::json& object, std::string_view what) : object_(object), what_(what) {}

  bool text(std::string_view key, std::string& out);
  bool boolean(std::string_view key, bool& out);
  bool u32(std::string_view key, uint32_t& out);
  bool u64(std::string_view key, uint64_t& out);
  bool i64(std::string_view key, int64_t& out);
  bool number(std::string_view key, double& out);
  // The field itself, when present (any type); records "missing" otherwise.
  const nlohmann::json* field(std::string_view key);

  // Records an error about `key` (the message follows the field name).
  bool fail(std::string_view key, std::string_view message);
  Error error() const { return error_ ? *error_ : Error{ErrorCode::kMalformed, "no error"}; }

 private:
  const nlohmann::json& object_;
  std::string what_;
  std::optional<Error> error_;
};

// Integer reads of a JSON value (not a field): nullopt for any other type or range.
std::optional<uint64_t> asU64(const nlohmann::json& value);
std::optional<int64_t> asI64(const nlohmann::json& value);

// "the deployment body: \"size\" must be 1..4194304" style error.
Error fieldError(std::string_view what, std::string_view key, std::string_view message);

}  // namespace impgate::bus::fleet::detail
