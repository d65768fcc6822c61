#include "bus/agent/agent.h"

#include <atomic>
#include <cassert>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <random>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include <mqtt/async_client.h>

#include "bus/agent/presence_tracker.h"
#include "bus/topics/topic_scheme.h"
#include "gateway/base/log.h"
#include "gateway/base/names.h"

namespace impgate::bus {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

constexpr std::string_view kComp = "agent";
constexpr auto kMinReconnect = std::chrono::seconds(1);
constexpr auto kMaxReconnect = std::chrono::seconds(30);
constexpr auto kKeepAlive = std::chrono::seconds(30);
// Messages send() may have waiting for the broker's receive window before it refuses more.
constexpr int kMaxQueuedSends = 10000;
constexpr auto kDisconnectWait = std::chrono::seconds(2);
constexpr milliseconds kConnectRetryStep{200};
constexpr std::size_t kMaxWarnedEvents = 256;

// Set while this thread runs a callback of any Agent (Paho's threads), so stop() can refuse to
// wait for itself and a destructor knows it must not wait here.
thread_local int tCallbackDepth = 0;

std::string randomHex(int digits) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::random_device rd;
  std::mt19937_64 gen(rd());
  std::string out;
  uint64_t bits = gen();
  for (int i = 0; i < digits; ++i, bits >>= 4) out.push_back(kHex[bits & 0xf]);
  return out;
}

// MQTT 5 share names may not contain '/', '+' or '#'; we also keep them to a safe charset.
bool isValidShareName(std::string_view group) {
  return isValidDeviceId(group);
}

bool isTlsUri(std::string_view uri) {
  return uri.starts_with("ssl://") || uri.starts_with("mqtts://") || uri.starts_with("wss://");
}

}  // namespace

const char* toString(SendError error) {
  switch (error) {
    case SendError::kNone:
      return "ok";
    case SendError::kInvalidDevice:
      return "invalid_device";
    case SendError::kInvalidEvent:
      return "invalid_event";
    case SendError::kInvalidQos:
      return "invalid_qos";
    case SendError::kNotStarted:
      return "not_started";
    case SendError::kNotConnected:
      return "not_connected";
    case SendError::kClient:
      return "client_error";
  }
  return "unknown";
}

// Shared by the Agent and, for the length of each call, by the Paho callbacks (which hold only a
// weak_ptr otherwise): a callback that is running keeps it alive even when its handler destroys
// the Agent.
class Agent::Impl : public std::enable_shared_from_this<Impl> {
 public:
  explicit Impl(Options options);
  ~Impl() = default;  // close() has run: no client, no callback running

  // The Agent's destructor: no handler starts after this; disconnects, then waits for running
  // handlers and releases the client. On a thread that is running a handler, the waiting and
  // releasing happen on a helper thread once the handler has returned.
  void close();

  void on(std::string event, MessageHandler handler);
  void onAny(AnyHandler handler) { setHandler(any_, std::move(handler)); }
  void onConnect(ConnectHandler handler) { setHandler(connect_, std::move(handler)); }
  void onDisconnect(DisconnectHandler handler) { setHandler(disconnect_, std::move(handler)); }
  void onReceipt(ReceiptHandler handler) { setHandler(receipt_, std::move(handler)); }

  bool isConnected(const std::string& device) const {
    std::lock_guard lock(presenceMutex_);
    return presence_.isOnline(device);
  }

  SendResult send(const std::string& device, const std::string& event, std::string_view payload,
                  int qos, bool receipt);
  bool start(milliseconds timeout);
  void stop();
  bool ready() const { return subscribed_.load(); }

