// The little of HTTP/1.x the metrics endpoint needs: find the end of a request head and read its
// request line. Input is untrusted bytes from the network; nothing here allocates or throws.
#pragma once

#include <cstddef>
#include <optional>
#include <string_view>

namespace impgate::metrics {

struct RequestLine {
  std::string_view method;
  std::string_view path;     // the target without its query string
  std::string_view version;  // "HTTP/1.0" or "HTTP/1.1"
};

// Length of the head (through the blank line, CRLF or bare LF), or nullopt if not complete yet.
std::optional<std::size_t> requestHeadLength(std::string_view buffer);

// Parses "METHOD SP origin-form-target SP HTTP/1.x" from the first line of `head`; nullopt for
// anything else. The views point into `head`.
std::optional<RequestLine> parseRequestLine(std::string_view head);

}  // namespace impgate::metrics
