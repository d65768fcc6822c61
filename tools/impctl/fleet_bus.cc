#include "tools/impctl/fleet_bus.h"

#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <optional>
#include <random>

#include "bus/mqtt/broker_link.h"
#include "bus/topics/topic_scheme.h"
#include "gateway/base/net/event_loop.h"
#include "gateway/base/net/tls_context.h"

namespace impgate::impctl {
namespace {

namespace mqtt = bus::mqtt;

// Publishes handed to the link and not yet acknowledged (in its window or its queue). Enough
// to keep any broker's window full; small enough that a large batch is not copied whole.
constexpr std::size_t kMaxOutstanding = 2048;
// A publish cut by a dropped connection is sent again, this many times at most.
constexpr int kMaxAttempts = 5;
// Failed connection attempts after which connect() gives up before its timeout. The first
// failure may be the broker refusing MQTT 5 (the link then retries with 3.1.1 at once).
constexpr int kMaxConnectAttempts = 3;
// Tokens: the marker of collectRetained, or (batch generation << 32) | (index + 1).
constexpr uint64_t kMarkerToken = uint64_t{1} << 63;

std::span<const uint8_t> bytesOf(std::string_view text) {
  return {reinterpret_cast<const uint8_t*>(text.data()), text.size()};
}

std::string duration(std::chrono::milliseconds d) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.1f s", static_cast<double>(d.count()) / 1000.0);
  return buffer;
}

// A topic name one may publish to: not empty, no wildcard, no NUL, fits a packet.
bool validTopicName(std::string_view topic) {
  return !topic.empty() && topic.size() <= 0xFFFF &&
         topic.find_first_of(std::string_view("+#\0", 3)) == std::string_view::npos;
}

// A subscription filter: '+' only as a whole level, '#' only as the whole last level.
bool validFilter(std::string_view filter) {
  if (filter.empty() || filter.size() > 0xFFFF || filter.find('\0') != std::string_view::npos) {
    return false;
  }
  std::size_t start = 0;
  while (true) {
    std::size_t slash = filter.find('/', start);
    std::string_view level = filter.substr(
        start, slash == std::string_view::npos ? std::string_view::npos : slash - start);
    bool last = slash == std::string_view::npos;
    if (level.find_first_of("+#") != std::string_view::npos) {
      if (level.size() != 1) return false;
      if (level == "#" && !last) return false;
    }
    if (last) return true;
    start = slash + 1;
  }
}

// Whether `topic` matches the (valid) `filter`. Topics starting with '$' are not matched by a
// leading wildcard, as brokers do.
bool topicMatches(std::string_view filter, std::string_view topic) {
  if (!topic.empty() && topic.front() == '$' && !filter.empty() &&
      (filter.front() == '+' || filter.front() == '#')) {
    return false;
  }
  std::size_t f = 0;
  std::size_t t = 0;
  while (true) {
    std::size_t fEnd = filter.find('/', f);
    std::string_view level = filter.substr(f, fEnd == std::string_view::npos ? fEnd : fEnd - f);
    if (level == "#") return true;
    if (t > topic.size()) return false;  // the topic has fewer levels
    std::size_t tEnd = topic.find('/', t);
    std::string_view topicLevel = topic.substr(t, tEnd == std::string_view::npos ? tEnd : tEnd - t);
    if (level != "+" && level != topicLevel) return false;
    bool filterDone = fEnd == std::string_view::npos;
    bool topicDone = tEnd == std::string_view::npos;
    if (filterDone || topicDone) {
      // "a/#" also matches "a".
      if (topicDone && !filterDone && filter.substr(fEnd + 1) == "#") return true;
      return filterDone && topicDone;
    }
    f = fEnd + 1;
    t = tEnd + 1;
  }
}

std::string randomHex(std::size_t digits) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::random_device random;
  std::string out;
  for (std::size_t i = 0; i < digits; ++i) out.push_back(kHex[random() & 15]);
  return out;
}

}  // namespace

