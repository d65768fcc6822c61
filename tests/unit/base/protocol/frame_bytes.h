// Raw frame building blocks for the protocol tests: lets a test write exactly the bytes a
// broken or hostile peer would send, which the encoders deliberately cannot produce.
#pragma once

#include <catch2/catch.hpp>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "gateway/base/protocol/codec.h"

namespace impgate::protocol::test {

using Bytes = std::vector<uint8_t>;

inline Bytes bytesOf(std::string_view text) {
  return Bytes(text.begin(), text.end());
}

inline Bytes concat(std::initializer_list<Bytes> parts) {
  Bytes out;
  for (const Bytes& p : parts) {
    out.insert(out.end(), p.begin(), p.end());
  }
  return out;
}

inline Bytes str8(std::string_view text) {
  Bytes out{static_cast<uint8_t>(text.size())};
  out.insert(out.end(), text.begin(), text.end());
  return out;
}

// A whole frame: header announcing 1 + body.size(), then the type and the body.
inline Bytes rawFrame(uint8_t type, const Bytes& body) {
  auto length = static_cast<uint32_t>(body.size() + 1);
  Bytes out{static_cast<uint8_t>(length >> 24), static_cast<uint8_t>(length >> 16),
            static_cast<uint8_t>(length >> 8), static_cast<uint8_t>(length), type};
  out.insert(out.end(), body.begin(), body.end());
  return out;
}

inline Bytes encoded(const Frame& frame) {
  Bytes out;
  encode(frame, out);
  return out;
}

// Decodes one whole frame as produced by encode() or rawFrame().
inline DecodeError decodeWhole(std::span<const uint8_t> frame, Frame& out) {
  REQUIRE(frame.size() >= kHeaderSize);
  uint32_t length = (uint32_t{frame[0]} << 24) | (uint32_t{frame[1]} << 16) |
                    (uint32_t{frame[2]} << 8) | frame[3];
  REQUIRE(length == frame.size() - 4);
  return decode(frame[4], frame.subspan(kHeaderSize), out);
}

}  // namespace impgate::protocol::test

namespace Catch {
template <>
struct StringMaker<impgate::protocol::DecodeError> {
  static std::string convert(impgate::protocol::DecodeError e) {
    return std::string(impgate::protocol::decodeErrorName(e));
  }
};
}  // namespace Catch
