#include "gateway/daemon/gateway.h"

#include <malloc.h>
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
// How long after a device's session ended an agent message for it still earns a "failed"
// receipt here (the unsubscribe may take that long to reach the broker).
constexpr uint32_t kGoneReceiptSeconds = 30;
// Work posted to the reactor (mostly agent messages from the bus thread) beyond which agent
// messages are refused on arrival rather than delivered late: the queue drains fast that way.
constexpr std::size_t kPostedShedAt = 65536;
// Freed buffer memory beyond this is returned to the system at the next sweep.
constexpr std::size_t kTrimAfterBytes = 8 * 1024 * 1024;
// How often the node re-announces its device count when it changed.
constexpr uint32_t kAnnounceEverySeconds = 10;

}  // namespace

Gateway::Gateway(net::EventLoop& loop, const GatewayConfig& config, const net::TlsContext& tls,
                 GatewayStats& stats)
    : loop_(loop),
      config_(config),
      tls_(tls),
      stats_(stats),
      startedAt_(loop.now()),
      flaps_(FlapPolicy{static_cast<uint32_t>(config.flapWindow.count()), config.flapMaxSessions,
                        static_cast<uint32_t>(config.flapBan.count())}),
      budget_(config.memoryLimit),
      codePush_(
          CodePush::Options{config.node, config.codeVerifyKey, config.codeCache, config.prefix},
          *this),
      readBuffer_(kReadBufferSize) {
  stats_.memoryLimit.set(static_cast<int64_t>(config.memoryLimit));
}

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

Status Gateway::start() {
  codePush_.start(*bus_);
  auto endpoint = net::parseEndpoint(config_.listen);
  if (!endpoint) return Error{ErrorCode::kListen, endpoint.error().message};
  auto listening = net::listenOn(*endpoint, config_.reusePort, 4096);
  if (!listening) return Error{ErrorCode::kListen, listening.error().message};
  listenFd_ = *listening;
  port_ = net::boundPort(listenFd_);
  if (!loop_.watch(listenFd_, EPOLLIN, this)) {
    return Error{ErrorCode::kListen,
                 std::string("cannot watch the listening socket: ") + std::strerror(errno)};
  }
  sweepTimer_ = loop_.runEvery(std::chrono::seconds(1), [this] { sweep(); });
  log::info(kComp, "listening for devices",
            {{"listen", config_.listen}, {"port", port_}, {"node", config_.node}});
  return {};
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
        if (!acceptPaused_) resumeAccepting();
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
    ConnectionId id = takeConnectionId();
    stats_.connectionsAccepted.inc();
    stats_.connectionsOpen.add();
    auto session = std::make_unique<DeviceSession>(*this, id, fd, std::move(transport));
    // A session that could not even be watched has closed (and been counted) already.
    if (session->state() != DeviceSession::State::kClosed) sessions_[id] = std::move(session);
    if (acceptPaused_) return;
  }
}

ConnectionId Gateway::takeConnectionId() {
  // 2^48 ids last 89 years at 100 000 accepts a second; should the counter ever wrap, an id
  // still in use is skipped, so an id never names two live connections.
  for (;;) {
    ConnectionId id = nextConnectionId_;
    nextConnectionId_ = id + 1 < kConnectionIdLimit ? id + 1 : 1;
    if (!sessions_.contains(id)) return id;
  }
}

void Gateway::pauseAccepting() {
  if (acceptPaused_ || listenFd_ < 0) return;
  acceptPaused_ = true;
  stats_.acceptPauses.inc();
  loop_.unwatch(listenFd_);
}

void Gateway::resumeAccepting() {
  acceptPaused_ = false;
  if (listenFd_ < 0 || acceptRetryTimer_ != 0) return;
  if (!loop_.watch(listenFd_, EPOLLIN, this)) {
    log::error(kComp, "cannot watch the listening socket again, retrying",
               {{"error", std::strerror(errno)}});
    acceptRetryTimer_ = loop_.runAfter(std::chrono::milliseconds(200), [this] {
      acceptRetryTimer_ = 0;
      resumeAccepting();
    });
  }
}

