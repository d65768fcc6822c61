// Splits the byte stream of one connection into imp frames.
//
// Each connection's session owns one FrameReader and uses it on that connection's reactor
// thread only. It is built for many idle connections: the object is small, and it holds heap
// memory only while a frame is split across reads. Frames that arrive whole are handed out as
// views into the caller's buffer; a split frame is copied into a buffer that grows with the
// bytes that actually arrive (never ahead of them by more than kFirstChunk or a doubling, and
// never beyond the announced size), so a header announcing a large frame costs nothing until
// its body is sent. The buffer is freed as soon as the frame has been handed out.
#pragma once

#include <cassert>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <type_traits>

#include "gateway/base/protocol/decode_error.h"
#include "gateway/base/protocol/frame.h"

namespace impgate::protocol {

class FrameReader {
 public:
  // `maxFrame` limits a header's length field (type + body), see kDefaultMaxFrame.
  explicit FrameReader(uint32_t maxFrame = kDefaultMaxFrame) : maxFrame_(maxFrame) {}

  FrameReader(const FrameReader&) = delete;
  FrameReader& operator=(const FrameReader&) = delete;
  FrameReader(FrameReader&&) noexcept = default;
  FrameReader& operator=(FrameReader&&) noexcept = default;

  // Consumes `data`, calling `onFrame(uint8_t type, std::span<const uint8_t> body) -> bool`
  // once per complete frame, in stream order. `body` is valid only during the call; it points
  // into `data` unless the frame was split across calls.
  //
  // onFrame returns false to stop: the caller is closing the connection. The reader then
  // drops the rest of `data`, frees its buffer and ignores later calls (they return kNone).
  // onFrame must not call feed() or destroy the reader.
  //
  // Returns kNone, kTooLarge when a header announces a length above the limit, or kMalformed
  // when it announces length 0. The header is checked before anything is allocated. Frames
  // before the bad header have been delivered; after an error the reader stays failed and
  // every later call returns the same error without calling onFrame.
  template <typename OnFrame>
  DecodeError feed(std::span<const uint8_t> data, OnFrame&& onFrame) {
    std::size_t consumed = 0;
    return feedImpl(data, onFrame, /*suspend=*/false, consumed);
  }

  // Like feed(), except that onFrame returning false suspends instead of stopping: the reader
  // stays usable, and the bytes after that frame are not consumed. `consumed` tells how many
  // bytes of `data` were; the caller keeps the rest and feeds it again later. For a receiver
  // that must stop taking frames mid-read (backpressure) without losing any.
  template <typename OnFrame>
  DecodeError feedUntil(std::span<const uint8_t> data, OnFrame&& onFrame, std::size_t& consumed) {
    return feedImpl(data, onFrame, /*suspend=*/true, consumed);
  }

  // Bytes of an incomplete frame held from earlier calls; 0 between frames.
  size_t bufferedBytes() const { return headerHave_ + bodyHave_; }
  // Heap bytes held for the incomplete frame (its buffer's capacity); 0 between frames.
  size_t heapBytes() const { return bodyCapacity_; }

  // Changes the limit for headers not yet checked (a session raises it after its handshake).
  void setMaxFrame(uint32_t maxFrame) { maxFrame_ = maxFrame; }

  // The first allocation for a split frame's body; later ones double it, up to the body size.
  static constexpr uint32_t kFirstChunk = 4096;

  // kNone, or the error that failed the reader.
  DecodeError error() const { return error_; }

  // True once onFrame has returned false.
  bool stopped() const { return stopped_; }

  uint32_t maxFrame() const { return maxFrame_; }

 private:
  static uint32_t loadLength(const uint8_t* p) {
    return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
  }

  DecodeError checkLength(uint32_t length) const {
    if (length == 0) {
      return DecodeError::kMalformed;
    }
    if (length > maxFrame_) {
      return DecodeError::kTooLarge;
    }
    return DecodeError::kNone;
  }

  bool partialStarted() const { return headerHave_ > 0; }
  bool partialComplete() const { return headerHave_ == kHeaderSize && bodyHave_ == bodySize_; }

  template <typename OnFrame>
  DecodeError feedImpl(std::span<const uint8_t> data, OnFrame& onFrame, bool suspend,
                       std::size_t& consumed);
  // Copies the start of `data` into the partial frame, checking the header once it is whole.
  // Stops at the end of the frame; returns the bytes used.
  size_t absorb(std::span<const uint8_t> data);
  // Makes room for `need` body bytes in total, growing the buffer geometrically.
  void reserveBody(uint32_t need);
  // Frees and forgets the partial frame.
  void releasePartial();
  DecodeError fail(DecodeError error);
  void stop();

  // Field order keeps sizeof(FrameReader) at 32 bytes.
  std::unique_ptr<uint8_t[]> body_;  // the partial frame's body so far, bodyCapacity_ bytes
  uint32_t maxFrame_;
  uint32_t bodySize_ = 0;  // the partial frame's body size, once its header is whole
  uint32_t bodyHave_ = 0;
  uint32_t bodyCapacity_ = 0;
  uint8_t header_[kHeaderSize] = {};
  uint8_t headerHave_ = 0;
  DecodeError error_ = DecodeError::kNone;
  bool stopped_ = false;
};

template <typename OnFrame>
DecodeError FrameReader::feedImpl(std::span<const uint8_t> data, OnFrame& onFrame, bool suspend,
                                  std::size_t& consumed) {
  static_assert(std::is_invocable_r_v<bool, OnFrame&, uint8_t, std::span<const uint8_t>>,
                "onFrame must be callable as bool(uint8_t type, std::span<const uint8_t> body)");
  const std::size_t total = data.size();
  consumed = 0;
  if (error_ != DecodeError::kNone || stopped_) {
    return error_;
  }
  // onFrame said no more: stop for good, or (suspend) leave the rest of `data` unconsumed.
  auto halt = [&] {
    if (!suspend) {
      stop();
      consumed = total;
    } else {
      consumed = total - data.size();
    }
    return DecodeError::kNone;
  };

  if (partialStarted()) {
    data = data.subspan(absorb(data));
    if (error_ != DecodeError::kNone) {
      return error_;
    }
    if (!partialComplete()) {
      consumed = total;
      return DecodeError::kNone;
    }
    bool more = onFrame(header_[4], std::span<const uint8_t>(body_.get(), bodySize_));
    releasePartial();
    if (!more) {
      return halt();
    }
  }

  while (data.size() >= kHeaderSize) {
    uint32_t length = loadLength(data.data());
    if (DecodeError e = checkLength(length); e != DecodeError::kNone) {
      return fail(e);
    }
    if (data.size() - 4 < length) {
      break;
    }
    uint8_t type = data[4];
    std::span<const uint8_t> body = data.subspan(kHeaderSize, length - 1);
    data = data.subspan(4 + size_t{length});
    if (!onFrame(type, body)) {
      return halt();
    }
  }

  // What is left is the start of a frame whose header, if whole, passed the check above.
  if (!data.empty()) {
    [[maybe_unused]] size_t used = absorb(data);
    assert(used == data.size() && error_ == DecodeError::kNone);
  }
  consumed = total;
  return DecodeError::kNone;
}

}  // namespace impgate::protocol
