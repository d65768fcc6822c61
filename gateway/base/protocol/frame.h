// The frames of imp protocol v1 as plain values, shared by the codec and the session code.
//
// docs/protocol.md is the wire specification. A decoded frame's string and byte fields are
// views into the buffer it was decoded from, so a Frame is valid only while that buffer is;
// copy what must outlive the callback that received it.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <variant>

#include "gateway/base/protocol/bye_reason.h"

namespace impgate::protocol {

inline constexpr uint8_t kVersion = 1;

// length:u32 followed by type:u8.
inline constexpr size_t kHeaderSize = 5;

// The largest MSG payload a sender may use.
inline constexpr uint32_t kMaxPayload = 256 * 1024;

// The default receive limit on a header's length field: a full payload plus room for the
// other MSG fields.
inline constexpr uint32_t kDefaultMaxFrame = kMaxPayload + 1024;

// A str8 field holds at most this many bytes.
inline constexpr size_t kMaxStr8Length = 255;

// HELLO's code_id holds at most this many bytes.
inline constexpr size_t kMaxCodeIdLength = 64;

// The receive limit on a header's length field until the session is open (WELCOME sent): room
// for the largest HELLO (type, version, capabilities and a full str8) with space to spare for
// fields a later version may add. A peer that has not identified itself costs no more.
inline constexpr uint32_t kMaxHandshakeFrame = 512;
static_assert(kMaxHandshakeFrame >= 1 + 1 + 4 + 1 + kMaxStr8Length);

// MSG flags bit 0; every other bit must be zero.
inline constexpr uint8_t kMsgFlagAckWanted = 0x01;

// The frame types of version 1. Types 0x03, 0x04 and 0x40..0x43 are reserved for later
// versions and are unknown to this one.
enum class FrameType : uint8_t {
  kHello = 0x01,
  kWelcome = 0x02,
  kMsg = 0x10,
  kAck = 0x11,
  kPing = 0x20,
  kPong = 0x21,
  kLog = 0x30,
  kBye = 0x3F,
};

// The outcome an ACK reports for the MSG with the same id.
enum class AckStatus : uint8_t {
  kOk = 0,        // delivered or accepted
  kFailed = 1,    // could not be delivered (e.g. the bus is unavailable); a retry may work
  kRejected = 2,  // refused (e.g. invalid); a retry will not work
};

// The severity of a LOG line.
enum class LogLevel : uint8_t {
  kDebug = 0,
  kInfo = 1,
  kWarn = 2,
  kError = 3,
};

// Device -> gateway, the first frame on a connection.
struct Hello {
  uint8_t version = kVersion;
  uint32_t capabilities = 0;  // no bits are defined in version 1
  std::string_view codeId;    // the code the device runs; 0..kMaxCodeIdLength bytes

  friend bool operator==(const Hello&, const Hello&) = default;
};

// Gateway -> device, accepts a HELLO and opens the session.
struct Welcome {
  uint8_t version = kVersion;
  uint64_t sessionId = 0;
  uint16_t keepaliveSeconds = 0;
  uint64_t serverTimeMs = 0;  // Unix time in milliseconds
  std::string_view node;      // the gateway node's name, for diagnostics

  friend bool operator==(const Welcome&, const Welcome&) = default;
};

// An application message, either way.
struct Msg {
  uint32_t id = 0;  // chosen by the sender; an ACK echoes it
  bool ackWanted = false;
  std::string_view event;  // satisfies isValidEventName() once decoded
  std::span<const uint8_t> payload;

  friend bool operator==(const Msg& a, const Msg& b) {
    return a.id == b.id && a.ackWanted == b.ackWanted && a.event == b.event &&
           std::ranges::equal(a.payload, b.payload);
  }
};

// The outcome of a MSG that asked for one, either way.
struct Ack {
  uint32_t id = 0;
  AckStatus status = AckStatus::kOk;

  friend bool operator==(const Ack&, const Ack&) = default;
};

// A liveness probe, either way.
struct Ping {
  uint64_t nonce = 0;

  friend bool operator==(const Ping&, const Ping&) = default;
};

// The answer to a Ping; echoes its nonce.
struct Pong {
  uint64_t nonce = 0;

  friend bool operator==(const Pong&, const Pong&) = default;
};

// Device -> gateway, one diagnostic line for the gateway's log.
struct Log {
  LogLevel level = LogLevel::kInfo;
  std::string_view text;  // not validated: escape before printing

  friend bool operator==(const Log&, const Log&) = default;
};

// The last frame a side sends before closing, either way.
struct Bye {
  ByeReason reason = ByeReason::kNormal;
  std::string_view text;  // human-readable detail, may be empty

  friend bool operator==(const Bye&, const Bye&) = default;
};

using Frame = std::variant<Hello, Welcome, Msg, Ack, Ping, Pong, Log, Bye>;

// Lower-case names for logs and metric labels. frameTypeName() takes the raw byte so that it
// can name what arrived; bytes outside FrameType, and values outside the other enumerations,
// are "unknown".
std::string_view frameTypeName(uint8_t type);
std::string_view ackStatusName(AckStatus status);
std::string_view logLevelName(LogLevel level);

}  // namespace impgate::protocol
