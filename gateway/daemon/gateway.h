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
#include "gateway/daemon/code_push.h"
#include "gateway/daemon/device_session.h"
#include "gateway/daemon/flap_detector.h"
#include "gateway/daemon/gateway_config.h"
#include "gateway/daemon/gateway_stats.h"
#include "gateway/daemon/memory_budget.h"
#include "gateway/daemon/receipt_route.h"

namespace impgate::gateway {

class Gateway final : public net::IoHandler, public bus::DeviceBusListener, CodePush::Host {
 public:
  Gateway(net::EventLoop& loop, const GatewayConfig& config, const net::TlsContext& tls,
          GatewayStats& stats);
  ~Gateway() override;

  // The bus must be set before start().
  void setBus(bus::DeviceBus& bus) { bus_ = &bus; }
  // Binds the device listener; ErrorCode::kListen when it cannot.
  Status start();
  // Says BYE (shutting_down) to every device and marks them offline. The caller stops the loop.
  void shutdown();
  uint16_t port() const { return port_; }
  std::size_t sessionCount() const { return sessions_.size(); }

  // net::IoHandler: the listening socket is readable.
  void onIoEvents(uint32_t events) override;

  // bus::DeviceBusListener
  void onPublished(uint64_t token, bool ok) override;
  void onAgentMessage(const bus::AgentMessage& message) override;
  void onBusConnection(bool connected) override;
  void onFleetMessage(std::string_view topic, std::span<const uint8_t> payload) override;
  void onFleetSyncStarted() override;
  void onFleetSynced() override;

  // CodePush::Host
  bool sendCodeOffer(std::string_view device, const protocol::CodeOffer& offer) override;
  void codeInstalled(std::string_view device, std::string_view code) override;
  CodePush& codePush() { return codePush_; }
  const CodePush& codePush() const { return codePush_; }

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
  // The device's session is open (WELCOME sent): it may be offered code.
  void onSessionOpen(DeviceSession& session);
  // A session closed: release it after this reactor pass.
  void onSessionClosed(DeviceSession& session, bool wasOnline, std::string_view why);
  // A device is about to open a session: 0 to go ahead, or the seconds it stays refused
  // because it is flapping.
  uint32_t admitSession(const std::string& deviceId);
  // A session's buffered bytes changed; may shed load (see docs/architecture.md).
  void onBufferedBytesChanged(std::size_t before, std::size_t after);
  // True while the node is over its memory budget's high watermark: agent messages are
  // refused and no connection is accepted.
  bool sheddingLoad() const { return shedding_; }
  const MemoryBudget& budget() const { return budget_; }

  // The bus token of a publish: the connection (below 2^48) and the session's tag for it.
  static constexpr int kTagBits = 16;
  static constexpr ConnectionId kConnectionIdLimit = ConnectionId{1} << (64 - kTagBits);
  static uint64_t publishToken(ConnectionId connectionId, uint16_t tag) {
    return (connectionId << kTagBits) | tag;
  }

  // The id the next accepted connection gets; for tests of id wrap-around.
  void setNextConnectionId(ConnectionId id) { nextConnectionId_ = id; }

 private:
  void acceptAll();
  ConnectionId takeConnectionId();
  void sweep();
  // Calls `f` on every session; sessions closed meanwhile are released after the walk.
  template <typename F>
  void forEachSession(F&& f);
  void enforceBudget();
  void stopShedding();
  void pauseAccepting();
  void resumeAccepting();

  net::EventLoop& loop_;
  const GatewayConfig& config_;
  const net::TlsContext& tls_;
  GatewayStats& stats_;
  bus::DeviceBus* bus_ = nullptr;
  int listenFd_ = -1;
  uint16_t port_ = 0;
  ConnectionId nextConnectionId_ = 1;
  net::EventLoop::Clock::time_point startedAt_;
  net::EventLoop::TimerId sweepTimer_ = 0;
  std::size_t lastAnnouncedDevices_ = SIZE_MAX;
  uint32_t lastAnnounceAt_ = 0;
  uint64_t lastEpochMs_ = 0;
  net::EventLoop::TimerId acceptRetryTimer_ = 0;
  bool acceptPaused_ = false;  // by the memory budget
  bool shedding_ = false;
  bool walking_ = false;                    // inside forEachSession
  std::vector<ConnectionId> closedInWalk_;  // released when the walk ends
  FlapDetector flaps_;
  MemoryBudget budget_;
  CodePush codePush_;
  // Devices whose session here ended lately, with when (gateway seconds): an agent message
  // still on its way to this node gets a "failed" receipt instead of silence.
  std::unordered_map<std::string, uint32_t> recentlyGone_;

  std::unordered_map<ConnectionId, std::unique_ptr<DeviceSession>> sessions_;
  std::unordered_map<std::string, DeviceSession*> devices_;  // online sessions by device id
  std::vector<uint8_t> readBuffer_;                          // shared by all sessions
  std::vector<uint8_t> frameScratch_;                        // encoding of outgoing frames
};

}  // namespace impgate::gateway
