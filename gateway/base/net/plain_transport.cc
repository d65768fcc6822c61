#include "gateway/base/net/plain_transport.h"

#include <sys/socket.h>

#include <cerrno>
#include <cstring>

namespace impgate::net {

IoResult PlainTransport::failed(int err) {
  if (err == EAGAIN || err == EWOULDBLOCK) return {IoStatus::kWantRead, 0};
  lastError_ = std::strerror(err);
  return {IoStatus::kError, 0};
}

IoResult PlainTransport::read(std::span<uint8_t> into) {
  for (;;) {
    ssize_t n = ::recv(fd_, into.data(), into.size(), 0);
    if (n > 0) return {IoStatus::kOk, static_cast<std::size_t>(n)};
    if (n == 0) return {IoStatus::kClosed, 0};
    if (errno != EINTR) return failed(errno);
  }
}

IoResult PlainTransport::write(std::span<const uint8_t> from) {
  for (;;) {
    ssize_t n = ::send(fd_, from.data(), from.size(), MSG_NOSIGNAL);
    if (n >= 0) return {IoStatus::kOk, static_cast<std::size_t>(n)};
    if (errno == EAGAIN || errno == EWOULDBLOCK) return {IoStatus::kWantWrite, 0};
    if (errno != EINTR) return failed(errno);
  }
}

void PlainTransport::shutdown() {
  ::shutdown(fd_, SHUT_WR);
}

}  // namespace impgate::net