 private:
  // One Paho callback of ours. Entered only while the agent is not stopping, and counted, so
  // teardown can wait for every entered callback to leave; stopping and counting share one
  // mutex, so a callback either sees the stop or is waited for.
  class CallbackScope {
   public:
    explicit CallbackScope(Impl& impl) : impl_(impl) {
      std::lock_guard lock(impl_.stateMutex_);
      entered_ = !impl_.stopping_;
      if (entered_) {
        ++impl_.runningCallbacks_;
        ++tCallbackDepth;
      }
    }
    ~CallbackScope() {
      if (!entered_) return;
      --tCallbackDepth;
      std::lock_guard lock(impl_.stateMutex_);
      if (--impl_.runningCallbacks_ == 0) impl_.stateChanged_.notify_all();
    }
    CallbackScope(const CallbackScope&) = delete;
    CallbackScope& operator=(const CallbackScope&) = delete;
    bool entered() const { return entered_; }

   private:
    Impl& impl_;
    bool entered_ = false;
  };

  // Reports the outcome of the subscribe issued after each (re)connect.
  class SubscribeListener : public mqtt::iaction_listener {
   public:
    explicit SubscribeListener(Impl& impl) : impl_(impl) {}
    void on_success(const mqtt::token& tok) override { impl_.onSubscribed(tok); }
    void on_failure(const mqtt::token& tok) override { impl_.onSubscribeFailed(tok); }

   private:
    Impl& impl_;
  };

  template <typename F>
  void setHandler(std::shared_ptr<const F>& slot, F handler) {
    auto p = handler ? std::make_shared<const F>(std::move(handler)) : nullptr;
    std::lock_guard lock(handlersMutex_);
    slot = std::move(p);
  }
  template <typename F>
  std::shared_ptr<const F> current(const std::shared_ptr<const F>& slot) const {
    std::lock_guard lock(handlersMutex_);
    return slot;
  }

  mqtt::connect_options connectOptions(milliseconds timeout) const;
  void teardown(std::shared_ptr<mqtt::async_client> client);
  void finishClose(std::shared_ptr<mqtt::async_client> client);
  void setStopping(bool stopping);
  void waitForCallbacks();

  // Paho callbacks (Paho's thread).
  void onConnected(const std::string& cause);
  void onConnectionLost(const std::string& cause);
  void onMessage(const mqtt::const_message_ptr& msg);
  void onSubscribed(const mqtt::token& tok);
  void onSubscribeFailed(const mqtt::token& tok);

  void dispatchDeviceMessage(std::string_view device, std::string_view event,
                             const std::string& payload);
  void dispatchState(std::string_view device, const std::string& payload);
  void dispatchReceipt(std::string_view device, const mqtt::const_message_ptr& msg);
  void warnUnhandled(std::string_view device, std::string_view event);

  template <typename Fn>
  void guarded(std::string_view what, Fn&& fn);

  const Options opts_;
  std::optional<TopicScheme> topics_;  // empty when the prefix is invalid
  std::string configError_;
  const std::string corrPrefix_;  // "<random>-": marks this instance's correlation ids
  std::atomic<uint64_t> corrCounter_{0};

  mutable std::mutex handlersMutex_;
  std::unordered_map<std::string, std::shared_ptr<const MessageHandler>> handlers_;
  std::shared_ptr<const AnyHandler> any_;
  std::shared_ptr<const ConnectHandler> connect_;
  std::shared_ptr<const DisconnectHandler> disconnect_;
  std::shared_ptr<const ReceiptHandler> receipt_;

  mutable std::mutex presenceMutex_;
  PresenceTracker presence_;

  std::mutex lifecycleMutex_;  // serialises start() and stop()
  mutable std::mutex clientMutex_;
  std::shared_ptr<mqtt::async_client> client_;  // for send(): set once start() has succeeded
  // For our Paho callbacks: set before connecting, cleared only after callbacks have drained.
  std::atomic<mqtt::async_client*> callbackClient_{nullptr};

  std::mutex stateMutex_;  // with stateChanged_: subscription outcome, callback drain
  std::condition_variable stateChanged_;
  std::atomic<bool> subscribed_{false};
  std::string subscribeError_;
  bool stopping_ = false;     // guarded by stateMutex_: no callback enters while set
  int runningCallbacks_ = 0;  // guarded by stateMutex_: callbacks entered and not yet left
  SubscribeListener subscribeListener_{*this};

