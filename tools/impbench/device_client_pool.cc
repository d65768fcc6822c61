#include "tools/impbench/device_client_pool.h"

namespace impgate::bench {

DeviceClientPool::DeviceClientPool(net::EventLoop& loop, const net::TlsContext& tls,
                                   const BenchFleet& fleet, const std::string& gateway,
                                   const std::vector<net::Endpoint>& sources)
    : online_(fleet.size(), 0) {
  clients_.reserve(fleet.size());
  for (std::size_t i = 0; i < fleet.size(); ++i) {
    device::DeviceOptions options;
    options.gateway = gateway;
    options.codeId = "impbench";
    // A failed connection stays failed and is reported: retries would add handshakes the
    // server pays for but the figures do not count.
    options.reconnect = false;
    // Longer than the device default: on a saturated machine a handshake may wait in queues.
    options.connectTimeout = std::chrono::seconds(60);
    if (!sources.empty()) options.source = sources[i % sources.size()];
    device::DeviceClient::Handlers handlers;
    handlers.onOnline = [this, i](const protocol::Welcome&) { onOnline(i); };
    handlers.onOffline = [this, i](const std::string& reason) { onOffline(i, reason); };
    clients_.push_back(std::make_unique<device::DeviceClient>(
        loop, tls, fleet.credentials(i), std::move(options), std::move(handlers)));
  }
}

DeviceClientPool::~DeviceClientPool() {
  leaving_ = true;
  clients_.clear();
}

void DeviceClientPool::onOnline(std::size_t index) {
  if (online_[index]) return;
  online_[index] = 1;
  ++counts_.established;
  if (clients_[index]->lastHandshakeResumed()) ++counts_.resumed;
}

void DeviceClientPool::onOffline(std::size_t index, const std::string& reason) {
  bool wasOnline = online_[index] != 0;
  online_[index] = 0;
  if (leaving_) return;
  if (wasOnline) {
    --counts_.established;
    if (clients_[index]->lastHandshakeResumed()) --counts_.resumed;
  }
  ++counts_.failed;
  counts_.lastFailure = reason;
}

void DeviceClientPool::disconnectAll() {
  leaving_ = true;
  for (auto& client : clients_) client->disconnect();
  leaving_ = false;
}

}  // namespace impgate::bench
