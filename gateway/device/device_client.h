// DeviceClient: the device side of the imp protocol over TLS, non-blocking on an EventLoop.
//
// Used by impdev, by the simulator (thousands of clients on one loop) and by tests, and meant
// for real Linux devices. All methods run on the loop's thread. Handlers may call back into
// the client (send, disconnect) but must not destroy it; owners destroy clients outside
// handlers or through EventLoop::deferDelete.
//
// Writes go through OpenSSL's socket BIO: the application must ignore SIGPIPE (BlockingDevice
// does this for its users), or a gateway that resets the connection kills the process.
//
// Keepalive follows the gateway's WELCOME: the device pings after that many seconds of
// silence and drops the link after 1.5 times as long. With `reconnect` set, every drop,
// including one right after connecting, is followed by a reconnect after an exponential
// backoff with full jitter, resuming the TLS session when the gateway issued a ticket.
//
// Code push (DeviceOptions::codePush, off by default; docs/protocol.md, "Code push"): the
// client answers CODE_OFFERs by itself. It reports `installed` at once for the code it runs,
// `failed` for a bad signature, `deferred` when the application's deferUpdate says so (never for
// a mandatory offer), else it copies the chunks it already holds (running code, partial
// download) and fetches the others with CODE_GETs of whole chunks (at most kMaxCodeData bytes,
// at most kMaxCodeGetsInFlight unanswered), verifies every chunk and then the whole hash, and
// installs through the CodeStore. A transfer lives on one link: a dropped link or an empty
// CODE_DATA ends it (no result; the partial stays in the store) and every new offer starts
// a transfer afresh from what the store holds. A CODE_OFFER restarts the count of unanswered
// GETs: the gateway forgets the GETs it had not answered when it sends an offer.
#pragma once

#include <openssl/ssl.h>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <span>
#include <string>

#include "gateway/base/code/manifest.h"
#include "gateway/base/net/event_loop.h"
#include "gateway/base/net/socket.h"
#include "gateway/base/net/tls_context.h"
#include "gateway/base/net/transport.h"
#include "gateway/base/pki/openssl_ptr.h"
#include "gateway/base/protocol/codec.h"
#include "gateway/base/protocol/frame_reader.h"
#include "gateway/device/code_store.h"
#include "gateway/device/device_credentials.h"

namespace impgate::device {

// What the device is told of an offered code version (CODE_OFFER without its chunk list).
struct CodeOfferInfo {
  code::Sha256 code{};
  uint32_t size = 0;
  uint32_t deployment = 0;
  bool mandatory = false;  // below the group's min_supported: may not be deferred
};

// Code push (docs/protocol.md, "Code push"), opt-in: on only when both `verifyKey` and `store`
// are set. The device then sets kCapCodePush in HELLO and reports the SHA-256 (hex) of the
// code its store runs as code_id (empty when none), instead of DeviceOptions::codeId.
struct CodePushOptions {
  // The fleet's Ed25519 code-signing public key the device was enrolled with
  // (pki::readVerifyKey of devices/<id>/code-signing.pub). Shared: a simulator gives one key
  // to thousands of clients.
  std::shared_ptr<EVP_PKEY> verifyKey;
  std::shared_ptr<CodeStore> store;
  // Asked (on the loop thread) for every offer that is not mandatory: a reason to defer it
  // (sent in CODE_RESULT `deferred`, e.g. "new code" while a task runs), or nullopt to fetch
  // and install it now. Mandatory offers never ask.
  std::function<std::optional<std::string>(const CodeOfferInfo&)> deferUpdate;
  // A transfer waiting this long for CODE_DATA (GETs unanswered) ends as `failed`
  // ("transfer stalled"), so that a download never stops silently; the partial is kept.
  std::chrono::seconds stallTimeout{60};
  // Fault injection for tests: flips one bit of the first chunk this client fetches from the
  // gateway (once per client), so that transfer fails with "corrupt chunk <sha>".
  bool corruptFirstFetch = false;
};

// What became of an offer, as DeviceClient::Handlers::onCode hears it.
struct CodeEvent {
  enum class Kind {
    kOffered,     // a CODE_OFFER arrived (before any decision)
    kDeferred,    // CODE_RESULT deferred sent; `reason` is the application's
    kInstalled,   // CODE_RESULT installed sent: the device runs `code` (or already did)
    kFailed,      // CODE_RESULT failed sent; `reason` says why; the running code is unchanged
    kSuperseded,  // the gateway withdrew the offer (empty CODE_DATA); the partial is kept
  };
  Kind kind = Kind::kOffered;
  CodeOfferInfo offer;
  std::string reason;
  // For this transfer (kInstalled, kFailed): bytes received from the gateway in CODE_DATA,
  // and bytes of chunks copied from the running code or found already fetched.
  uint64_t bytesFetched = 0;
  uint64_t bytesCopied = 0;
};

std::string_view codeEventKindName(CodeEvent::Kind kind);

struct DeviceOptions {
  std::string gateway = "127.0.0.1:31314";  // HOST:PORT
  std::string serverName;                   // name verified in the gateway certificate;
                                            // defaults to the host part of `gateway`
  std::string codeId;                       // reported in HELLO
  std::optional<net::Endpoint> source;      // local address to connect from (load tests)
  bool reconnect = false;
  std::chrono::milliseconds backoffMin{500};
  std::chrono::milliseconds backoffMax{30000};
  std::chrono::seconds connectTimeout{15};
  CodePushOptions codePush;
};

enum class SendError { kNone, kNotConnected, kInvalidEvent, kTooLarge };

class DeviceClient final : public net::IoHandler {
 public:
  enum class State { kIdle, kConnecting, kHandshake, kHelloSent, kOnline, kWaiting };