  std::mutex warnedMutex_;
  std::unordered_set<std::string> warnedEvents_;
};

Agent::Impl::Impl(Options options) : opts_(std::move(options)), corrPrefix_(randomHex(8) + "-") {
  if (!TopicScheme::isValidPrefix(opts_.prefix)) {
    configError_ = "invalid topic prefix '" + opts_.prefix + "'";
  } else if (!opts_.sharedGroup.empty() && !isValidShareName(opts_.sharedGroup)) {
    configError_ = "invalid shared subscription group '" + opts_.sharedGroup + "'";
  } else if (opts_.brokerUri.empty()) {
    configError_ = "no broker URI";
  } else {
    topics_.emplace(opts_.prefix);
  }
}

void Agent::Impl::on(std::string event, MessageHandler handler) {
  auto p = handler ? std::make_shared<const MessageHandler>(std::move(handler)) : nullptr;
  std::lock_guard lock(handlersMutex_);
  if (p) {
    handlers_[std::move(event)] = std::move(p);
  } else {
    handlers_.erase(event);
  }
}

mqtt::connect_options Agent::Impl::connectOptions(milliseconds timeout) const {
  mqtt::connect_options opts;
  opts.set_mqtt_version(opts_.mqtt5 ? MQTTVERSION_5 : MQTTVERSION_3_1_1);
  if (opts_.mqtt5) {
    opts.set_clean_start(true);
  } else {
    opts.set_clean_session(true);
  }
  opts.set_keep_alive_interval(kKeepAlive);
  opts.set_automatic_reconnect(kMinReconnect, kMaxReconnect);
  auto secs = std::chrono::ceil<std::chrono::seconds>(timeout);
  opts.set_connect_timeout(std::max<std::chrono::seconds>(secs, std::chrono::seconds(1)));
  if (!opts_.username.empty()) {
    opts.set_user_name(opts_.username);
    opts.set_password(opts_.password);
  }
  if (isTlsUri(opts_.brokerUri)) {
    mqtt::ssl_options ssl;
    ssl.set_enable_server_cert_auth(true);
    ssl.set_verify(true);
    if (!opts_.caFile.empty()) ssl.set_trust_store(opts_.caFile);
    if (!opts_.certFile.empty()) ssl.set_key_store(opts_.certFile);
    if (!opts_.keyFile.empty()) ssl.set_private_key(opts_.keyFile);
    opts.set_ssl(std::move(ssl));
  }
  return opts;
}

