// Base64 (RFC 4648, standard alphabet, with '=' padding), as the code-push JSON carries
// signatures. Pure functions; any thread.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace impgate::bus::fleet {

std::string base64Encode(std::span<const uint8_t> bytes);

// The bytes, or nullopt unless `text` is canonical base64: a multiple of 4 characters of the
// standard alphabet, '=' only as the last one or two, and zero bits in what padding leaves
// unused. One value has one spelling, so a signature cannot be re-encoded into another string
// that still decodes to it. No whitespace is accepted.
std::optional<std::vector<uint8_t>> base64Decode(std::string_view text);

}  // namespace impgate::bus::fleet
