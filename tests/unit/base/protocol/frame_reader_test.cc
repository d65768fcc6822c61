#include <catch2/catch.hpp>
#include <cstdlib>
#include <new>
#include <string>
#include <vector>

#include "gateway/base/protocol/codec.h"
#include "gateway/base/protocol/frame_reader.h"
#include "tests/unit/base/protocol/frame_bytes.h"

using namespace impgate::protocol;
using namespace impgate::protocol::test;

// Counts heap allocations made while a HeapProbe is alive, to check what FrameReader
// allocates. Replaces the global operators for this test binary only.
namespace {

struct HeapCounters {
  bool active = false;
  size_t allocations = 0;
  size_t frees = 0;
  size_t lastSize = 0;
};
HeapCounters gHeap;

class HeapProbe {
 public:
  HeapProbe() { gHeap = HeapCounters{.active = true}; }
  ~HeapProbe() { gHeap.active = false; }
  size_t allocations() const { return gHeap.allocations; }
  size_t frees() const { return gHeap.frees; }
  size_t lastSize() const { return gHeap.lastSize; }
};

// Returns null when out of memory; the throwing operators turn that into bad_alloc.
void* countedAlloc(size_t size) {
  if (gHeap.active) {
    ++gHeap.allocations;
    gHeap.lastSize = size;
  }
  return std::malloc(size == 0 ? 1 : size);
}

void* countedAllocOrThrow(size_t size) {
  if (void* p = countedAlloc(size)) {
    return p;
  }
  throw std::bad_alloc();
}

void countedFree(void* p) {
  if (gHeap.active && p != nullptr) {
    ++gHeap.frees;
  }
  std::free(p);
}

}  // namespace

void* operator new(size_t size) {
  return countedAllocOrThrow(size);
}
void* operator new[](size_t size) {
  return countedAllocOrThrow(size);
}
void* operator new(size_t size, const std::nothrow_t&) noexcept {
  return countedAlloc(size);
}
void* operator new[](size_t size, const std::nothrow_t&) noexcept {
  return countedAlloc(size);
}
void operator delete(void* p) noexcept {
  countedFree(p);
}
void operator delete[](void* p) noexcept {
  countedFree(p);
}
void operator delete(void* p, size_t) noexcept {
  countedFree(p);
}
void operator delete[](void* p, size_t) noexcept {
  countedFree(p);
}
void operator delete(void* p, const std::nothrow_t&) noexcept {
  countedFree(p);
}
void operator delete[](void* p, const std::nothrow_t&) noexcept {
  countedFree(p);
}

namespace {

struct Received {
  uint8_t type;
  Bytes body;
  friend bool operator==(const Received&, const Received&) = default;
};

// Feeds `pieces` in order and copies out every frame delivered.
struct Collector {
  FrameReader reader;
  std::vector<Received> frames;
  DecodeError error = DecodeError::kNone;

  explicit Collector(uint32_t maxFrame = kDefaultMaxFrame) : reader(maxFrame) {}

  void feed(std::span<const uint8_t> data) {
    error = reader.feed(data, [this](uint8_t type, std::span<const uint8_t> body) {
      frames.push_back({type, Bytes(body.begin(), body.end())});
      return true;
    });
  }
};

Bytes sampleStream() {
  Bytes payload(300, 0x5a);
  return concat({
      encoded(Hello{.version = 1, .capabilities = 0, .codeId = "fw"}),
      encoded(Msg{.id = 1, .ackWanted = true, .event = "temp", .payload = payload}),
      rawFrame(0x20, {}),  // empty body: length 1
      encoded(Ping{.nonce = 77}),
      encoded(Bye{.reason = ByeReason::kNormal, .text = ""}),
  });
}

std::vector<Received> wholeFrames(const Bytes& stream) {
  Collector c;
  c.feed(stream);
  REQUIRE(c.error == DecodeError::kNone);
  REQUIRE(c.reader.bufferedBytes() == 0);
  return c.frames;
}

Bytes header(uint32_t length, uint8_t type) {
  return {static_cast<uint8_t>(length >> 24), static_cast<uint8_t>(length >> 16),
          static_cast<uint8_t>(length >> 8), static_cast<uint8_t>(length), type};
}

}  // namespace

TEST_CASE("a FrameReader is small and an idle one holds nothing") {
  STATIC_REQUIRE(sizeof(FrameReader) <= 48);
  FrameReader reader;
  CHECK(reader.bufferedBytes() == 0);
  CHECK(reader.maxFrame() == kDefaultMaxFrame);
  CHECK(reader.error() == DecodeError::kNone);
  CHECK_FALSE(reader.stopped());
}

