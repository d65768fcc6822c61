// Byte helpers shared by the MQTT codec tests: packets written out as the specifications'
// tables show them, and the decoding steps every decoder test starts with.
#pragma once

#include <catch2/catch.hpp>

#include <cstdio>
#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

#include "bus/mqtt/mqtt_codec.h"

namespace impgate::bus::mqtt::spec {

// A byte list written as the specification's tables show it.
inline Bytes b(std::initializer_list<int> values) {
  Bytes out;
  for (int v : values) out.push_back(static_cast<uint8_t>(v));
  return out;
}

// The characters of a string field's text (the length bytes are written out by the caller).
inline Bytes s(std::string_view text) {
  return Bytes(text.begin(), text.end());
}

inline Bytes operator+(Bytes a, const Bytes& rest) {
  a.insert(a.end(), rest.begin(), rest.end());
  return a;
}

// Hex text, so that a mismatch shows where the bytes differ.
inline std::string hex(std::span<const uint8_t> bytes) {
  std::string out;
  char byte[4];
  for (uint8_t v : bytes) {
    std::snprintf(byte, sizeof byte, "%02X ", v);
    out += byte;
  }
  return out;
}

inline std::span<const uint8_t> bytesOf(std::string_view text) {
  return {reinterpret_cast<const uint8_t*>(text.data()), text.size()};
}

inline std::string_view textOf(std::span<const uint8_t> bytes) {
  return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}

// The one packet `bytes` must hold, exactly.
inline mqtt::Packet onePacket(const Bytes& bytes) {
  mqtt::Packet packet;
  mqtt::Decoded d = mqtt::nextPacket(bytes, 0, packet);
  REQUIRE(d.status == DecodeStatus::kOk);
  REQUIRE(packet.size == bytes.size());
  return packet;
}

inline mqtt::Connack connackOf(const Bytes& bytes, DecodeStatus expected = DecodeStatus::kOk) {
  mqtt::Connack c;
  mqtt::Decoded d = mqtt::decodeConnack(onePacket(bytes), c);
  CHECK(d.status == expected);
  if (expected == DecodeStatus::kMalformed) CHECK(d.error != nullptr);
  return c;
}

}  // namespace impgate::bus::mqtt::spec
