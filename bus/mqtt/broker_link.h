// BrokerLink: one MQTT client connection to a broker, driven by the gateway's own reactor.
//
// It exists so that a message crossing the gateway costs less than the broker spends on it:
// no thread of its own, no lock, no allocation per message once warm. Everything queued while
// a pass of the event loop runs (publishes from many devices, the PUBACKs for agent messages)
// goes out in one write at the end of the pass, and one read takes every acknowledgement the
// broker has sent. Flow control keeps at most min(maxInflight, the broker's receive maximum)
// QoS 1 publishes unacknowledged; the rest wait in a bounded queue, already encoded.
//
// The link reconnects by itself with a backoff (1 s doubling to 30 s). A publish waiting in the
// queue survives a reconnect; one the broker had not acknowledged when the connection broke
// either fails (when it carries a token: its owner is told and may retry) or, without a token
// (retained presence, receipts), is sent again first after the reconnect. Sessions are clean:
// the owner restores its subscriptions on every onLinkUp.
//
// Without a configured version the link speaks MQTT 5 and falls back to 3.1.1 when the broker
// refuses 5 (a 3.1.1-only broker answers "unacceptable protocol version").
//
// Owned by one object on the reactor thread; every method and every LinkListener callback runs
// on that thread. Callbacks may call back into the link (publish, subscribe), never destroy it.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "bus/mqtt/mqtt_codec.h"
#include "gateway/base/net/event_loop.h"
#include "gateway/base/net/tls_context.h"
#include "gateway/base/net/transport.h"
#include "gateway/base/result.h"

namespace impgate::bus::mqtt {

// tcp://host:port, mqtt://host:port (plain), ssl://host:port, mqtts://host:port (TLS). The
// port defaults to 1883 / 8883.
struct BrokerAddress {
  bool tls = false;
  std::string host;
  uint16_t port = 0;
};
enum class UriError { kInvalid };
base::Result<BrokerAddress, UriError> parseBrokerUri(std::string_view uri);

// Where a link connects: the parsed URI and, for ssl:// and mqtts://, the client TLS context
// (an empty caFile: the system's trust store). Made once by every client of a broker (the
// gateway's bridge, impctl); the context must outlive the links that use it.
struct BrokerEndpoint {
  BrokerAddress address;
  std::unique_ptr<net::TlsContext> tls;  // null for a plain broker
};
struct BrokerTlsFiles {
  std::string caFile;
  std::string certFile;
  std::string keyFile;
};
// The error message names the URI and what is wrong with it or with the TLS files.
base::Result<BrokerEndpoint, UriError> resolveBroker(std::string_view uri,
                                                     const BrokerTlsFiles& files);

struct LinkOptions {
  BrokerAddress broker;
  const net::TlsContext* tls = nullptr;  // required for a TLS broker; outlives the link
  std::optional<Version> version;        // none: MQTT 5, falling back to 3.1.1
  std::string clientId;
  std::string username;
  std::string password;
  std::string willTopic;  // a retained QoS 1 last will, when not empty
  std::string willPayload;
  std::chrono::seconds keepAlive{20};
  std::size_t maxInflight = 1024;      // our own cap on unacknowledged publishes (at most 32768)
  std::size_t maxQueued = 100000;      // publishes waiting for the window or the connection
  std::size_t maxPacketIn = 16 << 20;  // larger packets from the broker break the connection
  // MQTT 5: the Receive Maximum announced in CONNECT, how many QoS 1 publishes the broker may
  // have unacknowledged towards us; 0 announces none (the broker then uses its own setting,
  // mosquitto's max_inflight_messages, 20 by default, and queues or drops the rest).
  uint16_t receiveMaximum = 0;
  std::chrono::milliseconds connectTimeout{5000};
  std::chrono::milliseconds retryMin{1000};
  std::chrono::milliseconds retryMax{30000};
};

class LinkListener {
 public:
  virtual ~LinkListener() = default;
  // CONNACK accepted: restore subscriptions, announce state.
  virtual void onLinkUp() = 0;
  // An established connection ended (not called for failed attempts).
  virtual void onLinkDown(std::string_view reason) = 0;
  // An attempt to connect failed; the link retries after a backoff.
  virtual void onConnectFailed(std::string_view reason) = 0;
  // The broker acknowledged (ok) or refused a publish; or it could not be delivered (the
  // connection broke with it unacknowledged).
  virtual void onPublished(uint64_t token, bool ok) = 0;
  // A PUBLISH from the broker. The views are valid during the call only; the link sends the
  // PUBACK after it returns.
  virtual void onMessage(const PublishIn& message) = 0;
};

class BrokerLink final : public net::IoHandler {
 public:
  BrokerLink(net::EventLoop& loop, LinkOptions options, LinkListener& listener);
  ~BrokerLink() override;
  BrokerLink(const BrokerLink&) = delete;
  BrokerLink& operator=(const BrokerLink&) = delete;

  // Starts connecting (and keeps reconnecting until close()).
  void start();

