// The impgate load: one DeviceClient per fleet device, all on one EventLoop, each with its own
// certificate. The same client objects serve every wave, so on the second wave each offers the
// TLS session ticket impgate gave it on the first.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "gateway/base/net/event_loop.h"
#include "gateway/base/net/socket.h"
#include "gateway/base/net/tls_context.h"
#include "gateway/device/device_client.h"
#include "tools/impbench/bench_fleet.h"
#include "tools/impbench/client_pool.h"

namespace impgate::bench {

class DeviceClientPool final : public ClientPool {
 public:
  // `gateway` is impgate's HOST:PORT; client i connects from sources[i % size] when `sources`
  // is not empty. `tls` and `fleet` must outlive the pool.
  DeviceClientPool(net::EventLoop& loop, const net::TlsContext& tls, const BenchFleet& fleet,
                   const std::string& gateway, const std::vector<net::Endpoint>& sources);
  ~DeviceClientPool() override;

  std::size_t size() const override { return clients_.size(); }
  void startWave() override { counts_ = WaveCounts{}; }
  void connect(std::size_t index) override { clients_[index]->connect(); }
  void disconnectAll() override;
  const WaveCounts& counts() const override { return counts_; }

 private:
  void onOnline(std::size_t index);
  void onOffline(std::size_t index, const std::string& reason);

  std::vector<std::unique_ptr<device::DeviceClient>> clients_;
  std::vector<uint8_t> online_;
  WaveCounts counts_;
  bool leaving_ = false;
};

}  // namespace impgate::bench
