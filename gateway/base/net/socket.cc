#include "gateway/base/net/socket.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/tcp.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace impgate::net {

std::string Endpoint::text() const {
  char host[INET6_ADDRSTRLEN] = {};
  uint16_t port = 0;
  if (addr.ss_family == AF_INET) {
    auto* a = reinterpret_cast<const sockaddr_in*>(&addr);
    inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
    port = ntohs(a->sin_port);
    return std::string(host) + ":" + std::to_string(port);
  }
  auto* a = reinterpret_cast<const sockaddr_in6*>(&addr);
  inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
  port = ntohs(a->sin6_port);
  return "[" + std::string(host) + "]:" + std::to_string(port);
}

Result<Endpoint> parseEndpoint(std::string_view hostPort) {
  std::string_view host, port;
  if (!hostPort.empty() && hostPort.front() == '[') {
    auto close = hostPort.find(']');
    if (close == std::string_view::npos || close + 1 >= hostPort.size() ||
        hostPort[close + 1] != ':') {
      return Error{ErrorCode::kInvalidAddress,
                   "expected [v6-address]:port, got '" + std::string(hostPort) + "'"};
    }
    host = hostPort.substr(1, close - 1);
    port = hostPort.substr(close + 2);
  } else {
    auto colon = hostPort.rfind(':');
    if (colon == std::string_view::npos) {
      return Error{ErrorCode::kInvalidAddress,
                   "expected host:port, got '" + std::string(hostPort) + "'"};
    }
    host = hostPort.substr(0, colon);
    port = hostPort.substr(colon + 1);
  }
  if (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != port.npos ||
      std::stoul(std::string(port)) > 65535) {
    return Error{ErrorCode::kInvalidAddress, "invalid port in '" + std::string(hostPort) + "'"};
  }
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* result = nullptr;
  std::string hostText = host.empty() ? "0.0.0.0" : std::string(host);
  int rc = getaddrinfo(hostText.c_str(), std::string(port).c_str(), &hints, &result);
  if (rc != 0 || !result) {
    return Error{ErrorCode::kResolve, "cannot resolve '" + hostText + "': " + gai_strerror(rc)};
  }
  Endpoint ep;
  std::memcpy(&ep.addr, result->ai_addr, result->ai_addrlen);
  ep.length = result->ai_addrlen;
  freeaddrinfo(result);
  return ep;
}

Result<int> listenOn(const Endpoint& endpoint, bool reusePort, int backlog) {
  int fd = ::socket(endpoint.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return Error{ErrorCode::kSocket, std::string("socket: ") + std::strerror(errno)};
  }
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (reusePort) ::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&endpoint.addr), endpoint.length) != 0 ||
      ::listen(fd, backlog) != 0) {
    Error error{ErrorCode::kSocket,
                "cannot listen on " + endpoint.text() + ": " + std::strerror(errno)};
    ::close(fd);
    return error;
  }
  return fd;
}

uint16_t boundPort(int fd) {
  sockaddr_storage addr{};
  socklen_t len = sizeof addr;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) return 0;
  if (addr.ss_family == AF_INET) return ntohs(reinterpret_cast<sockaddr_in*>(&addr)->sin_port);
  return ntohs(reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port);
}

Result<int> connectNonBlocking(const Endpoint& endpoint, const Endpoint* source) {
  int fd = ::socket(endpoint.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return Error{ErrorCode::kSocket, std::string("socket: ") + std::strerror(errno)};
  }
  if (source) {
    int one = 1;
    // Lets the kernel pick the port at connect time, so one source address serves many
    // destinations without exhausting ephemeral ports at bind().
    ::setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    if (::bind(fd, reinterpret_cast<const sockaddr*>(&source->addr), source->length) != 0) {
      Error error{ErrorCode::kSocket,
                  "cannot bind source " + source->text() + ": " + std::strerror(errno)};
      ::close(fd);
      return error;
    }
  }
  setNoDelay(fd);
  int rc = ::connect(fd, reinterpret_cast<const sockaddr*>(&endpoint.addr), endpoint.length);
  if (rc != 0 && errno != EINPROGRESS) {
    Error error{ErrorCode::kSocket,
                "cannot connect to " + endpoint.text() + ": " + std::strerror(errno)};
    ::close(fd);
    return error;
  }
  return fd;
}

void setNoDelay(int fd) {
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

int socketError(int fd) {
  int err = 0;
  socklen_t len = sizeof err;
  ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
  return err;
}

}  // namespace impgate::net