TEST_CASE("frames wholly inside one chunk are handed out in place, without allocating") {
  const Bytes stream = sampleStream();
  FrameReader reader;
  std::vector<std::span<const uint8_t>> bodies;
  bodies.reserve(16);
  DecodeError error;
  size_t allocations;
  {
    HeapProbe probe;
    error = reader.feed(stream, [&](uint8_t, std::span<const uint8_t> body) {
      bodies.push_back(body);
      return true;
    });
    allocations = probe.allocations();
  }
  CHECK(error == DecodeError::kNone);
  CHECK(allocations == 0);
  REQUIRE(bodies.size() == 5);
  for (std::span<const uint8_t> body : bodies) {
    CHECK(body.data() >= stream.data());
    CHECK(body.data() + body.size() <= stream.data() + stream.size());
  }
  CHECK(bodies[2].empty());
  CHECK(reader.bufferedBytes() == 0);
}

TEST_CASE("frames delivered to the reader decode") {
  for (const Received& frame : wholeFrames(sampleStream())) {
    if (frame.body.empty()) {
      continue;  // the hand-made empty PING
    }
    Frame out;
    CHECK(decode(frame.type, frame.body, out) == DecodeError::kNone);
  }
}

TEST_CASE("feeding one byte at a time gives the same frames") {
  const Bytes stream = sampleStream();
  Collector c;
  for (uint8_t byte : stream) {
    c.feed(std::span<const uint8_t>(&byte, 1));
    REQUIRE(c.error == DecodeError::kNone);
  }
  CHECK(c.frames == wholeFrames(stream));
  CHECK(c.reader.bufferedBytes() == 0);
}

TEST_CASE("a stream split at any offset gives the same frames") {
  const Bytes stream = sampleStream();
  const std::vector<Received> expected = wholeFrames(stream);
  std::span<const uint8_t> all(stream);
  for (size_t split = 0; split <= stream.size(); ++split) {
    INFO("split at " << split);
    Collector c;
    c.feed(all.first(split));
    REQUIRE(c.error == DecodeError::kNone);
    c.feed(all.subspan(split));
    REQUIRE(c.error == DecodeError::kNone);
    CHECK(c.frames == expected);
    CHECK(c.reader.bufferedBytes() == 0);
  }
}

TEST_CASE("a split frame is copied once into a buffer of exactly its body size") {
  const Bytes payload(1000, 0x33);
  const Bytes frame =
      encoded(Msg{.id = 9, .ackWanted = false, .event = "blob", .payload = payload});
  const size_t bodySize = frame.size() - kHeaderSize;
  std::span<const uint8_t> all(frame);

  FrameReader reader;
  std::span<const uint8_t> delivered;
  auto keep = [&](uint8_t, std::span<const uint8_t> body) {
    delivered = body;
    return true;
  };
  Bytes copy;
  auto copyOut = [&](uint8_t, std::span<const uint8_t> body) {
    delivered = body;
    copy.assign(body.begin(), body.end());
    return true;
  };

  size_t allocations, lastSize;
  {
    HeapProbe probe;
    reader.feed(all.first(3), keep);  // part of the header: nothing to allocate yet
    allocations = probe.allocations();
  }
  CHECK(allocations == 0);
  CHECK(reader.bufferedBytes() == 3);

  {
    HeapProbe probe;
    reader.feed(all.subspan(3, 200), keep);
    reader.feed(all.subspan(203, 300), keep);
    allocations = probe.allocations();
    lastSize = probe.lastSize();
  }
  CHECK(allocations == 1);
  CHECK(lastSize == bodySize);
  CHECK(reader.bufferedBytes() == 503);
  CHECK(delivered.empty());

  reader.feed(all.subspan(503), copyOut);
  CHECK(copy == Bytes(frame.begin() + kHeaderSize, frame.end()));
  CHECK_FALSE((delivered.data() >= frame.data() && delivered.data() < frame.data() + frame.size()));
  CHECK(reader.bufferedBytes() == 0);
}

TEST_CASE("the partial buffer is freed as soon as its frame is handed out") {
  const Bytes frame = encoded(Log{.level = LogLevel::kInfo, .text = "hello there"});
  const Bytes next = encoded(Ping{.nonce = 1});
  std::span<const uint8_t> all(frame);
  FrameReader reader;
  auto ignore = [](uint8_t, std::span<const uint8_t>) { return true; };
  reader.feed(all.first(8), ignore);
  size_t frees;
  {
    HeapProbe probe;
    reader.feed(concat({Bytes(all.begin() + 8, all.end()), next}), ignore);
    frees = probe.frees();
  }
  CHECK(frees >= 1);
  CHECK(reader.bufferedBytes() == 0);
}

