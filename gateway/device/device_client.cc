#include "gateway/device/device_client.h"

#include <sys/epoll.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <variant>

#include "gateway/base/names.h"
#include "gateway/base/net/tls_transport.h"
#include "gateway/device/tls_client_connect.h"

namespace impgate::device {
namespace {

constexpr std::size_t kReadChunk = 16 * 1024;
constexpr auto kStableLink = std::chrono::seconds(30);

std::string hostPart(const std::string& hostPort) {
  if (!hostPort.empty() && hostPort.front() == '[') {
    return hostPort.substr(1, hostPort.find(']') - 1);
  }
  return hostPort.substr(0, hostPort.rfind(':'));
}

}  // namespace

std::string_view sendErrorName(SendError e) {
  switch (e) {
    case SendError::kNone:
      return "ok";
    case SendError::kNotConnected:
      return "not_connected";
    case SendError::kInvalidEvent:
      return "invalid_event";
    case SendError::kTooLarge:
      return "too_large";
  }
  return "unknown";
}

DeviceClient::DeviceClient(net::EventLoop& loop, const net::TlsContext& tls,
                           std::shared_ptr<DeviceCredentials> credentials, DeviceOptions options,
                           Handlers handlers)
    : loop_(loop),
      tls_(tls),
      credentials_(std::move(credentials)),
      options_(std::move(options)),
      handlers_(std::move(handlers)),
      rng_(std::random_device{}()) {
  if (options_.serverName.empty()) options_.serverName = hostPart(options_.gateway);
  codePush_ = options_.codePush.verifyKey && options_.codePush.store;
  corruptPending_ = codePush_ && options_.codePush.corruptFirstFetch;
}

DeviceClient::~DeviceClient() {
  if (tickTimer_) loop_.cancel(tickTimer_);
  if (reconnectTimer_) loop_.cancel(reconnectTimer_);
  transport_.reset();
  if (fd_ >= 0) {
    loop_.unwatch(fd_);
    ::close(fd_);
  }
  if (session_) SSL_SESSION_free(session_);
}

void DeviceClient::connect() {
  if (fd_ >= 0) return;  // already connecting or connected
  if (reconnectTimer_) {
    loop_.cancel(reconnectTimer_);
    reconnectTimer_ = 0;
  }
  if (!tickTimer_) tickTimer_ = loop_.runEvery(std::chrono::seconds(1), [this] { tick(); });
  startConnect();
}

void DeviceClient::startConnect() {
  reconnectTimer_ = 0;
  std::string error;
  if (!endpoint_) {
    auto parsed = net::parseEndpoint(options_.gateway);
    if (parsed) {
      endpoint_ = *parsed;
    } else {
      error = parsed.error().message;
    }
  }
  if (endpoint_) {
    auto fd = startTcpConnect(*endpoint_, options_.source);
    if (fd) {
      fd_ = *fd;
    } else {
      error = fd.error().message;
    }
  }
  if (!endpoint_ || fd_ < 0) {
    state_ = State::kConnecting;
    drop(error, false);
    return;
  }
  ++connects_;
  // A fresh reader per connection; never replaced while it is delivering frames.
  reader_ = protocol::FrameReader(protocol::kDefaultMaxFrame);
  state_ = State::kConnecting;
  stateSince_ = loop_.now();
  interest_ = EPOLLOUT;
  if (!loop_.watch(fd_, interest_, this)) {
    interest_ = 0;
    drop(std::string("epoll refused the connection: ") + std::strerror(errno), false);
  }
}

void DeviceClient::watchFor(uint32_t events) {
  if (events == interest_ || fd_ < 0) return;
  if (!loop_.rewatch(fd_, events, this)) {
    drop(std::string("epoll refused the connection: ") + std::strerror(errno), false);
    return;
  }
  interest_ = events;
}

void DeviceClient::updateInterest() {
  uint32_t want = 0;
  // A read blocked on writability cannot progress on EPOLLIN: not watching it avoids spinning
  // on input that stays in the socket until the pending TLS write is out.
  if (!readWantsWrite_ || writeWantsRead_) want |= EPOLLIN;
  if (readWantsWrite_ || (!output_.empty() && !writeWantsRead_)) want |= EPOLLOUT;
  watchFor(want);
}

void DeviceClient::onIoEvents(uint32_t events) {
  switch (state_) {
    case State::kConnecting:
      onConnected();
      return;
    case State::kHandshake:
      driveHandshake();
      return;
    case State::kHelloSent:
    case State::kOnline: {
      // Still this link: a handler may have dropped it (and even started the next one).
      auto linkUp = [this] {
        return fd_ >= 0 && (state_ == State::kHelloSent || state_ == State::kOnline);
      };
      bool retryRead = false;
      if (events & (EPOLLOUT | EPOLLHUP | EPOLLERR)) {
        retryRead = readWantsWrite_;
        readWantsWrite_ = false;
        if (!output_.empty() && !writeWantsRead_) flushOutput();
      }
      if (linkUp() && writeWantsRead_ && (events & (EPOLLIN | EPOLLHUP | EPOLLERR))) {
        writeWantsRead_ = false;
        flushOutput();
      }
      if (linkUp() && (retryRead || (events & (EPOLLIN | EPOLLHUP | EPOLLERR)))) readAvailable();
      if (linkUp()) updateInterest();
      return;
    }
    default:
      return;
  }
}

void DeviceClient::onConnected() {
  auto transport = startTlsClient(fd_, tls_, options_.serverName, session_, *credentials_);
  if (!transport) {
    drop(transport.error().message, false);
    return;
  }
  transport_ = std::move(*transport);
  state_ = State::kHandshake;
  driveHandshake();
}

void DeviceClient::driveHandshake() {
  HandshakeStep step = stepHandshake(*transport_);
  if (!step.error.empty()) {
    drop(step.error, false);
    return;
  }
  if (!step.done) {
    watchFor(step.watch);
    return;
  }
  resumed_ = transport_->resumed();
  state_ = State::kHelloSent;
  lastReceived_ = loop_.now();
  watchFor(EPOLLIN);
  // Asked of the store at every HELLO: after an install the next link reports the new code.
  std::string codeId = helloCodeId();
  if (codeId.size() > protocol::kMaxCodeIdLength) codeId.resize(protocol::kMaxCodeIdLength);
  sendFrame(protocol::Hello{protocol::kVersion, codePush_ ? protocol::kCapCodePush : 0u, codeId});
  if (fd_ >= 0) readAvailable();
}

void DeviceClient::readAvailable() {
  uint8_t buffer[kReadChunk];
  while (fd_ >= 0) {
    net::IoResult r = transport_->read(std::span<uint8_t>(buffer, sizeof buffer));
    if (r.status == net::IoStatus::kOk) {
      lastReceived_ = loop_.now();
      auto err = reader_.feed(std::span<const uint8_t>(buffer, r.bytes),
                              [this](uint8_t type, auto body) { return handleFrame(type, body); });
      if (err != protocol::DecodeError::kNone && fd_ >= 0) {
        drop(std::string("protocol: ") + std::string(protocol::decodeErrorName(err)), true);
      }
      continue;
    }
    if (r.status == net::IoStatus::kWantRead) return;
    if (r.status == net::IoStatus::kWantWrite) {
      // TLS must write before it can read (a KeyUpdate half sent): retried on EPOLLOUT even
      // when nothing is queued.
      readWantsWrite_ = true;
      updateInterest();
      return;
    }
    drop(r.status == net::IoStatus::kClosed ? "closed by gateway"
                                            : "connection lost: " + transport_->lastError(),
         false);
    return;
  }
}

bool DeviceClient::handleFrame(uint8_t type, std::span<const uint8_t> body) {
  protocol::Frame frame;
  if (auto err = protocol::decode(type, body, frame); err != protocol::DecodeError::kNone) {
    drop(std::string("protocol: ") + std::string(protocol::decodeErrorName(err)), true);
    return false;
  }
  if (auto* welcome = std::get_if<protocol::Welcome>(&frame)) {
    state_ = State::kOnline;
    stateSince_ = loop_.now();
    keepalive_ = std::chrono::seconds(welcome->keepaliveSeconds ? welcome->keepaliveSeconds : 60);
    // The gateway sends its session ticket right after the handshake, before WELCOME, so the
    // session now in hand is the one to resume with next time.
    if (auto* tls = dynamic_cast<net::TlsTransport*>(transport_.get())) {
      if (SSL_SESSION* s = tls->takeSession()) {
        if (session_) SSL_SESSION_free(session_);
        session_ = s;
      }
    }
    if (handlers_.onOnline) handlers_.onOnline(*welcome);
  } else if (auto* msg = std::get_if<protocol::Msg>(&frame)) {
    if (msg->ackWanted) sendFrame(protocol::Ack{msg->id, protocol::AckStatus::kOk});
    if (fd_ < 0) return false;  // the ACK failed and dropped the link: the body is gone too
    if (handlers_.onMessage) handlers_.onMessage(msg->event, msg->payload);
  } else if (auto* ack = std::get_if<protocol::Ack>(&frame)) {
    if (handlers_.onAck) handlers_.onAck(ack->id, ack->status);
  } else if (auto* ping = std::get_if<protocol::Ping>(&frame)) {
    sendFrame(protocol::Pong{ping->nonce});
  } else if (std::holds_alternative<protocol::Pong>(frame)) {
    pingOutstanding_ = false;
  } else if (auto* bye = std::get_if<protocol::Bye>(&frame)) {
    drop("bye:" + std::string(protocol::byeReasonName(bye->reason)), false);
    return false;
  } else if (auto* offer = std::get_if<protocol::CodeOffer>(&frame)) {
    // Without code push this client did not set kCapCodePush, so a gateway sends it no code
    // push frames; one that does anyway is ignored rather than fatal.
    if (codePush_ && state_ == State::kOnline) onCodeOffer(*offer);
  } else if (auto* data = std::get_if<protocol::CodeData>(&frame)) {
    if (codePush_ && state_ == State::kOnline) onCodeData(*data);
  } else {
    drop("protocol: unexpected frame from gateway", true);
    return false;
  }
  return fd_ >= 0;
}

SendError DeviceClient::send(std::string_view event, std::span<const uint8_t> payload,
                             bool ackWanted, uint32_t* id) {
  if (state_ != State::kOnline) return SendError::kNotConnected;
  if (!isValidEventName(event)) return SendError::kInvalidEvent;
  if (payload.size() + event.size() + 16 > protocol::kDefaultMaxFrame) return SendError::kTooLarge;
  uint32_t messageId = nextId_++;
  if (nextId_ == 0) nextId_ = 1;
  if (id) *id = messageId;
  sendFrame(protocol::Msg{messageId, ackWanted, event, payload});
  return SendError::kNone;
}

SendError DeviceClient::log(protocol::LogLevel level, std::string_view text) {
  if (state_ != State::kOnline) return SendError::kNotConnected;
  if (text.size() + 16 > protocol::kDefaultMaxFrame) return SendError::kTooLarge;
  sendFrame(protocol::Log{level, text});
  return SendError::kNone;
}

bool DeviceClient::requestKeyUpdate() {
  if (!transport_ || (state_ != State::kOnline && state_ != State::kHelloSent)) return false;
  return transport_->requestKeyUpdate();
}

void DeviceClient::writeRaw(std::span<const uint8_t> bytes) {
  if (transport_ && (state_ == State::kOnline || state_ == State::kHelloSent)) write(bytes);
}

template <typename FrameT>
void DeviceClient::sendFrame(const FrameT& frame) {
  scratch_.clear();
  protocol::encode(frame, scratch_);
  write(scratch_);
}

// The code push frames are sent from device_client_code.cc.
template void DeviceClient::sendFrame(const protocol::CodeGet&);
template void DeviceClient::sendFrame(const protocol::CodeResult&);

void DeviceClient::write(std::span<const uint8_t> bytes) {
  if (!output_.empty()) {
    output_.insert(output_.end(), bytes.begin(), bytes.end());
    return;
  }
  while (!bytes.empty()) {
    net::IoResult r = transport_->write(bytes);
    if (r.status == net::IoStatus::kOk) {
      bytes = bytes.subspan(r.bytes);
      continue;
    }
    if (r.status == net::IoStatus::kWantWrite || r.status == net::IoStatus::kWantRead) {
      output_.assign(bytes.begin(), bytes.end());
      writeWantsRead_ = r.status == net::IoStatus::kWantRead;
      updateInterest();
      return;
    }
    drop("connection lost: " + transport_->lastError(), false);
    return;
  }
}

void DeviceClient::flushOutput() {
  std::size_t done = 0;
  while (done < output_.size()) {
    net::IoResult r = transport_->write(std::span(output_).subspan(done));
    if (r.status == net::IoStatus::kWantRead) writeWantsRead_ = true;
    if (r.status == net::IoStatus::kWantWrite || r.status == net::IoStatus::kWantRead) break;
    if (r.status != net::IoStatus::kOk) {
      drop("connection lost: " + transport_->lastError(), false);
      return;
    }
    done += r.bytes;
  }
  output_.erase(output_.begin(), output_.begin() + static_cast<std::ptrdiff_t>(done));
  if (output_.empty()) output_.shrink_to_fit();
  updateInterest();
}

void DeviceClient::tick() {
  auto now = loop_.now();
  if (state_ == State::kConnecting || state_ == State::kHandshake || state_ == State::kHelloSent) {
    if (now - stateSince_ > options_.connectTimeout) drop("connect timeout", false);
    return;
  }
  if (state_ != State::kOnline) return;
  checkCodeStall();
  if (state_ != State::kOnline) return;  // the result could not be written
  auto silent = now - lastReceived_;
  if (silent * 2 >= keepalive_ * 3) {
    drop("keepalive timeout", true);
  } else if (silent >= keepalive_ && !pingOutstanding_) {
    pingOutstanding_ = true;
    sendFrame(protocol::Ping{static_cast<uint64_t>(now.time_since_epoch().count())});
  }
}

void DeviceClient::disconnect() {
  options_.reconnect = false;
  if (reconnectTimer_) {
    loop_.cancel(reconnectTimer_);
    reconnectTimer_ = 0;
  }
  if (fd_ >= 0) drop("disconnected", state_ == State::kOnline || state_ == State::kHelloSent);
  state_ = State::kIdle;
}

void DeviceClient::drop(const std::string& reason, bool sendBye) {
  if (sendBye && transport_) {
    scratch_.clear();
    protocol::encode(protocol::Bye{protocol::ByeReason::kNormal, {}}, scratch_);
    if (output_.empty()) transport_->write(scratch_);
    transport_->shutdown();
  }
  transport_.reset();
  if (fd_ >= 0) {
    loop_.unwatch(fd_);
    ::close(fd_);
    fd_ = -1;
  }
  interest_ = 0;
  // The transfer lived on this link; its partial stays in the store for the next offer.
  transfer_.reset();
  getsInFlight_.clear();
  output_.clear();
  output_.shrink_to_fit();
  readWantsWrite_ = false;
  writeWantsRead_ = false;
  pingOutstanding_ = false;
  bool wasActive = state_ != State::kIdle && state_ != State::kWaiting;
  // Backoff restarts only after a link that lasted: a device dropped right after connecting
  // keeps backing off instead of retrying in a tight loop.
  if (state_ == State::kOnline && loop_.now() - stateSince_ >= kStableLink) {
    backoff_ = std::chrono::milliseconds(0);
  }
  state_ = State::kWaiting;
  if (wasActive && handlers_.onOffline) handlers_.onOffline(reason);
  if (state_ == State::kWaiting) {
    if (options_.reconnect) {
      scheduleReconnect();
    } else {
      state_ = State::kIdle;
    }
  }
}

void DeviceClient::scheduleReconnect() {
  // Exponential backoff with full jitter: a fleet that lost its node does not come back in
  // one wave.
  backoff_ =
      backoff_.count() == 0 ? options_.backoffMin : std::min(backoff_ * 2, options_.backoffMax);
  std::uniform_int_distribution<long> pick(0, backoff_.count());
  auto delay = std::chrono::milliseconds(pick(rng_));
  reconnectTimer_ = loop_.runAfter(delay, [this] { startConnect(); });
}

}  // namespace impgate::device
