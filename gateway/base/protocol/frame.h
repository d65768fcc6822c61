// The frames of imp protocol v1 as plain values, shared by the codec and the session code.
//
// docs/protocol.md is the wire specification. A decoded frame's string and byte fields are
// views into the buffer it was decoded from, so a Frame is valid only while that buffer is;
// copy what must outlive the callback that received it.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <span>
#include <string_view>
#include <variant>
#include <vector>

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

// HELLO capability bit 0: the device takes code push (CODE_OFFER .. CODE_RESULT). The gateway
// offers code only to devices that set it; every other bit is reserved (sent as 0, ignored).
inline constexpr uint32_t kCapCodePush = 0x00000001;

// Code push limits (docs/protocol.md, "Code push").
// A code version is 1 byte .. kMaxCodeSize bytes.
inline constexpr uint32_t kMaxCodeSize = 4 * 1024 * 1024;
// A CODE_OFFER lists 1 .. kMaxCodeChunks chunks.
inline constexpr uint16_t kMaxCodeChunks = 4096;
// A CODE_GET asks for, and a CODE_DATA carries, at most this many bytes.
inline constexpr uint32_t kMaxCodeData = 16384;
// A device may have at most this many CODE_GETs unanswered.
inline constexpr int kMaxCodeGetsInFlight = 4;
// CODE_OFFER flags bit 0; every other bit must be zero.
inline constexpr uint8_t kCodeOfferFlagMandatory = 0x01;
// One chunk list entry on the wire: sha256 (32 bytes), then length (u32).
inline constexpr size_t kCodeChunkEntrySize = 32 + 4;

// A code version's SHA-256 (and a chunk's), as raw bytes.
using CodeHash = std::array<uint8_t, 32>;
// An Ed25519 signature over a code version (docs/protocol.md, "Code push").
using CodeSignature = std::array<uint8_t, 64>;

// The frame types of version 1. Types 0x03 and 0x04 are reserved for later versions and are
// unknown to this one.
enum class FrameType : uint8_t {
  kHello = 0x01,
  kWelcome = 0x02,
  kMsg = 0x10,
  kAck = 0x11,
  kPing = 0x20,
  kPong = 0x21,
  kLog = 0x30,
  kBye = 0x3F,
  kCodeOffer = 0x40,
  kCodeGet = 0x41,
  kCodeData = 0x42,
  kCodeResult = 0x43,
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
  uint32_t capabilities = 0;  // kCapCodePush; other bits reserved
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

// What a device did with offered code, as CODE_RESULT reports it.
enum class CodeResultStatus : uint8_t {
  kInstalled = 0,  // verified and installed; the device runs it from now on
  kDeferred = 1,   // not installed now (allowed only when the offer was not mandatory)
  kFailed = 2,     // not installed: bad signature, corrupt chunk, no space, ...
};

// One entry of a CODE_OFFER's chunk list.
struct CodeChunkRef {
  CodeHash sha{};
  uint32_t length = 0;

  friend bool operator==(const CodeChunkRef&, const CodeChunkRef&) = default;
};

// A CODE_OFFER's chunk list: a view over its raw wire bytes (kCodeChunkEntrySize per entry),
// read entry by entry on access, so decoding allocates nothing. Like every view in a decoded
// Frame it is valid only while the bytes it points into are. To encode an offer, build the raw
// bytes with appendCodeChunk() and view them with CodeChunkList(bytes).
class CodeChunkList {
 public:
  class Iterator {
   public:
    using iterator_category = std::input_iterator_tag;
    using value_type = CodeChunkRef;
    using difference_type = std::ptrdiff_t;
    using pointer = void;
    using reference = CodeChunkRef;

    Iterator() = default;
    Iterator(const CodeChunkList* list, size_t index) : list_(list), index_(index) {}
    CodeChunkRef operator*() const { return list_->chunk(index_); }
    Iterator& operator++() {
      ++index_;
      return *this;
    }
    Iterator operator++(int) {
      Iterator old = *this;
      ++index_;
      return old;
    }
    friend bool operator==(const Iterator& a, const Iterator& b) { return a.index_ == b.index_; }

