#include "tests/support/mqtt_probe.h"

#include <unistd.h>

#include <mqtt/async_client.h>
#include <atomic>

namespace impgate::testing {
namespace {

std::string uniqueClientId() {
  static std::atomic<int> counter{0};
  return "probe-" + std::to_string(::getpid()) + "-" + std::to_string(++counter);
}

}  // namespace

MqttProbe::MqttProbe(std::string uri, std::string clientId, bool mqtt5)
    : uri_(std::move(uri)), mqtt5_(mqtt5) {
  if (clientId.empty()) clientId = uniqueClientId();
  client_ = std::make_unique<mqtt::async_client>(
      uri_, clientId, mqtt::create_options(mqtt5 ? MQTTVERSION_5 : MQTTVERSION_3_1_1));
  client_->set_message_callback([this](const mqtt::const_message_ptr& msg) {
    Message m;
    m.topic = msg->get_topic();
    m.payload = msg->get_payload_str();
    m.qos = msg->get_qos();
    m.retained = msg->is_retained();
    const auto& props = msg->get_properties();
    if (props.contains(mqtt::property::CORRELATION_DATA)) {
      m.correlationData = mqtt::get<std::string>(props, mqtt::property::CORRELATION_DATA);
    }
    if (props.contains(mqtt::property::RESPONSE_TOPIC)) {
      m.responseTopic = mqtt::get<std::string>(props, mqtt::property::RESPONSE_TOPIC);
    }
    {
      std::lock_guard lock(mutex_);
      messages_.push_back(std::move(m));
    }
    arrived_.notify_all();
  });
  client_->set_connected_handler([this](const std::string&) { resubscribe(); });
}

MqttProbe::~MqttProbe() {
  // Disconnect even when not connected: it also ends automatic reconnect attempts.
  try {
    client_->disconnect()->wait_for(std::chrono::seconds(2));
  } catch (const mqtt::exception&) {
  }
  try {
    client_->disable_callbacks();
  } catch (const mqtt::exception&) {
    // Refused while a reconnect attempt is in flight; destroying the client below ends it.
  }
  // The client goes first: its callbacks use the members below.
  client_.reset();
}

bool MqttProbe::connect(std::chrono::milliseconds deadline) {
  auto opts = mqtt::connect_options_builder()
                  .mqtt_version(mqtt5_ ? MQTTVERSION_5 : MQTTVERSION_3_1_1)
                  .automatic_reconnect(std::chrono::seconds(1), std::chrono::seconds(2))
                  .keep_alive_interval(std::chrono::seconds(10))
                  .finalize();
  if (mqtt5_) {
    opts.set_clean_start(true);
  } else {
    opts.set_clean_session(true);
  }
  try {
    return client_->connect(opts)->wait_for(deadline);
  } catch (const mqtt::exception&) {
    return false;
  }
}

bool MqttProbe::connected() const {
  return client_->is_connected();
}

void MqttProbe::resubscribe() {
  std::vector<std::pair<std::string, int>> filters;
  {
    std::lock_guard lock(mutex_);
    filters = filters_;
  }
  // Runs on Paho's thread: start the subscriptions, never wait for them here.
  for (const auto& [filter, qos] : filters) {
    try {
      client_->subscribe(filter, qos);
    } catch (const mqtt::exception&) {
    }
  }
}

bool MqttProbe::subscribe(const std::string& filter, int qos, std::chrono::milliseconds deadline) {
  {
    std::lock_guard lock(mutex_);
    filters_.emplace_back(filter, qos);
  }
  try {
    auto tok = client_->subscribe(filter, qos);
    if (!tok->wait_for(deadline)) return false;
    if (mqtt5_) {
      auto response = tok->get_subscribe_response();
      for (auto rc : response.get_reason_codes()) {
        if (rc >= 0x80) return false;
      }
    }
    return true;
  } catch (const mqtt::exception&) {
    return false;
  }
}

bool MqttProbe::publish(const std::string& topic, std::string_view payload, int qos, bool retained,
                        std::optional<std::string_view> correlationData,
                        std::chrono::milliseconds deadline) {
  try {
    auto msg = mqtt::make_message(topic, payload.data(), payload.size(), qos, retained);
    if (correlationData) {
      mqtt::properties props;
      props.add(mqtt::property(mqtt::property::CORRELATION_DATA,
                               mqtt::string_ref(std::string(*correlationData))));
      msg->set_properties(props);
    }
    return client_->publish(msg)->wait_for(deadline);
  } catch (const mqtt::exception&) {
    return false;
  }
}

bool MqttProbe::publishRequest(const std::string& topic, std::string_view payload, int qos,
                               const std::string& responseTopic,
                               std::optional<std::string_view> correlationData,
                               std::chrono::milliseconds deadline) {
  try {
    auto msg = mqtt::make_message(topic, payload.data(), payload.size(), qos, false);
    mqtt::properties props;
    props.add(mqtt::property(mqtt::property::RESPONSE_TOPIC, responseTopic));
    if (correlationData) {
      props.add(mqtt::property(mqtt::property::CORRELATION_DATA,
                               mqtt::string_ref(std::string(*correlationData))));
    }
    msg->set_properties(props);
    return client_->publish(msg)->wait_for(deadline);
  } catch (const mqtt::exception&) {
    return false;
  }
}

std::optional<MqttProbe::Message> MqttProbe::waitFor(const Predicate& match,
                                                     std::chrono::milliseconds deadline) {
  std::unique_lock lock(mutex_);
  std::optional<Message> found;
  arrived_.wait_for(lock, deadline, [&] {
    for (const auto& m : messages_) {
      if (match(m)) {
        found = m;
        return true;
      }
    }
    return false;
  });
  return found;
}

std::optional<MqttProbe::Message> MqttProbe::waitForTopic(const std::string& topic,
                                                          std::chrono::milliseconds deadline) {
  return waitFor([&](const Message& m) { return m.topic == topic; }, deadline);
}

std::vector<MqttProbe::Message> MqttProbe::messages() const {
  std::lock_guard lock(mutex_);
  return messages_;
}

std::size_t MqttProbe::count(const Predicate& match) const {
  std::lock_guard lock(mutex_);
  std::size_t n = 0;
  for (const auto& m : messages_) n += match(m) ? 1 : 0;
  return n;
}

void MqttProbe::clear() {
  std::lock_guard lock(mutex_);
  messages_.clear();
}

}  // namespace impgate::testing