bool Agent::Impl::start(milliseconds timeout) {
  if (tCallbackDepth > 0) {
    log::error(kComp, "start() called from a handler; refused");
    return false;
  }
  std::lock_guard lifecycle(lifecycleMutex_);
  if (!topics_) {
    log::error(kComp, "cannot start", {{"reason", configError_}});
    return false;
  }
  {
    std::lock_guard lock(clientMutex_);
    if (client_) {
      log::error(kComp, "start() called twice");
      return false;
    }
  }
  auto deadline = Clock::now() + timeout;
  std::string clientId = opts_.clientId.empty() ? "impagent-" + randomHex(12) : opts_.clientId;

  std::shared_ptr<mqtt::async_client> client;
  try {
    // Sends beyond the broker's receive window (mosquitto announces 20) wait in Paho's buffer,
    // whose default of 100 would refuse an ordinary burst.
    client = std::make_shared<mqtt::async_client>(
        opts_.brokerUri, clientId,
        mqtt::create_options(opts_.mqtt5 ? MQTTVERSION_5 : MQTTVERSION_3_1_1, kMaxQueuedSends));
  } catch (const mqtt::exception& e) {
    log::error(kComp, "cannot create MQTT client",
               {{"broker", opts_.brokerUri}, {"reason", e.what()}});
    return false;
  }
  {
    std::lock_guard lock(stateMutex_);
    subscribed_ = false;
    subscribeError_.clear();
  }
  setStopping(false);
  // The callbacks hold the Impl only while they run: an Agent destroyed meanwhile finds them
  // finished (close() waits) or sees them skip (weak_ptr expired, or stopping).
  std::weak_ptr<Impl> weak = weak_from_this();
  client->set_connected_handler([weak](const std::string& cause) {
    if (auto self = weak.lock()) self->onConnected(cause);
  });
  client->set_connection_lost_handler([weak](const std::string& cause) {
    if (auto self = weak.lock()) self->onConnectionLost(cause);
  });
  client->set_message_callback([weak](const mqtt::const_message_ptr& msg) {
    if (auto self = weak.lock()) self->onMessage(msg);
  });
  callbackClient_ = client.get();

  // A broker that is still starting refuses connections; keep trying until the deadline.
  std::string lastError = "none";
  bool connected = false;
  auto opts = connectOptions(timeout);
  while (!connected) {
    auto remaining = std::chrono::duration_cast<milliseconds>(deadline - Clock::now());
    if (remaining <= milliseconds::zero()) break;
    try {
      connected = client->connect(opts)->wait_for(remaining);
      if (!connected) lastError.insert(0, "connect timed out; last error: ");
    } catch (const mqtt::exception& e) {
      lastError = e.what();
      auto left = deadline - Clock::now();
      if (left > kConnectRetryStep) {
        std::this_thread::sleep_for(kConnectRetryStep);
      } else {
        break;
      }
    }
  }
  if (!connected) {
    log::error(kComp, "cannot connect to broker",
               {{"broker", opts_.brokerUri}, {"reason", lastError}});
    teardown(std::move(client));
    return false;
  }

  // onConnected() has subscribed (or is doing so); wait for the broker's answer.
  {
    std::unique_lock lock(stateMutex_);
    stateChanged_.wait_until(lock, deadline,
                             [&] { return subscribed_.load() || !subscribeError_.empty(); });
    if (!subscribed_) {
      std::string reason = subscribeError_.empty() ? "subscribe timed out" : subscribeError_;
      lock.unlock();
      log::error(kComp, "cannot subscribe", {{"broker", opts_.brokerUri}, {"reason", reason}});
      teardown(std::move(client));
      return false;
    }
  }
  {
    std::lock_guard lock(clientMutex_);
    client_ = std::move(client);
  }
  log::info(kComp, "agent started",
            {{"broker", opts_.brokerUri}, {"client_id", clientId}, {"prefix", opts_.prefix}});
  return true;
}

void Agent::Impl::stop() {
  if (tCallbackDepth > 0) {
    log::error(kComp, "stop() called from a handler; refused");
    return;
  }
  std::lock_guard lifecycle(lifecycleMutex_);
  std::shared_ptr<mqtt::async_client> client;
  {
    std::lock_guard lock(clientMutex_);
    client = std::move(client_);
  }
  if (!client) return;
  teardown(std::move(client));
  log::info(kComp, "agent stopped");
}

void Agent::Impl::setStopping(bool stopping) {
  std::lock_guard lock(stateMutex_);
  stopping_ = stopping;
}

void Agent::Impl::waitForCallbacks() {
  std::unique_lock lock(stateMutex_);
  stateChanged_.wait(lock, [&] { return runningCallbacks_ == 0; });
}

void Agent::Impl::close() {
  std::shared_ptr<mqtt::async_client> client;
  {
    std::lock_guard lock(clientMutex_);
    client = std::move(client_);
  }
  setStopping(true);  // from here on no handler starts
  if (tCallbackDepth > 0) {
    // Destroyed from a handler, on Paho's thread: waiting here for that handler would wait for
    // ourselves, and Paho must not be told to disconnect and wait from its own thread. A helper
    // thread does it once the handler has returned; the Impl lives until then.
    std::thread([self = shared_from_this(), client = std::move(client)]() mutable {
      self->finishClose(std::move(client));
    }).detach();
    return;
  }
  std::lock_guard lifecycle(lifecycleMutex_);
  finishClose(std::move(client));
}

void Agent::Impl::finishClose(std::shared_ptr<mqtt::async_client> client) {
  if (client) {
    teardown(std::move(client));
    log::info(kComp, "agent stopped");
  } else {
    waitForCallbacks();
  }
}

