// Gateway: one impgate node's device side. Accepts TLS connections, owns every DeviceSession,
// routes agent messages to the session holding the device, and keeps presence on the bus.
//
// Runs entirely on one reactor thread (the EventLoop it is given). The bus reaches it through
// DeviceBusListener callbacks, which MqttBridge posts onto that same thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "bus/device_bus/device_bus.h"
#include "gateway/base/net/event_loop.h"
#include "gateway/base/net/tls_context.h"
#include "gateway/daemon/device_session.h"
#include "gateway/daemon/gateway_config.h"
#include "gateway/daemon/gateway_stats.h"

namespace impgate::gateway {

class Gateway final : public net::IoHandler, public bus::DeviceBusListener {
 public:
  Gateway(net::EventLoop& loop, const GatewayConfig& config, const net::TlsContext& tls,
          GatewayStats& stats);
  ~Gateway() override;

  // The bus must be set before start().
  void setBus(bus::DeviceBus& bus) { bus_ = &bus; }
  // Binds the device listener; false with `error` when it cannot.
  bool start(std::string& error);
  // Says BYE (shutting_down) to every device and marks them offline. The caller stops the loop.
  void shutdown();
  uint16_t port() const { return port_; }
  std::size_t sessionCount() const { return sessions_.size(); }

  // net::IoHandler: the listening socket is readable.
  void onIoEvents(uint32_t events) override;

  // bus::DeviceBusListener
  void onPublished(uint64_t token, bool ok) override;
  void onAgentMessage(bus::AgentMessage&& message) override;
  void onBusConnection(bool connected) override;

  // For sessions.
  net::EventLoop& loop() { return loop_; }
  const GatewayConfig& config() const { return config_; }
  GatewayStats& stats() { return stats_; }
  bus::DeviceBus& bus() { return *bus_; }
  std::span<uint8_t> readBuffer() { return readBuffer_; }
  std::vector<uint8_t>& frameScratch() { return frameScratch_; }
  uint32_t nowSeconds() const;
  static uint64_t wallMs();
  // Session epochs: wall-clock milliseconds, but strictly increasing on this node even if the
  // clock steps back, so a newer session always orders after an older one.
  uint64_t nextEpochMs();
  // A session finished HELLO: it becomes the device's session, replacing an older one.
  void onDeviceOnline(DeviceSession& session);
  // A session closed: release it after this reactor pass.
  void onSessionClosed(DeviceSession& session, bool wasOnline, std::string_view why);

  // Packs what a broker acknowledgement must find again into the bus token.
  static uint64_t publishToken(uint32_t connectionId, uint32_t messageId, bool ackWanted) {
    return (static_cast<uint64_t>(connectionId) << 33) | (static_cast<uint64_t>(ackWanted) << 32) |
           messageId;
  }

 private:
  void acceptAll();
  void sweep();

  net::EventLoop& loop_;
  const GatewayConfig& config_;
  const net::TlsContext& tls_;
  GatewayStats& stats_;
  bus::DeviceBus* bus_ = nullptr;
  int listenFd_ = -1;
  uint16_t port_ = 0;
  uint32_t nextConnectionId_ = 1;
  net::EventLoop::Clock::time_point startedAt_;
  net::EventLoop::TimerId sweepTimer_ = 0;
  std::size_t lastAnnouncedDevices_ = SIZE_MAX;
  uint32_t lastAnnounceAt_ = 0;
  uint64_t lastEpochMs_ = 0;
  net::EventLoop::TimerId acceptRetryTimer_ = 0;

  std::unordered_map<uint32_t, std::unique_ptr<DeviceSession>> sessions_;
  std::unordered_map<std::string, DeviceSession*> devices_;  // online sessions by device id
  std::vector<uint8_t> readBuffer_;                          // shared by all sessions
  std::vector<uint8_t> frameScratch_;                        // encoding of outgoing frames
};

}  // namespace impgate::gateway
