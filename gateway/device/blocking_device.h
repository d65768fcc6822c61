// BlockingDevice: a DeviceClient on its own thread behind a synchronous API, for command-line
// tools (impdev send / listen) and integration tests.
//
// Every call is thread-safe and waits with a deadline; none blocks forever. Creating one sets
// SIGPIPE to be ignored in the process (see DeviceClient).
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "gateway/device/device_client.h"

namespace impgate::device {

struct BlockingDeviceConfig {
  DeviceOptions options;
  std::string caFile;    // verifies the gateway
  std::string certFile;  // device certificate
  std::string keyFile;
  bool allowTls12 = false;
};

struct ReceivedMessage {
  std::string event;
  std::string payload;
};

class BlockingDevice {
 public:
  ~BlockingDevice();

  // Loads credentials and starts the device thread; nullptr with `error` on bad credentials.
  static std::unique_ptr<BlockingDevice> create(const BlockingDeviceConfig& config,
                                                std::string& error);

  // Connects and waits for WELCOME. False with `error` (e.g. "tls: ...", "bye:...").
  bool connect(std::chrono::milliseconds timeout, std::string& error);
  // Sends and, when `ackWanted`, waits for the gateway's ACK. Returns the ACK status (kOk when
  // no ACK was wanted and the frame was written), or nullopt with `error` on timeout or when
  // the link is down.
  std::optional<protocol::AckStatus> send(const std::string& event, const std::string& payload,
                                          bool ackWanted, std::chrono::milliseconds timeout,
                                          std::string& error);
  bool log(protocol::LogLevel level, const std::string& text);
  void writeRaw(std::string bytes);
  // The next agent message, waiting at most `timeout`.
  std::optional<ReceivedMessage> nextMessage(std::chrono::milliseconds timeout);
  // Waits until the link is down; returns the reason, or nullopt on timeout.
  std::optional<std::string> waitOffline(std::chrono::milliseconds timeout);
  bool online();
  bool resumed();
  void disconnect();

 private:
  BlockingDevice() = default;
  // Runs `fn` on the device thread and waits for it.
  template <typename Fn>
  auto call(Fn&& fn) -> decltype(fn());

  net::EventLoop loop_;
  std::unique_ptr<net::TlsContext> tls_;
  std::unique_ptr<DeviceClient> client_;
  std::thread thread_;

  std::mutex mutex_;
  std::condition_variable changed_;
  bool online_ = false;
  std::optional<std::string> offlineReason_;
  std::deque<ReceivedMessage> inbox_;
  std::deque<std::pair<uint32_t, protocol::AckStatus>> acks_;
};

}  // namespace impgate::device
