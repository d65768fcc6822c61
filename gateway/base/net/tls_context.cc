#include "gateway/base/net/tls_context.h"

#include <openssl/err.h>
#include <openssl/x509.h>

#include <ctime>

#include "gateway/base/pki/certificate_info.h"
#include "gateway/base/pki/device_identity.h"

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

Status loadKeyPair(SSL_CTX* ctx, const std::string& cert, const std::string& key) {
  if (SSL_CTX_use_certificate_chain_file(ctx, cert.c_str()) != 1) {
    return Error{ErrorCode::kTls, "cannot load certificate " + cert + ": " + takeOpenSslError()};
  }
  if (SSL_CTX_use_PrivateKey_file(ctx, key.c_str(), SSL_FILETYPE_PEM) != 1 ||
      SSL_CTX_check_private_key(ctx) != 1) {
    return Error{ErrorCode::kTls, "cannot load private key " + key + ": " + takeOpenSslError()};
  }
  return {};
}

// Seconds from now until `t`; false when `t` cannot be read.
bool secondsUntil(const ASN1_TIME* t, long& seconds) {
  int days = 0;
  int secs = 0;
  if (ASN1_TIME_diff(&days, &secs, nullptr, t) != 1) return false;
  seconds = static_cast<long>(days) * 86400 + secs;
  return true;
}

// A ticket is about to be written for the connection's session: its lifetime (the session
// timeout, sent as the ticket lifetime hint and sealed into the ticket) must end no later
// than the device certificate. On resumption OpenSSL copies the old session, timeout
// included, with a fresh start time, so the bound is applied again for every new ticket.
int onTicketIssued(SSL* ssl, void* /*arg*/) {
  SSL_SESSION* session = SSL_get0_session(ssl);
  X509* peer = SSL_get0_peer_certificate(ssl);
  if (!session || !peer) return 1;
  long left = 0;
  if (!secondsUntil(X509_get0_notAfter(peer), left)) left = 0;
  // The session's clock starts now (OpenSSL resets it for every TLS 1.3 ticket).
  long now = static_cast<long>(std::time(nullptr));
  long elapsed = now - static_cast<long>(SSL_SESSION_get_time(session));
  if (elapsed < 0) elapsed = 0;
  long bound = left + elapsed;
  if (bound < 1) bound = 1;  // 0 would mean "no timeout" to some readers of the hint
  if (static_cast<long>(SSL_SESSION_get_timeout(session)) > bound) {
    SSL_SESSION_set_timeout(session, bound);
  }
  return 1;
}

// A ticket a device offers was decrypted: accept it only while its session has not timed out
// and the certificate inside it is still valid and not revoked. Ignoring it makes OpenSSL fall
// back to a full handshake, where verification refuses an expired certificate.
SSL_TICKET_RETURN onTicketDecrypted(SSL* ssl, SSL_SESSION* session, const unsigned char*, size_t,
                                    SSL_TICKET_STATUS status, void* /*arg*/) {
  switch (status) {
    case SSL_TICKET_SUCCESS:
    case SSL_TICKET_SUCCESS_RENEW:
      break;
    default:
      // No ticket or one we cannot decrypt: a full handshake, and a ticket at its end.
      return SSL_TICKET_RETURN_IGNORE_RENEW;
  }
  long now = static_cast<long>(std::time(nullptr));
  long issued = static_cast<long>(SSL_SESSION_get_time(session));
  if (now - issued >= static_cast<long>(SSL_SESSION_get_timeout(session))) {
    return SSL_TICKET_RETURN_IGNORE_RENEW;
  }
  const TlsContext* ctx = contextOf(ssl);
  if (!ctx || !ctx->refusePeer(SSL_SESSION_get0_peer(session)).empty()) {
    return SSL_TICKET_RETURN_IGNORE_RENEW;
  }
  return status == SSL_TICKET_SUCCESS_RENEW ? SSL_TICKET_RETURN_USE_RENEW : SSL_TICKET_RETURN_USE;
}

}  // namespace

const TlsContext* contextOf(const SSL* ssl) {
  return static_cast<const TlsContext*>(SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl)));
}

std::string TlsContext::refusePeer(X509* peer) const {
  if (!peer) return "no device certificate";
  if (X509_cmp_current_time(X509_get0_notBefore(peer)) >= 0) {
    return "device certificate not yet valid";
  }
  if (X509_cmp_current_time(X509_get0_notAfter(peer)) <= 0) {
    return "device certificate expired";
  }
  if (revoked_) {
    std::string id = pki::deviceIdFromCertificate(peer).value_or(std::string{});
    if (revoked_(id, pki::serialHex(peer))) return "device certificate revoked";
  }
  return {};
}

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

Result<std::unique_ptr<TlsContext>> TlsContext::server(const TlsServerOptions& options) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
  if (!ctx) {
    return Error{ErrorCode::kTls, "cannot create TLS context: " + takeOpenSslError()};
  }
  std::unique_ptr<TlsContext> owner(new TlsContext(ctx));
  SSL_CTX_set_app_data(ctx, owner.get());
  applyCommon(ctx, options.allowTls12);
  if (Status loaded = loadKeyPair(ctx, options.certFile, options.keyFile); !loaded) {
    return loaded.error();
  }

  // Mutual TLS: every device presents a certificate issued by the fleet CA.
  if (SSL_CTX_load_verify_locations(ctx, options.clientCaFile.c_str(), nullptr) != 1) {
    return Error{ErrorCode::kTls,
                 "cannot load fleet CA " + options.clientCaFile + ": " + takeOpenSslError()};
  }
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  SSL_CTX_set_verify_depth(ctx, 4);
  SSL_CTX_set_session_id_context(ctx, kSessionIdContext, sizeof kSessionIdContext - 1);

  // Resumption uses stateless tickets only: no server-side session cache grows with the fleet.
  // One ticket per handshake is enough for a device that keeps one connection.
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  if (options.sessionTickets) {
    SSL_CTX_set_num_tickets(ctx, 1);
    // A ticket never outlives the device certificate, and a ticket is only accepted while
    // that certificate is valid: resumption is no way around expiry (or revocation).
    SSL_CTX_set_session_ticket_cb(ctx, onTicketIssued, onTicketDecrypted, nullptr);
  } else {
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
    SSL_CTX_set_num_tickets(ctx, 0);
  }
  return owner;
}

Result<std::unique_ptr<TlsContext>> TlsContext::client(const TlsClientOptions& options) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  if (!ctx) {
    return Error{ErrorCode::kTls, "cannot create TLS context: " + takeOpenSslError()};
  }
  std::unique_ptr<TlsContext> owner(new TlsContext(ctx));
  SSL_CTX_set_app_data(ctx, owner.get());
  applyCommon(ctx, options.allowTls12);
  if (options.caFile.empty()) {
    if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
      return Error{ErrorCode::kTls, "cannot load the system's trusted CAs: " + takeOpenSslError()};
    }
  } else if (SSL_CTX_load_verify_locations(ctx, options.caFile.c_str(), nullptr) != 1) {
    return Error{ErrorCode::kTls, "cannot load CA " + options.caFile + ": " + takeOpenSslError()};
  }
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  if (!options.certFile.empty()) {
    if (Status loaded = loadKeyPair(ctx, options.certFile, options.keyFile); !loaded) {
      return loaded.error();
    }
  }
  // Sessions are kept by the caller (TlsTransport::takeSession), not in a context cache.
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
  return owner;
}

}  // namespace impgate::net
