#include <catch2/catch.hpp>
#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "gateway/base/names.h"
#include "gateway/base/protocol/codec.h"
#include "tests/unit/base/protocol/frame_bytes.h"

using namespace impgate::protocol;
using namespace impgate::protocol::test;
using impgate::kMaxEventNameLength;

namespace {

void requireRoundTrip(const Frame& frame) {
  Bytes wire = encoded(frame);
  Frame back;
  REQUIRE(decodeWhole(wire, back) == DecodeError::kNone);
  CHECK(back.index() == frame.index());
  CHECK(back == frame);
}

DecodeError decodeBody(FrameType type, const Bytes& body) {
  Frame out;
  return decode(static_cast<uint8_t>(type), body, out);
}

Bytes u32(uint32_t v) {
  return {static_cast<uint8_t>(v >> 24), static_cast<uint8_t>(v >> 16),
          static_cast<uint8_t>(v >> 8), static_cast<uint8_t>(v)};
}

// A CODE_OFFER body with `flags`, `size` and chunks of the given lengths (chunk i's sha is
// filled with i).
Bytes codeOfferBody(uint8_t flags, uint32_t size, const std::vector<uint32_t>& lengths) {
  Bytes body = concat({u32(7), {flags}, Bytes(32, 0xc0), u32(size), Bytes(64, 0x51)});
  body.push_back(static_cast<uint8_t>(lengths.size() >> 8));
  body.push_back(static_cast<uint8_t>(lengths.size()));
  for (size_t i = 0; i < lengths.size(); ++i) {
    Bytes sha(32, static_cast<uint8_t>(i));
    body.insert(body.end(), sha.begin(), sha.end());
    Bytes len = u32(lengths[i]);
    body.insert(body.end(), len.begin(), len.end());
  }
  return body;
}

CodeHash hashOf(uint8_t fill) {
  CodeHash h;
  h.fill(fill);
  return h;
}

// The shortest valid body of each type, all fields but `rest` ones present.
struct FixedLayout {
  FrameType type;
  Bytes body;
  bool endsWithRest;  // MSG and LOG: bytes after the fixed part are content, not trailing
};

std::vector<FixedLayout> minimalBodies() {
  return {
      {FrameType::kHello, concat({{1}, {0, 0, 0, 0}, str8("")}), false},
      {FrameType::kWelcome, concat({{1}, Bytes(8, 0), {0, 60}, Bytes(8, 0), str8("")}), false},
      {FrameType::kMsg, concat({{0, 0, 0, 1}, {0}, str8("e")}), true},
      {FrameType::kAck, {0, 0, 0, 1, 0}, false},
      {FrameType::kPing, Bytes(8, 0), false},
      {FrameType::kPong, Bytes(8, 0), false},
      {FrameType::kLog, {1}, true},
      {FrameType::kBye, concat({{0}, str8("")}), false},
      {FrameType::kCodeOffer, codeOfferBody(0, 1, {1}), false},
      {FrameType::kCodeGet, concat({Bytes(32, 0), {0, 0, 0, 0}, {0, 0, 0, 1}}), false},
      {FrameType::kCodeData, concat({Bytes(32, 0), {0, 0, 0, 0}}), true},
      {FrameType::kCodeResult, concat({Bytes(32, 0), {0}, str8("")}), false},
  };
}

}  // namespace