  struct Handlers {
    std::function<void(const protocol::Welcome&)> onOnline;
    // The connection ended; `reason` is a short text (e.g. "bye:keepalive_timeout").
    std::function<void(const std::string& reason)> onOffline;
    std::function<void(std::string_view event, std::span<const uint8_t> payload)> onMessage;
    std::function<void(uint32_t id, protocol::AckStatus status)> onAck;
    // Code push events (only with CodePushOptions set). May be left empty.
    std::function<void(const CodeEvent&)> onCode;
  };

  DeviceClient(net::EventLoop& loop, const net::TlsContext& tls,
               std::shared_ptr<DeviceCredentials> credentials, DeviceOptions options,
               Handlers handlers);
  ~DeviceClient() override;
  DeviceClient(const DeviceClient&) = delete;
  DeviceClient& operator=(const DeviceClient&) = delete;

  // Starts connecting. Failures are reported through onOffline (and retried if reconnecting).
  void connect();
  // Sends BYE and closes; no reconnect follows.
  void disconnect();

  // Sends a message to the agent. On success `id` is the message id an ACK will carry when
  // `ackWanted`.
  SendError send(std::string_view event, std::span<const uint8_t> payload, bool ackWanted,
                 uint32_t* id = nullptr);
  SendError log(protocol::LogLevel level, std::string_view text);
  // Writes raw bytes on the established link: for tests of the gateway's input checks.
  void writeRaw(std::span<const uint8_t> bytes);
  // Starts a TLS 1.3 key update that asks the gateway to update its keys too; it goes out
  // with the next read or write. False when not connected, not TLS 1.3, or while a write is
  // pending. For long-lived links, and for tests of the I/O paths.
  bool requestKeyUpdate();

  void onIoEvents(uint32_t events) override;

  State state() const { return state_; }
  bool online() const { return state_ == State::kOnline; }
  bool lastHandshakeResumed() const { return resumed_; }
  uint64_t connects() const { return connects_; }
  // Code push is on (CodePushOptions has a key and a store).
  bool codePushEnabled() const { return codePush_; }
  // Since the client was made, over all transfers: bytes received in CODE_DATA, and bytes of
  // chunks copied locally (from the running code, or already in the partial download).
  uint64_t codeBytesFetched() const { return codeBytesFetched_; }
  uint64_t codeBytesCopied() const { return codeBytesCopied_; }
  // A transfer is under way (offered, fetching).
  bool codeTransferActive() const { return transfer_ != nullptr; }

