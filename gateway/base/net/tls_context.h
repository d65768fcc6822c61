// TLS configuration shared by many connections: one SSL_CTX for the gateway's listener
// (server, mutual TLS) or for devices (client).
//
// Built once at start-up; creation failures are returned as an error string, never thrown.
#pragma once

#include <openssl/ssl.h>

#include <memory>
#include <string>

namespace impgate::net {

struct TlsServerOptions {
  std::string certFile;      // the gateway's certificate chain (PEM)
  std::string keyFile;       // its private key (PEM)
  std::string clientCaFile;  // the fleet CA that issues device certificates
  bool allowTls12 = false;   // TLS 1.3 only unless set
  bool sessionTickets = true;
};

struct TlsClientOptions {
  std::string caFile;    // verifies the gateway's certificate
  std::string certFile;  // the device's certificate; may be empty when set per connection
  std::string keyFile;
  bool allowTls12 = false;
};

class TlsContext {
 public:
  ~TlsContext();
  TlsContext(const TlsContext&) = delete;
  TlsContext& operator=(const TlsContext&) = delete;

  // On failure returns nullptr and sets `error`.
  static std::unique_ptr<TlsContext> server(const TlsServerOptions& options, std::string& error);
  static std::unique_ptr<TlsContext> client(const TlsClientOptions& options, std::string& error);

  SSL_CTX* get() const { return ctx_; }

 private:
  explicit TlsContext(SSL_CTX* ctx) : ctx_(ctx) {}
  SSL_CTX* ctx_;
};

// The newest OpenSSL error queue entry as text (and clears the queue).
std::string takeOpenSslError();

}  // namespace impgate::net
