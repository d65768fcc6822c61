#include "gateway/base/net/tls_context.h"

#include <openssl/err.h>

namespace impgate::net {
namespace {

// Devices that resume must present the same context id the session was created under.
constexpr unsigned char kSessionIdContext[] = "impgate/1";

void applyCommon(SSL_CTX* ctx, bool allowTls12) {
  SSL_CTX_set_min_proto_version(ctx, allowTls12 ? TLS1_2_VERSION : TLS1_3_VERSION);
  // Idle connections give their record buffers back: the main per-connection memory saving.
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
                            SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
}

bool loadKeyPair(SSL_CTX* ctx, const std::string& cert, const std::string& key,
                 std::string& error) {
  if (SSL_CTX_use_certificate_chain_file(ctx, cert.c_str()) != 1) {
    error = "cannot load certificate " + cert + ": " + takeOpenSslError();
    return false;
  }
  if (SSL_CTX_use_PrivateKey_file(ctx, key.c_str(), SSL_FILETYPE_PEM) != 1 ||
      SSL_CTX_check_private_key(ctx) != 1) {
    error = "cannot load private key " + key + ": " + takeOpenSslError();
    return false;
  }
  return true;
}

}  // namespace

std::string takeOpenSslError() {
  unsigned long code = ERR_get_error();
  unsigned long last = code;
  while (code != 0) {
    last = code;
    code = ERR_get_error();
  }
  if (last == 0) return "unknown TLS error";
  char buf[256];
  ERR_error_string_n(last, buf, sizeof buf);
  return buf;
}

TlsContext::~TlsContext() {
  SSL_CTX_free(ctx_);
}

std::unique_ptr<TlsContext> TlsContext::server(const TlsServerOptions& options,
                                               std::string& error) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
  if (!ctx) {
    error = "cannot create TLS context: " + takeOpenSslError();
    return nullptr;
  }
  std::unique_ptr<TlsContext> owner(new TlsContext(ctx));
  applyCommon(ctx, options.allowTls12);
  if (!loadKeyPair(ctx, options.certFile, options.keyFile, error)) return nullptr;

  // Mutual TLS: every device presents a certificate issued by the fleet CA.
  if (SSL_CTX_load_verify_locations(ctx, options.clientCaFile.c_str(), nullptr) != 1) {
    error = "cannot load fleet CA " + options.clientCaFile + ": " + takeOpenSslError();
    return nullptr;
  }
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  SSL_CTX_set_verify_depth(ctx, 4);
  SSL_CTX_set_session_id_context(ctx, kSessionIdContext, sizeof kSessionIdContext - 1);

  // Resumption uses stateless tickets only: no server-side session cache grows with the fleet.
  // One ticket per handshake is enough for a device that keeps one connection.
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  if (options.sessionTickets) {
    SSL_CTX_set_num_tickets(ctx, 1);
  } else {
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
    SSL_CTX_set_num_tickets(ctx, 0);
  }
  return owner;
}

std::unique_ptr<TlsContext> TlsContext::client(const TlsClientOptions& options,
                                               std::string& error) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  if (!ctx) {
    error = "cannot create TLS context: " + takeOpenSslError();
    return nullptr;
  }
  std::unique_ptr<TlsContext> owner(new TlsContext(ctx));
  applyCommon(ctx, options.allowTls12);
  if (SSL_CTX_load_verify_locations(ctx, options.caFile.c_str(), nullptr) != 1) {
    error = "cannot load CA " + options.caFile + ": " + takeOpenSslError();
    return nullptr;
  }
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  if (!options.certFile.empty() && !loadKeyPair(ctx, options.certFile, options.keyFile, error)) {
    return nullptr;
  }
  // Sessions are kept by the caller (TlsTransport::takeSession), not in a context cache.
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
  return owner;
}

}  // namespace impgate::net