uint32_t Gateway::admitSession(const std::string& deviceId) {
  uint32_t now = nowSeconds();
  uint32_t refusedFor = flaps_.admit(deviceId, now);
  if (flaps_.banStarted()) {
    stats_.flappingBans.inc();
    log::warn(kComp, "device is flapping, refusing its sessions for a while",
              {{"device", deviceId}, {"seconds", refusedFor}});
  }
  return refusedFor;
}

void Gateway::onBufferedBytesChanged(std::size_t before, std::size_t after) {
  budget_.update(before, after);
  if (after > before && budget_.high()) enforceBudget();
  if (after < before && shedding_ && budget_.relieved()) stopShedding();
  stats_.bufferedBytes.set(static_cast<int64_t>(budget_.used()));
}

void Gateway::stopShedding() {
  shedding_ = false;
  log::info(kComp, "back under the memory budget", {{"buffered", budget_.used()}});
  resumeAccepting();
}

void Gateway::enforceBudget() {
  if (!shedding_) {
    shedding_ = true;
    pauseAccepting();
    log::warn(kComp, "over the memory budget: not accepting connections, refusing agent messages",
              {{"buffered", budget_.used()}, {"limit", budget_.limit()}});
  }
  // Past the limit itself, the connections holding the most go, largest first.
  while (budget_.overloaded()) {
    DeviceSession* largest = nullptr;
    for (auto& [id, session] : sessions_) {
      if (!largest || session->bufferedBytes() > largest->bufferedBytes()) largest = session.get();
    }
    if (!largest || largest->bufferedBytes() == 0) break;
    stats_.connectionsShed.inc();
    largest->fail(ErrorReason::kOverloaded, protocol::ByeReason::kOverloaded,
                  "the gateway is over its memory budget");
  }
}

