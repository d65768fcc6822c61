// Big-endian field readers and writers behind the codec. Internal to gateway/protocol: the
// rest of the gateway goes through codec.h and frame_reader.h.
#pragma once

#include <algorithm>
#include <array>
#include <cassert>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "gateway/base/protocol/frame.h"

namespace impgate::protocol::wire {

template <typename T>
T loadBigEndian(const uint8_t* p) {
  T value = 0;
  for (size_t i = 0; i < sizeof(T); ++i) {
    value = static_cast<T>((value << 8) | p[i]);
  }
  return value;
}

// Reads the fields of one frame body in order. The first read that runs past the end marks
// the reader failed and leaves its own and every later output untouched, so a decoder reads
// all its fields and checks once.
class BodyReader {
 public:
  explicit BodyReader(std::span<const uint8_t> body) : body_(body) {}

  void u8(uint8_t& v) { read(v); }
  void u16(uint16_t& v) { read(v); }
  void u32(uint32_t& v) { read(v); }
  void u64(uint64_t& v) { read(v); }

  void str8(std::string_view& v) {
    uint8_t size = 0;
    u8(size);
    std::span<const uint8_t> bytes = take(size);
    if (ok_) {
      v = {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
    }
  }

  // A fixed-size byte field (a hash, a signature), copied.
  template <size_t N>
  void fixed(std::array<uint8_t, N>& v) {
    std::span<const uint8_t> bytes = take(N);
    if (ok_) {
      std::copy(bytes.begin(), bytes.end(), v.begin());
    }
  }

  // The next `n` bytes as a view.
  std::span<const uint8_t> view(size_t n) { return take(n); }

  // Everything not read yet; afterwards the reader is at the end.
  std::span<const uint8_t> rest() { return take(body_.size() - pos_); }

  bool ok() const { return ok_; }
  // True when every read fitted and nothing is left over.
  bool finished() const { return ok_ && pos_ == body_.size(); }

 private:
  template <typename T>
  void read(T& v) {
    std::span<const uint8_t> bytes = take(sizeof(T));
    if (ok_) {
      v = loadBigEndian<T>(bytes.data());
    }
  }

  std::span<const uint8_t> take(size_t n) {
    if (!ok_ || n > body_.size() - pos_) {
      ok_ = false;
      return {};
    }
    std::span<const uint8_t> bytes = body_.subspan(pos_, n);
    pos_ += n;
    return bytes;
  }

  std::span<const uint8_t> body_;
  size_t pos_ = 0;
  bool ok_ = true;
};

// Appends one frame to `out`: the header on construction, then the body fields. The body
// size is announced up front so the header is written once and `out` grows once; the
// destructor checks that the encoder wrote exactly that much.
class FrameWriter {
 public:
  FrameWriter(std::vector<uint8_t>& out, FrameType type, size_t bodySize)
      : out_(out), end_(out.size() + kHeaderSize + bodySize) {
    assert(bodySize < UINT32_MAX && "frame body does not fit the length field");
    out_.reserve(end_);
    u32(static_cast<uint32_t>(bodySize + 1));
    u8(static_cast<uint8_t>(type));
  }
  FrameWriter(const FrameWriter&) = delete;
  FrameWriter& operator=(const FrameWriter&) = delete;
  ~FrameWriter() { assert(out_.size() == end_ && "encoder wrote a different size than announced"); }

  void u8(uint8_t v) { out_.push_back(v); }
  void u16(uint16_t v) { write(v); }
  void u32(uint32_t v) { write(v); }
  void u64(uint64_t v) { write(v); }

  void str8(std::string_view v) {
    assert(v.size() <= kMaxStr8Length && "str8 field longer than 255 bytes");
    u8(static_cast<uint8_t>(v.size()));
    out_.insert(out_.end(), v.begin(), v.end());
  }

  void bytes(std::span<const uint8_t> v) { out_.insert(out_.end(), v.begin(), v.end()); }

 private:
  template <typename T>
  void write(T v) {
    for (size_t i = sizeof(T); i-- > 0;) {
      out_.push_back(static_cast<uint8_t>(v >> (8 * i)));
    }
  }

  std::vector<uint8_t>& out_;
  size_t end_;
};

}  // namespace impgate::protocol::wire
