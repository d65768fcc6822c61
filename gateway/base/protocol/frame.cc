#include "gateway/base/protocol/frame.h"

#include <cassert>

#include "gateway/base/protocol/wire.h"

namespace impgate::protocol {

std::string_view frameTypeName(uint8_t type) {
  switch (static_cast<FrameType>(type)) {
    case FrameType::kHello:
      return "hello";
    case FrameType::kWelcome:
      return "welcome";
    case FrameType::kMsg:
      return "msg";
    case FrameType::kAck:
      return "ack";
    case FrameType::kPing:
      return "ping";
    case FrameType::kPong:
      return "pong";
    case FrameType::kLog:
      return "log";
    case FrameType::kBye:
      return "bye";
    case FrameType::kCodeOffer:
      return "code_offer";
    case FrameType::kCodeGet:
      return "code_get";
    case FrameType::kCodeData:
      return "code_data";
    case FrameType::kCodeResult:
      return "code_result";
  }
  return "unknown";
}

std::string_view ackStatusName(AckStatus status) {
  switch (status) {
    case AckStatus::kOk:
      return "ok";
    case AckStatus::kFailed:
      return "failed";
    case AckStatus::kRejected:
      return "rejected";
  }
  return "unknown";
}

std::string_view codeResultStatusName(CodeResultStatus status) {
  switch (status) {
    case CodeResultStatus::kInstalled:
      return "installed";
    case CodeResultStatus::kDeferred:
      return "deferred";
    case CodeResultStatus::kFailed:
      return "failed";
  }
  return "unknown";
}

CodeChunkList::CodeChunkList(std::span<const uint8_t> raw) : raw_(raw) {
  assert(raw.size() % kCodeChunkEntrySize == 0 && "a chunk list holds whole entries");
}

CodeChunkRef CodeChunkList::chunk(size_t i) const {
  assert(i < size());
  const uint8_t* entry = raw_.data() + i * kCodeChunkEntrySize;
  CodeChunkRef ref;
  std::copy(entry, entry + ref.sha.size(), ref.sha.begin());
  ref.length = wire::loadBigEndian<uint32_t>(entry + ref.sha.size());
  return ref;
}

void appendCodeChunk(const CodeChunkRef& chunk, std::vector<uint8_t>& out) {
  out.insert(out.end(), chunk.sha.begin(), chunk.sha.end());
  for (int shift = 24; shift >= 0; shift -= 8) {
    out.push_back(static_cast<uint8_t>(chunk.length >> shift));
  }
}

std::string_view logLevelName(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug:
      return "debug";
    case LogLevel::kInfo:
      return "info";
    case LogLevel::kWarn:
      return "warn";
    case LogLevel::kError:
      return "error";
  }
  return "unknown";
}

}  // namespace impgate::protocol
