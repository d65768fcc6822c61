#include "gateway/daemon/device_session.h"

#include <sys/epoll.h>
#include <unistd.h>

#include <algorithm>
#include <variant>

#include "gateway/base/log.h"
#include "gateway/base/names.h"
#include "gateway/daemon/gateway.h"

namespace impgate::gateway {
namespace {

constexpr std::string_view kComp = "session";
// Reads per readiness event before yielding to other connections.
constexpr int kReadsPerEvent = 16;
// The sent prefix of a session's output buffer is dropped once it is this large (and at least
// half the buffer).
constexpr std::size_t kCompactAfter = 64 * 1024;
// Output buffer capacity a connection keeps between passes while busy (returned by the sweep).
constexpr std::size_t kKeepOutputCapacity = 16 * 1024;

using protocol::ByeReason;

ErrorReason errorFor(protocol::DecodeError e) {
  switch (e) {
    case protocol::DecodeError::kTooLarge:
      return ErrorReason::kFrameTooLarge;
    case protocol::DecodeError::kUnknownType:
      return ErrorReason::kUnknownFrame;
    case protocol::DecodeError::kInvalidName:
      return ErrorReason::kInvalidName;
    default:
      return ErrorReason::kMalformed;
  }
}

}  // namespace

DeviceSession::DeviceSession(Gateway& gateway, ConnectionId connectionId, int fd,
                             std::unique_ptr<net::Transport> transport)
    : gateway_(gateway),
      transport_(std::move(transport)),
      // Until WELCOME only a HELLO-sized frame is accepted: a peer that has not identified
      // itself cannot make the gateway hold more.
      reader_(protocol::kMaxHandshakeFrame),
      connectionId_(connectionId),
      createdAt_(gateway.nowSeconds()),
      lastReceived_(createdAt_),
      fd_(fd) {
  interest_ = EPOLLIN;
  if (!gateway_.loop().watch(fd_, interest_, this)) {
    interest_ = 0;
    fail(ErrorReason::kIoError, ByeReason::kInternal, "cannot watch the connection");
  }
}

DeviceSession::~DeviceSession() {
  if (fd_ >= 0) ::close(fd_);
}

void DeviceSession::updateInterest() {
  if (state_ == State::kClosed) return;
  uint32_t want = 0;
  // A read blocked on writability cannot progress on EPOLLIN: not watching it avoids spinning
  // on input that stays in the socket until the pending TLS write is out.
  if (!readPaused_ && !readWantsWrite_) want |= EPOLLIN;
  if (writeWantsRead_) want |= EPOLLIN;
  // Output written at the end of this pass (flushScheduled_) needs no readiness event.
  if (readWantsWrite_ || (outputQueued() > 0 && !flushScheduled_ && !writeWantsRead_)) {
    want |= EPOLLOUT;
  }
  watchEvents(want);
}

bool DeviceSession::watchEvents(uint32_t want) {
  if (want == interest_) return true;
  if (!gateway_.loop().rewatch(fd_, want, this)) {
    fail(ErrorReason::kIoError, ByeReason::kInternal, "cannot change the connection's events");
    return false;
  }
  interest_ = want;
  return true;
}

void DeviceSession::onIoEvents(uint32_t events) {
  if (state_ == State::kClosed) return;
  if (state_ == State::kHandshake) {
    driveHandshake();
    return;
  }
  if (readPaused_ && !writeWantsRead_ && (events & (EPOLLHUP | EPOLLERR))) {
    // Not reading, so the hang-up would be reported again and again: end it here.
    end("connection_lost", false, ByeReason::kNormal);
    return;
  }
  bool retryRead = false;
  if (events & (EPOLLOUT | EPOLLHUP | EPOLLERR)) {
    // Writable: flush the queue, and retry the read that waited for writability even when
    // nothing is queued (either call sends what TLS has pending).
    retryRead = readWantsWrite_;
    readWantsWrite_ = false;
    if (!output_.empty() && !writeWantsRead_) flushOutput();
  }
  if (state_ != State::kClosed && writeWantsRead_ && (events & (EPOLLIN | EPOLLHUP | EPOLLERR))) {
    writeWantsRead_ = false;
    flushOutput();
  }
  if (state_ != State::kClosed && (retryRead || (events & (EPOLLIN | EPOLLHUP | EPOLLERR)))) {
    readAvailable();
  }
  updateInterest();
  reaccount();
}

void DeviceSession::driveHandshake() {
  net::IoStatus st = transport_->handshake();
  switch (st) {
    case net::IoStatus::kWantRead:
      watchEvents(EPOLLIN);
      return;
    case net::IoStatus::kWantWrite:
      watchEvents(EPOLLIN | EPOLLOUT);
      return;
    case net::IoStatus::kOk:
      break;
    default:
      fail(ErrorReason::kHandshakeFailed, ByeReason::kNotAuthorized, transport_->lastError());
      return;
  }
  GatewayStats& stats = gateway_.stats();
  stats.handshakesOk.inc();
  if (transport_->resumed()) stats.handshakesResumed.inc();
  deviceId_ = transport_->peerIdentity();
  certGroup_ = transport_->peerGroup();
  if (!isValidDeviceId(deviceId_)) {
    // The certificate is from our CA but names no usable device: refuse it.
    state_ = State::kAwaitHello;
    fail(ErrorReason::kBadIdentity, ByeReason::kNotAuthorized,
         "certificate does not name a valid device id");
    return;
  }
  transport_->trimAfterHandshake();
  state_ = State::kAwaitHello;
  updateInterest();
  // Data (the HELLO) may already sit in OpenSSL's buffers.
  readAvailable();
}

void DeviceSession::readAvailable() {
  if (!held_.empty()) {
    std::vector<uint8_t> held = std::move(held_);
    held_.clear();
    consume(held);
  }
  std::span<uint8_t> buffer = gateway_.readBuffer();
  for (int i = 0; i < kReadsPerEvent && state_ != State::kClosed && !readPaused_; ++i) {
    net::IoResult r = transport_->read(buffer);
    switch (r.status) {
      case net::IoStatus::kOk: {
        lastReceived_ = gateway_.nowSeconds();
        gateway_.stats().bytesIn.inc(r.bytes);
        consume(buffer.first(r.bytes));
        break;
      }
      case net::IoStatus::kWantRead:
        return;
      case net::IoStatus::kWantWrite:
        // TLS must write before it can read (a KeyUpdate or ticket half sent): retried on
        // EPOLLOUT even when nothing is queued.
        readWantsWrite_ = true;
        updateInterest();
        return;
      case net::IoStatus::kClosed:
        end("peer_closed", false, ByeReason::kNormal);
        return;
      case net::IoStatus::kError:
        end("connection_lost", false, ByeReason::kNormal);
        return;
    }
  }
}

void DeviceSession::consume(std::span<const uint8_t> bytes) {
  std::size_t consumed = 0;
  auto err = reader_.feedUntil(
      bytes, [this](uint8_t type, auto body) { return handleFrame(type, body) && !readPaused_; },
      consumed);
  if (state_ == State::kClosed) return;
  if (err != protocol::DecodeError::kNone) {
    fail(errorFor(err), protocol::byeReasonFor(err), protocol::decodeErrorName(err));
    return;
  }
  if (consumed < bytes.size()) held_.assign(bytes.begin() + consumed, bytes.end());
}

bool DeviceSession::handleFrame(uint8_t type, std::span<const uint8_t> body) {
  if (state_ == State::kClosed) return false;
  gateway_.stats().framesIn.inc();
  // Without the code-push capability in HELLO, its frame types stay unknown to the session,
  // whatever their body, exactly as before the codec knew them (BYE unknown_frame).
  if (!codePush_ && type >= static_cast<uint8_t>(protocol::FrameType::kCodeOffer) &&
      type <= static_cast<uint8_t>(protocol::FrameType::kCodeResult)) {
    const auto err = protocol::DecodeError::kUnknownType;
    fail(errorFor(err), protocol::byeReasonFor(err), protocol::decodeErrorName(err));
    return false;
  }
  protocol::Frame frame;
  if (auto err = protocol::decode(type, body, frame); err != protocol::DecodeError::kNone) {
    fail(errorFor(err), protocol::byeReasonFor(err), protocol::decodeErrorName(err));
    return false;
  }
  if (state_ == State::kAwaitHello && !std::holds_alternative<protocol::Hello>(frame)) {
    fail(ErrorReason::kProtocolError, ByeReason::kProtocolError, "first frame must be HELLO");
    return false;
  }
  std::visit(
      [this](const auto& f) {
        using T = std::decay_t<decltype(f)>;
        if constexpr (std::is_same_v<T, protocol::Hello>) {
          handleHello(f);
        } else if constexpr (std::is_same_v<T, protocol::Msg>) {
          handleMsg(f);
        } else if constexpr (std::is_same_v<T, protocol::Ack>) {
          handleAck(f);
        } else if constexpr (std::is_same_v<T, protocol::Ping>) {
          sendFrame(protocol::Pong{f.nonce});
        } else if constexpr (std::is_same_v<T, protocol::Pong>) {
          pingOutstanding_ = false;
        } else if constexpr (std::is_same_v<T, protocol::Log>) {
          gateway_.stats().logsForwarded.inc();
          // A log line costs the bus like a message and counts against the same limit.
          gateway_.bus().publishLog(deviceId_, protocol::logLevelName(f.level), f.text,
                                    startPublish(0, false));
        } else if constexpr (std::is_same_v<T, protocol::Bye>) {
          end("bye", false, ByeReason::kNormal);
        } else if constexpr (std::is_same_v<T, protocol::CodeGet> ||
                             std::is_same_v<T, protocol::CodeResult>) {
          handleCode(f);
        } else {
          fail(ErrorReason::kProtocolError, ByeReason::kProtocolError,
               "frame type not valid from a device");
        }
      },
      frame);
  return state_ != State::kClosed;
}

void DeviceSession::handleHello(const protocol::Hello& hello) {
  if (state_ != State::kAwaitHello) {
    fail(ErrorReason::kProtocolError, ByeReason::kProtocolError, "HELLO sent twice");
    return;
  }
  if (hello.version != protocol::kVersion) {
    fail(ErrorReason::kUnsupportedVersion, ByeReason::kUnsupportedVersion,
         "protocol version " + std::to_string(hello.version) + " not supported");
    return;
  }
  if (uint32_t refusedFor = gateway_.admitSession(deviceId_)) {
    fail(ErrorReason::kFlapping, ByeReason::kOverloaded,
         "reconnecting too often; refused for " + std::to_string(refusedFor) + " s");
    return;
  }
  codeId_.assign(hello.codeId);
  codePush_ = (hello.capabilities & protocol::kCapCodePush) != 0;
  reader_.setMaxFrame(gateway_.config().maxFrame ? gateway_.config().maxFrame
                                                 : protocol::kDefaultMaxFrame);
  epochMs_ = gateway_.nextEpochMs();
  state_ = State::kOnline;
  gateway_.onDeviceOnline(*this);
  if (state_ != State::kOnline) return;
  protocol::Welcome welcome{
      protocol::kVersion, (static_cast<uint64_t>(connectionId_) << 32) ^ epochMs_,
      static_cast<uint16_t>(gateway_.config().keepalive.count()), epochMs_, gateway_.config().node};
  sendFrame(welcome);
  gateway_.onSessionOpen(*this);
}

bool DeviceSession::sendCodeOffer(const protocol::CodeOffer& offer) {
  if (state_ != State::kOnline) return false;
  sendFrame(offer);
  return state_ == State::kOnline;
}

template <typename CodeFrame>
void DeviceSession::handleCode(const CodeFrame& f) {
  if constexpr (std::is_same_v<CodeFrame, protocol::CodeGet>) {
    std::span<const uint8_t> data = gateway_.codePush().serve(deviceId_, f);
    sendFrame(protocol::CodeData{f.code, f.offset, data});
  } else {
    gateway_.codePush().onResult(deviceId_, f);
  }
}

void DeviceSession::handleMsg(const protocol::Msg& msg) {
  uint64_t token = startPublish(msg.id, msg.ackWanted);
  gateway_.bus().publishDeviceMessage(deviceId_, msg.event, msg.payload, msg.ackWanted, token);
}

uint64_t DeviceSession::startPublish(uint32_t messageId, bool ackWanted) {
  // Tags are unique among this session's publishes in flight: at most maxInflightPublishes
  // (validated to be far below 2^16) are, since reading stops at that many.
  uint16_t tag = nextTag_++;
  inflight_.push_back(InflightPublish{tag, ackWanted, messageId});
  if (inflight_.size() >= gateway_.config().maxInflightPublishes && !readPaused_) {
    // The broker is behind: stop taking frames from this device until it catches up. The
    // frame reader suspends right after this frame; the rest of the read waits in held_.
    readPaused_ = true;
    gateway_.stats().readPauses.inc();
    updateInterest();
  }
  return Gateway::publishToken(connectionId_, tag);
}

void DeviceSession::onPublished(uint16_t tag, bool ok) {
  (ok ? gateway_.stats().messagesPublished : gateway_.stats().messagesPublishFailed).inc();
  // Answers come in publish order, so the match is nearly always the first entry.
  auto it = std::find_if(inflight_.begin(), inflight_.end(),
                         [tag](const InflightPublish& p) { return p.tag == tag; });
  if (it == inflight_.end()) return;
  InflightPublish done = *it;
  inflight_.erase(it);
  if (state_ != State::kOnline) return;
  if (done.ackWanted) {
    sendFrame(protocol::Ack{done.messageId,
                            ok ? protocol::AckStatus::kOk : protocol::AckStatus::kFailed});
  }
  if (readPaused_ && inflight_.size() <= gateway_.config().maxInflightPublishes / 2) {
    readPaused_ = false;
    lastReceived_ = gateway_.nowSeconds();  // the keepalive clock restarts with reading
    updateInterest();
    readAvailable();
  }
  reaccount();
}

void DeviceSession::reaccount() {
  std::size_t now = 0;
  if (state_ != State::kClosed) {
    now = reader_.heapBytes() + output_.capacity() + held_.capacity() + pendingBytes_ +
          inflight_.capacity() * sizeof(InflightPublish) +
          pending_.capacity() * sizeof(PendingDelivery);
  }
  if (now == accounted_) return;
  std::size_t before = accounted_;
  accounted_ = now;
  gateway_.onBufferedBytesChanged(before, now);
}

void DeviceSession::deliver(const bus::AgentMessage& message, const ReceiptRoute& receipt) {
  GatewayStats& stats = gateway_.stats();
  // QoS 1 asks the device to acknowledge, as does a receipt request at QoS 0 (the receipt says
  // what the device answered). A QoS 1 message without a receipt is still acknowledged: it
  // counts against max-pending-deliveries and in impgate_messages_delivered_total.
  bool ackWanted = message.qos > 0 || receipt.wanted;
  PendingDelivery d{nextOutgoingId_++,
                    gateway_.nowSeconds(),
                    ++deliverySeq_,
                    message.event,
                    receipt.wanted ? message.correlation : std::string(),
                    std::string(receipt.topic),
                    0,
                    receipt.wanted};
  if (nextOutgoingId_ == 0) nextOutgoingId_ = 1;
  if (state_ != State::kOnline || gateway_.sheddingLoad()) {
    // Gone, or the node is over its memory budget: a retry may work.
    stats.messagesUndeliverable.inc();
    if (state_ == State::kOnline) stats.deliveriesShed.inc();
    publishReceipt(d, "failed");
    return;
  }
  // A frame over the device's limit would make the device hang up; refuse it here instead.
  bool tooLarge = message.payload.size() > protocol::kMaxPayload;
  if (tooLarge || (ackWanted && pending_.size() >= gateway_.config().maxPendingDeliveries)) {
    stats.messagesUndeliverable.inc();
    publishReceipt(d, "rejected");
    return;
  }
  auto payload = std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(message.payload.data()),
                                          message.payload.size());
  protocol::Msg frame{d.id, ackWanted, message.event, payload};
  // Pending before sending: if the send closes the session (output overflow), this message
  // gets its "failed" receipt with the others.
  if (ackWanted) {
    d.heldBytes = static_cast<uint32_t>(d.event.capacity() + d.correlation.capacity() +
                                        d.receiptTopic.capacity());
    pendingBytes_ += d.heldBytes;
    pending_.push_back(std::move(d));
  }
  sendFrame(frame);
  reaccount();
}

