#include "bus/bridge/mqtt_bridge.h"

#include <nlohmann/json.hpp>

#include <algorithm>

#include "gateway/base/log.h"

namespace impgate::bus {
namespace {

constexpr std::string_view kComp = "bus";
constexpr int kQos = 1;
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

void* packToken(uint64_t token) {
  return reinterpret_cast<void*>(static_cast<uintptr_t>(token));
}
uint64_t unpackToken(void* context) {
  return static_cast<uint64_t>(reinterpret_cast<uintptr_t>(context));
}

}  // namespace

MqttBridge::MqttBridge(net::EventLoop& loop, MqttBridgeOptions options, DeviceBusListener& listener)
    : loop_(loop), options_(std::move(options)), listener_(listener), topics_(options_.prefix) {
  if (options_.clientId.empty()) options_.clientId = "impgate-" + options_.node;
}

MqttBridge::~MqttBridge() {
  alive_->store(false);
  if (retryTimer_) loop_.cancel(retryTimer_);
  // Paho's threads may still call on_success / on_failure on this object until the client is
  // gone: destroy it first, while every member is still alive.
  if (client_ && abandoned_) {
    // stop() left the connection for the process exit to close (see leaveToWill()). Destroying
    // the client would send a DISCONNECT; silence its callbacks and let it go.
    try {
      client_->disable_callbacks();
    } catch (const mqtt::exception&) {
      // Shutting down anyway.
    }
    (void)client_.release();
  }
  if (client_) {
    try {
      client_->disable_callbacks();
      if (client_->is_connected()) client_->disconnect()->wait_for(std::chrono::seconds(1));
    } catch (const mqtt::exception&) {
      // Shutting down anyway.
    }
    client_.reset();
  }
}

Status MqttBridge::start() {
  startedMs_ = wallMs();
  try {
    mqtt::create_options create(options_.mqttVersion == 5 ? MQTTVERSION_5 : MQTTVERSION_3_1_1);
    create.set_send_while_disconnected(true, true);
    create.set_max_buffered_messages(options_.maxBuffered);
    client_ = std::make_unique<mqtt::async_client>(options_.brokerUri, options_.clientId, create);
  } catch (const mqtt::exception& e) {
    return Error{ErrorCode::kInvalidBroker,
                 "invalid broker '" + options_.brokerUri + "': " + e.what()};
  }
  auto alive = alive_;
  client_->set_connected_handler([this, alive](const std::string&) {
    loop_.post([this, alive] {
      if (*alive) onConnected();
    });
  });
  client_->set_connection_lost_handler([this, alive](const std::string& cause) {
    loop_.post([this, alive, cause] {
      if (*alive) onConnectionLost(cause);
    });
  });
  // A DISCONNECT sent by the broker (session takeover, administrative kick, server shutdown)
  // is reported here and not as a lost connection.
  client_->set_disconnected_handler([this, alive](const mqtt::properties&, mqtt::ReasonCode rc) {
    loop_.post([this, alive, rc] {
      if (*alive)
        onConnectionLost("broker sent DISCONNECT, reason " + std::to_string(static_cast<int>(rc)));
    });
  });
  client_->set_message_callback([this, alive](mqtt::const_message_ptr msg) {
    // Parsing happens on the reactor; Paho's thread only hands the message over.
    loop_.post([this, alive, msg = std::move(msg)]() mutable {
      if (*alive) onMessage(std::move(msg));
    });
  });
  connectNow();
  return {};
}

void MqttBridge::connectNow() {
  retryTimer_ = 0;
  if (stopping_) return;
  mqtt::connect_options_builder b;
  b.keep_alive_interval(options_.keepAlive)
      .connect_timeout(std::chrono::seconds(5))
      .automatic_reconnect(std::chrono::seconds(1), std::chrono::seconds(30))
      .max_inflight(1024);
  if (options_.mqttVersion == 5) {
    b.mqtt_version(MQTTVERSION_5).clean_start(true);
  } else {
    b.mqtt_version(MQTTVERSION_3_1_1).clean_session(true);
  }
  if (!options_.username.empty()) b.user_name(options_.username);
  if (!options_.password.empty()) b.password(options_.password);
  // The last will marks the node offline if it dies without saying goodbye.
  mqtt::message will(topics_.nodeState(options_.node), nodeStateJson(false, 0), kQos, true);
  b.will(will);
  if (options_.brokerUri.rfind("ssl://", 0) == 0 || options_.brokerUri.rfind("mqtts://", 0) == 0) {
    mqtt::ssl_options ssl;
    if (!options_.caFile.empty()) ssl.set_trust_store(options_.caFile);
    if (!options_.certFile.empty()) ssl.set_key_store(options_.certFile);
    if (!options_.keyFile.empty()) ssl.set_private_key(options_.keyFile);
    ssl.set_enable_server_cert_auth(true);
    ssl.set_verify(true);
    b.ssl(ssl);
  }
  try {
    client_->connect(b.finalize(), nullptr, *this);
  } catch (const mqtt::exception& e) {
    log::warn(kComp, "broker connect failed",
              {{"broker", options_.brokerUri}, {"error", e.what()}});
    retryTimer_ = loop_.runAfter(std::chrono::seconds(2), [this] { connectNow(); });
  }
}

void MqttBridge::on_success(const mqtt::token& tok) {
  if (tok.get_type() == mqtt::token::Type::CONNECT) return;  // the connected handler follows
  uint64_t token = unpackToken(tok.get_user_context());
  auto alive = alive_;
  loop_.post([this, alive, token] {
    if (!*alive) return;
    listener_.onPublished(token, true);
  });
}

void MqttBridge::on_failure(const mqtt::token& tok) {
  auto alive = alive_;
  if (tok.get_type() == mqtt::token::Type::CONNECT) {
    // The first connect is not retried by Paho's automatic reconnect: retry it ourselves.
    int rc = tok.get_return_code();
    loop_.post([this, alive, rc] {
      // After the first connect, Paho's automatic reconnect owns retrying (with its backoff).
      if (!*alive || stopping_ || everConnected_ || client_->is_connected()) return;
      log::warn(kComp, "cannot reach broker, retrying",
                {{"broker", options_.brokerUri}, {"rc", rc}});
      if (!retryTimer_) {
        retryTimer_ = loop_.runAfter(std::chrono::seconds(2), [this] { connectNow(); });
      }
    });
    return;
  }
  uint64_t token = unpackToken(tok.get_user_context());
  loop_.post([this, alive, token] {
    if (!*alive) return;
    listener_.onPublished(token, false);
  });
}

void MqttBridge::onConnected() {
  // Paho reports every real (re)connect here. The session is clean, so whatever the broker
  // knew of this node is gone: subscribe and announce again every time.
  connected_.store(true);
  everConnected_ = true;
  log::info(kComp, "connected to broker", {{"broker", options_.brokerUri}});
  resubscribeAll();
  publishNodeState(lastDeviceCount_);
  listener_.onBusConnection(true);
}

void MqttBridge::onConnectionLost(const std::string& cause) {
  if (!connected_.exchange(false)) return;
  log::warn(kComp, "lost broker connection, reconnecting",
            {{"broker", options_.brokerUri}, {"cause", cause}});
  listener_.onBusConnection(false);
}

void MqttBridge::onMessage(mqtt::const_message_ptr msg) {
  auto parsed = topics_.parse(msg->get_topic());
  if (!parsed || parsed->kind != TopicScheme::Kind::kDeviceIn) {
    log::warn(kComp, "ignoring message on unexpected topic", {{"topic", msg->get_topic()}});
    return;
  }
  std::string correlation;
  const auto& props = msg->get_properties();
  if (props.contains(mqtt::property::CORRELATION_DATA)) {
    correlation = mqtt::get<std::string>(props, mqtt::property::CORRELATION_DATA);
  }
  AgentMessage m;
  m.device.assign(parsed->name);
  m.event.assign(parsed->event);
  m.payload = msg->get_payload_str();
  m.qos = msg->get_qos();
  m.correlation = std::move(correlation);
  // The agent asks for a receipt there; the gateway checks the topic before using it.
  if (props.contains(mqtt::property::RESPONSE_TOPIC)) {
    m.responseTopic = mqtt::get<std::string>(props, mqtt::property::RESPONSE_TOPIC);
  }
  // The gateway refuses retained messages. Under MQTT 5 the flag is kept as published
  // (subscribeOptions()), so this also catches a retained publish made while the device is
  // online; under 3.1.1 only a stored one shows it.
  m.retained = msg->is_retained();
  listener_.onAgentMessage(std::move(m));
}

mqtt::subscribe_options MqttBridge::subscribeOptions() const {
  // MQTT 5 only (3.1.1 has no subscription options): keep the retain flag as the agent set it,
  // so a retained publish made while we are subscribed is recognisable, and send no stored
  // retained message when subscribing at all.
  if (options_.mqttVersion != 5) return mqtt::subscribe_options();
  return mqtt::subscribe_options(false, true, mqtt::subscribe_options::DONT_SEND_RETAINED);
}

void MqttBridge::resubscribeAll() {
  auto batch = std::make_shared<mqtt::string_collection>();
  auto flush = [&] {
    if (batch->empty()) return;
    try {
      if (options_.mqttVersion == 5) {
        // One SUBSCRIBE per filter: Paho C++ 1.2's many-topic subscribe with subscription
        // options crashes inside MQTTAsync_subscribeMany once it holds two or more filters.
        for (std::size_t i = 0; i < batch->size(); ++i) {
          client_->subscribe((*batch)[i], kQos, subscribeOptions());
        }
      } else {
        client_->subscribe(batch, std::vector<int>(batch->size(), kQos));
      }
    } catch (const mqtt::exception& e) {
      log::error(kComp, "re-subscribe failed", {{"error", e.what()}});
    }
    batch = std::make_shared<mqtt::string_collection>();
  };
  for (const auto& device : devices_) {
    batch->push_back(topics_.deviceInFilter(device));
    if (batch->size() == kSubscribeBatch) flush();
  }
  flush();
  if (!devices_.empty()) {
    log::info(kComp, "restored device subscriptions", {{"devices", devices_.size()}});
  }
}

void MqttBridge::publish(const std::string& topic, std::string_view payload, bool retained,
                         const mqtt::properties* props) {
  try {
    auto msg = mqtt::make_message(topic, payload.data(), payload.size(), kQos, retained);
    if (props) msg->set_properties(*props);
    client_->publish(std::move(msg));
  } catch (const mqtt::exception& e) {
    log::warn(kComp, "publish failed", {{"topic", topic}, {"error", e.what()}});
  }
}

void MqttBridge::publishDeviceMessage(std::string_view device, std::string_view event,
                                      std::span<const uint8_t> payload, uint64_t token) {
  topics_.deviceOut(topicScratch_, device, event);
  publishTracked(topicScratch_, payload, token);
}

void MqttBridge::publishTracked(const std::string& topic, std::span<const uint8_t> payload,
                                uint64_t token) {
  try {
    if (token == 0) {
      client_->publish(topic, payload.data(), payload.size(), kQos, false);
    } else {
      client_->publish(topic, payload.data(), payload.size(), kQos, false, packToken(token), *this);
    }
  } catch (const mqtt::exception& e) {
    // Typically the offline buffer is full: the device hears of it through a failed ACK.
    log::warn(kComp, "device publish not accepted by the bus client",
              {{"topic", topic}, {"error", e.what()}});
    if (token != 0) {
      auto alive = alive_;
      loop_.post([this, alive, token] {
        if (*alive) listener_.onPublished(token, false);
      });
    }
  }
}

void MqttBridge::publishPresence(std::string_view device, const Presence& p) {
  nlohmann::json j = {{"status", p.online ? "online" : "offline"},
                      {"node", p.node},
                      {"since", p.sinceMs},
                      {"epoch", p.epochMs}};
  if (p.online) j["code"] = p.codeId;
  if (!p.reason.empty()) j["reason"] = p.reason;
  publish(topics_.deviceState(device), dumpJson(j), true);
}

void MqttBridge::publishLog(std::string_view device, std::string_view level, std::string_view text,
                            uint64_t token) {
  nlohmann::json j = {{"level", level}, {"text", text}, {"ts", wallMs()}};
  std::string body = dumpJson(j);
  publishTracked(topics_.deviceLog(device),
                 std::span(reinterpret_cast<const uint8_t*>(body.data()), body.size()), token);
}

void MqttBridge::publishReceipt(std::string_view device, const Receipt& r) {
  nlohmann::json j = {
      {"event", r.event}, {"seq", r.seq}, {"status", r.status}, {"node", r.node}, {"ts", wallMs()}};
  mqtt::properties props;
  if (!r.correlation.empty()) {
    j["corr"] = r.correlation;
    if (options_.mqttVersion == 5) {
      props.add({mqtt::property::CORRELATION_DATA, std::string(r.correlation)});
    }
  }
  publish(r.topic.empty() ? topics_.deviceAck(device) : std::string(r.topic), dumpJson(j), false,
          props.empty() ? nullptr : &props);
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
  if (!connected()) return;  // published on (re)connect
  publish(topics_.nodeState(options_.node), nodeStateJson(true, devices), true);
}

void MqttBridge::subscribeDevice(std::string_view device) {
  auto [it, inserted] = devices_.emplace(device);
  if (!inserted || !connected()) return;
  try {
    client_->subscribe(topics_.deviceInFilter(device), kQos, subscribeOptions());
  } catch (const mqtt::exception& e) {
    log::warn(kComp, "subscribe failed", {{"device", device}, {"error", e.what()}});
  }
}

void MqttBridge::unsubscribeDevice(std::string_view device) {
  auto it = devices_.find(std::string(device));
  if (it == devices_.end()) return;
  devices_.erase(it);
  if (!connected()) return;
  try {
    client_->unsubscribe(topics_.deviceInFilter(device));
  } catch (const mqtt::exception& e) {
    log::warn(kComp, "unsubscribe failed", {{"device", device}, {"error", e.what()}});
  }
}

MqttBridge::StopOutcome MqttBridge::stop(std::chrono::milliseconds timeout) {
  stopping_ = true;
  if (retryTimer_) {
    loop_.cancel(retryTimer_);
    retryTimer_ = 0;
  }
  if (!client_ || abandoned_) return StopOutcome::kNotConnected;
  using Clock = std::chrono::steady_clock;
  auto deadline = Clock::now() + timeout;
  auto remaining = [&] {
    return std::max(std::chrono::milliseconds(0),
                    std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()));
  };
  StopOutcome outcome = StopOutcome::kNotConnected;
  try {
    if (client_->is_connected()) {
      std::string offline = nodeStateJson(false, 0);
      client_->publish(topics_.nodeState(options_.node), offline.data(), offline.size(), kQos,
                       true);
      // Everything still in flight: the offline presence the gateway just queued for each of its
      // devices, device messages, and the node state. Queued in order, acknowledged in order.
      bool acknowledged = true;
      for (const auto& tok : client_->get_pending_delivery_tokens()) {
        try {
          if (!tok->wait_for(remaining())) {
            acknowledged = false;
            break;
          }
        } catch (const mqtt::exception&) {
          acknowledged = false;  // failed: the broker never took it
          break;
        }
      }
      if (acknowledged) {
        client_->disconnect()->wait_for(std::max(remaining(), std::chrono::milliseconds(500)));
        outcome = StopOutcome::kClean;
      } else {
        outcome = leaveToWill();
      }
    }
  } catch (const mqtt::exception& e) {
    log::warn(kComp, "clean disconnect failed", {{"error", e.what()}});
    outcome = leaveToWill();
  }
  connected_.store(false);
  return outcome;
}

