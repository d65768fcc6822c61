#include "gateway/base/protocol/frame.h"

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