TEST_CASE("every frame type survives encode and decode") {
  const std::string payload(kMaxPayload, '\xa5');
  const auto* payloadBytes = reinterpret_cast<const uint8_t*>(payload.data());
  const std::string longest(kMaxStr8Length, 'n');
  const std::string longestEvent(kMaxEventNameLength, 'e');

  requireRoundTrip(Hello{.version = 1, .capabilities = 0xdeadbeef, .codeId = "fw-1"});
  requireRoundTrip(Hello{.version = 9, .capabilities = 0, .codeId = ""});
  requireRoundTrip(Hello{.codeId = std::string_view(longest).substr(0, kMaxCodeIdLength)});
  requireRoundTrip(Welcome{.version = 1,
                           .sessionId = UINT64_MAX,
                           .keepaliveSeconds = UINT16_MAX,
                           .serverTimeMs = 1,
                           .node = "gw"});
  requireRoundTrip(Welcome{.node = longest});
  requireRoundTrip(Msg{.id = 1, .ackWanted = true, .event = "temp", .payload = {}});
  requireRoundTrip(Msg{.id = UINT32_MAX,
                       .ackWanted = false,
                       .event = longestEvent,
                       .payload = {payloadBytes, payload.size()}});
  for (auto status : {AckStatus::kOk, AckStatus::kFailed, AckStatus::kRejected}) {
    requireRoundTrip(Ack{.id = 42, .status = status});
  }
  requireRoundTrip(Ping{.nonce = 0x0102030405060708});
  requireRoundTrip(Pong{.nonce = 0});
  for (auto level : {LogLevel::kDebug, LogLevel::kInfo, LogLevel::kWarn, LogLevel::kError}) {
    requireRoundTrip(Log{.level = level, .text = "text with\nnewline"});
  }
  requireRoundTrip(Log{.level = LogLevel::kInfo, .text = ""});
  for (int r = 0; r <= static_cast<int>(kLastByeReason); ++r) {
    requireRoundTrip(Bye{.reason = static_cast<ByeReason>(r), .text = "why"});
  }
  requireRoundTrip(Bye{.reason = ByeReason::kNormal, .text = longest});

  Bytes list;
  appendCodeChunk({.sha = hashOf(1), .length = 512}, list);
  appendCodeChunk({.sha = hashOf(2), .length = 8192}, list);
  CodeSignature signature;
  signature.fill(0x5a);
  for (bool mandatory : {false, true}) {
    requireRoundTrip(CodeOffer{.deployment = UINT32_MAX,
                               .mandatory = mandatory,
                               .code = hashOf(0xee),
                               .size = 512 + 8192,
                               .signature = signature,
                               .chunks = CodeChunkList(list)});
  }
  requireRoundTrip(CodeGet{.code = hashOf(3), .offset = 4096, .length = kMaxCodeData});
  requireRoundTrip(CodeGet{.code = hashOf(3), .offset = UINT32_MAX, .length = 1});
  const Bytes data(kMaxCodeData, 0x77);
  requireRoundTrip(CodeData{.code = hashOf(4), .offset = 16384, .data = data});
  requireRoundTrip(CodeData{.code = hashOf(4), .offset = 0, .data = {}});
  for (auto status :
       {CodeResultStatus::kInstalled, CodeResultStatus::kDeferred, CodeResultStatus::kFailed}) {
    requireRoundTrip(CodeResult{.code = hashOf(5), .status = status, .reason = "bad signature"});
  }
  requireRoundTrip(CodeResult{.code = hashOf(5), .reason = longest});
}

TEST_CASE("a CODE_OFFER's chunk list is a view over the frame, read entry by entry") {
  Bytes body = codeOfferBody(1, 700 + 300 + 5, {700, 300, 5});
  Frame out;
  REQUIRE(decode(static_cast<uint8_t>(FrameType::kCodeOffer), body, out) == DecodeError::kNone);
  const CodeOffer& offer = std::get<CodeOffer>(out);
  CHECK(offer.deployment == 7);
  CHECK(offer.mandatory);
  CHECK(offer.code == hashOf(0xc0));
  CHECK(offer.size == 1005);
  CHECK(offer.signature == [] {
    CodeSignature s;
    s.fill(0x51);
    return s;
  }());
  REQUIRE(offer.chunks.size() == 3);
  CHECK(offer.chunks.raw().data() == body.data() + 4 + 1 + 32 + 4 + 64 + 2);
  CHECK(offer.chunks.raw().size() == 3 * kCodeChunkEntrySize);
  CHECK(offer.chunks.chunk(0) == CodeChunkRef{.sha = hashOf(0), .length = 700});
  CHECK(offer.chunks.chunk(2) == CodeChunkRef{.sha = hashOf(2), .length = 5});
  std::vector<uint32_t> lengths;
  for (CodeChunkRef chunk : offer.chunks) {
    lengths.push_back(chunk.length);
  }
  CHECK(lengths == std::vector<uint32_t>{700, 300, 5});
}

