// One MQTT 3.1.1 client over mutual TLS on an EventLoop, with just enough protocol for the
// mosquitto baselines: connect, present the device's certificate, send CONNECT (clean session,
// no keepalive), wait for CONNACK, then either sit idle (`impbench connections`) or exchange
// packets the owner encodes with bus/mqtt's codec (`impbench messages`: send() writes at once,
// like DeviceClient::send, and every packet that arrives after CONNACK goes to onPacket), and
// leave with DISCONNECT. It keeps the TLS
// session it was given and offers it on the next connect, like a DeviceClient, whose connect
// and handshake steps it takes (gateway/device/tls_client_connect.h).
//
// All calls run on the loop's thread. Events must not destroy the client; the pool that owns
// it destroys it outside callbacks.
#pragma once

#include <openssl/ssl.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "bus/mqtt/mqtt_codec.h"
#include "gateway/base/net/event_loop.h"
#include "gateway/base/net/socket.h"
#include "gateway/base/net/tls_context.h"
#include "gateway/base/net/tls_transport.h"
#include "gateway/device/device_credentials.h"

namespace impgate::bench {

class MqttTlsClient final : public net::IoHandler {
 public:
  enum class State { kIdle, kConnecting, kHandshake, kAwaitConnack, kConnected };

  struct Events {
    std::function<void()> onConnected;                        // CONNACK accepted
    std::function<void(const std::string& reason)> onFailed;  // the connection ended unasked
    // A complete packet after CONNACK; its body is valid only during the call.
    std::function<void(const bus::mqtt::Packet& packet)> onPacket;
  };

  MqttTlsClient(net::EventLoop& loop, const net::TlsContext& tls,
                std::shared_ptr<device::DeviceCredentials> credentials, std::string clientId,
                net::Endpoint broker, std::optional<net::Endpoint> source, Events events);
  ~MqttTlsClient() override;
  MqttTlsClient(const MqttTlsClient&) = delete;
  MqttTlsClient& operator=(const MqttTlsClient&) = delete;

  // Starts connecting; the outcome arrives as onConnected or onFailed. There is no timeout of
  // its own: a broker that never answers is caught by the deadline of the wave.
  void connect();
  // Sends DISCONNECT and close_notify (best effort) and closes. No event follows.
  void disconnect();

  // Writes encoded packets now (what the transport does not take waits for EPOLLOUT). Only
  // while connected; otherwise the bytes are dropped and false returned.
  bool send(std::span<const uint8_t> bytes);

  void onIoEvents(uint32_t events) override;

  State state() const { return state_; }
  bool resumed() const { return resumed_; }

 private:
  void onSocketConnected();
  void driveHandshake();
  void flush();
  void readAvailable();
  // Fails the connection (fd_ < 0 afterwards) when epoll refuses the change.
  void watchFor(uint32_t events);
  void fail(const std::string& reason);
  void closeSocket();

  net::EventLoop& loop_;
  const net::TlsContext& tls_;
  std::shared_ptr<device::DeviceCredentials> credentials_;
  std::string clientId_;
  net::Endpoint broker_;
  std::optional<net::Endpoint> source_;
  Events events_;
  std::unique_ptr<net::TlsTransport> transport_;
  SSL_SESSION* session_ = nullptr;  // offered on the next connect
  std::vector<uint8_t> output_;     // CONNECT bytes not yet written
  std::size_t written_ = 0;
  std::vector<uint8_t> input_;  // received bytes not yet a complete packet
  int fd_ = -1;
  uint32_t interest_ = 0;
  State state_ = State::kIdle;
  bool resumed_ = false;
};

}  // namespace impgate::bench
