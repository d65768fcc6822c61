// DeviceSession's output queue: a large backlog drains in order and intact.
#include <catch2/catch.hpp>
#include <string>

#include "tests/unit/daemon/gateway_harness.h"

using namespace impgate;
using namespace impgate::testing;

TEST_CASE("a backlog far larger than the socket takes reaches the device in order and intact") {
  GatewayHarness h([](gateway::GatewayConfig& c) { c.maxOutputBuffer = 16 * 1024 * 1024; });
  TestDevice& dev = h.connectDevice("dev-1");

  // Queued in one reactor pass, before the device reads anything: most of it waits in the
  // session's output buffer and leaves over many writable events.
  constexpr int kMessages = 1500;
  auto payloadOf = [](int i) {
    std::string p(4000, static_cast<char>('a' + i % 26));
    std::string tag = std::to_string(i);
    p.replace(0, tag.size(), tag);
    return p;
  };
  h.onLoop([&] {
    for (int i = 0; i < kMessages; ++i) {
      h.gateway().onAgentMessage(bus::AgentMessage{"dev-1", "chunk", payloadOf(i), 0, {}});
    }
  });
  bool all = h.waitFor([&] { return dev.messages.size() >= kMessages; });
  auto got = h.onLoop([&] { return dev.messages; });
  INFO("received " << got.size());
  REQUIRE(all);
  REQUIRE(got.size() == kMessages);
  int wrong = 0;
  for (int i = 0; i < kMessages; ++i) {
    if (got[i].event != "chunk" || got[i].payload != payloadOf(i)) ++wrong;
  }
  CHECK(wrong == 0);
  CHECK(
      h.stats().errors[static_cast<std::size_t>(gateway::ErrorReason::kOutputOverflow)]->value() ==
      0);
  CHECK(h.stats().bytesOut.value() > kMessages * 4000u);
}
