// The kernel's view of loopback TCP ports, read without connecting: whether a server listens
// yet, and whether a client holds a connection to it. impbench uses it to see that a server is
// ready without opening a connection the server would count or log.
#pragma once

#include <cstddef>
#include <cstdint>

namespace impgate::bench {

// True when some socket listens on IPv4 `port` (/proc/net/tcp, state LISTEN).
bool isListening(uint16_t port);
// The number of ESTABLISHED IPv4 sockets whose remote end is `port`: the clients of a server.
std::size_t establishedTo(uint16_t port);
// A port on 127.0.0.1 that nothing is bound to right now (bind port 0, read it, close). Another
// process may take it before the caller does; 0 when no socket could be bound.
uint16_t freeLoopbackPort();

}  // namespace impgate::bench
