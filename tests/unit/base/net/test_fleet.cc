#include "tests/unit/base/net/test_fleet.h"

#include <catch2/catch.hpp>

#include "gateway/base/pki/fleet_ca.h"

namespace impgate::testing {

TestFleet::TestFleet() : dir_("impgate-fleet"), home_(dir_.path()) {
  auto ca = pki::FleetCa::init(home_, {});
  INFO((ca.ok() ? std::string() : ca.error().message));
  REQUIRE(ca.ok());
}

void TestFleet::enroll(std::string_view id, std::chrono::seconds validity) {
  if (enrolled_.contains(id)) return;
  auto ca = pki::FleetCa::load(home_);
  REQUIRE(ca.ok());
  pki::IssueOptions options;
  options.validity = validity;
  auto issued = ca->issueDevice(id, options);
  INFO((issued.ok() ? std::string() : issued.error().message));
  REQUIRE(issued.ok());
  enrolled_.emplace(id);
}

std::unique_ptr<net::TlsContext> TestFleet::serverContext(bool sessionTickets) const {
  net::TlsServerOptions options;
  options.certFile = home_.gatewayCert();
  options.keyFile = home_.gatewayKey();
  options.clientCaFile = home_.caCert();
  options.sessionTickets = sessionTickets;
  auto ctx = net::TlsContext::server(options);
  INFO((ctx ? "" : ctx.error().message));
  REQUIRE(ctx);
  return std::move(*ctx);
}

std::unique_ptr<net::TlsContext> TestFleet::clientContext(std::string_view deviceId) {
  net::TlsClientOptions options;
  options.caFile = home_.caCert();
  if (!deviceId.empty()) {
    enroll(deviceId);
    options.certFile = home_.deviceCert(deviceId);
    options.keyFile = home_.deviceKey(deviceId);
  }
  auto ctx = net::TlsContext::client(options);
  INFO((ctx ? "" : ctx.error().message));
  REQUIRE(ctx);
  return std::move(*ctx);
}

}  // namespace impgate::testing