void addBusOptions(CLI::App& command, BusOptions& options) {
  command
      .add_option("--broker", options.broker,
                  "MQTT broker URI: tcp://HOST:PORT or ssl://HOST:PORT (default: $" +
                      std::string(kBrokerEnv) + ", else " + std::string(kDefaultBroker) + ")")
      ->envname(std::string(kBrokerEnv));
  command.add_option("--prefix", options.prefix, "topic prefix of the fleet (default imp)");
  command.add_option("--mqtt-username", options.username, "Broker user name");
  command.add_option("--mqtt-password", options.password, "Broker password");
  command.add_option("--mqtt-ca,--mqtt-ca-file", options.caFile,
                     "CA file verifying an ssl:// broker");
  command.add_option("--mqtt-cert,--mqtt-cert-file", options.certFile,
                     "Client certificate for the broker");
  command.add_option("--mqtt-key,--mqtt-key-file", options.keyFile, "Client key for the broker");
}

class FleetBus::Impl final : public mqtt::LinkListener {
 public:
  explicit Impl(BusOptions options)
      : options_(std::move(options)),
        topics_(options_.prefix),
        clientId_("impctl-" + std::to_string(::getpid()) + "-" + randomHex(8)),
        markerTopic_(options_.prefix + "/impctl/" + clientId_ + "/sync") {}

  ~Impl() override { close(); }

  BusStatus start();
  BusStatus publishAll(std::span<const RetainedMessage> messages,
                       std::chrono::milliseconds deadline);
  BusResult<std::map<std::string, std::string>> collect(std::string_view filter,
                                                        std::chrono::milliseconds deadline,
                                                        std::chrono::milliseconds quietFor);
  void close();

  const bus::TopicScheme& topics() const { return topics_; }
  const std::string& brokerUri() const { return options_.broker; }

  void onLinkUp() override;
  void onLinkDown(std::string_view reason) override;
  void onConnectFailed(std::string_view reason) override;
  void onPublished(uint64_t token, bool ok) override;
  void onMessage(const mqtt::PublishIn& message) override;

 private:
  struct Batch {
    std::span<const RetainedMessage> messages;
    uint64_t generation = 0;
    std::size_t next = 0;            // the first message not yet handed to the link
    std::vector<std::size_t> retry;  // cut by a dropped connection, to hand over again
    std::vector<uint8_t> attempts;
    std::size_t outstanding = 0;
    std::size_t acknowledged = 0;
    std::optional<BusError> error;
  };

  void pumpBatch();
  void beginCollectRound();
  std::string downSuffix() const {
    return up_ || lastError_.empty() ? "" : " (connection: " + lastError_ + ")";
  }

  // Declared first, destroyed last: the link and the TLS context unregister from it.
  net::EventLoop loop_;
  BusOptions options_;
  bus::TopicScheme topics_;
  std::string clientId_;
  std::string markerTopic_;
  std::unique_ptr<net::TlsContext> tls_;  // outlives link_
  std::unique_ptr<mqtt::BrokerLink> link_;
  bool closed_ = false;
  bool up_ = false;
  int failedAttempts_ = 0;
  std::string lastError_;

  Batch batch_;
  uint64_t generation_ = 0;

  bool collecting_ = false;
  std::string filter_;
  std::string markerPayload_;
  uint64_t markers_ = 0;
  bool markerBack_ = false;
  // When the marker came back, and when the last retained message of the round arrived.
  std::chrono::steady_clock::time_point markerAt_{};
  std::chrono::steady_clock::time_point lastRetainedAt_{};
  std::map<std::string, std::string> collected_;
};

