#include "gateway/device/tls_client_connect.h"

#include <sys/epoll.h>

#include <cstring>

namespace impgate::device {

Result<int> startTcpConnect(const net::Endpoint& to, const std::optional<net::Endpoint>& from) {
  auto fd = net::connectNonBlocking(to, from ? &*from : nullptr);
  if (!fd) return Error{ErrorCode::kConnect, fd.error().message};
  return *fd;
}

Result<std::unique_ptr<net::TlsTransport>> startTlsClient(int fd, const net::TlsContext& tls,
                                                          const std::string& serverName,
                                                          SSL_SESSION* session,
                                                          const DeviceCredentials& credentials) {
  if (int err = net::socketError(fd); err != 0) {
    return Error{ErrorCode::kConnect, std::string("connect: ") + std::strerror(err)};
  }
  auto transport = net::TlsTransport::connect(tls, fd, serverName, session);
  if (!transport || !transport->useCredentials(credentials.certificate(), credentials.key())) {
    return Error{ErrorCode::kTls, "cannot set up TLS: " + net::takeOpenSslError()};
  }
  return transport;
}

HandshakeStep stepHandshake(net::Transport& transport) {
  HandshakeStep step;
  switch (transport.handshake()) {
    case net::IoStatus::kOk:
      step.done = true;
      break;
    case net::IoStatus::kWantRead:
      step.watch = EPOLLIN;
      break;
    case net::IoStatus::kWantWrite:
      step.watch = EPOLLIN | EPOLLOUT;
      break;
    default:
      step.error = "tls: " + transport.lastError();
      break;
  }
  return step;
}

}  // namespace impgate::device
