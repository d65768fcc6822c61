// The OpenSSL floor: TLS 1.3 mutual-TLS handshakes between two SSL objects in this process,
// joined by a BIO pair (no sockets, no event loop, no protocol on top), with impgate's own TLS
// contexts and the fleet's P-256 certificates. The server side's CPU is what a gateway could
// not go below with this OpenSSL; impbench divides impgate's figures by it.
#pragma once

#include <cstddef>
#include <string>

#include "tools/impbench/bench_fleet.h"
#include "tools/impbench/bench_report.h"

namespace impgate::bench {

// Runs `iterations` full handshakes, then `iterations` resumed ones (each offering the ticket
// its full handshake received), timing server-side and client-side calls separately with the
// thread CPU clock. Fills `out` (out.error on failure).
void runOpensslHandshakeBench(const BenchFleet& fleet, std::size_t iterations, OpensslFigures& out);

}  // namespace impgate::bench
