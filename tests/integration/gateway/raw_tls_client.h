// RawTlsClient: a deliberately dumb, blocking TLS (or plain TCP) client for tests that must
// misbehave in ways the device SDK never would: stall a handshake, send malformed frames, go
// silent, present a foreign certificate.
#pragma once

#include <openssl/ssl.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "gateway/base/protocol/codec.h"

namespace impgate::testing {

class RawTlsClient {
 public:
  ~RawTlsClient();

  // Opens a TCP connection to 127.0.0.1:port; false when refused.
  bool connectTcp(uint16_t port);
  // Completes a TLS handshake with the given credentials (trusting `caFile`). Returns false
  // with `error` when the handshake fails.
  bool handshake(const std::string& caFile, const std::string& certFile, const std::string& keyFile,
                 std::string& error);
  // Writes bytes over TLS when handshaken, else on the raw socket.
  bool send(const std::vector<uint8_t>& bytes);
  bool sendHello();

  // Reads frames until a BYE arrives or the connection closes, or the deadline passes.
  // Returns the BYE reason when one came.
  struct Ending {
    bool closed = false;                     // the gateway closed the connection
    std::optional<protocol::ByeReason> bye;  // the BYE it sent first, if any
    bool welcomed = false;                   // a WELCOME arrived on the way
  };
  Ending readUntilClosed(std::chrono::milliseconds deadline);

  int fd() const { return fd_; }

 private:
  int fd_ = -1;
  SSL_CTX* ctx_ = nullptr;
  SSL* ssl_ = nullptr;
};

}  // namespace impgate::testing