void Agent::Impl::teardown(std::shared_ptr<mqtt::async_client> client) {
  setStopping(true);
  try {
    client->disconnect()->wait_for(kDisconnectWait);
  } catch (const mqtt::exception&) {
    // Not connected, or already disconnecting: either way it is going away.
  }
  try {
    client->disable_callbacks();
  } catch (const mqtt::exception&) {
    // Refused while a connect attempt is still in flight; stopping_ keeps our callbacks inert.
  }
  waitForCallbacks();
  callbackClient_ = nullptr;
  subscribed_ = false;
  // Our reference goes here; a concurrent send() may hold another until it returns.
  client.reset();
}

SendResult Agent::Impl::send(const std::string& device, const std::string& event,
                             std::string_view payload, int qos, bool receipt) {
  if (!isValidDeviceId(device)) return {SendError::kInvalidDevice, {}, "invalid device id"};
  if (!isValidEventName(event)) return {SendError::kInvalidEvent, {}, "invalid event name"};
  if (qos != 0 && qos != 1) return {SendError::kInvalidQos, {}, "qos must be 0 or 1"};
  std::shared_ptr<mqtt::async_client> client;
  {
    std::lock_guard lock(clientMutex_);
    client = client_;
  }
  if (!client || !topics_) return {SendError::kNotStarted, {}, "agent not started"};
  if (!client->is_connected()) return {SendError::kNotConnected, {}, "broker connection down"};

  std::string corr;
  try {
    auto msg = mqtt::make_message(topics_->deviceIn(device, event), payload.data(), payload.size(),
                                  qos, false);
    if (opts_.mqtt5) {
      corr = corrPrefix_ + std::to_string(++corrCounter_);
      mqtt::properties props;
      props.add(mqtt::property(mqtt::property::CORRELATION_DATA, corr));
      // Asks for the receipt on the ack topic this agent already subscribes to.
      if (receipt)
        props.add(mqtt::property(mqtt::property::RESPONSE_TOPIC, topics_->deviceAck(device)));
      msg->set_properties(std::move(props));
    }
    client->publish(msg);
  } catch (const mqtt::exception& e) {
    if (e.get_return_code() == MQTTASYNC_DISCONNECTED) {
      return {SendError::kNotConnected, {}, "broker connection down"};
    }
    return {SendError::kClient, {}, e.what()};
  }
  return {SendError::kNone, std::move(corr), {}};
}

template <typename Fn>
void Agent::Impl::guarded(std::string_view what, Fn&& fn) {
  // Nothing may escape into Paho's C thread: an exception there ends the process.
  try {
    fn();
  } catch (const std::exception& e) {
    log::error(kComp, "handler threw", {{"in", what}, {"error", e.what()}});
  } catch (...) {
    log::error(kComp, "handler threw", {{"in", what}, {"error", "non-standard exception"}});
  }
}

void Agent::Impl::onConnected(const std::string& /*cause*/) {
  CallbackScope scope(*this);
  mqtt::async_client* client = callbackClient_;
  if (!scope.entered() || !client) return;
  // A clean session starts with no subscriptions: subscribe on every connect, not just the first.
  std::string out = topics_->allDeviceOut();
  if (!opts_.sharedGroup.empty()) out = "$share/" + opts_.sharedGroup + "/" + out;
  auto filters =
      mqtt::string_collection::create({out, topics_->allDeviceState(), topics_->allDeviceAck()});
  mqtt::iasync_client::qos_collection qos{1, 1, 1};
  log::info(kComp, "connected to broker", {{"broker", opts_.brokerUri}});
  try {
    client->subscribe(filters, qos, nullptr, subscribeListener_);
  } catch (const mqtt::exception& e) {
    std::lock_guard lock(stateMutex_);
    subscribeError_ = e.what();
    stateChanged_.notify_all();
    log::error(kComp, "subscribe failed", {{"reason", e.what()}});
  }
}

