// DeviceSession: one device's connection to this gateway node, from the TLS handshake to BYE.
//
// Owned by the Gateway, driven by its reactor: readiness events arrive through onIoEvents(),
// deadlines through sweep(), agent messages through deliver(), broker acknowledgements through
// onPublished(). The session never destroys itself: close() hands it back to the Gateway,
// which releases it after the current reactor pass.
//
// Kept compact on purpose (no per-connection timers, buffers only while they hold data): a
// gateway holds tens of thousands of these.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "bus/device_bus/device_bus.h"
#include "gateway/base/net/event_loop.h"
#include "gateway/base/net/transport.h"
#include "gateway/base/protocol/codec.h"
#include "gateway/base/protocol/frame_reader.h"
#include "gateway/daemon/gateway_stats.h"
#include "gateway/daemon/receipt_route.h"

namespace impgate::gateway {

class Gateway;

// Identifies one connection for the life of the process: a counter of accepted connections,
// below 2^48 so that a publish token can carry it (Gateway::publishToken), and never the id of
// a connection still open.
using ConnectionId = uint64_t;

class DeviceSession final : public net::IoHandler {
 public:
  enum class State : uint8_t { kHandshake, kAwaitHello, kOnline, kClosed };

  DeviceSession(Gateway& gateway, ConnectionId connectionId, int fd,
                std::unique_ptr<net::Transport> transport);
  ~DeviceSession() override;
  DeviceSession(const DeviceSession&) = delete;
  DeviceSession& operator=(const DeviceSession&) = delete;

  void onIoEvents(uint32_t events) override;
  // Called about once a second: handshake deadline, keepalive ping and timeout.
  void sweep(uint32_t nowSeconds);
  // An agent message for this device; `receipt` says whether it gets a receipt and where
  // (routeReceipt(); never a refused route).
  void deliver(const bus::AgentMessage& message, const ReceiptRoute& receipt);
  // The broker's answer to the publish this session started under `tag` (Gateway::publishToken).
  void onPublished(uint16_t tag, bool ok);

  // Closes after a failure: counts and logs `error`, sends BYE `bye` when the protocol allows.
  void fail(ErrorReason error, protocol::ByeReason bye, std::string_view detail);
  // Closes without an error: `why` ends up in logs and in the offline presence.
  void end(std::string_view why, bool sendBye, protocol::ByeReason bye);

  State state() const { return state_; }
  ConnectionId connectionId() const { return connectionId_; }
  // Bytes this session holds for its device (partial frame, unread input, queued output,
  // pending deliveries), as last reported to the gateway's MemoryBudget.
  std::size_t bufferedBytes() const { return accounted_; }
  const std::string& deviceId() const { return deviceId_; }
  uint64_t epochMs() const { return epochMs_; }
  const std::string& codeId() const { return codeId_; }
  void setCodeId(std::string_view code) { codeId_.assign(code); }
  // The group the device's certificate names (empty: none).
  const std::string& certGroup() const { return certGroup_; }
  // The device's HELLO set the code-push capability.
  bool takesCodePush() const { return codePush_; }
  // Sends CODE_OFFER; false when the session is not open.
  bool sendCodeOffer(const protocol::CodeOffer& offer);

 private:
  // An agent message sent to the device, waiting for its ACK.
  struct PendingDelivery {
    uint32_t id;
    uint32_t sentAt;  // gateway seconds; unanswered after delivery-timeout, it has failed
    uint64_t seq;
    std::string event;
    std::string correlation;
    std::string receiptTopic;  // empty: the device's ack topic
    // Heap bytes counted in pendingBytes_ when it was added. Recorded, because erasing from
    // pending_ move-assigns the later entries, and a short string moved into a longer one's
    // place keeps that one's capacity: recounting then would make pendingBytes_ wrap.
    uint32_t heldBytes;
    bool receipt;  // whether the agent gets a receipt for it
  };

  // A publish to the bus waiting for the broker's answer: a device MSG or a LOG line.
  struct InflightPublish {
    uint16_t tag;
    bool ackWanted;
    uint32_t messageId;
  };

  void driveHandshake();
  void readAvailable();
  // Hands `bytes` to the frame reader until they are used up or reading pauses; what is left
  // is kept in held_ and handled first when reading resumes.
  void consume(std::span<const uint8_t> bytes);
  // Registers a publish and returns its bus token; pauses reading at the in-flight limit.
  uint64_t startPublish(uint32_t messageId, bool ackWanted);
  // Reports this session's buffered bytes to the gateway's memory budget.
  void reaccount();
  void flushOutput();
  bool handleFrame(uint8_t type, std::span<const uint8_t> body);
  void handleHello(const protocol::Hello& hello);
  void handleMsg(const protocol::Msg& msg);
  void handleAck(const protocol::Ack& ack);
  // CODE_GET and CODE_RESULT (a HELLO with the code-push capability came first).
  template <typename CodeFrame>
  void handleCode(const CodeFrame& frame);
  // Encodes `frame` into the gateway's scratch buffer and writes or queues it.
  template <typename FrameT>
  void sendFrame(const FrameT& frame);
  void write(std::span<const uint8_t> bytes);
  // Bytes queued in output_ and not yet taken by the transport.
  std::size_t outputQueued() const { return output_.size() - outputSent_; }
  void updateInterest();
  // Asks the reactor for `want`; on failure the session closes (kIoError) and false is returned.
  bool watchEvents(uint32_t want);
  void closeNow(std::string_view why, bool sendBye, protocol::ByeReason bye);
  // Publishes d's receipt with `status`, if it wanted one.
  void publishReceipt(const PendingDelivery& d, std::string_view status);
  // Gives up on deliveries the device has not acknowledged within the delivery timeout.
  void expireDeliveries(uint32_t now);

  Gateway& gateway_;
  std::unique_ptr<net::Transport> transport_;
  std::string deviceId_;
  std::string codeId_;
  std::string certGroup_;
  protocol::FrameReader reader_;
  // Bytes the transport has not taken yet start at output_[outputSent_]; the sent prefix is
  // dropped only once it is large, so a long backlog drains in O(bytes). Empty when idle.
  std::vector<uint8_t> output_;
  std::size_t outputSent_ = 0;
  std::vector<uint8_t> held_;  // read but not yet framed because reading paused
  std::vector<PendingDelivery> pending_;
  std::vector<InflightPublish> inflight_;  // in publish order
  uint64_t epochMs_ = 0;
  uint64_t deliverySeq_ = 0;
  ConnectionId connectionId_;
  std::size_t accounted_ = 0;     // bytes reported to the memory budget
  std::size_t pendingBytes_ = 0;  // heap held by pending_
  uint32_t createdAt_;            // gateway seconds
  uint32_t lastReceived_;         // gateway seconds
  uint32_t nextOutgoingId_ = 1;
  uint16_t nextTag_ = 0;
  int fd_;
  uint32_t interest_ = 0;
  State state_ = State::kHandshake;
  bool pingOutstanding_ = false;
  bool readPaused_ = false;
  // TLS may need the other direction to make progress (as Redis tracks it): a read that must
  // first write (a KeyUpdate or ticket half sent) waits for EPOLLOUT, a write that must first
  // read waits for EPOLLIN; that event then resumes the blocked operation.
  bool readWantsWrite_ = false;
  bool writeWantsRead_ = false;
  bool flushScheduled_ = false;  // output_ goes out at the end of this pass
  bool codePush_ = false;        // HELLO set kCapCodePush
};

}  // namespace impgate::gateway
