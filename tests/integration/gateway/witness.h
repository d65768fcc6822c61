// Helpers for integration tests that attack a real gateway with raw frames and then prove,
// through a well-behaved witness device, that nobody else was harmed.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "gateway/base/protocol/bye_reason.h"
#include "tests/integration/gateway/gateway_fixture.h"
#include "tests/integration/gateway/raw_tls_client.h"

namespace impgate::testing {

// Round trip through `witness` (enrolled as "witness"): device -> agent and agent -> device.
void requireWitnessWorks(GatewayFixture& gw, device::BlockingDevice& witness);

// A raw device `id`, enrolled, TLS handshake done; HELLO sent when `hello`.
std::unique_ptr<RawTlsClient> rawDevice(GatewayFixture& gw, const std::string& id,
                                        bool hello = true);

// One frame: length, type, body.
std::vector<uint8_t> rawFrame(uint8_t type, const std::vector<uint8_t>& body);

// Reads until the gateway closes `raw` and checks the BYE reason it sent first.
void expectBye(RawTlsClient& raw, protocol::ByeReason reason,
               std::chrono::milliseconds deadline = std::chrono::seconds(10));

}  // namespace impgate::testing