TEST_CASE("CODE_OFFER ranges: chunk count, chunk lengths, size and flags") {
  auto offer = [](uint8_t flags, uint32_t size, const std::vector<uint32_t>& lengths) {
    return decodeBody(FrameType::kCodeOffer, codeOfferBody(flags, size, lengths));
  };
  CHECK(offer(0, 10, {4, 6}) == DecodeError::kNone);
  // The lengths must add up to the size, exactly.
  CHECK(offer(0, 11, {4, 6}) == DecodeError::kMalformed);
  CHECK(offer(0, 9, {4, 6}) == DecodeError::kMalformed);
  // A sum that wraps 32 bits is still not the size.
  CHECK(offer(0, 10, {0xffffffff, 11}) == DecodeError::kMalformed);
  CHECK(offer(0, 10, {0, 10}) == DecodeError::kMalformed);
  CHECK(offer(0, 0, {}) == DecodeError::kMalformed);
  CHECK(offer(0, 0, {0}) == DecodeError::kMalformed);
  for (int bit = 1; bit < 8; ++bit) {
    INFO("flag bit " << bit);
    CHECK(offer(static_cast<uint8_t>(1 << bit), 10, {10}) == DecodeError::kMalformed);
  }
  // kMaxCodeChunks chunks summing to kMaxCodeSize is the largest offer; one more chunk, or one
  // more byte, is too much.
  std::vector<uint32_t> most(kMaxCodeChunks, kMaxCodeSize / kMaxCodeChunks);
  CHECK(offer(0, kMaxCodeSize, most) == DecodeError::kNone);
  most.back() += 1;
  CHECK(offer(0, kMaxCodeSize + 1, most) == DecodeError::kMalformed);
  std::vector<uint32_t> tooMany(kMaxCodeChunks + 1, 1);
  CHECK(offer(0, kMaxCodeChunks + 1, tooMany) == DecodeError::kMalformed);
  // A count that promises more entries than the body holds.
  Bytes body = codeOfferBody(0, 10, {10});
  body[4 + 1 + 32 + 4 + 64 + 1] = 2;
  CHECK(decodeBody(FrameType::kCodeOffer, body) == DecodeError::kMalformed);
}

TEST_CASE("CODE_GET length, CODE_DATA size and CODE_RESULT status ranges") {
  auto get = [](uint32_t length) {
    return decodeBody(FrameType::kCodeGet, concat({Bytes(32, 1), u32(0), u32(length)}));
  };
  CHECK(get(1) == DecodeError::kNone);
  CHECK(get(kMaxCodeData) == DecodeError::kNone);
  CHECK(get(0) == DecodeError::kMalformed);
  CHECK(get(kMaxCodeData + 1) == DecodeError::kMalformed);
  CHECK(get(UINT32_MAX) == DecodeError::kMalformed);

  auto data = [](size_t size) {
    return decodeBody(FrameType::kCodeData, concat({Bytes(32, 1), u32(0), Bytes(size, 9)}));
  };
  CHECK(data(0) == DecodeError::kNone);
  CHECK(data(kMaxCodeData) == DecodeError::kNone);
  CHECK(data(kMaxCodeData + 1) == DecodeError::kMalformed);

  for (int status = 0; status < 256; ++status) {
    INFO("status " << status);
    DecodeError e = decodeBody(FrameType::kCodeResult,
                               concat({Bytes(32, 1), {static_cast<uint8_t>(status)}, str8("x")}));
    CHECK(e == (status <= 2 ? DecodeError::kNone : DecodeError::kMalformed));
  }
  CHECK(decodeBody(FrameType::kCodeResult, concat({Bytes(32, 1), {0}, {4}, bytesOf("ab")})) ==
        DecodeError::kMalformed);
}