void DeviceSession::handleAck(const protocol::Ack& ack) {
  for (auto it = pending_.begin(); it != pending_.end(); ++it) {
    if (it->id != ack.id) continue;
    bool delivered = ack.status == protocol::AckStatus::kOk;
    if (delivered) gateway_.stats().messagesDelivered.inc();
    // kFailed means a retry may work; kRejected that it will not.
    publishReceipt(*it, delivered                                      ? "delivered"
                        : ack.status == protocol::AckStatus::kRejected ? "rejected"
                                                                       : "failed");
    pendingBytes_ -= it->heldBytes;
    pending_.erase(it);
    return;
  }
  log::debug(kComp, "ACK for unknown message ignored", {{"device", deviceId_}, {"id", ack.id}});
}

void DeviceSession::expireDeliveries(uint32_t now) {
  auto timeout = static_cast<uint32_t>(gateway_.config().deliveryTimeout.count());
  // Sent in order, so the expired ones are a prefix.
  auto end = std::find_if(pending_.begin(), pending_.end(),
                          [&](const PendingDelivery& d) { return now - d.sentAt < timeout; });
  if (end == pending_.begin()) return;
  for (auto it = pending_.begin(); it != end; ++it) {
    pendingBytes_ -= it->heldBytes;
    publishReceipt(*it, "failed");
  }
  gateway_.stats().deliveriesTimedOut.inc(static_cast<uint64_t>(end - pending_.begin()));
  pending_.erase(pending_.begin(), end);
  reaccount();
}

