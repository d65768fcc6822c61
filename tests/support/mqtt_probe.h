// A plain MQTT client for tests. It plays whichever side the test needs (the gateway publishing
// device traffic, an agent, an observer), records every message that arrives on its
// subscriptions, and lets the test wait for one with a deadline. It reconnects by itself and
// re-subscribes, so it survives MosquittoFixture::restart().
//
// Paho exceptions stay inside: every call reports failure as false / nullopt.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mqtt {
class async_client;
}

namespace impgate::testing {

class MqttProbe {
 public:
  struct Message {
    std::string topic;
    std::string payload;
    int qos = 0;
    bool retained = false;
    std::optional<std::string> correlationData;  // MQTT 5 property, when present
    std::optional<std::string> responseTopic;    // MQTT 5 property, when present
  };
  using Predicate = std::function<bool(const Message&)>;

  // `clientId` empty picks a unique one. `mqtt5` false speaks MQTT 3.1.1.
  explicit MqttProbe(std::string uri, std::string clientId = {}, bool mqtt5 = true);
  ~MqttProbe();
  MqttProbe(const MqttProbe&) = delete;
  MqttProbe& operator=(const MqttProbe&) = delete;

  bool connect(std::chrono::milliseconds deadline = std::chrono::seconds(5));
  bool connected() const;
  // Subscribes and remembers the filter, so it is subscribed again after every reconnect.
  bool subscribe(const std::string& filter, int qos = 1,
                 std::chrono::milliseconds deadline = std::chrono::seconds(5));
  // Waits until the broker has taken the message (PUBACK for QoS 1).
  bool publish(const std::string& topic, std::string_view payload, int qos = 1,
               bool retained = false, std::optional<std::string_view> correlationData = {},
               std::chrono::milliseconds deadline = std::chrono::seconds(5));
  // Like publish() (not retained), with an MQTT 5 Response Topic property: for an agent message
  // that asks for a receipt there.
  bool publishRequest(const std::string& topic, std::string_view payload, int qos,
                      const std::string& responseTopic,
                      std::optional<std::string_view> correlationData = {},
                      std::chrono::milliseconds deadline = std::chrono::seconds(5));

  // The first recorded message matching `match`, waiting for it up to `deadline`.
  std::optional<Message> waitFor(const Predicate& match, std::chrono::milliseconds deadline);
  std::optional<Message> waitForTopic(const std::string& topic, std::chrono::milliseconds deadline);
  std::vector<Message> messages() const;
  std::size_t count(const Predicate& match) const;
  void clear();

 private:
  void resubscribe();

  std::string uri_;
  bool mqtt5_;
  std::unique_ptr<mqtt::async_client> client_;
  mutable std::mutex mutex_;
  std::condition_variable arrived_;
  std::vector<Message> messages_;
  std::vector<std::pair<std::string, int>> filters_;
};

}  // namespace impgate::testing