void Agent::Impl::onSubscribed(const mqtt::token& tok) {
  CallbackScope scope(*this);
  if (!scope.entered()) return;
  // MQTT 5 reports refusals per filter (reason code >= 0x80) inside a successful SUBACK.
  std::string refused;
  if (opts_.mqtt5) {
    try {
      auto codes = tok.get_subscribe_response().get_reason_codes();
      for (std::size_t i = 0; i < codes.size(); ++i) {
        if (codes[i] >= 0x80) refused += (refused.empty() ? "" : ",") + std::to_string(codes[i]);
      }
    } catch (const mqtt::exception&) {
      // No response details: the token succeeded, take it as granted.
    }
  }
  if (refused.empty()) {
    log::info(kComp, "subscribed", {{"prefix", opts_.prefix}});
  } else {
    log::error(kComp, "subscribe refused", {{"reason_codes", refused}});
  }
  {
    std::lock_guard lock(stateMutex_);
    if (refused.empty()) {
      subscribed_ = true;
    } else {
      subscribeError_ = "broker refused a subscription (reason codes " + refused + ")";
    }
  }
  stateChanged_.notify_all();
}

void Agent::Impl::onSubscribeFailed(const mqtt::token& tok) {
  CallbackScope scope(*this);
  if (!scope.entered()) return;
  std::string reason = "subscribe failed (rc " + std::to_string(tok.get_return_code()) + ")";
  {
    std::lock_guard lock(stateMutex_);
    subscribeError_ = reason;
  }
  stateChanged_.notify_all();
  log::error(kComp, "subscribe failed", {{"reason", reason}});
}

void Agent::Impl::onConnectionLost(const std::string& cause) {
  CallbackScope scope(*this);
  subscribed_ = false;
  if (!scope.entered()) return;
  log::warn(kComp, "connection to broker lost; reconnecting",
            {{"broker", opts_.brokerUri}, {"cause", cause.empty() ? "unknown" : cause}});
}

void Agent::Impl::onMessage(const mqtt::const_message_ptr& msg) {
  CallbackScope scope(*this);
  if (!scope.entered() || !msg) return;
  const std::string& topic = msg->get_topic();
  auto parsed = topics_->parse(topic);
  if (!parsed) {
    log::debug(kComp, "ignoring message on unexpected topic", {{"topic", topic}});
    return;
  }
  switch (parsed->kind) {
    case TopicScheme::Kind::kDeviceOut:
      dispatchDeviceMessage(parsed->name, parsed->event, msg->get_payload_str());
      break;
    case TopicScheme::Kind::kDeviceState:
      dispatchState(parsed->name, msg->get_payload_str());
      break;
    case TopicScheme::Kind::kDeviceAck:
      dispatchReceipt(parsed->name, msg);
      break;
    default:
      log::debug(kComp, "ignoring message on unexpected topic", {{"topic", topic}});
      break;
  }
}

void Agent::Impl::dispatchDeviceMessage(std::string_view device, std::string_view event,
                                        const std::string& payload) {
  std::shared_ptr<const MessageHandler> h;
  std::shared_ptr<const AnyHandler> any;
  {
    std::lock_guard lock(handlersMutex_);
    if (auto it = handlers_.find(std::string(event)); it != handlers_.end()) h = it->second;
    if (!h) any = any_;
  }
  std::string dev(device);
  if (h) {
    guarded(event, [&] { (*h)(dev, payload); });
  } else if (any) {
    guarded("onAny", [&] { (*any)(dev, std::string(event), payload); });
  } else {
    warnUnhandled(device, event);
  }
}

void Agent::Impl::warnUnhandled(std::string_view device, std::string_view event) {
  // Warn once per event name (bounded), so a chatty device cannot flood the log.
  bool first = false;
  {
    std::lock_guard lock(warnedMutex_);
    if (warnedEvents_.size() < kMaxWarnedEvents) first = warnedEvents_.emplace(event).second;
  }
  if (first) {
    log::warn(kComp, "no handler for device event; message dropped",
              {{"device", device}, {"event", event}});
  } else {
    log::debug(kComp, "no handler for device event; message dropped",
               {{"device", device}, {"event", event}});
  }
}