TEST_CASE("decoded views point into the body, not into copies") {
  Bytes wire = encoded(Msg{.id = 3, .ackWanted = false, .event = "ev", .payload = {}});
  wire.push_back(0x99);  // extend the payload by hand
  wire[3] += 1;
  Frame out;
  REQUIRE(decodeWhole(wire, out) == DecodeError::kNone);
  const Msg& msg = std::get<Msg>(out);
  CHECK(msg.event.data() == reinterpret_cast<const char*>(wire.data() + 11));
  REQUIRE(msg.payload.size() == 1);
  CHECK(msg.payload.data() == wire.data() + wire.size() - 1);
}

TEST_CASE("encode appends to what the buffer already holds") {
  Bytes out{0xaa};
  encode(Ping{.nonce = 1}, out);
  encode(Pong{.nonce = 1}, out);
  CHECK(out.size() == 1 + 2 * (kHeaderSize + 8));
  CHECK(out[0] == 0xaa);
  CHECK(out[1 + 4] == static_cast<uint8_t>(FrameType::kPing));
  CHECK(out[1 + 13 + 4] == static_cast<uint8_t>(FrameType::kPong));
}

TEST_CASE("the Frame overload encodes like the typed ones") {
  Bytes typed;
  encode(Bye{.reason = ByeReason::kReplaced, .text = "moved"}, typed);
  CHECK(encoded(Frame{Bye{.reason = ByeReason::kReplaced, .text = "moved"}}) == typed);
}

TEST_CASE("a body cut short anywhere in its fixed part is malformed") {
  for (const FixedLayout& layout : minimalBodies()) {
    INFO("type " << frameTypeName(static_cast<uint8_t>(layout.type)));
    REQUIRE(decodeBody(layout.type, layout.body) == DecodeError::kNone);
    for (size_t size = 0; size < layout.body.size(); ++size) {
      INFO("cut to " << size << " bytes");
      Bytes cut(layout.body.begin(), layout.body.begin() + static_cast<ptrdiff_t>(size));
      CHECK(decodeBody(layout.type, cut) == DecodeError::kMalformed);
    }
  }
}

TEST_CASE("trailing bytes after the last field are malformed") {
  for (const FixedLayout& layout : minimalBodies()) {
    if (layout.endsWithRest) {
      continue;
    }
    INFO("type " << frameTypeName(static_cast<uint8_t>(layout.type)));
    Bytes longer = layout.body;
    longer.push_back(0);
    CHECK(decodeBody(layout.type, longer) == DecodeError::kMalformed);
  }
}

TEST_CASE("a str8 count running past the body is malformed") {
  CHECK(decodeBody(FrameType::kHello, concat({{1, 0, 0, 0, 0}, {10}, bytesOf("abc")})) ==
        DecodeError::kMalformed);
  CHECK(decodeBody(FrameType::kWelcome,
                   concat({{1}, Bytes(8, 0), {0, 60}, Bytes(8, 0), {5}, bytesOf("gw")})) ==
        DecodeError::kMalformed);
  CHECK(decodeBody(FrameType::kMsg, concat({{0, 0, 0, 1, 0}, {200}, bytesOf("temp")})) ==
        DecodeError::kMalformed);
  CHECK(decodeBody(FrameType::kBye, concat({{0}, {1}})) == DecodeError::kMalformed);
  CHECK(decodeBody(FrameType::kBye, concat({{0}, {255}, Bytes(254, 'x')})) ==
        DecodeError::kMalformed);
}

TEST_CASE("HELLO code_id is limited to 64 bytes") {
  auto hello = [](size_t size) { return concat({{1, 0, 0, 0, 0}, str8(std::string(size, 'c'))}); };
  CHECK(decodeBody(FrameType::kHello, hello(kMaxCodeIdLength)) == DecodeError::kNone);
  CHECK(decodeBody(FrameType::kHello, hello(kMaxCodeIdLength + 1)) == DecodeError::kMalformed);
  CHECK(decodeBody(FrameType::kHello, hello(255)) == DecodeError::kMalformed);
}