void DeviceSession::publishReceipt(const PendingDelivery& d, std::string_view status) {
  if (!d.receipt) return;
  gateway_.bus().publishReceipt(deviceId_, bus::Receipt{d.event, d.seq, status, d.correlation,
                                                        gateway_.config().node, d.receiptTopic});
}

template <typename FrameT>
void DeviceSession::sendFrame(const FrameT& frame) {
  if (state_ == State::kClosed) return;
  std::vector<uint8_t>& scratch = gateway_.frameScratch();
  scratch.clear();
  protocol::encode(frame, scratch);
  gateway_.stats().framesOut.inc();
  write(scratch);
}

void DeviceSession::write(std::span<const uint8_t> bytes) {
  const std::size_t limit = gateway_.config().maxOutputBuffer;
  if (outputQueued() > 0 && outputQueued() + bytes.size() > limit && !writeWantsRead_) {
    // Much of it may only be waiting for the end of the pass: offer it to the socket first,
    // so that only what the device really does not take counts against the limit.
    flushOutput();
    if (state_ == State::kClosed) return;
  }
  if (outputQueued() > 0 && outputQueued() + bytes.size() > limit) {
    fail(ErrorReason::kOutputOverflow, ByeReason::kOverloaded, "device is not reading");
    return;
  }
  // Frames made in one pass of the event loop (the ACKs for a burst of broker acknowledgements,
  // a burst of agent messages) leave together at the end of the pass: one TLS record, one
  // write.
  output_.insert(output_.end(), bytes.begin(), bytes.end());
  if (flushScheduled_) return;
  flushScheduled_ = true;
  // Sessions are destroyed only after the pass (deferDelete), so `this` outlives the call.
  gateway_.loop().atEndOfPass([this] {
    flushScheduled_ = false;
    if (state_ != State::kClosed && !writeWantsRead_) flushOutput();
  });
}