TEST_CASE("a header announcing an empty body delivers at once and allocates nothing") {
  FrameReader reader;
  int calls = 0;
  size_t allocations;
  const Bytes h = header(1, 0x20);
  {
    HeapProbe probe;
    reader.feed(std::span<const uint8_t>(h).first(2), [&](uint8_t, auto) { return ++calls, true; });
    reader.feed(std::span<const uint8_t>(h).subspan(2), [&](uint8_t type, auto body) {
      ++calls;
      return type == 0x20 && body.empty();
    });
    allocations = probe.allocations();
  }
  CHECK(calls == 1);
  CHECK(allocations == 0);
  CHECK_FALSE(reader.stopped());
}

TEST_CASE("returning false from the callback stops the reader") {
  const Bytes stream = sampleStream();
  std::span<const uint8_t> all(stream);

  SECTION("between whole frames") {
    FrameReader reader;
    int calls = 0;
    auto stopAtSecond = [&](uint8_t, std::span<const uint8_t>) { return ++calls < 2; };
    CHECK(reader.feed(stream, stopAtSecond) == DecodeError::kNone);
    CHECK(calls == 2);
    CHECK(reader.stopped());
    CHECK(reader.bufferedBytes() == 0);
    CHECK(reader.feed(stream, stopAtSecond) == DecodeError::kNone);
    CHECK(calls == 2);
  }

  SECTION("on a frame that was split, with more data behind it") {
    FrameReader reader;
    int calls = 0;
    auto stopAtFirst = [&](uint8_t, std::span<const uint8_t>) { return ++calls < 1; };
    reader.feed(all.first(10), stopAtFirst);
    CHECK(reader.bufferedBytes() == 10);
    CHECK(reader.feed(all.subspan(10), stopAtFirst) == DecodeError::kNone);
    CHECK(calls == 1);
    CHECK(reader.stopped());
    CHECK(reader.bufferedBytes() == 0);
  }
}

TEST_CASE("a header above the limit fails before anything is allocated") {
  const uint32_t limit = 100;
  const Bytes ok = rawFrame(0x30, Bytes(limit - 1, 'x'));  // length == limit is allowed
  const Bytes tooLarge = concat({header(limit + 1, 0x10), Bytes(50, 0)});

  SECTION("in one chunk, after a frame that is delivered") {
    FrameReader reader(limit);
    const Bytes stream = concat({ok, tooLarge});
    int calls = 0;
    size_t allocations;
    DecodeError error;
    {
      HeapProbe probe;
      error = reader.feed(stream, [&](uint8_t, std::span<const uint8_t>) { return ++calls, true; });
      allocations = probe.allocations();
    }
    CHECK(error == DecodeError::kTooLarge);
    CHECK(calls == 1);
    CHECK(allocations == 0);
    CHECK(reader.bufferedBytes() == 0);
  }

  SECTION("with the header split across calls") {
    FrameReader reader(limit);
    std::span<const uint8_t> all(tooLarge);
    auto never = [](uint8_t, std::span<const uint8_t>) {
      FAIL("no frame expected");
      return true;
    };
    size_t allocations;
    DecodeError first, second;
    {
      HeapProbe probe;
      first = reader.feed(all.first(2), never);
      second = reader.feed(all.subspan(2), never);
      allocations = probe.allocations();
    }
    CHECK(first == DecodeError::kNone);
    CHECK(second == DecodeError::kTooLarge);
    CHECK(allocations == 0);
    CHECK(reader.bufferedBytes() == 0);
  }

  SECTION("the largest length a header can announce") {
    FrameReader reader;
    Bytes h = header(UINT32_MAX, 0x10);
    size_t allocations;
    DecodeError error;
    {
      HeapProbe probe;
      error = reader.feed(h, [](uint8_t, std::span<const uint8_t>) { return true; });
      allocations = probe.allocations();
    }
    CHECK(error == DecodeError::kTooLarge);
    CHECK(allocations == 0);
  }
}

TEST_CASE("a header announcing length 0 is malformed") {
  Collector c;
  c.feed(header(0, 0x10));
  CHECK(c.error == DecodeError::kMalformed);
  CHECK(c.frames.empty());
}

TEST_CASE("a failed reader stays failed") {
  Collector c(64);
  c.feed(header(65, 0x10));
  REQUIRE(c.error == DecodeError::kTooLarge);
  c.feed(encoded(Ping{.nonce = 1}));
  CHECK(c.error == DecodeError::kTooLarge);
  CHECK(c.reader.error() == DecodeError::kTooLarge);
  CHECK(c.frames.empty());
}

TEST_CASE("an empty feed changes nothing") {
  Collector c;
  c.feed({});
  CHECK(c.error == DecodeError::kNone);
  const Bytes frame = encoded(Ping{.nonce = 5});
  c.feed(std::span<const uint8_t>(frame).first(7));
  c.feed({});
  CHECK(c.reader.bufferedBytes() == 7);
  c.feed(std::span<const uint8_t>(frame).subspan(7));
  CHECK(c.frames.size() == 1);
}