 private:
  void startConnect();
  void onConnected();
  void driveHandshake();
  void readAvailable();
  void flushOutput();
  bool handleFrame(uint8_t type, std::span<const uint8_t> body);
  template <typename FrameT>
  void sendFrame(const FrameT& frame);
  void write(std::span<const uint8_t> bytes);
  void watchFor(uint32_t events);
  // Watches what the link needs now: input, unless a read waits for writability; output while
  // something is queued or a read waits for it.
  void updateInterest();
  void tick();
  void drop(const std::string& reason, bool sendBye);
  void scheduleReconnect();

  // Code push (device_client_code.cc).
  // One offered version being fetched. Lives only while the link that carried its offer is up.
  struct CodeTransfer {
    enum ChunkState : uint8_t { kMissing, kRequested, kHeld };
    CodeOfferInfo offer;
    code::Manifest manifest;     // the offer's chunk list, with offsets
    std::vector<uint8_t> state;  // a ChunkState per chunk
    std::size_t cursor = 0;      // no chunk before it is kMissing
    std::size_t held = 0;
    uint64_t fetched = 0;
    uint64_t copied = 0;
    net::EventLoop::Clock::time_point lastData;  // the offer, or the last CODE_DATA taken
  };
  struct CodeGetInFlight {
    code::Sha256 code{};
    uint32_t offset = 0;
    uint32_t length = 0;
  };
  void onCodeOffer(const protocol::CodeOffer& offer);
  void onCodeData(const protocol::CodeData& data);
  // Copies every missing chunk the device already holds; false when the transfer ended.
  bool copyLocalChunks();
  // Sends CODE_GETs for missing chunks while fewer than kMaxCodeGetsInFlight are unanswered;
  // finishes the transfer when nothing is missing. False when the transfer ended.
  bool pumpCodeGets();
  void finishCodeTransfer();
  // Called every second: fails a transfer whose GETs went unanswered for stallTimeout.
  void checkCodeStall();
  void failCodeTransfer(const std::string& reason);
  void sendCodeResult(const CodeOfferInfo& offer, protocol::CodeResultStatus status,
                      const std::string& reason, CodeEvent::Kind kind);
  std::string helloCodeId() const;

  net::EventLoop& loop_;
  const net::TlsContext& tls_;
  std::shared_ptr<DeviceCredentials> credentials_;
  DeviceOptions options_;
  Handlers handlers_;
  std::optional<net::Endpoint> endpoint_;
  std::unique_ptr<net::Transport> transport_;
  SSL_SESSION* session_ = nullptr;  // for resumption on the next connect
  protocol::FrameReader reader_;
  std::vector<uint8_t> output_;
  std::vector<uint8_t> scratch_;
  int fd_ = -1;
  uint32_t interest_ = 0;
  State state_ = State::kIdle;
  bool resumed_ = false;
  bool pingOutstanding_ = false;
  // TLS may need the other direction to make progress (as Redis tracks it): a read that must
  // first write waits for EPOLLOUT, a write that must first read waits for EPOLLIN; that event
  // then resumes the blocked operation.
  bool readWantsWrite_ = false;
  bool writeWantsRead_ = false;
  uint32_t nextId_ = 1;
  uint64_t connects_ = 0;
  std::chrono::seconds keepalive_{60};
  net::EventLoop::Clock::time_point lastReceived_;
  net::EventLoop::Clock::time_point stateSince_;
  std::chrono::milliseconds backoff_{0};
  net::EventLoop::TimerId tickTimer_ = 0;
  net::EventLoop::TimerId reconnectTimer_ = 0;
  std::minstd_rand rng_;

  bool codePush_ = false;
  std::unique_ptr<CodeTransfer> transfer_;
  // CODE_GETs sent on this link and not yet answered, of any code (the gateway counts them
  // per link, whatever code they name).
  std::vector<CodeGetInFlight> getsInFlight_;
  std::vector<uint8_t> codeScratch_;
  bool corruptPending_ = false;
  uint64_t codeBytesFetched_ = 0;
  uint64_t codeBytesCopied_ = 0;
};

std::string_view sendErrorName(SendError e);

}  // namespace impgate::device
