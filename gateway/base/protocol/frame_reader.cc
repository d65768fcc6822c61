#include "gateway/base/protocol/frame_reader.h"

#include <algorithm>
#include <cstring>

namespace impgate::protocol {

static_assert(sizeof(FrameReader) <= 32, "FrameReader is kept per connection; keep it small");

size_t FrameReader::absorb(std::span<const uint8_t> data) {
  size_t used = 0;
  if (headerHave_ < kHeaderSize) {
    size_t n = std::min(kHeaderSize - headerHave_, data.size());
    if (n == 0) {
      return 0;
    }
    std::memcpy(header_ + headerHave_, data.data(), n);
    headerHave_ = static_cast<uint8_t>(headerHave_ + n);
    used = n;
    if (headerHave_ < kHeaderSize) {
      return used;
    }

    uint32_t length = loadLength(header_);
    if (DecodeError e = checkLength(length); e != DecodeError::kNone) {
      fail(e);
      return used;
    }
    bodySize_ = length - 1;
  }

  size_t n = std::min<size_t>(bodySize_ - bodyHave_, data.size() - used);
  if (n > 0) {
    reserveBody(bodyHave_ + static_cast<uint32_t>(n));
    std::memcpy(body_.get() + bodyHave_, data.data() + used, n);
    bodyHave_ += static_cast<uint32_t>(n);
    used += n;
  }
  return used;
}

void FrameReader::reserveBody(uint32_t need) {
  if (need <= bodyCapacity_) {
    return;
  }
  uint32_t capacity = std::max({need, kFirstChunk, bodyCapacity_ * 2});
  capacity = std::min(capacity, bodySize_);
  auto grown = std::make_unique_for_overwrite<uint8_t[]>(capacity);
  if (bodyHave_ > 0) {
    std::memcpy(grown.get(), body_.get(), bodyHave_);
  }
  body_ = std::move(grown);
  bodyCapacity_ = capacity;
}

void FrameReader::releasePartial() {
  body_.reset();
  bodyCapacity_ = 0;
  bodySize_ = 0;
  bodyHave_ = 0;
  headerHave_ = 0;
}

DecodeError FrameReader::fail(DecodeError error) {
  releasePartial();
  error_ = error;
  return error;
}

void FrameReader::stop() {
  releasePartial();
  stopped_ = true;
}

}  // namespace impgate::protocol
