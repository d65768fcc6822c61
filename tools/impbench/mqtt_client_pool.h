// The mosquitto baseline load: one MqttTlsClient per fleet device, all on one EventLoop, each
// presenting its device's certificate, so the broker does the same certificate work per
// connection as impgate. Client ids are the device ids.
#pragma once

#include <memory>
#include <vector>

#include "gateway/base/net/event_loop.h"
#include "gateway/base/net/socket.h"
#include "gateway/base/net/tls_context.h"
#include "tools/impbench/bench_fleet.h"
#include "tools/impbench/client_pool.h"
#include "tools/impbench/mqtt_tls_client.h"

namespace impgate::bench {

class MqttClientPool final : public ClientPool {
 public:
  // Client i connects from sources[i % size] when `sources` is not empty. `tls` and `fleet`
  // must outlive the pool.
  MqttClientPool(net::EventLoop& loop, const net::TlsContext& tls, const BenchFleet& fleet,
                 const net::Endpoint& broker, const std::vector<net::Endpoint>& sources);
  ~MqttClientPool() override = default;

  std::size_t size() const override { return clients_.size(); }
  void startWave() override { counts_ = WaveCounts{}; }
  void connect(std::size_t index) override { clients_[index]->connect(); }
  void disconnectAll() override;
  const WaveCounts& counts() const override { return counts_; }

 private:
  void onConnected(std::size_t index);
  void onFailed(std::size_t index, const std::string& reason);

  std::vector<std::unique_ptr<MqttTlsClient>> clients_;
  std::vector<uint8_t> connected_;
  WaveCounts counts_;
};

}  // namespace impgate::bench
