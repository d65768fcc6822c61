// Small, checked wrappers around the socket calls the reactor needs.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "gateway/base/net/result.h"

namespace impgate::net {

// "HOST:PORT", "[v6]:PORT"; HOST may be a name that resolves locally.
struct Endpoint {
  sockaddr_storage addr{};
  socklen_t length = 0;
  std::string text() const;
};
Result<Endpoint> parseEndpoint(std::string_view hostPort);

// A non-blocking listening socket with SO_REUSEADDR (and SO_REUSEPORT when asked, so several
// gateway processes can share one port). Returns the socket, owned by the caller.
Result<int> listenOn(const Endpoint& endpoint, bool reusePort, int backlog);
// The port a bound socket actually got (for port 0).
uint16_t boundPort(int fd);

// Starts a non-blocking connect; an error on immediate failure, else the socket (owned by the
// caller). `source` (optional) binds a local address first, to spread load tests over
// 127.0.0.x.
Result<int> connectNonBlocking(const Endpoint& endpoint, const Endpoint* source);

// TCP_NODELAY: without it every handshake waits ~40 ms on a delayed ACK.
void setNoDelay(int fd);
// The pending SO_ERROR of a socket (0 when none).
int socketError(int fd);

}  // namespace impgate::net
