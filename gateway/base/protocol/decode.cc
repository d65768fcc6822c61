#include "gateway/base/names.h"
#include "gateway/base/protocol/codec.h"
#include "gateway/base/protocol/wire.h"

namespace impgate::protocol {
namespace {

using wire::BodyReader;

DecodeError decodeHello(BodyReader& r, Frame& out) {
  Hello f;
  r.u8(f.version);
  r.u32(f.capabilities);
  r.str8(f.codeId);
  if (!r.finished() || f.codeId.size() > kMaxCodeIdLength) {
    return DecodeError::kMalformed;
  }
  out = f;
  return DecodeError::kNone;
}

DecodeError decodeWelcome(BodyReader& r, Frame& out) {
  Welcome f;
  r.u8(f.version);
  r.u64(f.sessionId);
  r.u16(f.keepaliveSeconds);
  r.u64(f.serverTimeMs);
  r.str8(f.node);
  if (!r.finished()) {
    return DecodeError::kMalformed;
  }
  out = f;
  return DecodeError::kNone;
}

DecodeError decodeMsg(BodyReader& r, Frame& out) {
  Msg f;
  uint8_t flags = 0;
  r.u32(f.id);
  r.u8(flags);
  r.str8(f.event);
  f.payload = r.rest();
  if (!r.ok() || (flags & ~kMsgFlagAckWanted) != 0) {
    return DecodeError::kMalformed;
  }
  if (!isValidEventName(f.event)) {
    return DecodeError::kInvalidName;
  }
  f.ackWanted = (flags & kMsgFlagAckWanted) != 0;
  out = f;
  return DecodeError::kNone;
}

DecodeError decodeAck(BodyReader& r, Frame& out) {
  uint32_t id = 0;
  uint8_t status = 0;
  r.u32(id);
  r.u8(status);
  if (!r.finished() || status > static_cast<uint8_t>(AckStatus::kRejected)) {
    return DecodeError::kMalformed;
  }
  out = Ack{.id = id, .status = static_cast<AckStatus>(status)};
  return DecodeError::kNone;
}

template <typename PingOrPong>
DecodeError decodeNonce(BodyReader& r, Frame& out) {
  PingOrPong f;
  r.u64(f.nonce);
  if (!r.finished()) {
    return DecodeError::kMalformed;
  }
  out = f;
  return DecodeError::kNone;
}

DecodeError decodeLog(BodyReader& r, Frame& out) {
  uint8_t level = 0;
  r.u8(level);
  std::span<const uint8_t> text = r.rest();
  if (!r.ok() || level > static_cast<uint8_t>(LogLevel::kError)) {
    return DecodeError::kMalformed;
  }
  out = Log{.level = static_cast<LogLevel>(level),
            .text = {reinterpret_cast<const char*>(text.data()), text.size()}};
  return DecodeError::kNone;
}

DecodeError decodeBye(BodyReader& r, Frame& out) {
  uint8_t reason = 0;
  std::string_view text;
  r.u8(reason);
  r.str8(text);
  if (!r.finished() || reason > static_cast<uint8_t>(kLastByeReason)) {
    return DecodeError::kMalformed;
  }
  out = Bye{.reason = static_cast<ByeReason>(reason), .text = text};
  return DecodeError::kNone;
}

DecodeError decodeCodeOffer(BodyReader& r, Frame& out) {
  CodeOffer f;
  uint8_t flags = 0;
  uint16_t count = 0;
  r.u32(f.deployment);
  r.u8(flags);
  r.fixed(f.code);
  r.u32(f.size);
  r.fixed(f.signature);
  r.u16(count);
  std::span<const uint8_t> list = r.view(size_t{count} * kCodeChunkEntrySize);
  if (!r.finished() || (flags & ~kCodeOfferFlagMandatory) != 0 || count == 0 ||
      count > kMaxCodeChunks || f.size == 0 || f.size > kMaxCodeSize) {
    return DecodeError::kMalformed;
  }
  f.mandatory = (flags & kCodeOfferFlagMandatory) != 0;
  f.chunks = CodeChunkList(list);
  // At most 4096 lengths of at most 2^32 - 1: the sum fits 64 bits.
  uint64_t total = 0;
  for (CodeChunkRef chunk : f.chunks) {
    if (chunk.length == 0) {
      return DecodeError::kMalformed;
    }
    total += chunk.length;
  }
  if (total != f.size) {
    return DecodeError::kMalformed;
  }
  out = f;
  return DecodeError::kNone;
}

DecodeError decodeCodeGet(BodyReader& r, Frame& out) {
  CodeGet f;
  r.fixed(f.code);
  r.u32(f.offset);
  r.u32(f.length);
  if (!r.finished() || f.length == 0 || f.length > kMaxCodeData) {
    return DecodeError::kMalformed;
  }
  out = f;
  return DecodeError::kNone;
}

DecodeError decodeCodeData(BodyReader& r, Frame& out) {
  CodeData f;
  r.fixed(f.code);
  r.u32(f.offset);
  f.data = r.rest();
  if (!r.ok() || f.data.size() > kMaxCodeData) {
    return DecodeError::kMalformed;
  }
  out = f;
  return DecodeError::kNone;
}

DecodeError decodeCodeResult(BodyReader& r, Frame& out) {
  CodeResult f;
  uint8_t status = 0;
  r.fixed(f.code);
  r.u8(status);
  r.str8(f.reason);
  if (!r.finished() || status > static_cast<uint8_t>(CodeResultStatus::kFailed)) {
    return DecodeError::kMalformed;
  }
  f.status = static_cast<CodeResultStatus>(status);
  out = f;
  return DecodeError::kNone;
}

}  // namespace

DecodeError decode(uint8_t type, std::span<const uint8_t> body, Frame& out) {
  BodyReader r(body);
  switch (static_cast<FrameType>(type)) {
    case FrameType::kHello:
      return decodeHello(r, out);
    case FrameType::kWelcome:
      return decodeWelcome(r, out);
    case FrameType::kMsg:
      return decodeMsg(r, out);
    case FrameType::kAck:
      return decodeAck(r, out);
    case FrameType::kPing:
      return decodeNonce<Ping>(r, out);
    case FrameType::kPong:
      return decodeNonce<Pong>(r, out);
    case FrameType::kLog:
      return decodeLog(r, out);
    case FrameType::kBye:
      return decodeBye(r, out);
    case FrameType::kCodeOffer:
      return decodeCodeOffer(r, out);
    case FrameType::kCodeGet:
      return decodeCodeGet(r, out);
    case FrameType::kCodeData:
      return decodeCodeData(r, out);
    case FrameType::kCodeResult:
      return decodeCodeResult(r, out);
  }
  return DecodeError::kUnknownType;
}

}  // namespace impgate::protocol