   private:
    const CodeChunkList* list_ = nullptr;
    size_t index_ = 0;
  };

  CodeChunkList() = default;
  // `raw` must hold whole entries (its size a multiple of kCodeChunkEntrySize; asserted).
  explicit CodeChunkList(std::span<const uint8_t> raw);

  size_t size() const { return raw_.size() / kCodeChunkEntrySize; }
  bool empty() const { return raw_.empty(); }
  // Entry `i` < size() (asserted).
  CodeChunkRef chunk(size_t i) const;
  Iterator begin() const { return {this, 0}; }
  Iterator end() const { return {this, size()}; }
  // The wire bytes, e.g. to copy the list out of a frame.
  std::span<const uint8_t> raw() const { return raw_; }

  friend bool operator==(const CodeChunkList& a, const CodeChunkList& b) {
    return std::ranges::equal(a.raw_, b.raw_);
  }

 private:
  std::span<const uint8_t> raw_;
};

// Appends one chunk list entry in wire form to `out`.
void appendCodeChunk(const CodeChunkRef& chunk, std::vector<uint8_t>& out);

// Gateway -> device (only to a device whose HELLO set kCapCodePush): run this code.
// Decoding checks: 1..kMaxCodeChunks chunks, each of length >= 1, lengths summing to `size`,
// `size` in 1..kMaxCodeSize, flags other than mandatory zero.
struct CodeOffer {
  uint32_t deployment = 0;    // the group's deployment number, for logs
  bool mandatory = false;     // the device runs code below min_supported and may not defer
  CodeHash code{};            // SHA-256 of the whole code
  uint32_t size = 0;          // bytes
  CodeSignature signature{};  // Ed25519 over "impgate-code-v1:" || code || size (u32 BE)
  CodeChunkList chunks;       // the manifest, in order; concatenated they are the code

  friend bool operator==(const CodeOffer&, const CodeOffer&) = default;
};

// Device -> gateway: send `length` bytes of `code` from byte `offset` of the whole code.
// Decoding checks length in 1..kMaxCodeData; the gateway clamps to what is left.
struct CodeGet {
  CodeHash code{};
  uint32_t offset = 0;
  uint32_t length = 0;

  friend bool operator==(const CodeGet&, const CodeGet&) = default;
};

// Gateway -> device: the bytes of `code` from `offset`, 0..kMaxCodeData of them. Empty data
// means the gateway no longer offers that code (superseded): wait for the next offer.
struct CodeData {
  CodeHash code{};
  uint32_t offset = 0;
  std::span<const uint8_t> data;

  friend bool operator==(const CodeData& a, const CodeData& b) {
    return a.code == b.code && a.offset == b.offset && std::ranges::equal(a.data, b.data);
  }
};

// Device -> gateway: what became of an offered code.
struct CodeResult {
  CodeHash code{};
  CodeResultStatus status = CodeResultStatus::kInstalled;
  std::string_view reason;  // free text ("bad signature", "new code"); escape before printing

  friend bool operator==(const CodeResult&, const CodeResult&) = default;
};

using Frame = std::variant<Hello, Welcome, Msg, Ack, Ping, Pong, Log, Bye, CodeOffer, CodeGet,
                           CodeData, CodeResult>;

// Lower-case names for logs and metric labels. frameTypeName() takes the raw byte so that it
// can name what arrived; bytes outside FrameType, and values outside the other enumerations,
// are "unknown".
std::string_view frameTypeName(uint8_t type);
std::string_view ackStatusName(AckStatus status);
std::string_view logLevelName(LogLevel level);
// "installed", "deferred", "failed".
std::string_view codeResultStatusName(CodeResultStatus status);

}  // namespace impgate::protocol
