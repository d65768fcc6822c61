// Plain TCP as a Transport: for the links that run without TLS on a trusted network, such as
// the gateway's connection to a broker on loopback (tcp://). Devices always use TlsTransport.
#pragma once

#include "gateway/base/net/transport.h"

namespace impgate::net {

class PlainTransport final : public Transport {
 public:
  // Does not own `fd`.
  explicit PlainTransport(int fd) : fd_(fd) {}

  IoStatus handshake() override { return IoStatus::kOk; }
  IoResult read(std::span<uint8_t> into) override;
  IoResult write(std::span<const uint8_t> from) override;
  void shutdown() override;
  std::string peerIdentity() const override { return {}; }
  bool resumed() const override { return false; }
  std::string lastError() const override { return lastError_; }

 private:
  IoResult failed(int err);

  int fd_;
  std::string lastError_;
};

}  // namespace impgate::net
