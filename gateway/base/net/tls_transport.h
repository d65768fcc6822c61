// TLS over a non-blocking socket with OpenSSL: the Transport used by the gateway (server side,
// mutual TLS) and by the device SDK (client side).
//
// Per-connection memory is a headline figure: the SSL object runs with
// SSL_MODE_RELEASE_BUFFERS so an idle connection holds no record buffers, and this class adds
// only the SSL pointer.
#pragma once

#include <openssl/ssl.h>

#include <string>

#include "gateway/base/net/tls_context.h"
#include "gateway/base/net/transport.h"

namespace impgate::net {

class TlsTransport final : public Transport {
 public:
  // Server side: accepts on `fd`. Returns nullptr when OpenSSL cannot allocate.
  static std::unique_ptr<TlsTransport> accept(const TlsContext& ctx, int fd);
  // Client side: connects on `fd`, verifying the server against `serverName` (a DNS name or an
  // IP address). `session` (may be null) is offered for resumption; the transport takes no
  // ownership of it.
  static std::unique_ptr<TlsTransport> connect(const TlsContext& ctx, int fd,
                                               const std::string& serverName, SSL_SESSION* session);
  ~TlsTransport() override;

  IoStatus handshake() override;
  IoResult read(std::span<uint8_t> into) override;
  IoResult write(std::span<const uint8_t> from) override;
  void shutdown() override;
  std::string peerIdentity() const override;
  std::string peerGroup() const override;
  bool resumed() const override;
  std::string lastError() const override { return lastError_; }
  bool requestKeyUpdate() override;

  // Uses this certificate and key for this connection only (client side, many devices in one
  // process share one context).
  bool useCredentials(X509* cert, EVP_PKEY* key);
  // The session to offer next time (client side), with a reference the caller must free;
  // nullptr when none was issued.
  SSL_SESSION* takeSession() const;

 private:
  explicit TlsTransport(SSL* ssl) : ssl_(ssl) {}
  IoStatus classify(int ret);

  SSL* ssl_;
  std::string lastError_;
};

}  // namespace impgate::net