void Gateway::onDeviceOnline(DeviceSession& session) {
  recentlyGone_.erase(session.deviceId());
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

void Gateway::onSessionOpen(DeviceSession& session) {
  codePush_.onDeviceOnline(session.deviceId(), session.certGroup(), session.codeId(),
                           session.takesCodePush());
}

bool Gateway::sendCodeOffer(std::string_view device, const protocol::CodeOffer& offer) {
  auto it = devices_.find(std::string(device));
  if (it == devices_.end()) return false;
  return it->second->sendCodeOffer(offer);
}

void Gateway::codeInstalled(std::string_view device, std::string_view code) {
  auto it = devices_.find(std::string(device));
  if (it == devices_.end()) return;
  DeviceSession& session = *it->second;
  session.setCodeId(code);
  bus_->publishPresence(
      session.deviceId(),
      bus::Presence{
          true, config_.node, session.codeId(), session.epochMs(), session.epochMs(), {}});
}

void Gateway::onFleetMessage(std::string_view topic, std::span<const uint8_t> payload) {
  codePush_.onFleetMessage(topic, payload);
}

void Gateway::onFleetSyncStarted() {
  codePush_.onFleetSyncStarted();
}

void Gateway::onFleetSynced() {
  codePush_.onFleetSynced();
}

void Gateway::onSessionClosed(DeviceSession& session, bool wasOnline, std::string_view why) {
  stats_.connectionsOpen.sub();
  if (wasOnline) {
    stats_.devicesOnline.sub();
    auto it = devices_.find(session.deviceId());
    if (it != devices_.end() && it->second == &session) {
      devices_.erase(it);
      codePush_.onDeviceOffline(session.deviceId());
      recentlyGone_[session.deviceId()] = nowSeconds();
      bus_->unsubscribeDevice(session.deviceId());
      bus_->publishPresence(
          session.deviceId(),
          bus::Presence{false, config_.node, {}, wallMs(), session.epochMs(), why});
    }
  }
  if (walking_) {
    closedInWalk_.push_back(session.connectionId());
    return;
  }
  auto node = sessions_.extract(session.connectionId());
  if (!node.empty()) loop_.deferDelete(std::move(node.mapped()));
}

template <typename F>
void Gateway::forEachSession(F&& f) {
  bool outer = !walking_;
  walking_ = true;
  for (auto& [id, session] : sessions_) f(*session);
  if (!outer) return;
  walking_ = false;
  for (ConnectionId id : closedInWalk_) {
    auto node = sessions_.extract(id);
    if (!node.empty()) loop_.deferDelete(std::move(node.mapped()));
  }
  closedInWalk_.clear();
}

void Gateway::onPublished(uint64_t token, bool ok) {
  ConnectionId connectionId = token >> kTagBits;
  auto tag = static_cast<uint16_t>(token);
  auto it = sessions_.find(connectionId);
  if (it == sessions_.end()) {
    (ok ? stats_.messagesPublished : stats_.messagesPublishFailed).inc();
    return;
  }
  it->second->onPublished(tag, ok);
}

void Gateway::onAgentMessage(const bus::AgentMessage& message) {
  stats_.agentMessages.inc();
  auto it = devices_.find(message.device);
  if (it == devices_.end() && !recentlyGone_.contains(message.device)) {
    // Never here, or long gone: another node's business, no receipt from here.
    stats_.messagesUndeliverable.inc();
    log::debug(kComp, "agent message for a device not on this node", {{"device", message.device}});
    return;
  }
  // Whether this message gets a receipt, and where: decided here once; every receipt for it,
  // here or in its session, follows this route.
  ReceiptRoute route = routeReceipt(message, config_.receipts, config_.prefix);
  auto refuse = [&](std::string_view status) {
    stats_.messagesUndeliverable.inc();
    // seq 0: the message never reached the device's session, which numbers only what it handles.
    if (route.wanted) {
      bus_->publishReceipt(
          message.device,
          bus::Receipt{message.event, 0, status, message.correlation, config_.node, route.topic});
    }
  };
  if (!route.refused.empty()) {
    // Publishing there could inject into other topics (or be a protocol error that costs the
    // node its broker connection): not delivered, and told on the device's ack topic.
    log::warn(kComp, "refusing agent message with an unusable response topic",
              {{"device", message.device}, {"event", message.event}, {"why", route.refused}});
    refuse("rejected");
    return;
  }
  if (message.retained) {
    // A retained command would run again on every (re)subscribe: agents must not retain them.
    log::warn(kComp, "refusing retained agent message",
              {{"device", message.device}, {"event", message.event}});
    refuse("rejected");
    return;
  }
  if (loop_.postedPending() > kPostedShedAt) {
    // The reactor is far behind the bus: refuse (a retry may work) instead of queueing more.
    stats_.deliveriesShed.inc();
    refuse("failed");
    return;
  }
  if (it == devices_.end()) {
    // Its session here just ended (the unsubscribe is still on its way): the agent is told,
    // as it is for the messages that were pending when the session ended.
    refuse("failed");
    return;
  }
  it->second->deliver(message, route);
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
  forEachSession([now](DeviceSession& s) { s.sweep(now); });
  stats_.reactorQueue.set(static_cast<int64_t>(loop_.postedPending()));
  flaps_.prune(now);
  codePush_.sweep(wallMs());
  std::erase_if(recentlyGone_,
                [now](const auto& entry) { return now - entry.second >= kGoneReceiptSeconds; });
  if (shedding_ && budget_.relieved()) stopShedding();
  // After a spike (many partial frames or big backlogs that have gone), hand the freed heap
  // back to the system instead of keeping it at its peak.
  if (budget_.peak() > budget_.used() + kTrimAfterBytes) {
    ::malloc_trim(0);
    budget_.resetPeak();
  }
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
  forEachSession(
      [](DeviceSession& s) { s.end("shutting_down", true, protocol::ByeReason::kShuttingDown); });
  bus_->publishNodeState(0);
}

}  // namespace impgate::gateway
