#include "tools/impbench/mqtt_client_pool.h"

namespace impgate::bench {

MqttClientPool::MqttClientPool(net::EventLoop& loop, const net::TlsContext& tls,
                               const BenchFleet& fleet, const net::Endpoint& broker,
                               const std::vector<net::Endpoint>& sources)
    : connected_(fleet.size(), 0) {
  clients_.reserve(fleet.size());
  for (std::size_t i = 0; i < fleet.size(); ++i) {
    std::optional<net::Endpoint> source;
    if (!sources.empty()) source = sources[i % sources.size()];
    MqttTlsClient::Events events;
    events.onConnected = [this, i] { onConnected(i); };
    events.onFailed = [this, i](const std::string& reason) { onFailed(i, reason); };
    clients_.push_back(std::make_unique<MqttTlsClient>(loop, tls, fleet.credentials(i), fleet.id(i),
                                                       broker, source, std::move(events)));
  }
}

void MqttClientPool::onConnected(std::size_t index) {
  if (connected_[index]) return;
  connected_[index] = 1;
  ++counts_.established;
  if (clients_[index]->resumed()) ++counts_.resumed;
}

void MqttClientPool::onFailed(std::size_t index, const std::string& reason) {
  if (connected_[index]) {
    connected_[index] = 0;
    --counts_.established;
    if (clients_[index]->resumed()) --counts_.resumed;
  }
  ++counts_.failed;
  counts_.lastFailure = reason;
}

void MqttClientPool::disconnectAll() {
  for (std::size_t i = 0; i < clients_.size(); ++i) {
    clients_[i]->disconnect();
    connected_[i] = 0;
  }
}

}  // namespace impgate::bench
