// DeviceClient: the device side of the imp protocol over TLS, non-blocking on an EventLoop.
//
// Used by impdev, by the simulator (thousands of clients on one loop) and by tests, and meant
// for real Linux devices. All methods run on the loop's thread. Handlers may call back into
// the client (send, disconnect) but must not destroy it; owners destroy clients outside
// handlers or through EventLoop::deferDelete.
//
// Writes go through OpenSSL's socket BIO: the application must ignore SIGPIPE (BlockingDevice
// does this for its users), or a gateway that resets the connection kills the process.
//
// Keepalive follows the gateway's WELCOME: the device pings after that many seconds of
// silence and drops the link after 1.5 times as long. With `reconnect` set, every drop,
// including one right after connecting, is followed by a reconnect after an exponential
// backoff with full jitter, resuming the TLS session when the gateway issued a ticket.
#pragma once

#include <openssl/ssl.h>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <span>
#include <string>

#include "gateway/base/net/event_loop.h"
#include "gateway/base/net/socket.h"
#include "gateway/base/net/tls_context.h"
#include "gateway/base/net/transport.h"
#include "gateway/base/protocol/codec.h"
#include "gateway/base/protocol/frame_reader.h"
#include "gateway/device/device_credentials.h"

namespace impgate::device {

struct DeviceOptions {
  std::string gateway = "127.0.0.1:31314";  // HOST:PORT
  std::string serverName;                   // name verified in the gateway certificate;
                                            // defaults to the host part of `gateway`
  std::string codeId;                       // reported in HELLO
  std::optional<net::Endpoint> source;      // local address to connect from (load tests)
  bool reconnect = false;
  std::chrono::milliseconds backoffMin{500};
  std::chrono::milliseconds backoffMax{30000};
  std::chrono::seconds connectTimeout{15};
};

enum class SendError { kNone, kNotConnected, kInvalidEvent, kTooLarge };

class DeviceClient final : public net::IoHandler {
 public:
  enum class State { kIdle, kConnecting, kHandshake, kHelloSent, kOnline, kWaiting };

  struct Handlers {
    std::function<void(const protocol::Welcome&)> onOnline;
    // The connection ended; `reason` is a short text (e.g. "bye:keepalive_timeout").
    std::function<void(const std::string& reason)> onOffline;
    std::function<void(std::string_view event, std::span<const uint8_t> payload)> onMessage;
    std::function<void(uint32_t id, protocol::AckStatus status)> onAck;
  };

  DeviceClient(net::EventLoop& loop, const net::TlsContext& tls,
               std::shared_ptr<DeviceCredentials> credentials, DeviceOptions options,
               Handlers handlers);
  ~DeviceClient() override;
  DeviceClient(const DeviceClient&) = delete;
  DeviceClient& operator=(const DeviceClient&) = delete;

  // Starts connecting. Failures are reported through onOffline (and retried if reconnecting).
  void connect();
  // Sends BYE and closes; no reconnect follows.
  void disconnect();

  // Sends a message to the agent. On success `id` is the message id an ACK will carry when
  // `ackWanted`.
  SendError send(std::string_view event, std::span<const uint8_t> payload, bool ackWanted,
                 uint32_t* id = nullptr);
  SendError log(protocol::LogLevel level, std::string_view text);
  // Writes raw bytes on the established link: for tests of the gateway's input checks.
  void writeRaw(std::span<const uint8_t> bytes);
  // Starts a TLS 1.3 key update that asks the gateway to update its keys too; it goes out
  // with the next read or write. False when not connected, not TLS 1.3, or while a write is
  // pending. For long-lived links, and for tests of the I/O paths.
  bool requestKeyUpdate();

  void onIoEvents(uint32_t events) override;

  State state() const { return state_; }
  bool online() const { return state_ == State::kOnline; }
  bool lastHandshakeResumed() const { return resumed_; }
  uint64_t connects() const { return connects_; }

 private:
  void startConnect();
  void onConnected();
  void driveHandshake();
  void readAvailable();
  void flushOutput();
  bool handleFrame(uint8_t type, std::span<const uint8_t> body);
  template <typename FrameT>
  void sendFrame(const FrameT& frame);
  void write(std::span<const uint8_t> bytes);
  void watchFor(uint32_t events);
  // Watches what the link needs now: input, unless a read waits for writability; output while
  // something is queued or a read waits for it.
  void updateInterest();
  void tick();
  void drop(const std::string& reason, bool sendBye);
  void scheduleReconnect();

  net::EventLoop& loop_;
  const net::TlsContext& tls_;
  std::shared_ptr<DeviceCredentials> credentials_;
  DeviceOptions options_;
  Handlers handlers_;
  std::optional<net::Endpoint> endpoint_;
  std::unique_ptr<net::Transport> transport_;
  SSL_SESSION* session_ = nullptr;  // for resumption on the next connect
  protocol::FrameReader reader_;
  std::vector<uint8_t> output_;
  std::vector<uint8_t> scratch_;
  int fd_ = -1;
  uint32_t interest_ = 0;
  State state_ = State::kIdle;
  bool resumed_ = false;
  bool pingOutstanding_ = false;
  // TLS may need the other direction to make progress (as Redis tracks it): a read that must
  // first write waits for EPOLLOUT, a write that must first read waits for EPOLLIN; that event
  // then resumes the blocked operation.
  bool readWantsWrite_ = false;
  bool writeWantsRead_ = false;
  uint32_t nextId_ = 1;
  uint64_t connects_ = 0;
  std::chrono::seconds keepalive_{60};
  net::EventLoop::Clock::time_point lastReceived_;
  net::EventLoop::Clock::time_point stateSince_;
  std::chrono::milliseconds backoff_{0};
  net::EventLoop::TimerId tickTimer_ = 0;
  net::EventLoop::TimerId reconnectTimer_ = 0;
  std::minstd_rand rng_;
};

std::string_view sendErrorName(SendError e);

}  // namespace impgate::device