BusStatus FleetBus::Impl::start() {
  auto endpoint =
      mqtt::resolveBroker(options_.broker, {options_.caFile, options_.certFile, options_.keyFile});
  if (!endpoint) return BusError{BusErrorCode::kInvalidOptions, endpoint.error().message};
  if (options_.username.size() > 0xFFFF || options_.password.size() > 0xFFFF) {
    return BusError{BusErrorCode::kInvalidOptions,
                    "the MQTT user name and password must be under 64 KiB each"};
  }
  tls_ = std::move(endpoint->tls);
  mqtt::LinkOptions link;
  link.broker = std::move(endpoint->address);
  link.tls = tls_.get();
  link.clientId = clientId_;
  link.username = options_.username;
  link.password = options_.password;
  link.connectTimeout = options_.connectTimeout;
  // impctl is waiting: retry a failed attempt soon rather than after the gateway's 1..30 s.
  link.retryMin = std::chrono::milliseconds(250);
  link.retryMax = std::chrono::milliseconds(1000);
  // collectRetained: let the broker have every retained message of a SUBSCRIBE in flight.
  link.receiveMaximum = 65535;
  link_ = std::make_unique<mqtt::BrokerLink>(loop_, std::move(link), *this);
  link_->start();
  (void)loop_.runUntil([this] { return up_ || failedAttempts_ >= kMaxConnectAttempts; },
                       options_.connectTimeout);
  if (!up_) {
    std::string why =
        lastError_.empty() ? "no answer within " + duration(options_.connectTimeout) : lastError_;
    close();
    return BusError{BusErrorCode::kConnect,
                    "cannot connect to the broker at " + options_.broker + ": " + why};
  }
  return {};
}

void FleetBus::Impl::close() {
  if (closed_) return;
  closed_ = true;
  if (link_) link_->close(/*will=*/false, std::chrono::milliseconds(2000));
  up_ = false;
}

void FleetBus::Impl::onLinkUp() {
  up_ = true;
  if (collecting_) beginCollectRound();
}

void FleetBus::Impl::onLinkDown(std::string_view reason) {
  up_ = false;
  lastError_ = std::string(reason);
}

void FleetBus::Impl::onConnectFailed(std::string_view reason) {
  ++failedAttempts_;
  lastError_ = std::string(reason);
}

BusStatus FleetBus::Impl::publishAll(std::span<const RetainedMessage> messages,
                                     std::chrono::milliseconds deadline) {
  if (closed_) return BusError{BusErrorCode::kInvalidOptions, "the bus connection is closed"};
  for (const RetainedMessage& m : messages) {
    if (!validTopicName(m.topic)) {
      return BusError{BusErrorCode::kInvalidOptions, "invalid topic '" + m.topic + "'"};
    }
  }
  batch_ = Batch{};
  batch_.messages = messages;
  batch_.generation = ++generation_;
  batch_.attempts.assign(messages.size(), 0);
  pumpBatch();
  bool done = loop_.runUntil(
      [this] { return batch_.error || batch_.acknowledged == batch_.messages.size(); }, deadline);
  Batch finished = std::move(batch_);
  batch_ = Batch{};  // late acknowledgements of this batch are ignored (generation)
  if (finished.error) return *finished.error;
  if (!done) {
    return BusError{BusErrorCode::kTimeout, "the broker at " + options_.broker + " acknowledged " +
                                                std::to_string(finished.acknowledged) + " of " +
                                                std::to_string(finished.messages.size()) +
                                                " retained messages within " + duration(deadline) +
                                                downSuffix()};
  }
  return {};
}

void FleetBus::Impl::pumpBatch() {
  while (!batch_.error && batch_.outstanding < kMaxOutstanding &&
         (!batch_.retry.empty() || batch_.next < batch_.messages.size())) {
    std::size_t index;
    if (!batch_.retry.empty()) {
      index = batch_.retry.back();
      batch_.retry.pop_back();
    } else {
      index = batch_.next++;
    }
    const RetainedMessage& m = batch_.messages[index];
    mqtt::PublishOptions publish;
    publish.topic = m.topic;
    publish.payload = bytesOf(m.payload);
    publish.qos = 1;
    publish.retain = true;
    uint64_t token = (batch_.generation << 32) | (index + 1);
    if (!link_->publish(publish, token)) {
      batch_.error = BusError{BusErrorCode::kRefused, "the retained message for '" + m.topic +
                                                          "' (" + std::to_string(m.payload.size()) +
                                                          " bytes) is larger than the broker at " +
                                                          options_.broker + " accepts"};
      return;
    }
    ++batch_.outstanding;
  }
}

