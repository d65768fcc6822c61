#include "gateway/daemon/gateway.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "gateway/base/log.h"
#include "gateway/base/net/socket.h"
#include "gateway/base/net/tls_transport.h"

namespace impgate::gateway {
namespace {

constexpr std::string_view kComp = "gateway";
constexpr std::size_t kReadBufferSize = 64 * 1024;
constexpr int kAcceptsPerEvent = 256;
constexpr uint32_t kConnectionIdMask = 0x7fffffff;
// How often the node re-announces its device count when it changed.
constexpr uint32_t kAnnounceEverySeconds = 10;

}  // namespace

Gateway::Gateway(net::EventLoop& loop, const GatewayConfig& config, const net::TlsContext& tls,
                 GatewayStats& stats)
    : loop_(loop),
      config_(config),
      tls_(tls),
      stats_(stats),
      startedAt_(net::EventLoop::Clock::now()),
      readBuffer_(kReadBufferSize) {}

Gateway::~Gateway() {
  if (sweepTimer_) loop_.cancel(sweepTimer_);
  if (acceptRetryTimer_) loop_.cancel(acceptRetryTimer_);
  if (listenFd_ >= 0) {
    loop_.unwatch(listenFd_);
    ::close(listenFd_);
  }
}

uint32_t Gateway::nowSeconds() const {
  return static_cast<uint32_t>(
      std::chrono::duration_cast<std::chrono::seconds>(loop_.now() - startedAt_).count());
}

uint64_t Gateway::wallMs() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

uint64_t Gateway::nextEpochMs() {
  lastEpochMs_ = std::max(wallMs(), lastEpochMs_ + 1);
  return lastEpochMs_;
}

bool Gateway::start(std::string& error) {
  auto endpoint = net::parseEndpoint(config_.listen, error);
  if (!endpoint) return false;
  listenFd_ = net::listenOn(*endpoint, config_.reusePort, 4096, error);
  if (listenFd_ < 0) return false;
  port_ = net::boundPort(listenFd_);
  loop_.watch(listenFd_, EPOLLIN, this);
  sweepTimer_ = loop_.runEvery(std::chrono::seconds(1), [this] { sweep(); });
  log::info(kComp, "listening for devices",
            {{"listen", config_.listen}, {"port", port_}, {"node", config_.node}});
  return true;
}

void Gateway::onIoEvents(uint32_t) {
  acceptAll();
}

void Gateway::acceptAll() {
  for (int i = 0; i < kAcceptsPerEvent; ++i) {
    int fd = ::accept4(listenFd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return;
      // Out of descriptors or memory: the listener stays readable, so stop watching it for a
      // moment instead of spinning, and count it once per pause.
      stats_.count(ErrorReason::kIoError);
      log::error(kComp, "accept failed, pausing accepts for 200 ms",
                 {{"error", std::strerror(errno)}});
      loop_.unwatch(listenFd_);
      acceptRetryTimer_ = loop_.runAfter(std::chrono::milliseconds(200), [this] {
        acceptRetryTimer_ = 0;
        if (listenFd_ >= 0) loop_.watch(listenFd_, EPOLLIN, this);
      });
      return;
    }
    if (sessions_.size() >= config_.maxConnections) {
      stats_.count(ErrorReason::kConnectionLimit);
      ::close(fd);
      continue;
    }
    net::setNoDelay(fd);
    auto transport = net::TlsTransport::accept(tls_, fd);
    if (!transport) {
      stats_.count(ErrorReason::kIoError);
      ::close(fd);
      continue;
    }
    uint32_t id = nextConnectionId_;
    nextConnectionId_ = (nextConnectionId_ + 1) & kConnectionIdMask;
    if (nextConnectionId_ == 0) nextConnectionId_ = 1;
    stats_.connectionsAccepted.inc();
    stats_.connectionsOpen.add();
    sessions_[id] = std::make_unique<DeviceSession>(*this, id, fd, std::move(transport));
  }
}

void Gateway::onDeviceOnline(DeviceSession& session) {
  auto [it, inserted] = devices_.try_emplace(session.deviceId(), &session);
  if (!inserted) {
    DeviceSession* older = it->second;
    it->second = &session;
    // The device reconnected before its old connection timed out: the new one wins, and the
    // old one goes without touching presence or subscriptions (they belong to the new one).
    older->end("replaced", true, protocol::ByeReason::kReplaced);
  } else {
    bus_->subscribeDevice(session.deviceId());
  }
  stats_.devicesOnline.add();
  bus_->publishPresence(
      session.deviceId(),
      bus::Presence{
          true, config_.node, session.codeId(), session.epochMs(), session.epochMs(), {}});
  log::info(kComp, "device online",
            {{"device", session.deviceId()}, {"conn", session.connectionId()}});
}

void Gateway::onSessionClosed(DeviceSession& session, bool wasOnline, std::string_view why) {
  stats_.connectionsOpen.sub();
  if (wasOnline) {
    stats_.devicesOnline.sub();
    auto it = devices_.find(session.deviceId());
    if (it != devices_.end() && it->second == &session) {
      devices_.erase(it);
      bus_->unsubscribeDevice(session.deviceId());
      bus_->publishPresence(
          session.deviceId(),
          bus::Presence{false, config_.node, {}, wallMs(), session.epochMs(), why});
    }
  }
  auto node = sessions_.extract(session.connectionId());
  if (!node.empty()) loop_.deferDelete(std::move(node.mapped()));
}

void Gateway::onPublished(uint64_t token, bool ok) {
  auto connectionId = static_cast<uint32_t>(token >> 33);
  bool ackWanted = (token >> 32) & 1;
  auto messageId = static_cast<uint32_t>(token);
  auto it = sessions_.find(connectionId);
  if (it == sessions_.end()) {
    (ok ? stats_.messagesPublished : stats_.messagesPublishFailed).inc();
    return;
  }
  it->second->onPublished(messageId, ackWanted, ok);
}

void Gateway::onAgentMessage(bus::AgentMessage&& message) {
  auto it = devices_.find(message.device);
  if (it == devices_.end()) {
    stats_.messagesUndeliverable.inc();
    log::debug(kComp, "agent message for a device not on this node", {{"device", message.device}});
    return;
  }
  it->second->deliver(message);
}

void Gateway::onBusConnection(bool connected) {
  stats_.busConnected.set(connected ? 1 : 0);
  if (!connected) stats_.busDisconnects.inc();
  if (connected) {
    // Presence may have been lost with the broker: announce every online device again.
    for (auto& [id, session] : devices_) {
      bus_->publishPresence(
          id,
          bus::Presence{
              true, config_.node, session->codeId(), session->epochMs(), session->epochMs(), {}});
    }
    lastAnnouncedDevices_ = SIZE_MAX;
  }
}

void Gateway::sweep() {
  uint32_t now = nowSeconds();
  // Sessions may close (and unregister) during the sweep; collect ids first.
  std::vector<DeviceSession*> all;
  all.reserve(sessions_.size());
  for (auto& [id, session] : sessions_) all.push_back(session.get());
  for (DeviceSession* s : all) s->sweep(now);
  if (devices_.size() != lastAnnouncedDevices_ && now - lastAnnounceAt_ >= kAnnounceEverySeconds) {
    lastAnnouncedDevices_ = devices_.size();
    lastAnnounceAt_ = now;
    bus_->publishNodeState(devices_.size());
  }
}

void Gateway::shutdown() {
  log::info(kComp, "shutting down", {{"devices", devices_.size()}});
  if (listenFd_ >= 0) {
    loop_.unwatch(listenFd_);
    ::close(listenFd_);
    listenFd_ = -1;
  }
  std::vector<DeviceSession*> all;
  for (auto& [id, session] : sessions_) all.push_back(session.get());
  for (DeviceSession* s : all) s->end("shutting_down", true, protocol::ByeReason::kShuttingDown);
  bus_->publishNodeState(0);
}

}  // namespace impgate::gateway
