#include "gateway/base/net/tls_transport.h"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "gateway/base/pki/device_identity.h"

namespace impgate::net {

std::unique_ptr<TlsTransport> TlsTransport::accept(const TlsContext& ctx, int fd) {
  SSL* ssl = SSL_new(ctx.get());
  if (!ssl) return nullptr;
  std::unique_ptr<TlsTransport> t(new TlsTransport(ssl));
  if (SSL_set_fd(ssl, fd) != 1) return nullptr;
  SSL_set_accept_state(ssl);
  return t;
}

std::unique_ptr<TlsTransport> TlsTransport::connect(const TlsContext& ctx, int fd,
                                                    const std::string& serverName,
                                                    SSL_SESSION* session) {
  SSL* ssl = SSL_new(ctx.get());
  if (!ssl) return nullptr;
  std::unique_ptr<TlsTransport> t(new TlsTransport(ssl));
  if (SSL_set_fd(ssl, fd) != 1) return nullptr;
  in6_addr probe{};
  bool isIp = inet_pton(AF_INET, serverName.c_str(), &probe) == 1 ||
              inet_pton(AF_INET6, serverName.c_str(), &probe) == 1;
  if (isIp) {
    X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), serverName.c_str());
  } else {
    SSL_set_tlsext_host_name(ssl, serverName.c_str());
    SSL_set1_host(ssl, serverName.c_str());
  }
  if (session) SSL_set_session(ssl, session);
  SSL_set_connect_state(ssl);
  return t;
}

TlsTransport::~TlsTransport() {
  // Freeing an SSL that was never shut down marks its session not resumable; a device whose
  // link simply dropped must still resume, so record the shutdown as done.
  SSL_set_shutdown(ssl_, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
  SSL_free(ssl_);
}

IoStatus TlsTransport::classify(int ret) {
  int err = SSL_get_error(ssl_, ret);
  switch (err) {
    case SSL_ERROR_WANT_READ:
      return IoStatus::kWantRead;
    case SSL_ERROR_WANT_WRITE:
      return IoStatus::kWantWrite;
    case SSL_ERROR_ZERO_RETURN:
      return IoStatus::kClosed;
    case SSL_ERROR_SYSCALL:
      // With OpenSSL 3 an unexpected EOF is reported as SSL_ERROR_SSL; errno-level failures
      // land here.
      lastError_ = ERR_peek_error() ? takeOpenSslError() : "connection reset";
      ERR_clear_error();
      return IoStatus::kError;
    default: {
      long verify = SSL_get_verify_result(ssl_);
      lastError_ = takeOpenSslError();
      if (verify != X509_V_OK) {
        lastError_ += std::string(" (certificate: ") + X509_verify_cert_error_string(verify) + ")";
      }
      return IoStatus::kError;
    }
  }
}

IoStatus TlsTransport::handshake() {
  ERR_clear_error();
  int ret = SSL_do_handshake(ssl_);
  if (ret != 1) return classify(ret);
  if (SSL_is_server(ssl_)) {
    // Verification ran only if this was a full handshake; a resumed session brings the
    // certificate of its first handshake, which may have expired or been revoked since.
    const TlsContext* ctx = contextOf(ssl_);
    std::string refused =
        ctx ? ctx->refusePeer(SSL_get0_peer_certificate(ssl_)) : std::string("no TLS context");
    if (!refused.empty()) {
      lastError_ = refused + (resumed() ? " (resumed session)" : "");
      return IoStatus::kError;
    }
  }
  return IoStatus::kOk;
}

IoResult TlsTransport::read(std::span<uint8_t> into) {
  ERR_clear_error();
  size_t n = 0;
  int ret = SSL_read_ex(ssl_, into.data(), into.size(), &n);
  if (ret == 1) return {IoStatus::kOk, n};
  return {classify(ret), 0};
}

IoResult TlsTransport::write(std::span<const uint8_t> from) {
  ERR_clear_error();
  size_t n = 0;
  int ret = SSL_write_ex(ssl_, from.data(), from.size(), &n);
  if (ret == 1) return {IoStatus::kOk, n};
  return {classify(ret), 0};
}

void TlsTransport::shutdown() {
  ERR_clear_error();
  SSL_shutdown(ssl_);
  ERR_clear_error();
}

std::string TlsTransport::peerIdentity() const {
  X509* cert = SSL_get0_peer_certificate(ssl_);
  if (!cert) return {};
  return pki::deviceIdFromCertificate(cert).value_or(std::string{});
}

std::string TlsTransport::peerGroup() const {
  X509* cert = SSL_get0_peer_certificate(ssl_);
  if (!cert) return {};
  return pki::deviceGroupFromCertificate(cert).value_or(std::string{});
}

bool TlsTransport::resumed() const {
  return SSL_session_reused(ssl_) == 1;
}

bool TlsTransport::requestKeyUpdate() {
  return SSL_version(ssl_) >= TLS1_3_VERSION && SSL_key_update(ssl_, SSL_KEY_UPDATE_REQUESTED) == 1;
}

bool TlsTransport::useCredentials(X509* cert, EVP_PKEY* key) {
  return SSL_use_certificate(ssl_, cert) == 1 && SSL_use_PrivateKey(ssl_, key) == 1;
}

SSL_SESSION* TlsTransport::takeSession() const {
  SSL_SESSION* s = SSL_get1_session(ssl_);
  if (s && !SSL_SESSION_is_resumable(s)) {
    SSL_SESSION_free(s);
    return nullptr;
  }
  return s;
}

}  // namespace impgate::net
