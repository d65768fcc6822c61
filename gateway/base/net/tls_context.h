// TLS configuration shared by many connections: one SSL_CTX for the gateway's listener
// (server, mutual TLS) or for devices (client).
//
// Built once at start-up; creation failures are returned as an Error (net/result.h), never
// thrown.
#pragma once

#include <openssl/ssl.h>

#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "gateway/base/net/result.h"

namespace impgate::net {

struct TlsServerOptions {
  std::string certFile;      // the gateway's certificate chain (PEM)
  std::string keyFile;       // its private key (PEM)
  std::string clientCaFile;  // the fleet CA that issues device certificates
  bool allowTls12 = false;   // TLS 1.3 only unless set
  bool sessionTickets = true;
};

struct TlsClientOptions {
  std::string caFile;    // verifies the server's certificate; empty = the system's trust store
  std::string certFile;  // the device's certificate; may be empty when set per connection
  std::string keyFile;
  bool allowTls12 = false;
};

// Answers whether the device certificate with this device id and serial (upper-case hex, as
// pki::serialHex prints it) is revoked. Runs on the reactor thread of every server-side
// handshake, full or resumed, so it must be quick.
using RevocationCheck = std::function<bool(std::string_view deviceId, std::string_view serialHex)>;

class TlsContext {
 public:
  ~TlsContext();
  TlsContext(const TlsContext&) = delete;
  TlsContext& operator=(const TlsContext&) = delete;

  // ErrorCode::kTls when OpenSSL refuses the context or one of the files.
  static Result<std::unique_ptr<TlsContext>> server(const TlsServerOptions& options);
  static Result<std::unique_ptr<TlsContext>> client(const TlsClientOptions& options);

  SSL_CTX* get() const { return ctx_; }

  // Server side: consulted on every handshake (full or resumed) and before a ticket is
  // accepted. Set before the first connection; the revocation feature itself builds on this.
  void setRevocationCheck(RevocationCheck check) { revoked_ = std::move(check); }

  // Server side: why `peer`, the device certificate of a connection or of a session offered
  // for resumption, may not be used now (not yet valid, expired, revoked, missing); empty
  // when it may. TLS verification checks this on full handshakes only; a resumed session
  // carries the certificate from its first handshake, so it is checked again here.
  std::string refusePeer(X509* peer) const;

 private:
  explicit TlsContext(SSL_CTX* ctx) : ctx_(ctx) {}
  SSL_CTX* ctx_;
  RevocationCheck revoked_;
};

// The TlsContext an SSL_CTX was created for (set by TlsContext::server/client).
const TlsContext* contextOf(const SSL* ssl);

// The newest OpenSSL error queue entry as text (and clears the queue).
std::string takeOpenSslError();

}  // namespace impgate::net
