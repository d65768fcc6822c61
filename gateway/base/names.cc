#include "gateway/base/names.h"

namespace impgate {

bool isValidDeviceId(std::string_view id) {
  if (id.empty() || id.size() > kMaxDeviceIdLength || id.front() == '.') return false;
  for (char c : id) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

bool isValidEventName(std::string_view event) {
  if (event.empty() || event.size() > kMaxEventNameLength) return false;
  for (char c : event) {
    auto u = static_cast<unsigned char>(c);
    if (u < 0x21 || u > 0x7e || c == '+' || c == '#' || c == '/') return false;
  }
  return true;
}

bool isValidGroupName(std::string_view group) {
  return isValidDeviceId(group);
}

bool isValidCodeId(std::string_view code) {
  if (code.size() != kCodeIdHexLength) return false;
  for (char c : code) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

}  // namespace impgate