  // Publishes at publish.qos (0 or 1). onPublished(token, ...) follows unless `token` is 0: at
  // QoS 1 when the broker acknowledged, at QoS 0 once the packet has been written to the
  // connection (so that QoS 0 publishers are paced by the socket). Returns false, with nothing
  // queued and nothing reported, when the queue is full or the packet is larger than the broker
  // accepts.
  [[nodiscard]] bool publish(const PublishOptions& publish, uint64_t token);
  // Sent only while up (subscriptions do not outlive a connection: restore them in onLinkUp).
  void subscribe(std::span<const SubscribeFilter> filters);
  void unsubscribe(std::span<const std::string_view> filters);

  bool up() const { return state_ == State::kUp; }
  Version version() const { return version_; }
  // Nothing unacknowledged, queued or unwritten.
  bool idle() const { return inflight_ == 0 && queue_.empty() && outHead_ == out_.size(); }
  std::size_t inflight() const { return inflight_; }
  std::size_t queued() const { return queue_.size(); }
  std::size_t window() const { return window_; }

  // Ends the connection for good. With `will` false it sends a normal DISCONNECT (the broker
  // drops the last will); with `will` true it makes the broker publish the will: MQTT 5
  // DISCONNECT 0x04, or under 3.1.1 no DISCONNECT at all. Waits at most `timeout` (driving
  // the loop; call it outside callbacks) for the bytes to leave, then closes. Queued and
  // unacknowledged publishes are dropped without callbacks.
  void close(bool will, std::chrono::milliseconds timeout);

  void onIoEvents(uint32_t events) override;

 private:
  enum class State { kIdle, kConnecting, kHandshake, kAwaitConnack, kUp, kWaitRetry, kClosed };

  struct Slot {
    uint64_t token = 0;
    uint64_t sequence = 0;  // send order, to resend kept copies in order
    uint32_t idOffset = 0;  // of the packet id in copy
    bool used = false;
    bool keep = false;  // resent after a reconnect (copy holds the packet)
    std::string copy;   // its capacity stays for the next message in this slot
  };
  struct Queued {
    uint32_t size;
    uint32_t idOffset;  // of the packet id inside the packet; 0 for QoS 0
    uint64_t token;
  };

  void connectNow();
  void onSocketWritable();
  void driveHandshake();
  void sendConnect();
  void readAvailable();
  // Handles every complete packet in in_; false when the connection ended meanwhile.
  bool parse();
  bool handlePacket(const Packet& packet);
  void handleConnack(const Packet& packet);
  void handlePuback(const Packet& packet);
  void handlePublish(const Packet& packet);
  // Moves queued publishes into the window while it has room.
  void pump();
  void flush();
  void reportWritten();
  void shrinkIdleBuffers();
  void compactOut();
  void scheduleFlush();
  void updateInterest();
  void tick();
  // Ends the current connection (or attempt) and schedules the next attempt, after the
  // backoff unless `retryIn` says otherwise.
  void fail(std::string_view reason,
            std::chrono::milliseconds retryIn = std::chrono::milliseconds(-1));
  void closeSocket();
  uint16_t takeSlot();
  void track(uint16_t packetId, uint64_t token, std::span<const uint8_t> packet,
             std::size_t idOffset);
  uint16_t nextControlId();
  void switchVersion(Version version);

  net::EventLoop& loop_;
  LinkOptions options_;
  LinkListener& listener_;
  Version version_;
  bool versionFixed_;

  State state_ = State::kIdle;
  int fd_ = -1;
  uint32_t interest_ = 0;
  std::unique_ptr<net::Transport> transport_;
  net::EventLoop::Clock::time_point attemptDeadline_{};
  std::chrono::milliseconds retryDelay_;
  net::EventLoop::TimerId retryTimer_ = 0;
  net::EventLoop::TimerId tickTimer_ = 0;
  std::chrono::seconds keepAlive_{0};  // as the broker set it, or ours

  Bytes out_;
  std::size_t outHead_ = 0;
  uint64_t outDropped_ = 0;  // bytes removed from out_'s front: out_[i] is byte outDropped_ + i
  struct AwaitingWrite {
    uint64_t end;  // position after the packet's last byte
    uint64_t token;
  };
  std::deque<AwaitingWrite> awaitingWrite_;  // QoS 0 publishes with a token, in order
  Bytes in_;                                 // in_[inHead_, inEnd_) is read and not yet handled
  std::size_t inHead_ = 0;
  std::size_t inEnd_ = 0;
  bool readWantsWrite_ = false;     // TLS must write before the read can go on
  bool writeWantsRead_ = false;     // TLS must read before the write can go on
  bool completionsPosted_ = false;  // written QoS 0 publishes are reported next pass
  bool readPosted_ = false;         // a read that ran out of budget comes back as posted work
  Bytes queueBytes_;                // encoded publishes waiting, in order
  std::size_t queueHead_ = 0;
  std::deque<Queued> queue_;

  std::vector<Slot> slots_;  // packet id = index + 1
  std::size_t nextSlot_ = 0;
  std::size_t inflight_ = 0;
  std::size_t window_ = 0;
  uint64_t sequence_ = 0;
  uint16_t nextControlId_ = 0;  // SUBSCRIBE/UNSUBSCRIBE ids, above the publish ids
  std::size_t maxPacketOut_ = kMaxRemainingLength;

  net::EventLoop::Clock::time_point lastSent_{};
  net::EventLoop::Clock::time_point lastReceived_{};
  bool pingOutstanding_ = false;
  bool flushScheduled_ = false;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace impgate::bus::mqtt
