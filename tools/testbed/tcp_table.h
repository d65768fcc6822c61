// The kernel's view of loopback TCP ports, read without connecting: whether a server listens
// yet, and whether a client holds a connection to it. impbench and the test broker use it to see
// that a server is ready without opening a connection the server would count or log.
#pragma once

#include <cstddef>
#include <cstdint>

namespace impgate::testbed {

// True when some socket listens on IPv4 `port` (/proc/net/tcp, state LISTEN).
bool isListening(uint16_t port);
// The number of ESTABLISHED IPv4 sockets whose remote end is `port`: the clients of a server.
std::size_t establishedTo(uint16_t port);

}  // namespace impgate::testbed
