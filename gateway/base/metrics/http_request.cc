#include "gateway/base/metrics/http_request.h"

namespace impgate::metrics {
namespace {

// RFC 9110 token characters, enough to reject binary garbage as a method.
bool isTokenChar(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  switch (c) {
    case '!':
    case '#':
    case '$':
    case '%':
    case '&':
    case '\'':
    case '*':
    case '+':
    case '-':
    case '.':
    case '^':
    case '_':
    case '`':
    case '|':
    case '~':
      return true;
    default:
      return false;
  }
}

bool isTargetChar(char c) {
  auto u = static_cast<unsigned char>(c);
  return u > 0x20 && u < 0x7f;
}

}  // namespace

std::optional<std::size_t> requestHeadLength(std::string_view buffer) {
  for (std::size_t i = 0; i < buffer.size(); ++i) {
    if (buffer[i] != '\n') continue;
    if (i + 1 < buffer.size() && buffer[i + 1] == '\n') return i + 2;
    if (i + 2 < buffer.size() && buffer[i + 1] == '\r' && buffer[i + 2] == '\n') return i + 3;
  }
  return std::nullopt;
}

std::optional<RequestLine> parseRequestLine(std::string_view head) {
  auto eol = head.find('\n');
  if (eol == std::string_view::npos) return std::nullopt;
  std::string_view line = head.substr(0, eol);
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);

  auto sp1 = line.find(' ');
  if (sp1 == std::string_view::npos || sp1 == 0) return std::nullopt;
  auto sp2 = line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || sp2 == sp1 + 1) return std::nullopt;

  RequestLine r;
  r.method = line.substr(0, sp1);
  std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  r.version = line.substr(sp2 + 1);
  for (char c : r.method) {
    if (!isTokenChar(c)) return std::nullopt;
  }
  if (target.front() != '/') return std::nullopt;
  for (char c : target) {
    if (!isTargetChar(c)) return std::nullopt;
  }
  if (r.version != "HTTP/1.1" && r.version != "HTTP/1.0") return std::nullopt;
  r.path = target.substr(0, target.find('?'));
  return r;
}

}  // namespace impgate::metrics