void DeviceSession::flushOutput() {
  while (outputSent_ < output_.size()) {
    net::IoResult r = transport_->write(std::span(output_).subspan(outputSent_));
    if (r.status != net::IoStatus::kOk) {
      if (r.status == net::IoStatus::kWantRead) writeWantsRead_ = true;
      if (r.status == net::IoStatus::kWantWrite || r.status == net::IoStatus::kWantRead) break;
      end("connection_lost", false, ByeReason::kNormal);
      return;
    }
    gateway_.stats().bytesOut.inc(r.bytes);
    outputSent_ += r.bytes;
  }
  if (outputSent_ == output_.size()) {
    // A busy connection keeps a small buffer for its next pass; the sweep takes it back once
    // the connection is idle, and a big one goes at once.
    output_.clear();
    if (output_.capacity() > kKeepOutputCapacity) output_.shrink_to_fit();
    outputSent_ = 0;
  } else if (outputSent_ >= kCompactAfter && outputSent_ >= output_.size() / 2) {
    // Moving the rest costs no more than what was sent since the last move: O(bytes) overall.
    // The transport may be offered the rest at its new address (ACCEPT_MOVING_WRITE_BUFFER).
    output_.erase(output_.begin(), output_.begin() + static_cast<std::ptrdiff_t>(outputSent_));
    outputSent_ = 0;
  }
  updateInterest();
}

