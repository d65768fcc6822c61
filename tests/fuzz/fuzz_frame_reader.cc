// Fuzz target for the imp frame reader and codec: the bytes a hostile device can send.
//
// Beyond "no crash, no sanitizer report", it checks three properties on every input:
//  - reassembly does not depend on how the stream is split into reads;
//  - a frame that decodes re-encodes to exactly the bytes it came from;
//  - a reader stopped by its callback delivers nothing more.
// A broken property aborts, which both libFuzzer and the corpus replay report.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <vector>

#include "gateway/base/protocol/codec.h"
#include "gateway/base/protocol/frame_reader.h"

namespace {

using impgate::protocol::DecodeError;
using impgate::protocol::Frame;
using impgate::protocol::FrameReader;
using impgate::protocol::kHeaderSize;

// Small enough that the fuzzer reaches the frame limit often.
constexpr uint32_t kMaxFrame = 4096;

void require(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "fuzz_frame_reader: property broken: %s\n", what);
    std::abort();
  }
}

struct Delivered {
  uint8_t type;
  std::vector<uint8_t> body;
  friend bool operator==(const Delivered&, const Delivered&) = default;
};

struct Run {
  std::vector<Delivered> frames;
  DecodeError error = DecodeError::kNone;
};

void checkCodec(uint8_t type, std::span<const uint8_t> body) {
  Frame frame;
  if (impgate::protocol::decode(type, body, frame) != DecodeError::kNone) {
    return;
  }
  std::vector<uint8_t> again;
  impgate::protocol::encode(frame, again);
  require(again.size() == kHeaderSize + body.size(), "re-encoded size differs");
  require(again[4] == type, "re-encoded type differs");
  require(std::equal(body.begin(), body.end(), again.begin() + kHeaderSize),
          "re-encoded body differs");
}

// Feeds `input` in pieces of `chunk` bytes; the callback returns false after `stopAfter`
// frames (0: never).
Run feedInChunks(std::span<const uint8_t> input, size_t chunk, size_t stopAfter) {
  Run run;
  FrameReader reader(kMaxFrame);
  auto onFrame = [&](uint8_t type, std::span<const uint8_t> body) {
    require(!reader.stopped(), "frame delivered after stop");
    run.frames.push_back({type, {body.begin(), body.end()}});
    checkCodec(type, body);
    return stopAfter == 0 || run.frames.size() < stopAfter;
  };
  for (size_t pos = 0; pos < input.size(); pos += chunk) {
    DecodeError e = reader.feed(input.subspan(pos, std::min(chunk, input.size() - pos)), onFrame);
    if (run.error != DecodeError::kNone) {
      require(e == run.error, "a failed reader recovered");
    }
    run.error = e;
  }
  require(reader.error() == run.error, "error() disagrees with feed()");
  require(run.error == DecodeError::kNone || run.error == DecodeError::kTooLarge ||
              run.error == DecodeError::kMalformed,
          "reader returned an error only decode() may return");
  if (run.error != DecodeError::kNone || reader.stopped()) {
    require(reader.bufferedBytes() == 0, "a finished reader kept its buffer");
  }
  return run;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const uint8_t> input(data, size);
  const Run whole = feedInChunks(input, size == 0 ? 1 : size, 0);

  // Split points derived from the input so that the fuzzer can vary them.
  for (size_t chunk : {size_t{1}, size_t{2} + size % 13}) {
    const Run split = feedInChunks(input, chunk, 0);
    require(split.frames == whole.frames, "frames depend on the read size");
    require(split.error == whole.error, "error depends on the read size");
  }

  if (!whole.frames.empty()) {
    const Run stopped = feedInChunks(input, 3, 1);
    require(stopped.frames.size() == 1 && stopped.frames[0] == whole.frames[0],
            "stopping changed what was delivered");
    require(stopped.error == DecodeError::kNone, "a stopped reader reported an error");
  }
  return 0;
}
