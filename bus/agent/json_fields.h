// Typed, non-throwing reads of fields from untrusted JSON objects (presence states, receipts).
// Internal to the agent SDK.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace impgate::bus::json_fields {

// The parsed object, or nullopt when `text` is not valid JSON or not an object.
std::optional<nlohmann::json> parseObject(std::string_view text);

std::optional<std::string> string(const nlohmann::json& obj, std::string_view key);
std::optional<int64_t> integer(const nlohmann::json& obj, std::string_view key);

}  // namespace impgate::bus::json_fields
