// BlockingDevice: a DeviceClient on its own thread behind a synchronous API, for command-line
// tools (impdev send / listen) and integration tests.
//
// Every call is thread-safe and waits with a deadline; none blocks forever. Calls that take no
// timeout of their own (log, writeRaw, resumed, disconnect, and the first step of connect and
// send) wait at most `callTimeout` for the device thread, and report a failure when it is
// busy for longer; a call that timed out is dropped and never runs later. Creating one sets
// SIGPIPE to be ignored in the process (see DeviceClient).
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "gateway/device/device_client.h"
#include "gateway/device/result.h"

namespace impgate::device {

struct BlockingDeviceConfig {
  DeviceOptions options;
  std::string caFile;    // verifies the gateway
  std::string certFile;  // device certificate
  std::string keyFile;
  bool allowTls12 = false;
  // How long a call waits for the device thread to run it.
  std::chrono::milliseconds callTimeout{5000};
};

struct ReceivedMessage {
  std::string event;
  std::string payload;
};

class BlockingDevice {
 public:
  ~BlockingDevice();

  // Loads credentials and starts the device thread; kCredentials on bad credentials, kTls
  // when the TLS context cannot be made.
  static Result<std::unique_ptr<BlockingDevice>> create(const BlockingDeviceConfig& config);

  // Connects and waits for WELCOME. kOffline with the reason the link went down (e.g.
  // "tls: ...", "bye:..."), kTimeout without WELCOME in time, or kBusy ("device thread busy")
  // when it could not even start within callTimeout.
  Status connect(std::chrono::milliseconds timeout);
  // Sends and, when `ackWanted`, waits for the gateway's ACK. Returns the ACK status (kOk when
  // no ACK was wanted and the frame was written); kNotSent when the client refused the frame,
  // kTimeout without an ACK in time, kOffline when the link went down first, kBusy.
  Result<protocol::AckStatus> send(const std::string& event, const std::string& payload,
                                   bool ackWanted, std::chrono::milliseconds timeout);
  // False when the link is down or the device thread did not take the call in time.
  bool log(protocol::LogLevel level, const std::string& text);
  // False when the device thread did not take the bytes in time.
  bool writeRaw(std::string bytes);
  // The next agent message, waiting at most `timeout`.
  std::optional<ReceivedMessage> nextMessage(std::chrono::milliseconds timeout);
  // The next code push event (options.codePush set), waiting at most `timeout`.
  std::optional<CodeEvent> nextCodeEvent(std::chrono::milliseconds timeout);
  // Whether the client set kCapCodePush (options.codePush has a key and a store).
  bool codePushEnabled() const { return codePush_; }
  // Waits until the link is down; returns the reason, or nullopt on timeout.
  std::optional<std::string> waitOffline(std::chrono::milliseconds timeout);
  bool online();
  // False also when the device thread did not answer in time.
  bool resumed();
  // Sends BYE and closes; false when the device thread did not take the call in time (the
  // link is then closed when the BlockingDevice is destroyed).
  bool disconnect();

 private:
  BlockingDevice() = default;
  // Runs `fn` on the device thread and waits at most callTimeout_ for it. False when it timed
  // out before the device thread started it: `fn` is then never run, so it may safely refer
  // to the caller's locals. Once started, `fn` (non-blocking work) is waited for.
  bool call(const std::function<void()>& fn);

  std::chrono::milliseconds callTimeout_{5000};
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
  std::deque<CodeEvent> codeEvents_;
  bool codePush_ = false;
};

}  // namespace impgate::device