void Agent::Impl::dispatchState(std::string_view device, const std::string& payload) {
  std::string dev(device);
  PresenceTracker::Change change;
  std::string reason;
  if (payload.empty()) {
    std::lock_guard lock(presenceMutex_);
    change = presence_.clear(dev);
    reason = "state_cleared";
  } else {
    auto state = parseDeviceState(payload);
    if (!state) {
      log::warn(kComp, "malformed device state ignored", {{"device", device}});
      return;
    }
    reason = state->reason.empty() ? "unknown" : state->reason;
    std::lock_guard lock(presenceMutex_);
    change = presence_.apply(dev, *state);
  }
  switch (change) {
    case PresenceTracker::Change::kNone:
      return;
    case PresenceTracker::Change::kStale:
      log::debug(kComp, "stale device state ignored", {{"device", device}});
      return;
    case PresenceTracker::Change::kConnected:
      if (auto h = current(connect_)) guarded("onConnect", [&] { (*h)(dev); });
      return;
    case PresenceTracker::Change::kDisconnected:
      if (auto h = current(disconnect_)) guarded("onDisconnect", [&] { (*h)(dev, reason); });
      return;
    case PresenceTracker::Change::kReplaced:
      if (auto h = current(disconnect_)) {
        guarded("onDisconnect", [&] { (*h)(dev, "session_replaced"); });
      }
      if (auto h = current(connect_)) guarded("onConnect", [&] { (*h)(dev); });
      return;
  }
}

void Agent::Impl::dispatchReceipt(std::string_view device, const mqtt::const_message_ptr& msg) {
  std::string corrProp;
  const auto& props = msg->get_properties();
  if (props.contains(mqtt::property::CORRELATION_DATA)) {
    try {
      corrProp = mqtt::get<std::string>(props, mqtt::property::CORRELATION_DATA);
    } catch (const std::exception&) {
      corrProp.clear();
    }
  }
  auto receipt = parseReceipt(device, msg->get_payload_str(), corrProp);
  if (!receipt) {
    log::warn(kComp, "malformed receipt ignored", {{"device", device}});
    return;
  }
  // In a shared group every instance sees every receipt; each reports only its own sends.
  if (!opts_.sharedGroup.empty() && !receipt->corr.starts_with(corrPrefix_)) return;
  if (auto h = current(receipt_)) guarded("onReceipt", [&] { (*h)(*receipt); });
}

// Agent forwards to Impl so the header needs no Paho include.

Agent::Agent(Options options) : impl_(std::make_shared<Impl>(std::move(options))) {}
Agent::~Agent() {
  impl_->close();
}
void Agent::on(std::string event, MessageHandler handler) {
  impl_->on(std::move(event), std::move(handler));
}
void Agent::onAny(AnyHandler handler) {
  impl_->onAny(std::move(handler));
}
void Agent::onConnect(ConnectHandler handler) {
  impl_->onConnect(std::move(handler));
}
void Agent::onDisconnect(DisconnectHandler handler) {
  impl_->onDisconnect(std::move(handler));
}
void Agent::onReceipt(ReceiptHandler handler) {
  impl_->onReceipt(std::move(handler));
}
bool Agent::isConnected(const std::string& device) const {
  return impl_->isConnected(device);
}
SendResult Agent::send(const std::string& device, const std::string& event,
                       std::string_view payload, int qos) {
  return impl_->send(device, event, payload, qos, qos == 1);
}
SendResult Agent::send(const std::string& device, const std::string& event,
                       std::string_view payload, int qos, bool receipt) {
  return impl_->send(device, event, payload, qos, receipt);
}
bool Agent::start(std::chrono::milliseconds timeout) {
  return impl_->start(timeout);
}
void Agent::stop() {
  impl_->stop();
}
bool Agent::ready() const {
  return impl_->ready();
}

}  // namespace impgate::bus
