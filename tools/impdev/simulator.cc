#include "tools/impdev/simulator.h"

#include <cstdio>
#include <memory>

#include "gateway/base/home.h"
#include "gateway/base/net/event_loop.h"
#include "gateway/device/device_client.h"

namespace impgate::tools {

bool runSimulation(const SimulationOptions& options, SimulationResult& result, std::string& error) {
  Home home = Home::resolve(options.home);
  net::TlsClientOptions tlsOptions;
  tlsOptions.caFile = home.caCert().string();
  auto tls = net::TlsContext::client(tlsOptions);
  if (!tls) {
    error = tls.error().message;
    return false;
  }

  std::vector<net::Endpoint> sources;
  for (const auto& s : options.sources) {
    auto ep = net::parseEndpoint(s + ":0");
    if (!ep) {
      error = ep.error().message;
      return false;
    }
    sources.push_back(*ep);
  }

  net::EventLoop loop;
  using Clock = net::EventLoop::Clock;
  const auto started = Clock::now();
  std::vector<std::unique_ptr<device::DeviceClient>> clients;
  clients.reserve(options.ids.size());
  std::string payload(options.payloadBytes, 'x');
  result = SimulationResult{};
  result.devices = options.ids.size();
  std::vector<uint8_t> isOnline(options.ids.size(), 0);

  for (std::size_t i = 0; i < options.ids.size(); ++i) {
    const std::string& id = options.ids[i];
    auto credentials =
        device::DeviceCredentials::load(home.deviceCert(id).string(), home.deviceKey(id).string());
    if (!credentials) {
      error = "device " + id + ": " + credentials.error().message +
              " (enrol it with impctl device enroll)";
      return false;
    }
    device::DeviceOptions o;
    o.gateway = options.gateway;
    o.serverName = options.serverName;
    o.codeId = "sim";
    o.reconnect = options.reconnect;
    if (!sources.empty()) o.source = sources[i % sources.size()];
    device::DeviceClient::Handlers h;
    h.onOnline = [&, i, started](const protocol::Welcome&) {
      if (isOnline[i]) return;
      isOnline[i] = 1;
      ++result.online;
      if (clients[i]->lastHandshakeResumed()) ++result.resumed;
      result.peakOnline = std::max(result.peakOnline, result.online);
      if (result.online == result.devices && result.secondsToAllOnline < 0) {
        result.secondsToAllOnline = std::chrono::duration<double>(Clock::now() - started).count();
        if (options.exitWhenAllConnected) loop.stop();
      }
    };
    h.onOffline = [&, i](const std::string&) {
      ++result.failures;
      if (isOnline[i]) {
        isOnline[i] = 0;
        --result.online;
      }
    };
    h.onMessage = [&result](std::string_view, std::span<const uint8_t>) { ++result.received; };
    h.onAck = [&result](uint32_t, protocol::AckStatus status) {
      if (status == protocol::AckStatus::kOk) ++result.acked;
    };
    clients.push_back(std::make_unique<device::DeviceClient>(loop, **tls, std::move(*credentials),
                                                             std::move(o), std::move(h)));
  }
  // Paced connection ramp: a fleet arriving at once is the stampede we want to avoid.
  std::size_t nextToConnect = 0;
  const double perTick = std::max(1.0, options.connectRate / 100.0);
  double budget = 0;
  auto rampTimer = loop.runEvery(std::chrono::milliseconds(10), [&] {
    budget += perTick;
    while (budget >= 1 && nextToConnect < clients.size()) {
      clients[nextToConnect++]->connect();
      budget -= 1;
    }
  });

  net::EventLoop::TimerId sendTimer = 0;
  if (options.sendEvery.count() > 0) {
    // Spread the sends over the interval: one slice of the fleet every 10 ms.
    std::size_t cursor = 0;
    auto slices = std::max<long>(1, options.sendEvery.count() / 10);
    sendTimer = loop.runEvery(std::chrono::milliseconds(10), [&, slices] {
      std::size_t batch = (clients.size() + slices - 1) / slices;
      for (std::size_t k = 0; k < batch && !clients.empty(); ++k) {
        auto& c = clients[cursor++ % clients.size()];
        auto bytes = std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(payload.data()),
                                              payload.size());
        if (c->send("sim", bytes, true) == device::SendError::kNone) ++result.sent;
      }
    });
  }

  auto reportTimer = loop.runEvery(options.reportEvery, [&] {
    std::fprintf(stderr, "impdev: t=%.0fs online=%llu/%zu sent=%llu acked=%llu received=%llu\n",
                 std::chrono::duration<double>(Clock::now() - started).count(),
                 static_cast<unsigned long long>(result.online), clients.size(),
                 static_cast<unsigned long long>(result.sent),
                 static_cast<unsigned long long>(result.acked),
                 static_cast<unsigned long long>(result.received));
  });
  loop.runAfter(options.duration, [&] { loop.stop(); });
  if (options.stop) {
    loop.runEvery(std::chrono::milliseconds(100), [&] {
      if (options.stop->load()) loop.stop();
    });
  }
  std::error_code loopError = loop.run();
  loop.cancel(rampTimer);
  loop.cancel(reportTimer);
  if (sendTimer) loop.cancel(sendTimer);

  for (auto& c : clients) result.connects += c->connects();
  for (auto& c : clients) c->disconnect();
  clients.clear();
  if (loopError) {
    error = "event loop failed: " + loopError.message();
    return false;
  }
  return true;
}

}  // namespace impgate::tools
