#include "gateway/base/code/hex.h"

namespace impgate::code {
namespace {

constexpr char kDigits[] = "0123456789abcdef";

int digitValue(char c, bool lowerOnly) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (!lowerOnly && c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Decodes `hex` into `out` (hex.size() / 2 bytes); false on a character that is not a digit.
bool decodeInto(std::string_view hex, uint8_t* out, bool lowerOnly) {
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    int hi = digitValue(hex[i], lowerOnly);
    int lo = digitValue(hex[i + 1], lowerOnly);
    if (hi < 0 || lo < 0) return false;
    out[i / 2] = static_cast<uint8_t>(hi << 4 | lo);
  }
  return true;
}

}  // namespace

std::string toHex(std::span<const uint8_t> bytes) {
  std::string out;
  out.reserve(2 * bytes.size());
  for (uint8_t b : bytes) {
    out.push_back(kDigits[b >> 4]);
    out.push_back(kDigits[b & 0xf]);
  }
  return out;
}

std::optional<std::vector<uint8_t>> fromHex(std::string_view hex) {
  if (hex.size() % 2 != 0) return std::nullopt;
  std::vector<uint8_t> out(hex.size() / 2);
  if (!decodeInto(hex, out.data(), false)) return std::nullopt;
  return out;
}

std::optional<Sha256> sha256FromHex(std::string_view hex) {
  Sha256 out{};
  if (hex.size() != 2 * out.size() || !decodeInto(hex, out.data(), true)) return std::nullopt;
  return out;
}

bool isSha256Hex(std::string_view hex) {
  return sha256FromHex(hex).has_value();
}

}  // namespace impgate::code
