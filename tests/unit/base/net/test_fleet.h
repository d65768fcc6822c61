// TestFleet: a throwaway fleet for unit tests that need real TLS. A fleet CA and the gateway's
// server credential live in a temp home that is removed with the fleet; device credentials are
// issued on demand.
//
// Setup failures fail the calling test (Catch2 REQUIRE), so tests can use the result directly.
#pragma once

#include <chrono>
#include <memory>
#include <set>
#include <string>
#include <string_view>

#include "gateway/base/home.h"
#include "gateway/base/net/tls_context.h"
#include "tests/support/testbed.h"

namespace impgate::testing {

class TestFleet {
 public:
  TestFleet();

  const Home& home() const { return home_; }

  // Issues a key and certificate for `id` (once per id), valid for `validity` when given
  // (short-lived certificates for expiry tests), else for the default device validity.
  void enroll(std::string_view id, std::chrono::seconds validity = {});

  // The gateway side: the fleet's server credential, verifying devices against the fleet CA.
  std::unique_ptr<net::TlsContext> serverContext(bool sessionTickets = true) const;
  // The device side, trusting the fleet CA. With a `deviceId` (enrolled on demand) the
  // context presents that device's certificate; without one it presents none.
  std::unique_ptr<net::TlsContext> clientContext(std::string_view deviceId = {});

 private:
  TempDir dir_;
  Home home_;
  std::set<std::string, std::less<>> enrolled_;
};

}  // namespace impgate::testing