MqttBridge::StopOutcome MqttBridge::leaveToWill() {
  // A normal DISCONNECT would make the broker discard the last will, and with it the only
  // offline state the broker still has for this node: disconnect so that it publishes the will.
  log::warn(kComp,
            "broker did not acknowledge the offline states in time; the last will marks "
            "this node offline");
  if (options_.mqttVersion == 5) {
    // MQTT 5: "Disconnect with Will Message" (0x04). Paho queues the DISCONNECT behind publishes
    // it has not sent yet (its in-flight window is full), so it may not go out in time.
    try {
      auto opts = mqtt::disconnect_options_builder()
                      .reason_code(mqtt::ReasonCode::DISCONNECT_WITH_WILL_MESSAGE)
                      .finalize();
      if (client_->disconnect(opts)->wait_for(std::chrono::milliseconds(500))) {
        return StopOutcome::kWill;
      }
    } catch (const mqtt::exception& e) {
      log::warn(kComp, "disconnect with will failed", {{"error", e.what()}});
    }
  }
  // MQTT 3.1.1 has no such DISCONNECT; there the broker publishes the will when the connection
  // closes without one. Paho sends a DISCONNECT when its client is destroyed, so the client is
  // never destroyed: the process exit closes the connection.
  abandoned_ = true;
  return StopOutcome::kAbandoned;
}

}  // namespace impgate::bus
