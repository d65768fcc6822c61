// GatewayHarness: a real Gateway (TLS listener on 127.0.0.1:0, real sessions) over a
// FakeDeviceBus, with devices connecting through the device SDK on the same EventLoop.
//
// The loop runs on its own thread for the harness's lifetime. Everything it owns (the gateway,
// the fake bus, the device clients and what they recorded) is touched on that thread only: the
// test reaches it through onLoop(), which runs a function there and hands back its result, and
// waitFor(), which polls a condition there with a deadline. Catch2 assertions stay on the test
// thread: a function given to onLoop returns what the test then checks.
#pragma once

#include <chrono>
#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include <catch2/catch.hpp>

#include "gateway/base/metrics/registry.h"
#include "gateway/base/net/clock.h"
#include "gateway/base/net/event_loop.h"
#include "gateway/daemon/gateway.h"
#include "gateway/device/device_client.h"
#include "tests/support/on_loop.h"
#include "tests/unit/base/net/test_fleet.h"
#include "tests/unit/daemon/fake_device_bus.h"

namespace impgate::testing {

// A device connected through DeviceClient, and everything it heard from the gateway.
struct TestDevice {
  struct Welcome {
    uint64_t sessionId = 0;
    uint16_t keepaliveSeconds = 0;
    uint64_t serverTimeMs = 0;
    std::string node;
  };
  struct Message {
    std::string event;
    std::string payload;
  };

  std::string id;
  std::optional<Welcome> welcome;
  std::vector<Message> messages;
  std::vector<std::pair<uint32_t, protocol::AckStatus>> acks;
  std::vector<std::string> offline;  // onOffline reasons, e.g. "bye:replaced"
  std::unique_ptr<device::DeviceClient> client;
};

class GatewayHarness {
 public:
  static constexpr const char* kNode = "node-a";
  static constexpr std::chrono::seconds kDeadline{5};

  enum class Time { kReal, kManual };

  // `tune` adjusts the configuration (limits) before the gateway starts. With Time::kManual the
  // loop (the gateway's sweep and deadlines, and the devices' timers) runs on a ManualClock
  // that only advance() moves.
  explicit GatewayHarness(const std::function<void(gateway::GatewayConfig&)>& tune = {},
                          Time time = Time::kReal);
  ~GatewayHarness();
  GatewayHarness(const GatewayHarness&) = delete;
  GatewayHarness& operator=(const GatewayHarness&) = delete;

  // Runs `f` on the loop thread and returns its result.
  template <typename F>
  std::invoke_result_t<F&> onLoop(F f) {
    return runOnLoop(loop_, std::move(f), kDeadline);
  }

  // Moves the manual clock on and returns after the loop has run a pass at the new time (so
  // the gateway's sweep has seen it).
  void advance(std::chrono::seconds by);

  // Polls `condition` on the loop thread until it holds or the deadline passes.
  bool waitFor(const std::function<bool()>& condition);

  // Enrolls `id` if needed and starts a device connecting; does not wait.
  TestDevice& startDevice(const std::string& id, const std::string& codeId = "fw-1.0");
  // Starts a device and waits for its WELCOME; fails the test when none comes.
  TestDevice& connectDevice(const std::string& id, const std::string& codeId = "fw-1.0");
  // Sends `device` a QoS 0 agent message and waits for it. The gateway writes to a device in
  // order, so anything it wrote before (an ACK, a BYE) has arrived too. Counts as an agent
  // message for the device's receipt sequence numbers.
  void flushToDevice(TestDevice& device);

  // Loop thread only.
  gateway::Gateway& gateway() { return *gateway_; }
  FakeDeviceBus& bus() { return bus_; }
  // Relaxed atomics: readable from the test thread.
  gateway::GatewayStats& stats() { return stats_; }
  const gateway::GatewayConfig& config() const { return config_; }
  TestFleet& fleet() { return fleet_; }

 private:
  TestFleet fleet_;
  gateway::GatewayConfig config_;
  metrics::Registry registry_;
  gateway::GatewayStats stats_{registry_};
  std::unique_ptr<net::TlsContext> serverTls_;
  std::unique_ptr<net::TlsContext> clientTls_;
  FakeDeviceBus bus_;
  net::ManualClock manualClock_;
  net::EventLoop loop_;
  std::unique_ptr<gateway::Gateway> gateway_;
  std::vector<std::unique_ptr<TestDevice>> devices_;  // loop thread only
  std::thread loopThread_;
  std::error_code loopError_;  // what run() returned
};

}  // namespace impgate::testing
