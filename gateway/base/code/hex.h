// Hex text for hashes and other bytes: code versions are named in text (JSON, topics, HELLO's
// code_id) by 64 lower-case hex characters. Pure functions; any thread.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "gateway/base/code/sha256.h"

namespace impgate::code {

// Lower-case, two characters a byte.
std::string toHex(std::span<const uint8_t> bytes);

// The bytes of an even-length string of hex digits (either case); nullopt for anything else.
std::optional<std::vector<uint8_t>> fromHex(std::string_view hex);

// A code or chunk id as text: exactly 64 lower-case hex digits, else nullopt (upper case is
// refused so that one hash has one spelling, e.g. in topic names).
std::optional<Sha256> sha256FromHex(std::string_view hex);

// True for what sha256FromHex() accepts.
bool isSha256Hex(std::string_view hex);

}  // namespace impgate::code