TEST_CASE("MSG flags other than ack wanted are malformed") {
  for (int bit = 1; bit < 8; ++bit) {
    INFO("bit " << bit);
    auto flags = static_cast<uint8_t>((1 << bit) | 1);
    CHECK(decodeBody(FrameType::kMsg, concat({{0, 0, 0, 1, flags}, str8("temp")})) ==
          DecodeError::kMalformed);
  }
  Frame out;
  Bytes plain = concat({{0, 0, 0, 1, 0}, str8("temp")});
  REQUIRE(decode(static_cast<uint8_t>(FrameType::kMsg), plain, out) == DecodeError::kNone);
  CHECK_FALSE(std::get<Msg>(out).ackWanted);
}

TEST_CASE("MSG event names that cannot be a topic level are refused") {
  const std::vector<std::string> invalid = {
      "",    "a/b",   "a+b",  "#",           std::string("a\0b", 3),
      "a b", "tab\t", "\x7f", "caf\xc3\xa9", std::string(kMaxEventNameLength + 1, 'e'),
  };
  for (const std::string& event : invalid) {
    INFO("event '" << event << "'");
    CHECK(decodeBody(FrameType::kMsg, concat({{0, 0, 0, 1, 1}, str8(event), {1, 2}})) ==
          DecodeError::kInvalidName);
  }
  CHECK(decodeBody(FrameType::kMsg, concat({{0, 0, 0, 1, 1}, str8("!~.:-_"), {}})) ==
        DecodeError::kNone);
}

TEST_CASE("a broken layout wins over a bad event name") {
  // Bad flags and an invalid name: the frame is malformed before its name is looked at.
  CHECK(decodeBody(FrameType::kMsg, concat({{0, 0, 0, 1, 2}, str8("a/b")})) ==
        DecodeError::kMalformed);
}

TEST_CASE("enumeration bytes outside their tables are malformed") {
  for (int status = 3; status < 256; ++status) {
    CHECK(decodeBody(FrameType::kAck, {0, 0, 0, 1, static_cast<uint8_t>(status)}) ==
          DecodeError::kMalformed);
  }
  for (int level = 4; level < 256; ++level) {
    CHECK(decodeBody(FrameType::kLog, {static_cast<uint8_t>(level), 'x'}) ==
          DecodeError::kMalformed);
  }
  for (int reason = static_cast<int>(kLastByeReason) + 1; reason < 256; ++reason) {
    CHECK(decodeBody(FrameType::kBye, {static_cast<uint8_t>(reason), 0}) ==
          DecodeError::kMalformed);
  }
}

TEST_CASE("types outside version 1, reserved ones included, are unknown") {
  const std::set<int> known = {0x01, 0x02, 0x10, 0x11, 0x20, 0x21,
                               0x30, 0x3f, 0x40, 0x41, 0x42, 0x43};
  for (int type = 0; type < 256; ++type) {
    if (known.count(type) != 0) {
      continue;
    }
    INFO("type " << type);
    Frame out;
    CHECK(decode(static_cast<uint8_t>(type), {}, out) == DecodeError::kUnknownType);
    CHECK(frameTypeName(static_cast<uint8_t>(type)) == "unknown");
  }
  for (int reserved : {0x03, 0x04}) {
    Frame out;
    Bytes body(16, 0);
    CHECK(decode(static_cast<uint8_t>(reserved), body, out) == DecodeError::kUnknownType);
  }
}

TEST_CASE("frame and field names for logs") {
  CHECK(frameTypeName(0x01) == "hello");
  CHECK(frameTypeName(0x3f) == "bye");
  CHECK(ackStatusName(AckStatus::kRejected) == "rejected");
  CHECK(ackStatusName(static_cast<AckStatus>(9)) == "unknown");
  CHECK(logLevelName(LogLevel::kWarn) == "warn");
  CHECK(logLevelName(static_cast<LogLevel>(4)) == "unknown");
  CHECK(frameTypeName(0x40) == "code_offer");
  CHECK(frameTypeName(0x41) == "code_get");
  CHECK(frameTypeName(0x42) == "code_data");
  CHECK(frameTypeName(0x43) == "code_result");
  CHECK(codeResultStatusName(CodeResultStatus::kDeferred) == "deferred");
  CHECK(codeResultStatusName(static_cast<CodeResultStatus>(3)) == "unknown");
}
