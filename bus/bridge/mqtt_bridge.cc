#include "bus/bridge/mqtt_bridge.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <vector>

#include "bus/bridge/receipt_json.h"
#include "gateway/base/log.h"

namespace impgate::bus {
namespace {

constexpr std::string_view kComp = "bus";
constexpr std::size_t kSubscribeBatch = 200;

uint64_t wallMs() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

std::string dumpJson(const nlohmann::json& j) {
  // Device-supplied strings may not be UTF-8; replace rather than throw.
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::span<const uint8_t> bytesOf(std::string_view text) {
  return {reinterpret_cast<const uint8_t*>(text.data()), text.size()};
}

}  // namespace

MqttBridge::MqttBridge(net::EventLoop& loop, MqttBridgeOptions options, DeviceBusListener& listener)
    : loop_(loop), options_(std::move(options)), listener_(listener), topics_(options_.prefix) {
  if (options_.clientId.empty()) options_.clientId = "impgate-" + options_.node;
}

MqttBridge::~MqttBridge() {
  *alive_ = false;
}

Status MqttBridge::start() {
  startedMs_ = wallMs();
  auto endpoint = mqtt::resolveBroker(options_.brokerUri,
                                      {options_.caFile, options_.certFile, options_.keyFile});
  if (!endpoint) return Error{ErrorCode::kInvalidBroker, endpoint.error().message};
  if (options_.clientId.size() > 0xFFFF || options_.username.size() > 0xFFFF ||
      options_.password.size() > 0xFFFF) {
    return Error{ErrorCode::kInvalidBroker,
                 "MQTT client id, user name and password must be under 64 KiB each"};
  }
  tls_ = std::move(endpoint->tls);
  mqtt::LinkOptions link;
  link.broker = std::move(endpoint->address);
  link.tls = tls_.get();
  if (options_.mqttVersion == 5) link.version = mqtt::Version::k5;
  if (options_.mqttVersion == 4) link.version = mqtt::Version::k311;
  link.username = options_.username;
  link.password = options_.password;
  link.keepAlive = options_.keepAlive;
  link.maxInflight = static_cast<std::size_t>(std::max(1, options_.maxInflight));
  link.maxQueued = static_cast<std::size_t>(std::max(1, options_.maxBuffered));
  const auto count = static_cast<std::size_t>(std::max(1, options_.connections));
  for (std::size_t i = 0; i < count; ++i) {
    mqtt::LinkOptions own = link;
    own.clientId = clientIdOf(i);
    if (i == 0) {
      // The last will marks the node offline if it dies without saying goodbye.
      own.willTopic = topics_.nodeState(options_.node);
      own.willPayload = nodeStateJson(false, 0);
      // The fleet subscriptions bring every device's retained code state at once (thousands):
      // let the broker send them all in flight instead of queueing, where mosquitto keeps
      // 1000 per client and drops the rest.
      own.receiveMaximum = 65535;
    }
    auto entry = std::make_unique<Link>(*this, i);
    entry->link = std::make_unique<mqtt::BrokerLink>(loop_, std::move(own), *entry);
    links_.push_back(std::move(entry));
  }
  for (auto& entry : links_) entry->link->start();
  return {};
}

std::string MqttBridge::clientIdOf(std::size_t index) const {
  if (index == 0) return options_.clientId;
  // Node names may contain '-', so "impgate-<node>-2" could be another node's first link:
  // the link number goes where a node name cannot reach.
  if (options_.clientId == "impgate-" + options_.node) {
    return "impgate" + std::to_string(index + 1) + "-" + options_.node;
  }
  return options_.clientId + "~" + std::to_string(index + 1);
}

mqtt::BrokerLink& MqttBridge::linkFor(std::string_view device) {
  return *links_[std::hash<std::string_view>{}(device) % links_.size()]->link;
}

void MqttBridge::onLinkUp(Link& link) {
  // The session is clean, so whatever the broker knew of this node is gone: subscribe and
  // announce again every time.
  link.up = true;
  link.everUp = true;
  ++upLinks_;
  log::info(kComp, "connected to broker",
            {{"broker", options_.brokerUri},
             {"link", link.index + 1},
             {"mqtt", link.link->version() == mqtt::Version::k5 ? "5" : "3.1.1"},
             {"window", link.link->window()}});
  resubscribe(link);
  if (link.index == 0) {
    resubscribeFleet();
    publishNodeState(lastDeviceCount_);
  }
  if (connected()) listener_.onBusConnection(true);
}

void MqttBridge::onLinkDown(Link& link, std::string_view reason) {
  const bool wasConnected = connected();
  link.up = false;
  --upLinks_;
  log::warn(kComp, "lost broker connection, reconnecting",
            {{"broker", options_.brokerUri}, {"link", link.index + 1}, {"cause", reason}});
  if (wasConnected) listener_.onBusConnection(false);
}

void MqttBridge::onConnectFailed(Link& link, std::string_view reason) {
  log::warn(kComp,
            link.everUp ? "cannot reach broker again, retrying" : "cannot reach broker, retrying",
            {{"broker", options_.brokerUri}, {"link", link.index + 1}, {"error", reason}});
}

void MqttBridge::onMessage(const mqtt::PublishIn& msg) {
  auto parsed = topics_.parse(msg.topic);
  if (!parsed || parsed->kind != TopicScheme::Kind::kDeviceIn) {
    // Only the device-in and fleet subscriptions deliver here, so the rest is the fleet's.
    if (msg.topic == syncTopic()) {
      onSyncMarker(msg.payload);
      return;
    }
    listener_.onFleetMessage(msg.topic, msg.payload);
    return;
  }
  // Assigned into the strings of the previous message: no allocation once they are big enough.
  AgentMessage& m = incoming_;
  m.device.assign(parsed->name);
  m.event.assign(parsed->event);
  m.payload.assign(reinterpret_cast<const char*>(msg.payload.data()), msg.payload.size());
  m.qos = msg.qos;
  m.correlation.assign(msg.correlationData);
  // The agent asks for a receipt there; the gateway checks the topic before using it.
  if (msg.hasResponseTopic) {
    m.responseTopic.emplace().assign(msg.responseTopic);
  } else {
    m.responseTopic.reset();
  }
  // The gateway refuses retained messages. Under MQTT 5 the flag is kept as published
  // (filterFor()), so this also catches a retained publish made while the device is online;
  // under 3.1.1 only a stored one shows it.
  m.retained = msg.retain;
  listener_.onAgentMessage(m);
}

void MqttBridge::onSyncMarker(std::span<const uint8_t> payload) {
  // The marker was published after the fleet subscriptions on the same connection, and the
  // broker answers one client's packets in order: every retained message of those
  // subscriptions came before it. A marker of an earlier connection is stale.
  std::string_view text(reinterpret_cast<const char*>(payload.data()), payload.size());
  if (syncSent_ == 0 || text != std::to_string(syncSent_)) return;
  syncSent_ = 0;
  listener_.onFleetSynced();
}

void MqttBridge::resubscribeFleet() {
  std::vector<mqtt::SubscribeFilter> batch;
  for (const auto& filter : fleetFilters_) batch.push_back(fleetFilterFor(filter));
  std::string sync = syncTopic();
  batch.push_back(fleetFilterFor(sync));
  nodeLink().subscribe(batch);
  syncSent_ = ++syncCount_;
  listener_.onFleetSyncStarted();
  std::string marker = std::to_string(syncSent_);
  publishText(nodeLink(), sync, marker, false);
}

mqtt::SubscribeFilter MqttBridge::fleetFilterFor(std::string_view filter) {
  // Fleet topics are retained state: the stored message is what a subscriber wants.
  mqtt::SubscribeFilter f;
  f.filter = filter;
  f.qos = 1;
  f.retainHandling = 0;
  return f;
}

mqtt::SubscribeFilter MqttBridge::filterFor(std::string_view filter) const {
  // MQTT 5 subscription options (3.1.1 has none): keep the retain flag as the agent set it, so
  // a retained publish made while we are subscribed is recognisable, and send no stored
  // retained message when subscribing at all.
  mqtt::SubscribeFilter f;
  f.filter = filter;
  f.qos = 1;
  f.retainAsPublished = true;
  f.retainHandling = 2;
  return f;
}

void MqttBridge::resubscribe(Link& link) {
  std::vector<std::string> names;
  std::vector<mqtt::SubscribeFilter> batch;
  names.reserve(kSubscribeBatch);
  batch.reserve(kSubscribeBatch);
  auto flush = [&] {
    for (const auto& name : names) batch.push_back(filterFor(name));
    link.link->subscribe(batch);
    names.clear();
    batch.clear();
  };
  std::size_t restored = 0;
  for (const auto& device : devices_) {
    if (&linkFor(device) != link.link.get()) continue;
    names.push_back(topics_.deviceInFilter(device));
    ++restored;
    if (names.size() == kSubscribeBatch) flush();
  }
  if (!names.empty()) flush();
  if (restored > 0) {
    log::info(kComp, "restored device subscriptions",
              {{"link", link.index + 1}, {"devices", restored}});
  }
}

void MqttBridge::publish(mqtt::BrokerLink& link, std::string_view topic,
                         std::span<const uint8_t> payload, bool retained, uint64_t token,
                         std::string_view correlation, uint8_t qos) {
  mqtt::PublishOptions p;
  p.topic = topic;
  p.payload = payload;
  p.qos = qos;
  p.retain = retained;
  if (link.version() == mqtt::Version::k5) p.correlationData = correlation;
  if (link.publish(p, token)) return;
  // Typically the queue is full while the broker is away: the device hears of it through a
  // failed ACK, after the caller has finished what it is doing.
  log::warn(kComp, "publish not accepted by the broker link (queue full or too large)",
            {{"topic", topic}, {"queued", link.queued()}});
  if (token == 0) return;
  auto alive = alive_;
  loop_.atEndOfPass([this, alive, token] {
    if (*alive) listener_.onPublished(token, false);
  });
}

void MqttBridge::publishDeviceMessage(std::string_view device, std::string_view event,
                                      std::span<const uint8_t> payload, bool acknowledged,
                                      uint64_t token) {
  topics_.deviceOut(topicScratch_, device, event);
  publish(linkFor(device), topicScratch_, payload, false, token, {}, acknowledged ? 1 : 0);
}

void MqttBridge::publishPresence(std::string_view device, const Presence& p) {
  nlohmann::json j = {{"status", p.online ? "online" : "offline"},
                      {"node", p.node},
                      {"since", p.sinceMs},
                      {"epoch", p.epochMs}};
  if (p.online) j["code"] = p.codeId;
  if (!p.reason.empty()) j["reason"] = p.reason;
  publishText(linkFor(device), topics_.deviceState(device), dumpJson(j), true);
}

void MqttBridge::publishLog(std::string_view device, std::string_view level, std::string_view text,
                            uint64_t token) {
  nlohmann::json j = {{"level", level}, {"text", text}, {"ts", wallMs()}};
  std::string body = dumpJson(j);
  publish(linkFor(device), topics_.deviceLog(device), bytesOf(body), false, token);
}

void MqttBridge::publishReceipt(std::string_view device, const Receipt& r) {
  // One per agent message that asked for it: written into a reused buffer.
  std::string& j = receiptScratch_;
  writeReceiptJson(j, r, wallMs());
  std::string ackTopic;
  std::string_view topic = r.topic;  // a response topic the gateway has checked, or none
  if (topic.empty()) {
    ackTopic = topics_.deviceAck(device);
    topic = ackTopic;
  }
  publish(linkFor(device), topic, bytesOf(j), false, 0, r.correlation);
}

std::string MqttBridge::nodeStateJson(bool online, std::size_t devices) const {
  nlohmann::json j = {{"status", online ? "online" : "offline"},
                      {"node", options_.node},
                      {"devices", devices},
                      {"since", startedMs_}};
  return dumpJson(j);
}

void MqttBridge::publishNodeState(std::size_t devices) {
  lastDeviceCount_ = devices;
  if (links_.empty() || !links_.front()->up) return;  // published on (re)connect
  publishText(nodeLink(), topics_.nodeState(options_.node), nodeStateJson(true, devices), true);
}

void MqttBridge::subscribeDevice(std::string_view device) {
  auto [it, inserted] = devices_.emplace(device);
  if (!inserted) return;
  std::string name = topics_.deviceInFilter(device);
  mqtt::SubscribeFilter filter = filterFor(name);
  linkFor(device).subscribe(std::span(&filter, 1));  // sent only while up; else on reconnect
}

void MqttBridge::unsubscribeDevice(std::string_view device) {
  auto it = devices_.find(std::string(device));
  if (it == devices_.end()) return;
  devices_.erase(it);
  std::string name = topics_.deviceInFilter(device);
  std::string_view view = name;
  linkFor(device).unsubscribe(std::span(&view, 1));
}

void MqttBridge::subscribeFleet(std::string_view filter) {
  if (std::find(fleetFilters_.begin(), fleetFilters_.end(), filter) != fleetFilters_.end()) {
    return;
  }
  fleetFilters_.emplace_back(filter);
  if (links_.empty()) return;  // subscribed when the node link comes up
  mqtt::SubscribeFilter f = fleetFilterFor(filter);
  nodeLink().subscribe(std::span(&f, 1));  // sent only while up; else on reconnect
}

void MqttBridge::unsubscribeFleet(std::string_view filter) {
  auto it = std::find(fleetFilters_.begin(), fleetFilters_.end(), filter);
  if (it == fleetFilters_.end()) return;
  fleetFilters_.erase(it);
  if (!links_.empty()) nodeLink().unsubscribe(std::span(&filter, 1));
}

void MqttBridge::publishFleet(std::string_view topic, std::span<const uint8_t> payload,
                              bool retained) {
  if (links_.empty()) return;  // not started: nothing can be published yet
  publish(nodeLink(), topic, payload, retained, 0);
}

MqttBridge::Stats MqttBridge::stats() const {
  Stats stats;
  for (const auto& entry : links_) {
    stats.inflight += entry->link->inflight();
    stats.queued += entry->link->queued();
  }
  stats.linksUp = upLinks_;
  return stats;
}

bool MqttBridge::allIdle() const {
  return std::all_of(links_.begin(), links_.end(),
                     [](const auto& entry) { return entry->link->idle(); });
}

void MqttBridge::closeAll(bool will, std::chrono::milliseconds timeout) {
  // The node link goes last: its will (or its absence) is the node's final word.
  for (auto it = links_.rbegin(); it != links_.rend(); ++it) (*it)->link->close(will, timeout);
}

MqttBridge::StopOutcome MqttBridge::stop(std::chrono::milliseconds timeout) {
  if (links_.empty()) return StopOutcome::kNotConnected;
  constexpr std::chrono::milliseconds kGoodbye{500};
  auto deadline = std::chrono::steady_clock::now() + timeout;
  auto remaining = [&] {
    return std::max(std::chrono::milliseconds(0),
                    std::chrono::duration_cast<std::chrono::milliseconds>(
                        deadline - std::chrono::steady_clock::now()));
  };
  if (!links_.front()->up) {
    closeAll(false, kGoodbye);
    return StopOutcome::kNotConnected;
  }
  // First every device's offline presence (queued by the gateway on the devices' links), then
  // the node's offline state on the node link, each acknowledged in order. A link that is down
  // cannot deliver; the others are waited for all the same.
  auto settled = [this] {
    return std::all_of(links_.begin(), links_.end(),
                       [](const auto& entry) { return !entry->link->up() || entry->link->idle(); });
  };
  bool acknowledged = loop_.runUntil(settled, remaining()) && connected();
  if (acknowledged) {
    publishText(nodeLink(), topics_.nodeState(options_.node), nodeStateJson(false, 0), true);
    acknowledged = loop_.runUntil(settled, remaining()) && connected();
  }
  if (!links_.front()->up) {
    closeAll(false, kGoodbye);
    return StopOutcome::kNotConnected;
  }
  if (acknowledged) {
    closeAll(false, kGoodbye);
    return StopOutcome::kClean;
  }
  // A normal DISCONNECT would make the broker discard the last will, and with it the only
  // offline state the broker still has for this node.
  log::warn(kComp,
            "broker did not acknowledge the offline states in time; the last will marks "
            "this node offline");
  closeAll(true, kGoodbye);
  return StopOutcome::kWill;
}

}  // namespace impgate::bus
