#include <cassert>
#include <variant>

#include "gateway/base/protocol/codec.h"
#include "gateway/base/protocol/wire.h"

namespace impgate::protocol {

using wire::FrameWriter;

void encode(const Hello& frame, std::vector<uint8_t>& out) {
  assert(frame.codeId.size() <= kMaxCodeIdLength);
  FrameWriter w(out, FrameType::kHello, 1 + 4 + 1 + frame.codeId.size());
  w.u8(frame.version);
  w.u32(frame.capabilities);
  w.str8(frame.codeId);
}

void encode(const Welcome& frame, std::vector<uint8_t>& out) {
  FrameWriter w(out, FrameType::kWelcome, 1 + 8 + 2 + 8 + 1 + frame.node.size());
  w.u8(frame.version);
  w.u64(frame.sessionId);
  w.u16(frame.keepaliveSeconds);
  w.u64(frame.serverTimeMs);
  w.str8(frame.node);
}

void encode(const Msg& frame, std::vector<uint8_t>& out) {
  FrameWriter w(out, FrameType::kMsg, 4 + 1 + 1 + frame.event.size() + frame.payload.size());
  w.u32(frame.id);
  w.u8(frame.ackWanted ? kMsgFlagAckWanted : 0);
  w.str8(frame.event);
  w.bytes(frame.payload);
}

void encode(const Ack& frame, std::vector<uint8_t>& out) {
  FrameWriter w(out, FrameType::kAck, 4 + 1);
  w.u32(frame.id);
  w.u8(static_cast<uint8_t>(frame.status));
}

void encode(const Ping& frame, std::vector<uint8_t>& out) {
  FrameWriter w(out, FrameType::kPing, 8);
  w.u64(frame.nonce);
}

void encode(const Pong& frame, std::vector<uint8_t>& out) {
  FrameWriter w(out, FrameType::kPong, 8);
  w.u64(frame.nonce);
}

void encode(const Log& frame, std::vector<uint8_t>& out) {
  FrameWriter w(out, FrameType::kLog, 1 + frame.text.size());
  w.u8(static_cast<uint8_t>(frame.level));
  w.bytes({reinterpret_cast<const uint8_t*>(frame.text.data()), frame.text.size()});
}

void encode(const Bye& frame, std::vector<uint8_t>& out) {
  FrameWriter w(out, FrameType::kBye, 1 + 1 + frame.text.size());
  w.u8(static_cast<uint8_t>(frame.reason));
  w.str8(frame.text);
}

void encode(const CodeOffer& frame, std::vector<uint8_t>& out) {
  FrameWriter w(
      out, FrameType::kCodeOffer,
      4 + 1 + frame.code.size() + 4 + frame.signature.size() + 2 + frame.chunks.raw().size());
  assert(frame.chunks.size() <= UINT16_MAX);
  w.u32(frame.deployment);
  w.u8(frame.mandatory ? kCodeOfferFlagMandatory : 0);
  w.bytes(frame.code);
  w.u32(frame.size);
  w.bytes(frame.signature);
  w.u16(static_cast<uint16_t>(frame.chunks.size()));
  w.bytes(frame.chunks.raw());
}

void encode(const CodeGet& frame, std::vector<uint8_t>& out) {
  FrameWriter w(out, FrameType::kCodeGet, frame.code.size() + 4 + 4);
  w.bytes(frame.code);
  w.u32(frame.offset);
  w.u32(frame.length);
}

void encode(const CodeData& frame, std::vector<uint8_t>& out) {
  FrameWriter w(out, FrameType::kCodeData, frame.code.size() + 4 + frame.data.size());
  w.bytes(frame.code);
  w.u32(frame.offset);
  w.bytes(frame.data);
}

void encode(const CodeResult& frame, std::vector<uint8_t>& out) {
  FrameWriter w(out, FrameType::kCodeResult, frame.code.size() + 1 + 1 + frame.reason.size());
  w.bytes(frame.code);
  w.u8(static_cast<uint8_t>(frame.status));
  w.str8(frame.reason);
}

void encode(const Frame& frame, std::vector<uint8_t>& out) {
  std::visit([&out](const auto& f) { encode(f, out); }, frame);
}

}  // namespace impgate::protocol