void FleetBus::Impl::onPublished(uint64_t token, bool ok) {
  if (token == kMarkerToken) return;  // a lost marker: the collection restarts on reconnect
  if ((token >> 32) != batch_.generation || batch_.generation == 0) return;
  std::size_t index = static_cast<std::size_t>(token & 0xFFFFFFFFu) - 1;
  if (index >= batch_.messages.size()) return;
  --batch_.outstanding;
  if (ok) {
    ++batch_.acknowledged;
  } else if (link_->up()) {
    // An answer from a live connection: the broker said no (MQTT 5 reason code, e.g. not
    // authorized), or the packet exceeds a maximum it announced.
    if (!batch_.error) {
      batch_.error = BusError{BusErrorCode::kRefused, "the broker at " + options_.broker +
                                                          " refused the retained message for '" +
                                                          batch_.messages[index].topic + "'"};
    }
  } else if (++batch_.attempts[index] > kMaxAttempts) {
    if (!batch_.error) {
      batch_.error = BusError{BusErrorCode::kTimeout,
                              "the connection to the broker at " + options_.broker + " broke " +
                                  std::to_string(kMaxAttempts) + " times while publishing '" +
                                  batch_.messages[index].topic + "'" + downSuffix()};
    }
  } else {
    batch_.retry.push_back(index);  // handed to the link again; it sends after reconnecting
  }
  pumpBatch();
}

BusResult<std::map<std::string, std::string>> FleetBus::Impl::collect(
    std::string_view filter, std::chrono::milliseconds deadline,
    std::chrono::milliseconds quietFor) {
  if (closed_) return BusError{BusErrorCode::kInvalidOptions, "the bus connection is closed"};
  if (!validFilter(filter)) {
    return BusError{BusErrorCode::kInvalidOptions,
                    "invalid topic filter '" + std::string(filter) + "'"};
  }
  filter_ = std::string(filter);
  collecting_ = true;
  markerBack_ = false;
  collected_.clear();
  if (up_) beginCollectRound();  // else onLinkUp begins it
  bool done = loop_.runUntil(
      [&] {
        if (!markerBack_) return false;
        auto last = std::max(markerAt_, lastRetainedAt_);
        return std::chrono::steady_clock::now() - last >= quietFor;
      },
      deadline);
  collecting_ = false;
  if (up_) {
    std::string_view filters[] = {filter_, markerTopic_};
    link_->unsubscribe(filters);
  }
  if (!done) {
    collected_.clear();
    return BusError{BusErrorCode::kTimeout, "the broker at " + options_.broker +
                                                " did not answer for '" + filter_ + "' within " +
                                                duration(deadline) + downSuffix()};
  }
  return std::move(collected_);
}

void FleetBus::Impl::beginCollectRound() {
  // A new round after a reconnect starts from nothing: the session is clean, and messages of
  // the old round may have been lost with the connection.
  collected_.clear();
  markerBack_ = false;
  markerPayload_ = std::to_string(++markers_);
  // One SUBSCRIBE can bring more retained messages at once than a broker holds for a client:
  // mosquitto keeps max_inflight_messages (20) QoS 1 messages in flight and max_queued_messages
  // (1000) queued, and drops the rest silently; QoS 0 messages it drops once 1000 packets wait
  // unwritten. Under MQTT 5 the link announces a Receive Maximum of 65535, which the broker
  // takes as our in-flight window, so QoS 1 messages go in flight rather than into the queue
  // and none is dropped. Under 3.1.1 there is no such announcement; QoS 0 is then the better
  // bet (dropped only when the broker's writes to us back up that far).
  const uint8_t qos = link_->version() == mqtt::Version::k5 ? 1 : 0;
  mqtt::SubscribeFilter filters[2];
  filters[0].filter = filter_;
  filters[0].qos = qos;
  // Not retain-as-published: the broker then clears the retain flag of live publishes it
  // forwards, so only the retained messages of this SUBSCRIBE carry it. Updates published
  // meanwhile (device code states change all through a rollout) can neither enter the snapshot
  // nor keep the quiet period from ever starting.
  filters[0].retainAsPublished = false;
  filters[1].filter = markerTopic_;
  filters[1].qos = qos;
  link_->subscribe(filters);
  mqtt::PublishOptions marker;
  marker.topic = markerTopic_;
  marker.payload = bytesOf(markerPayload_);
  marker.qos = 1;
  marker.retain = false;
  (void)link_->publish(marker, kMarkerToken);  // a refusal shows as a timeout
}