void DeviceSession::sweep(uint32_t now) {
  const GatewayConfig& cfg = gateway_.config();
  if (state_ == State::kHandshake || state_ == State::kAwaitHello) {
    if (now - createdAt_ >= static_cast<uint32_t>(cfg.handshakeTimeout.count())) {
      fail(
          ErrorReason::kHandshakeTimeout, ByeReason::kProtocolError,
          state_ == State::kHandshake ? "TLS handshake not completed in time" : "no HELLO in time");
    }
    return;
  }
  if (state_ != State::kOnline) return;
  expireDeliveries(now);
  // The in-flight and pending lists keep their capacity while the device is busy (no
  // allocation per message) and give it back once a sweep finds them empty.
  if (inflight_.empty() && inflight_.capacity() > 0) {
    inflight_.shrink_to_fit();
    reaccount();
  }
  if (pending_.empty() && pending_.capacity() > 0) {
    pending_.shrink_to_fit();
    reaccount();
  }
  if (output_.empty() && output_.capacity() > 0 && !flushScheduled_) {
    output_.shrink_to_fit();
    reaccount();
  }
  // A paused device is silent because we stopped reading it, not because it is gone.
  if (state_ != State::kOnline || readPaused_) return;
  auto keepalive = static_cast<uint32_t>(cfg.keepalive.count());
  uint32_t silent = now - lastReceived_;
  if (silent * 2 >= keepalive * 3) {
    fail(ErrorReason::kKeepaliveTimeout, ByeReason::kKeepaliveTimeout,
         "silent for " + std::to_string(silent) + " s");
  } else if (silent >= keepalive && !pingOutstanding_) {
    pingOutstanding_ = true;
    sendFrame(protocol::Ping{gateway_.wallMs()});
  }
}

