// Encoding and decoding of single imp frames: pure functions over bytes, no I/O.
//
// FrameReader splits a byte stream into (type, body) pairs; decode() turns one pair into a
// Frame; encode() appends a whole frame, header included, to an output buffer.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "gateway/base/protocol/decode_error.h"
#include "gateway/base/protocol/frame.h"

namespace impgate::protocol {

// Decodes one frame's body; `type` is the type byte FrameReader split off. The body must be
// consumed exactly. Beyond the layout, the checks are: a MSG event name must pass
// isValidEventName() (else kInvalidName), a HELLO code_id must fit kMaxCodeIdLength, and the
// code push ranges (CODE_OFFER chunk count, chunk lengths and size, CODE_GET length,
// CODE_DATA size, CODE_RESULT status; see frame.h) hold, else kMalformed. Decoding a
// CODE_OFFER reads its chunk list once to check it and allocates nothing. Views in `out` point into
// `body`. On error, `out` is unspecified. Never returns kTooLarge: the frame limit is FrameReader's
// job.
DecodeError decode(uint8_t type, std::span<const uint8_t> body, Frame& out);

// Each encoder appends one whole frame to `out` and allocates nothing beyond growing `out`.
// The caller guarantees the frame can be represented: str8 fields of at most 255 bytes, a
// code_id of at most kMaxCodeIdLength, a body under 4 GiB (asserted). Field values are not
// checked otherwise, so tests and tools can encode frames a receiver will refuse.
void encode(const Hello& frame, std::vector<uint8_t>& out);
void encode(const Welcome& frame, std::vector<uint8_t>& out);
void encode(const Msg& frame, std::vector<uint8_t>& out);
void encode(const Ack& frame, std::vector<uint8_t>& out);
void encode(const Ping& frame, std::vector<uint8_t>& out);
void encode(const Pong& frame, std::vector<uint8_t>& out);
void encode(const Log& frame, std::vector<uint8_t>& out);
void encode(const Bye& frame, std::vector<uint8_t>& out);
void encode(const CodeOffer& frame, std::vector<uint8_t>& out);
void encode(const CodeGet& frame, std::vector<uint8_t>& out);
void encode(const CodeData& frame, std::vector<uint8_t>& out);
void encode(const CodeResult& frame, std::vector<uint8_t>& out);
void encode(const Frame& frame, std::vector<uint8_t>& out);

}  // namespace impgate::protocol
