#include "bus/mqtt/broker_link.h"

#include <sys/epoll.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "gateway/base/log.h"
#include "gateway/base/net/plain_transport.h"
#include "gateway/base/net/socket.h"
#include "gateway/base/net/tls_transport.h"

namespace impgate::bus::mqtt {
namespace {

constexpr std::string_view kComp = "bus";
constexpr std::size_t kReadChunk = 64 * 1024;
// One read event takes at most this much before other connections get their turn.
constexpr std::size_t kReadBudget = 1024 * 1024;
// Written-out bytes at the front of a buffer are dropped once they are this many and half of it.
constexpr std::size_t kCompactAt = 64 * 1024;

void compact(Bytes& bytes, std::size_t& head) {
  if (head == bytes.size()) {
    bytes.clear();  // keeps the capacity for the next burst
    head = 0;
  } else if (head >= kCompactAt && head * 2 >= bytes.size()) {
    bytes.erase(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(head));
    head = 0;
  }
}

std::string connackText(const Connack& c) {
  if (c.shapedAs311) {
    static constexpr const char* kCodes[] = {
        "accepted",           "unacceptable protocol version", "client identifier rejected",
        "server unavailable", "bad user name or password",     "not authorized"};
    return c.code < std::size(kCodes) ? kCodes[c.code] : "return code " + std::to_string(c.code);
  }
  char hex[8];
  std::snprintf(hex, sizeof hex, "0x%02X", c.code);
  std::string text = std::string("reason ") + hex;
  if (!c.reasonString.empty()) text += " (" + std::string(c.reasonString) + ")";
  return text;
}

}  // namespace

base::Result<BrokerEndpoint, UriError> resolveBroker(std::string_view uri,
                                                     const BrokerTlsFiles& files) {
  auto address = parseBrokerUri(uri);
  if (!address) {
    return base::Error<UriError>{UriError::kInvalid, "invalid broker URI '" + std::string(uri) +
                                                         "': " + address.error().message};
  }
  BrokerEndpoint endpoint{std::move(*address), nullptr};
  if (endpoint.address.tls) {
    net::TlsClientOptions tlsOptions;
    tlsOptions.caFile = files.caFile;
    tlsOptions.certFile = files.certFile;
    tlsOptions.keyFile = files.keyFile;
    tlsOptions.allowTls12 = true;  // brokers are not all on TLS 1.3
    auto context = net::TlsContext::client(tlsOptions);
    if (!context) {
      return base::Error<UriError>{
          UriError::kInvalid,
          "broker TLS settings for '" + std::string(uri) + "': " + context.error().message};
    }
    endpoint.tls = std::move(*context);
  }
  return endpoint;
}

base::Result<BrokerAddress, UriError> parseBrokerUri(std::string_view uri) {
  BrokerAddress address;
  auto scheme = uri.find("://");
  if (scheme == std::string_view::npos) {
    return base::Error<UriError>{
        UriError::kInvalid,
        "expected tcp://, mqtt://, ssl:// or mqtts:// in '" + std::string(uri) + "'"};
  }
  std::string_view name = uri.substr(0, scheme);
  if (name == "tcp" || name == "mqtt") {
    address.port = 1883;
  } else if (name == "ssl" || name == "mqtts") {
    address.tls = true;
    address.port = 8883;
  } else {
    return base::Error<UriError>{UriError::kInvalid, "unknown scheme '" + std::string(name) +
                                                         "://' (use tcp://, mqtt://, ssl:// "
                                                         "or mqtts://)"};
  }
  std::string_view rest = uri.substr(scheme + 3);
  if (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
  std::string_view host = rest, port;
  bool hasPort = false;  // a ':' before the port, which must then follow
  if (!rest.empty() && rest.front() == '[') {
    auto close = rest.find(']');
    if (close == std::string_view::npos) {
      return base::Error<UriError>{UriError::kInvalid,
                                   "unclosed '[' in '" + std::string(uri) + "'"};
    }
    host = rest.substr(1, close - 1);
    if (close + 1 < rest.size()) {
      if (rest[close + 1] != ':') {
        return base::Error<UriError>{UriError::kInvalid,
                                     "expected ':' after ']' in '" + std::string(uri) + "'"};
      }
      port = rest.substr(close + 2);
      hasPort = true;
    }
  } else if (auto colon = rest.rfind(':'); colon != std::string_view::npos) {
    host = rest.substr(0, colon);
    port = rest.substr(colon + 1);
    hasPort = true;
  }
  if (host.empty() || host.find_first_of("/?#@ ") != std::string_view::npos) {
    return base::Error<UriError>{UriError::kInvalid, "no valid host in '" + std::string(uri) + "'"};
  }
  address.host = std::string(host);
  if (hasPort) {
    unsigned value = 0;
    if (port.empty() || port.size() > 5 ||
        port.find_first_not_of("0123456789") != std::string_view::npos ||
        (value = static_cast<unsigned>(std::stoul(std::string(port)))) == 0 || value > 65535) {
      return base::Error<UriError>{UriError::kInvalid,
                                   "invalid port in '" + std::string(uri) + "'"};
    }
    address.port = static_cast<uint16_t>(value);
  }
  return address;
}

BrokerLink::BrokerLink(net::EventLoop& loop, LinkOptions options, LinkListener& listener)
    : loop_(loop),
      options_(std::move(options)),
      listener_(listener),
      version_(options_.version.value_or(Version::k5)),
      versionFixed_(options_.version.has_value()),
      retryDelay_(options_.retryMin) {
  options_.maxInflight = std::clamp<std::size_t>(options_.maxInflight, 1, 32768);
  slots_.resize(options_.maxInflight);
}

BrokerLink::~BrokerLink() {
  *alive_ = false;
  if (retryTimer_) loop_.cancel(retryTimer_);
  if (tickTimer_) loop_.cancel(tickTimer_);
  closeSocket();
}

void BrokerLink::start() {
  if (!tickTimer_) tickTimer_ = loop_.runEvery(std::chrono::seconds(1), [this] { tick(); });
  connectNow();
}

void BrokerLink::connectNow() {
  retryTimer_ = 0;
  if (state_ == State::kClosed) return;
  const auto& broker = options_.broker;
  std::string hostPort = broker.host.find(':') == std::string::npos
                             ? broker.host + ":" + std::to_string(broker.port)
                             : "[" + broker.host + "]:" + std::to_string(broker.port);
  // Resolving a name blocks the reactor for as long as the resolver takes; brokers are
  // normally given by address or by a name the local resolver answers at once.
  auto endpoint = net::parseEndpoint(hostPort);
  if (!endpoint) return fail(endpoint.error().message);
  auto fd = net::connectNonBlocking(*endpoint, nullptr);
  if (!fd) return fail(fd.error().message);
  fd_ = *fd;
  net::setNoDelay(fd_);
  state_ = State::kConnecting;
  attemptDeadline_ = loop_.now() + options_.connectTimeout;
  interest_ = EPOLLOUT;
  if (!loop_.watch(fd_, interest_, this)) {
    interest_ = 0;
    return fail(std::string("cannot watch the broker socket: ") + std::strerror(errno));
  }
}

void BrokerLink::onIoEvents(uint32_t events) {
  switch (state_) {
    case State::kConnecting:
      onSocketWritable();
      return;
    case State::kHandshake:
      driveHandshake();
      return;
    case State::kAwaitConnack:
    case State::kUp:
      if (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
        if (writeWantsRead_) {
          writeWantsRead_ = false;
          flush();
          if (state_ != State::kUp && state_ != State::kAwaitConnack) return;
        }
        readAvailable();
      }
      if ((state_ == State::kUp || state_ == State::kAwaitConnack) && (events & EPOLLOUT)) {
        if (readWantsWrite_) {
          readWantsWrite_ = false;
          readAvailable();
        } else {
          flush();
        }
      }
      return;
    default:
      return;
  }
}

void BrokerLink::onSocketWritable() {
  if (int err = net::socketError(fd_); err != 0) {
    return fail(std::string("cannot connect: ") + std::strerror(err));
  }
  if (options_.broker.tls) {
    if (!options_.tls) return fail("a TLS broker needs a TLS context");
    transport_ = net::TlsTransport::connect(*options_.tls, fd_, options_.broker.host, nullptr);
    if (!transport_) return fail("cannot create a TLS connection");
    state_ = State::kHandshake;
    driveHandshake();
    return;
  }
  transport_ = std::make_unique<net::PlainTransport>(fd_);
  sendConnect();
}

void BrokerLink::driveHandshake() {
  switch (transport_->handshake()) {
    case net::IoStatus::kOk:
      sendConnect();
      return;
    case net::IoStatus::kWantRead:
      interest_ = EPOLLIN;
      break;
    case net::IoStatus::kWantWrite:
      interest_ = EPOLLOUT;
      break;
    default:
      return fail("TLS handshake with the broker failed: " + transport_->lastError());
  }
  if (!loop_.rewatch(fd_, interest_, this)) {
    fail(std::string("cannot watch the broker socket: ") + std::strerror(errno));
  }
}

void BrokerLink::sendConnect() {
  state_ = State::kAwaitConnack;
  out_.clear();
  outHead_ = 0;
  Will will{options_.willTopic, options_.willPayload, 1, true};
  ConnectOptions connect;
  connect.version = version_;
  connect.clientId = options_.clientId;
  connect.keepAliveSeconds = static_cast<uint16_t>(options_.keepAlive.count());
  connect.cleanStart = true;
  connect.username = options_.username;
  connect.password = options_.password;
  connect.will = options_.willTopic.empty() ? nullptr : &will;
  connect.maximumPacketSize = static_cast<uint32_t>(options_.maxPacketIn);
  connect.receiveMaximum = options_.receiveMaximum;
  encodeConnect(out_, connect);
  flush();
}

void BrokerLink::readAvailable() {
  std::size_t taken = 0;
  bool drained = false;
  while (taken < kReadBudget) {
    if (in_.size() - inEnd_ < kReadChunk) {
      if (inHead_ > 0) {
        std::memmove(in_.data(), in_.data() + inHead_, inEnd_ - inHead_);
        inEnd_ -= inHead_;
        inHead_ = 0;
      }
      if (in_.size() - inEnd_ < kReadChunk) in_.resize(inEnd_ + kReadChunk);
    }
    auto result = transport_->read(std::span(in_.data() + inEnd_, in_.size() - inEnd_));
    if (result.status == net::IoStatus::kOk) {
      inEnd_ += result.bytes;
      taken += result.bytes;
      lastReceived_ = loop_.now();
      if (!parse()) return;  // the connection ended
      continue;
    }
    if (result.status == net::IoStatus::kWantRead || result.status == net::IoStatus::kWantWrite) {
      readWantsWrite_ = result.status == net::IoStatus::kWantWrite;
      drained = true;
      break;
    }
    return fail(result.status == net::IoStatus::kClosed
                    ? std::string("the broker closed the connection")
                    : "read from the broker failed: " + transport_->lastError());
  }
  if (!drained && !readPosted_) {
    // The budget ran out with more to read (perhaps inside TLS, where epoll cannot see it):
    // come back as posted work, which runs after this pass's sockets, and when posted again
    // from there, in the next pass; one at a time. (At the end of the pass it would run again
    // at once, in the same pass, until the broker stopped sending: no other socket or timer
    // would get a turn.)
    readPosted_ = true;
    auto alive = alive_;
    loop_.post([this, alive] {
      if (!*alive) return;
      readPosted_ = false;
      if (state_ == State::kUp || state_ == State::kAwaitConnack) readAvailable();
    });
  }
  pump();
  flush();
}

bool BrokerLink::parse() {
  for (;;) {
    Packet packet;
    Decoded d =
        nextPacket(std::span(in_.data() + inHead_, inEnd_ - inHead_), options_.maxPacketIn, packet);
    if (d.status == DecodeStatus::kNeedMore) break;
    if (d.status == DecodeStatus::kMalformed) {
      fail(std::string("malformed packet from the broker: ") + d.error);
      return false;
    }
    inHead_ += packet.size;
    if (!handlePacket(packet)) return false;
  }
  if (inHead_ == inEnd_) inHead_ = inEnd_ = 0;
  return true;
}

bool BrokerLink::handlePacket(const Packet& packet) {
  if (state_ == State::kAwaitConnack) {
    if (packet.type != PacketType::kConnack) {
      fail("the broker sent another packet before CONNACK");
      return false;
    }
    handleConnack(packet);
    return state_ == State::kUp;
  }
  switch (packet.type) {
    case PacketType::kPuback:
      handlePuback(packet);
      break;
    case PacketType::kPublish:
      handlePublish(packet);
      break;
    case PacketType::kSuback:
    case PacketType::kUnsuback: {
      Ack ack;
      if (Decoded d = decodeAck(packet, version_, ack); d.status != DecodeStatus::kOk) {
        fail(std::string("malformed acknowledgement from the broker: ") + d.error);
        break;
      }
      auto refused = std::count_if(ack.codes.begin(), ack.codes.end(),
                                   [](uint8_t code) { return code >= 0x80; });
      if (refused > 0) {
        log::warn(kComp,
                  packet.type == PacketType::kSuback ? "the broker refused subscriptions"
                                                     : "the broker refused to remove subscriptions",
                  {{"filters", refused}, {"code", ack.codes[0]}});
      }
      break;
    }
    case PacketType::kPingresp:
      pingOutstanding_ = false;
      break;
    case PacketType::kDisconnect: {
      Disconnect d;
      (void)decodeDisconnect(packet, version_, d);
      std::string why = "the broker sent DISCONNECT, reason " + std::to_string(d.code);
      if (!d.reasonString.empty()) why += " (" + std::string(d.reasonString) + ")";
      fail(why);
      break;
    }
    default:
      fail("unexpected packet type " + std::to_string(static_cast<int>(packet.type)) +
           " from the broker");
      break;
  }
  return state_ == State::kUp;
}

void BrokerLink::handleConnack(const Packet& packet) {
  Connack connack;
  if (Decoded d = decodeConnack(packet, connack); d.status != DecodeStatus::kOk) {
    return fail(std::string("malformed CONNACK: ") + d.error);
  }
  if (connack.code != 0) {
    if (refusesVersion(connack) && version_ == Version::k5) {
      if (!versionFixed_) {
        log::warn(kComp, "broker does not speak MQTT 5; using MQTT 3.1.1",
                  {{"broker", options_.broker.host + ":" + std::to_string(options_.broker.port)}});
        switchVersion(Version::k311);
        return fail("the broker does not speak MQTT 5", std::chrono::milliseconds(0));
      }
      return fail("the broker does not speak MQTT 5 (" + connackText(connack) +
                  "): start impgate without --mqtt-version 5, or with --mqtt-version 3");
    }
    return fail("the broker refused the connection: " + connackText(connack));
  }
  if (version_ == Version::k5 && connack.shapedAs311) {
    // Accepted, but in MQTT 3.1.1's form: the broker speaks 3.1.1 and would misread MQTT 5
    // packets.
    if (!versionFixed_) {
      log::warn(kComp, "broker does not speak MQTT 5; using MQTT 3.1.1",
                {{"broker", options_.broker.host + ":" + std::to_string(options_.broker.port)}});
      switchVersion(Version::k311);
      return fail("the broker answered in MQTT 3.1.1", std::chrono::milliseconds(0));
    }
    return fail(
        "the broker answered an MQTT 5 CONNECT in MQTT 3.1.1: start impgate without "
        "--mqtt-version 5, or with --mqtt-version 3");
  }
  if (connack.maximumQos < 1 || !connack.retainAvailable) {
    // Presence and node state are retained QoS 1 publishes: without them the bus contract
    // cannot be kept, and retrying would be refused again and again.
    return fail(connack.maximumQos < 1 ? "the broker allows only QoS 0, impgate needs QoS 1"
                                       : "the broker does not keep retained messages, which "
                                         "impgate needs for presence");
  }
  window_ = std::min<std::size_t>(options_.maxInflight,
                                  version_ == Version::k5 ? connack.receiveMaximum : 65535);
  maxPacketOut_ = connack.maximumPacketSize ? connack.maximumPacketSize : kMaxRemainingLength;
  keepAlive_ =
      connack.serverKeepAlive ? std::chrono::seconds(*connack.serverKeepAlive) : options_.keepAlive;
  state_ = State::kUp;
  retryDelay_ = options_.retryMin;
  lastReceived_ = loop_.now();
  pingOutstanding_ = false;
  // What was queued (or unacknowledged when the last connection broke) goes first, so that an
  // old presence never lands after a newer one the listener publishes now.
  pump();
  listener_.onLinkUp();
  scheduleFlush();
}

void BrokerLink::handlePuback(const Packet& packet) {
  Ack ack;
  if (Decoded d = decodeAck(packet, version_, ack); d.status != DecodeStatus::kOk) {
    return fail(std::string("malformed PUBACK: ") + d.error);
  }
  if (ack.packetId == 0 || ack.packetId > slots_.size()) return;  // not one of ours: ignore
  Slot& slot = slots_[ack.packetId - 1];
  if (!slot.used) return;
  slot.used = false;
  --inflight_;
  if (slot.token != 0) listener_.onPublished(slot.token, ack.code < 0x80);
}

void BrokerLink::handlePublish(const Packet& packet) {
  PublishIn message;
  if (Decoded d = decodePublish(packet, version_, message); d.status != DecodeStatus::kOk) {
    return fail(std::string("malformed PUBLISH from the broker: ") + d.error);
  }
  if (message.hasTopicAlias) return fail("the broker used a topic alias, which was not allowed");
  if (message.qos > 1) return fail("the broker sent a QoS 2 PUBLISH on a QoS 1 subscription");
  listener_.onMessage(message);
  if (message.qos == 1 && state_ == State::kUp) encodePuback(out_, message.packetId);
}

bool BrokerLink::publish(const PublishOptions& publish, uint64_t token) {
  if (publishSize(version_, publish) > maxPacketOut_) return false;
  if (state_ == State::kUp && queue_.empty() && (publish.qos == 0 || inflight_ < window_)) {
    if (publish.qos == 0) {
      encodePublish(out_, version_, publish);
      if (token != 0) awaitingWrite_.push_back({outDropped_ + out_.size(), token});
    } else {
      PublishOptions numbered = publish;
      numbered.packetId = takeSlot();
      std::size_t start = out_.size();
      std::size_t idOffset = encodePublish(out_, version_, numbered);
      track(numbered.packetId, token, std::span(out_).subspan(start), idOffset - start);
    }
    scheduleFlush();
    return true;
  }
  if (queue_.size() >= options_.maxQueued) return false;
  std::size_t start = queueBytes_.size();
  std::size_t idOffset = encodePublish(queueBytes_, version_, publish);
  queue_.push_back(Queued{static_cast<uint32_t>(queueBytes_.size() - start),
                          static_cast<uint32_t>(idOffset ? idOffset - start : 0), token});
  return true;
}

uint16_t BrokerLink::takeSlot() {
  for (std::size_t i = 0; i < slots_.size(); ++i) {
    std::size_t index = (nextSlot_ + i) % slots_.size();
    if (!slots_[index].used) {
      nextSlot_ = index + 1;
      slots_[index].used = true;
      ++inflight_;
      return static_cast<uint16_t>(index + 1);
    }
  }
  // inflight_ < window_ <= slots_.size() whenever a slot is taken.
  std::abort();
}

void BrokerLink::track(uint16_t packetId, uint64_t token, std::span<const uint8_t> packet,
                       std::size_t idOffset) {
  Slot& slot = slots_[packetId - 1];
  slot.token = token;
  slot.sequence = ++sequence_;
  slot.keep = token == 0;
  if (slot.keep) {
    // Nobody is told when this publish fails: keep it to send again after a reconnect.
    slot.copy.assign(reinterpret_cast<const char*>(packet.data()), packet.size());
    slot.idOffset = static_cast<uint32_t>(idOffset);
  }
}

void BrokerLink::pump() {
  bool moved = false;
  while (state_ == State::kUp && !queue_.empty()) {
    Queued entry = queue_.front();
    if (entry.idOffset != 0 && inflight_ >= window_) break;
    queue_.pop_front();
    std::span<uint8_t> packet(queueBytes_.data() + queueHead_, entry.size);
    queueHead_ += entry.size;
    if (entry.size > maxPacketOut_) {
      // The broker announced a smaller maximum than the one this was queued under.
      if (entry.token != 0) listener_.onPublished(entry.token, false);
      continue;
    }
    if (entry.idOffset != 0) {
      uint16_t id = takeSlot();
      setPacketId(packet, entry.idOffset, id);
      track(id, entry.token, packet, entry.idOffset);
    }
    out_.insert(out_.end(), packet.begin(), packet.end());
    if (entry.idOffset == 0 && entry.token != 0) {
      awaitingWrite_.push_back({outDropped_ + out_.size(), entry.token});
    }
    moved = true;
  }
  compact(queueBytes_, queueHead_);
  if (moved) scheduleFlush();
}

void BrokerLink::subscribe(std::span<const SubscribeFilter> filters) {
  if (state_ != State::kUp || filters.empty()) return;
  encodeSubscribe(out_, version_, nextControlId(), filters);
  scheduleFlush();
}

void BrokerLink::unsubscribe(std::span<const std::string_view> filters) {
  if (state_ != State::kUp || filters.empty()) return;
  encodeUnsubscribe(out_, version_, nextControlId(), filters);
  scheduleFlush();
}

uint16_t BrokerLink::nextControlId() {
  // SUBSCRIBE and UNSUBSCRIBE take ids above those of publishes, so the two never collide.
  if (nextControlId_ <= slots_.size() || nextControlId_ == 0xFFFF) {
    nextControlId_ = static_cast<uint16_t>(slots_.size() + 1);
  } else {
    ++nextControlId_;
  }
  return nextControlId_;
}

void BrokerLink::scheduleFlush() {
  if (flushScheduled_) return;
  flushScheduled_ = true;
  auto alive = alive_;
  loop_.atEndOfPass([this, alive] {
    if (!*alive) return;
    flushScheduled_ = false;
    flush();
  });
}

void BrokerLink::flush() {
  if (!transport_ || (state_ != State::kUp && state_ != State::kAwaitConnack)) return;
  while (outHead_ < out_.size()) {
    auto result = transport_->write(std::span(out_).subspan(outHead_));
    if (result.status == net::IoStatus::kOk) {
      outHead_ += result.bytes;
      lastSent_ = loop_.now();
      continue;
    }
    if (result.status == net::IoStatus::kWantWrite || result.status == net::IoStatus::kWantRead) {
      // A TLS write that waits for input goes on when the socket is readable, not writable.
      writeWantsRead_ = result.status == net::IoStatus::kWantRead;
      break;
    }
    return fail("write to the broker failed: " + transport_->lastError());
  }
  compactOut();
  updateInterest();
  // QoS 0 publishes are done once written; they are reported in the next pass. Reported here,
  // at the end of a pass, a device paused at its limit would resume reading, publish again,
  // flush again in the same pass, and so on for as long as it kept sending.
  if (!completionsPosted_ && !awaitingWrite_.empty() &&
      awaitingWrite_.front().end <= outDropped_ + outHead_) {
    completionsPosted_ = true;
    auto alive = alive_;
    loop_.post([this, alive] {
      if (!*alive) return;
      completionsPosted_ = false;
      reportWritten();
    });
  }
}

void BrokerLink::reportWritten() {
  // A callback may publish again: that only appends.
  while (!awaitingWrite_.empty() && awaitingWrite_.front().end <= outDropped_ + outHead_) {
    uint64_t token = awaitingWrite_.front().token;
    awaitingWrite_.pop_front();
    listener_.onPublished(token, true);
  }
}

void BrokerLink::compactOut() {
  std::size_t before = outHead_;
  compact(out_, outHead_);
  outDropped_ += before - outHead_;
}

void BrokerLink::updateInterest() {
  uint32_t want = EPOLLIN;
  if ((outHead_ < out_.size() && !writeWantsRead_) || readWantsWrite_) want |= EPOLLOUT;
  if (want == interest_) return;
  interest_ = want;
  if (!loop_.rewatch(fd_, interest_, this)) {
    fail(std::string("cannot watch the broker socket: ") + std::strerror(errno));
  }
}

void BrokerLink::tick() {
  auto now = loop_.now();
  switch (state_) {
    case State::kConnecting:
    case State::kHandshake:
    case State::kAwaitConnack:
      if (now >= attemptDeadline_) fail("no answer from the broker in time");
      return;
    case State::kUp:
      break;
    default:
      return;
  }
  shrinkIdleBuffers();
  // With no keepalive (the broker may set 0) unacknowledged publishes still need a deadline,
  // or a half-open connection would hold them for ever.
  const std::chrono::seconds deadline =
      keepAlive_.count() > 0 ? keepAlive_ : std::chrono::seconds(60);
  if ((pingOutstanding_ || inflight_ > 0) && now - lastReceived_ >= deadline) {
    return fail("the broker answered nothing for " + std::to_string(deadline.count()) + " s");
  }
  if (keepAlive_.count() == 0 || pingOutstanding_) return;
  // Ping when we have been quiet, and also when the broker has: a link carrying only QoS 0
  // hears nothing back, and its first QoS 1 publish must not find lastReceived_ stale.
  if (now - lastSent_ >= keepAlive_ / 2 || now - lastReceived_ >= keepAlive_ / 2) {
    encodePingreq(out_);
    pingOutstanding_ = true;
    flush();
  }
}

void BrokerLink::shrinkIdleBuffers() {
  // A burst leaves these at their peak; an idle link gives the memory back.
  constexpr std::size_t kKeep = 256 * 1024;
  if (outHead_ == out_.size() && out_.capacity() > kKeep) {
    compactOut();
    Bytes().swap(out_);
  }
  if (inHead_ == inEnd_ && in_.capacity() > kKeep) {
    inHead_ = inEnd_ = 0;
    Bytes().swap(in_);
  }
  if (queue_.empty() && queueBytes_.capacity() > kKeep) {
    queueHead_ = 0;
    Bytes().swap(queueBytes_);
  }
}

void BrokerLink::switchVersion(Version version) {
  // Publishes queued before the first connection were encoded for the old version: encode
  // them again (this happens once, when a broker turns out to speak only MQTT 3.1.1).
  Bytes old;
  old.swap(queueBytes_);
  std::size_t offset = queueHead_;
  queueHead_ = 0;
  std::deque<Queued> entries;
  entries.swap(queue_);
  for (const Queued& entry : entries) {
    Packet packet;
    PublishIn in;
    std::span<uint8_t> bytes(old.data() + offset, entry.size);
    offset += entry.size;
    // A queued QoS 1 publish has packet id 0 until pump() numbers it, which the decoder
    // refuses: give the old copy any valid id (the new one is numbered in pump() again).
    if (entry.idOffset != 0) setPacketId(bytes, entry.idOffset, 1);
    if (nextPacket(bytes, 0, packet).status != DecodeStatus::kOk ||
        decodePublish(packet, version_, in).status != DecodeStatus::kOk) {
      continue;  // cannot happen: these are our own packets
    }
    PublishOptions again{in.topic, in.payload, in.qos, in.retain, 0, {}, {}};
    std::size_t start = queueBytes_.size();
    std::size_t idOffset = encodePublish(queueBytes_, version, again);
    queue_.push_back(Queued{static_cast<uint32_t>(queueBytes_.size() - start),
                            static_cast<uint32_t>(idOffset ? idOffset - start : 0), entry.token});
  }
  version_ = version;
}

void BrokerLink::fail(std::string_view reason, std::chrono::milliseconds retryIn) {
  const bool wasUp = state_ == State::kUp;
  closeSocket();
  if (state_ == State::kClosed) return;

  // Unacknowledged publishes: those with a token fail (their owner decides), the others go back
  // to the front of the queue in the order they were sent.
  std::vector<uint64_t> failed;
  std::vector<Slot*> kept;
  for (Slot& slot : slots_) {
    if (!slot.used) continue;
    slot.used = false;
    if (slot.keep) {
      kept.push_back(&slot);
    } else if (slot.token != 0) {
      failed.push_back(slot.token);
    }
  }
  inflight_ = 0;
  for (const AwaitingWrite& w : awaitingWrite_) failed.push_back(w.token);
  awaitingWrite_.clear();
  if (!kept.empty()) {
    std::sort(kept.begin(), kept.end(),
              [](const Slot* a, const Slot* b) { return a->sequence < b->sequence; });
    Bytes requeued;
    std::deque<Queued> entries;
    for (const Slot* slot : kept) {
      requeued.insert(requeued.end(), slot->copy.begin(), slot->copy.end());
      entries.push_back(Queued{static_cast<uint32_t>(slot->copy.size()), slot->idOffset, 0});
    }
    requeued.insert(requeued.end(), queueBytes_.begin() + static_cast<std::ptrdiff_t>(queueHead_),
                    queueBytes_.end());
    entries.insert(entries.end(), queue_.begin(), queue_.end());
    queueBytes_.swap(requeued);
    queueHead_ = 0;
    queue_.swap(entries);
  }

  state_ = State::kWaitRetry;
  if (retryIn.count() < 0) {
    retryIn = retryDelay_;
    retryDelay_ = std::min(retryDelay_ * 2, options_.retryMax);
  }
  retryTimer_ = loop_.runAfter(retryIn, [this] { connectNow(); });
  if (wasUp) {
    listener_.onLinkDown(reason);
  } else {
    listener_.onConnectFailed(reason);
  }
  for (uint64_t token : failed) listener_.onPublished(token, false);
}

void BrokerLink::closeSocket() {
  if (fd_ >= 0) {
    if (interest_) loop_.unwatch(fd_);
    interest_ = 0;
    transport_.reset();
    ::close(fd_);
    fd_ = -1;
  }
  out_.clear();
  outHead_ = 0;
  outDropped_ = 0;
  in_.clear();
  inHead_ = inEnd_ = 0;
  readWantsWrite_ = false;
  writeWantsRead_ = false;
  pingOutstanding_ = false;
}

void BrokerLink::close(bool will, std::chrono::milliseconds timeout) {
  if (retryTimer_) loop_.cancel(retryTimer_);
  if (tickTimer_) loop_.cancel(tickTimer_);
  retryTimer_ = tickTimer_ = 0;
  if (state_ == State::kUp) {
    // Under 3.1.1 only a connection that ends without DISCONNECT makes the broker publish the
    // last will; MQTT 5 says so with a reason code.
    if (!will || version_ == Version::k5) {
      encodeDisconnect(out_, version_,
                       will ? uint8_t{reason::kDisconnectWithWill} : uint8_t{reason::kSuccess});
    }
    flush();
    (void)loop_.runUntil([this] { return state_ != State::kUp || outHead_ == out_.size(); },
                         timeout);
    if (transport_ && !will) transport_->shutdown();
    if (retryTimer_) loop_.cancel(retryTimer_);  // set when the connection broke meanwhile
    retryTimer_ = 0;
  }
  closeSocket();
  state_ = State::kClosed;
  queue_.clear();
  queueBytes_.clear();
  queueHead_ = 0;
  for (Slot& slot : slots_) slot.used = false;
  inflight_ = 0;
  awaitingWrite_.clear();
}

}  // namespace impgate::bus::mqtt