void DeviceSession::fail(ErrorReason error, ByeReason bye, std::string_view detail) {
  if (state_ == State::kClosed) return;
  gateway_.stats().count(error);
  if (error == ErrorReason::kHandshakeFailed) gateway_.stats().handshakesFailed.inc();
  log::warn(kComp, "closing connection",
            {{"conn", connectionId_},
             {"device", deviceId_.empty() ? std::string("-") : deviceId_},
             {"reason", errorReasonName(error)},
             {"detail", detail}});
  closeNow(errorReasonName(error), state_ != State::kHandshake, bye);
}

void DeviceSession::end(std::string_view why, bool sendBye, ByeReason bye) {
  if (state_ == State::kClosed) return;
  log::info(kComp, "connection ended",
            {{"conn", connectionId_},
             {"device", deviceId_.empty() ? std::string("-") : deviceId_},
             {"reason", why}});
  closeNow(why, sendBye && state_ != State::kHandshake, bye);
}

void DeviceSession::closeNow(std::string_view why, bool sendBye, ByeReason bye) {
  if (sendBye) {
    std::vector<uint8_t>& scratch = gateway_.frameScratch();
    scratch.clear();
    protocol::encode(protocol::Bye{bye, why}, scratch);
    output_.insert(output_.end(), scratch.begin(), scratch.end());
  }
  if (state_ != State::kHandshake) {
    // Best effort, now: what this pass queued, then the BYE. A device that does not read will
    // not get them, and that is fine.
    while (outputSent_ < output_.size()) {
      net::IoResult r = transport_->write(std::span(output_).subspan(outputSent_));
      if (r.status != net::IoStatus::kOk) break;
      outputSent_ += r.bytes;
    }
  }
  if (state_ != State::kHandshake) transport_->shutdown();
  State was = state_;
  state_ = State::kClosed;
  gateway_.loop().unwatch(fd_);
  interest_ = 0;
  for (const auto& d : pending_) publishReceipt(d, "failed");
  pending_.clear();
  pendingBytes_ = 0;
  held_.clear();
  reaccount();
  gateway_.onSessionClosed(*this, was == State::kOnline, why);
}

}  // namespace impgate::gateway
