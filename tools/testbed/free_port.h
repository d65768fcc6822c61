// A loopback TCP port that nothing listens on right now, for tests and benchmarks that start
// servers.
#pragma once

#include <cstdint>

namespace impgate::testbed {

// Binds 127.0.0.1:0, reads the port the kernel chose and closes the socket. Another process
// may take the port before the caller binds it; callers that can should bind port 0 directly.
// Returns 0 if no socket could be bound.
uint16_t freeLoopbackPort();

// True when something on 127.0.0.1:port accepts a TCP connection (which is then closed).
bool acceptsConnections(uint16_t port);

}  // namespace impgate::testbed
