// The steps that take a device's TLS client from nothing to an established link, shared by
// DeviceClient (the imp protocol) and impbench's MQTT baseline client: a non-blocking TCP
// connect, then on the socket's first writability the TLS client with the device's credentials,
// then handshake steps until it completes. What the link carries afterwards is the caller's.
//
// Stateless: the caller owns the socket (watches it on its EventLoop, closes it), the transport
// and the session it resumes, and calls these on its loop's thread.
#pragma once

#include <openssl/ssl.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "gateway/base/net/socket.h"
#include "gateway/base/net/tls_context.h"
#include "gateway/base/net/tls_transport.h"
#include "gateway/base/net/transport.h"
#include "gateway/device/device_credentials.h"
#include "gateway/device/result.h"

namespace impgate::device {

// Step 1: starts connecting to `to`, from the local address `from` when given (load tests
// spread devices over several source addresses). Wait for EPOLLOUT, then call startTlsClient.
// The socket (the caller's), or ErrorCode::kConnect when the connect failed at once.
Result<int> startTcpConnect(const net::Endpoint& to, const std::optional<net::Endpoint>& from);

// Step 2, once the socket is writable: the connect's outcome, then a TLS client on `fd` that
// presents the device's certificate, verifies the server as `serverName` and offers `session`
// for resumption (may be null; not taken over). ErrorCode::kConnect ("connect: ...") or
// kTls ("cannot set up TLS: ...") when it cannot.
Result<std::unique_ptr<net::TlsTransport>> startTlsClient(int fd, const net::TlsContext& tls,
                                                          const std::string& serverName,
                                                          SSL_SESSION* session,
                                                          const DeviceCredentials& credentials);

// Step 3, now and whenever the socket is ready again: one turn of the handshake. `done` once it
// has completed; else `error` ("tls: ...") when it failed, else `watch` is what to wait for
// (epoll events).
struct HandshakeStep {
  bool done = false;
  uint32_t watch = 0;
  std::string error;
};
HandshakeStep stepHandshake(net::Transport& transport);

}  // namespace impgate::device