TEST_CASE("a moved reader keeps its partial frame") {
  const Bytes frame = encoded(Ping{.nonce = 5});
  FrameReader first;
  first.feed(std::span<const uint8_t>(frame).first(9),
             [](uint8_t, std::span<const uint8_t>) { return true; });
  FrameReader second = std::move(first);
  CHECK(second.bufferedBytes() == 9);
  int calls = 0;
  second.feed(std::span<const uint8_t>(frame).subspan(9), [&](uint8_t type, auto body) {
    ++calls;
    Frame out;
    return decode(type, body, out) == DecodeError::kNone && std::get<Ping>(out).nonce == 5;
  });
  CHECK(calls == 1);
  CHECK_FALSE(second.stopped());
}

TEST_CASE("a header announcing a large frame holds memory only for the bytes that arrived") {
  const Bytes payload(200 * 1024, 0x5a);
  const Bytes frame = encoded(Msg{.id = 3, .ackWanted = true, .event = "big", .payload = payload});
  std::span<const uint8_t> all(frame);
  FrameReader reader;
  std::size_t frames = 0;
  Bytes copy;
  auto copyOut = [&](uint8_t, std::span<const uint8_t> body) {
    ++frames;
    copy.assign(body.begin(), body.end());
    return true;
  };

  reader.feed(all.first(kHeaderSize + 10), copyOut);
  CHECK(reader.heapBytes() <= FrameReader::kFirstChunk);

  // Fed in small reads, the buffer stays within twice what has arrived.
  std::size_t offset = kHeaderSize + 10;
  while (offset < frame.size()) {
    std::size_t n = std::min<std::size_t>(1500, frame.size() - offset);
    reader.feed(all.subspan(offset, n), copyOut);
    offset += n;
    if (offset < frame.size()) {
      REQUIRE(reader.heapBytes() <=
              std::max<std::size_t>(2 * reader.bufferedBytes(), FrameReader::kFirstChunk));
    }
  }
  CHECK(frames == 1);
  CHECK(copy == Bytes(frame.begin() + kHeaderSize, frame.end()));
  CHECK(reader.heapBytes() == 0);
}

TEST_CASE("setMaxFrame changes the limit for headers that follow") {
  const Bytes big = encoded(Log{.level = LogLevel::kInfo, .text = std::string(200, 'x')});
  auto ignore = [](uint8_t, std::span<const uint8_t>) { return true; };

  FrameReader small(64);
  CHECK(small.feed(std::span<const uint8_t>(big).first(kHeaderSize), ignore) ==
        DecodeError::kTooLarge);
  CHECK(small.heapBytes() == 0);

  FrameReader raised(64);
  raised.setMaxFrame(kDefaultMaxFrame);
  std::size_t frames = 0;
  CHECK(raised.feed(big, [&](uint8_t, std::span<const uint8_t>) { return ++frames > 0; }) ==
        DecodeError::kNone);
  CHECK(frames == 1);
}

TEST_CASE("feedUntil suspends after the frame that says no and keeps the rest unconsumed") {
  Bytes stream = encoded(Ping{.nonce = 1});
  Bytes second = encoded(Ping{.nonce = 2});
  Bytes third = encoded(Ping{.nonce = 3});
  stream.insert(stream.end(), second.begin(), second.end());
  stream.insert(stream.end(), third.begin(), third.end());
  stream.push_back(0);  // the start of a fourth header

  FrameReader reader;
  std::vector<uint64_t> nonces;
  auto takeTwo = [&](uint8_t type, std::span<const uint8_t> body) {
    Frame f;
    REQUIRE(decode(type, body, f) == DecodeError::kNone);
    nonces.push_back(std::get<Ping>(f).nonce);
    return nonces.size() < 2;
  };
  std::size_t consumed = 0;
  CHECK(reader.feedUntil(stream, takeTwo, consumed) == DecodeError::kNone);
  CHECK(nonces == std::vector<uint64_t>{1, 2});
  CHECK(consumed == 2 * second.size());
  CHECK_FALSE(reader.stopped());

  auto takeAll = [&](uint8_t type, std::span<const uint8_t> body) {
    Frame f;
    REQUIRE(decode(type, body, f) == DecodeError::kNone);
    nonces.push_back(std::get<Ping>(f).nonce);
    return true;
  };
  CHECK(reader.feedUntil(std::span<const uint8_t>(stream).subspan(consumed), takeAll, consumed) ==
        DecodeError::kNone);
  CHECK(nonces == std::vector<uint64_t>{1, 2, 3});
  CHECK(consumed == third.size() + 1);
  CHECK(reader.bufferedBytes() == 1);
}
