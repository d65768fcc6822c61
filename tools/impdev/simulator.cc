#include "tools/impdev/simulator.h"

#include <cstdio>
#include <memory>

#include "gateway/base/code/hex.h"
#include "gateway/base/home.h"
#include "gateway/base/net/event_loop.h"
#include "gateway/base/pki/code_signing.h"
#include "gateway/device/device_client.h"
#include "gateway/device/file_code_store.h"

namespace impgate::tools {

namespace {

// The fleet key of one device, shared with every other device enrolled with the same key.
std::shared_ptr<EVP_PKEY> verifyKeyFor(const Home& home, const std::string& id,
                                       std::map<std::string, std::shared_ptr<EVP_PKEY>>& seen) {
  auto key = pki::readVerifyKey(home.deviceCodeVerifyKey(id));
  if (!key) return nullptr;
  std::string raw(32, '\0');
  std::size_t length = raw.size();
  if (EVP_PKEY_get_raw_public_key(key->get(), reinterpret_cast<unsigned char*>(raw.data()),
                                  &length) != 1) {
    return nullptr;
  }
  raw.resize(length);
  auto& shared = seen[raw];
  if (!shared) shared = std::shared_ptr<EVP_PKEY>(std::move(*key));
  return shared;
}

}  // namespace

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
  std::map<std::string, std::shared_ptr<EVP_PKEY>> keys;
  std::vector<std::shared_ptr<device::FileCodeStore>> stores(options.ids.size());
  std::vector<uint8_t> runsTarget(options.ids.size(), 0);
  std::size_t runningTarget = 0;
  std::size_t withoutKey = 0;
  std::optional<Clock::time_point> firstOffer;
  std::optional<Clock::time_point> lastInstall;

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
    if (options.codePush) {
      auto key = verifyKeyFor(home, id, keys);
      if (key) {
        auto dir = options.stateDir.empty() ? home.deviceDir(id) / "state"
                                            : std::filesystem::path(options.stateDir) / id;
        auto store = device::FileCodeStore::open(dir);
        if (!store) {
          error = "device " + id + ": " + store.error().message;
          return false;
        }
        stores[i] = std::move(*store);
        o.codePush.verifyKey = std::move(key);
        o.codePush.store = stores[i];
        o.codePush.corruptFirstFetch = i < options.corruptDevices;
        if (!options.deferUpdates.empty()) {
          std::string reason = options.deferUpdates;
          o.codePush.deferUpdate = [reason](const device::CodeOfferInfo&) {
            return std::optional<std::string>(reason);
          };
        }
        ++result.codePushDevices;
        auto running = stores[i]->runningCode();
        if (options.exitWhenRunning && running == options.exitWhenRunning) {
          runsTarget[i] = 1;
          ++runningTarget;
        }
      } else {
        ++withoutKey;
      }
    }
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
    h.onCode = [&, i](const device::CodeEvent& e) {
      using Kind = device::CodeEvent::Kind;
      result.codeBytesFetched += e.bytesFetched;
      result.codeBytesCopied += e.bytesCopied;
      switch (e.kind) {
        case Kind::kOffered:
          ++result.codeOffers;
          if (!firstOffer) firstOffer = Clock::now();
          return;
        case Kind::kDeferred:
          ++result.codeDeferred;
          return;
        case Kind::kFailed:
          ++result.codeFailed;
          return;
        case Kind::kSuperseded:
          ++result.codeSuperseded;
          return;
        case Kind::kInstalled:
          break;
      }
      ++result.codeInstalled;
      lastInstall = Clock::now();
      if (!options.exitWhenRunning) return;
      uint8_t runs = e.offer.code == *options.exitWhenRunning ? 1 : 0;
      if (runs != runsTarget[i]) {
        runsTarget[i] = runs;
        runs ? ++runningTarget : --runningTarget;
      }
      if (runningTarget == clients.size()) loop.stop();
    };
    clients.push_back(std::make_unique<device::DeviceClient>(loop, **tls, std::move(*credentials),
                                                             std::move(o), std::move(h)));
  }
  if (withoutKey > 0) {
    std::fprintf(stderr, "impdev: %zu device(s) have no code-signing.pub: no code push for them\n",
                 withoutKey);
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
    if (options.codePush) {
      std::fprintf(stderr,
                   "impdev: code offers=%llu installed=%llu deferred=%llu failed=%llu "
                   "fetched=%llu copied=%llu\n",
                   static_cast<unsigned long long>(result.codeOffers),
                   static_cast<unsigned long long>(result.codeInstalled),
                   static_cast<unsigned long long>(result.codeDeferred),
                   static_cast<unsigned long long>(result.codeFailed),
                   static_cast<unsigned long long>(result.codeBytesFetched),
                   static_cast<unsigned long long>(result.codeBytesCopied));
    }
  });
  loop.runAfter(options.duration, [&] { loop.stop(); });
  if (options.exitWhenRunning) {
    // Also when every device already ran it at the start.
    loop.runEvery(std::chrono::milliseconds(100), [&] {
      if (runningTarget == clients.size()) loop.stop();
    });
  }
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
  if (firstOffer && lastInstall && *lastInstall >= *firstOffer) {
    result.secondsFirstOfferToLastInstall =
        std::chrono::duration<double>(*lastInstall - *firstOffer).count();
  }
  if (options.codePush) {
    for (const auto& store : stores) {
      auto running = store ? store->runningCode() : std::nullopt;
      ++result.running[running ? code::toHex(*running) : std::string()];
    }
  }
  for (auto& c : clients) c->disconnect();
  clients.clear();
  if (loopError) {
    error = "event loop failed: " + loopError.message();
    return false;
  }
  return true;
}

}  // namespace impgate::tools