void FleetBus::Impl::onMessage(const mqtt::PublishIn& message) {
  if (!collecting_) return;
  if (message.topic == markerTopic_) {
    std::string_view payload(reinterpret_cast<const char*>(message.payload.data()),
                             message.payload.size());
    if (payload == markerPayload_ && !markerBack_) {
      markerBack_ = true;
      markerAt_ = std::chrono::steady_clock::now();
    }
    return;
  }
  // Only retained messages, and only under this round's filter (an earlier collection's
  // subscription may still deliver until the broker has taken the UNSUBSCRIBE).
  if (!message.retain || !topicMatches(filter_, message.topic)) return;
  lastRetainedAt_ = std::chrono::steady_clock::now();
  std::string topic(message.topic);
  if (message.payload.empty()) {
    collected_.erase(topic);
  } else {
    collected_[std::move(topic)].assign(reinterpret_cast<const char*>(message.payload.data()),
                                        message.payload.size());
  }
}

// ---- FleetBus -------------------------------------------------------------------------------

FleetBus::FleetBus(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
FleetBus::~FleetBus() = default;

BusResult<std::unique_ptr<FleetBus>> FleetBus::connect(const BusOptions& options) {
  if (!bus::TopicScheme::isValidPrefix(options.prefix)) {
    return BusError{BusErrorCode::kInvalidOptions,
                    "invalid topic prefix '" + options.prefix +
                        "' (levels of [A-Za-z0-9._-] separated by single '/')"};
  }
  auto impl = std::make_unique<Impl>(options);
  if (BusStatus s = impl->start(); !s) return s.error();
  return std::unique_ptr<FleetBus>(new FleetBus(std::move(impl)));
}

const bus::TopicScheme& FleetBus::topics() const {
  return impl_->topics();
}
const std::string& FleetBus::brokerUri() const {
  return impl_->brokerUri();
}

BusStatus FleetBus::publishRetained(std::span<const RetainedMessage> messages,
                                    std::chrono::milliseconds deadline) {
  return impl_->publishAll(messages, deadline);
}

BusStatus FleetBus::publishRetained(std::string_view topic, std::string_view payload,
                                    std::chrono::milliseconds deadline) {
  RetainedMessage m{std::string(topic), std::string(payload)};
  return impl_->publishAll(std::span(&m, 1), deadline);
}

BusStatus FleetBus::clearRetained(std::span<const std::string> topics,
                                  std::chrono::milliseconds deadline) {
  std::vector<RetainedMessage> clears;
  clears.reserve(topics.size());
  for (const std::string& t : topics) clears.push_back({t, {}});
  return impl_->publishAll(clears, deadline);
}

BusStatus FleetBus::clearRetained(std::string_view topic, std::chrono::milliseconds deadline) {
  return publishRetained(topic, {}, deadline);
}

BusResult<std::map<std::string, std::string>> FleetBus::collectRetained(
    std::string_view filter, std::chrono::milliseconds deadline,
    std::chrono::milliseconds quietFor) {
  return impl_->collect(filter, deadline, quietFor);
}

void FleetBus::close() {
  impl_->close();
}

}  // namespace impgate::impctl
