#include "tests/integration/gateway/raw_tls_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <variant>

#include "gateway/base/protocol/frame_reader.h"

namespace impgate::testing {

RawTlsClient::~RawTlsClient() {
  if (ssl_) SSL_free(ssl_);
  if (ctx_) SSL_CTX_free(ctx_);
  if (fd_ >= 0) ::close(fd_);
}

bool RawTlsClient::connectTcp(uint16_t port) {
  fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  int one = 1;
  ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  timeval tv{10, 0};
  ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
}

bool RawTlsClient::handshake(const std::string& caFile, const std::string& certFile,
                             const std::string& keyFile, std::string& error) {
  ctx_ = SSL_CTX_new(TLS_client_method());
  SSL_CTX_set_min_proto_version(ctx_, TLS1_2_VERSION);
  SSL_CTX_load_verify_locations(ctx_, caFile.c_str(), nullptr);
  SSL_CTX_set_verify(ctx_, SSL_VERIFY_PEER, nullptr);
  if (!certFile.empty()) {
    SSL_CTX_use_certificate_chain_file(ctx_, certFile.c_str());
    SSL_CTX_use_PrivateKey_file(ctx_, keyFile.c_str(), SSL_FILETYPE_PEM);
  }
  ssl_ = SSL_new(ctx_);
  SSL_set_fd(ssl_, fd_);
  if (SSL_connect(ssl_) != 1) {
    char buf[256];
    ERR_error_string_n(ERR_get_error(), buf, sizeof buf);
    error = buf;
    return false;
  }
  return true;
}

bool RawTlsClient::send(const std::vector<uint8_t>& bytes) {
  if (ssl_) {
    size_t n = 0;
    return SSL_write_ex(ssl_, bytes.data(), bytes.size(), &n) == 1 && n == bytes.size();
  }
  return ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL) ==
         static_cast<ssize_t>(bytes.size());
}

bool RawTlsClient::sendHello() {
  std::vector<uint8_t> out;
  protocol::encode(protocol::Hello{protocol::kVersion, 0, "raw"}, out);
  return send(out);
}

RawTlsClient::Ending RawTlsClient::readUntilClosed(std::chrono::milliseconds deadline) {
  Ending ending;
  protocol::FrameReader reader;
  auto until = std::chrono::steady_clock::now() + deadline;
  uint8_t buf[16384];
  while (std::chrono::steady_clock::now() < until) {
    bool pending = ssl_ && SSL_pending(ssl_) > 0;
    if (!pending) {
      pollfd p{fd_, POLLIN, 0};
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                      until - std::chrono::steady_clock::now())
                      .count();
      if (::poll(&p, 1, static_cast<int>(std::max<long>(left, 0))) <= 0) break;
    }
    size_t n = 0;
    if (ssl_) {
      if (SSL_read_ex(ssl_, buf, sizeof buf, &n) != 1) {
        int err = SSL_get_error(ssl_, 0);
        if (err == SSL_ERROR_WANT_READ) continue;
        ending.closed = true;
        return ending;
      }
    } else {
      ssize_t r = ::recv(fd_, buf, sizeof buf, 0);
      if (r <= 0) {
        ending.closed = true;
        return ending;
      }
      n = static_cast<size_t>(r);
    }
    reader.feed(std::span<const uint8_t>(buf, n), [&](uint8_t type, auto body) {
      protocol::Frame f;
      if (protocol::decode(type, body, f) != protocol::DecodeError::kNone) return true;
      if (auto* bye = std::get_if<protocol::Bye>(&f)) ending.bye = bye->reason;
      if (std::holds_alternative<protocol::Welcome>(f)) ending.welcomed = true;
      return true;
    });
  }
  return ending;
}

}  // namespace impgate::testing
