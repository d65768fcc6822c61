// parseBrokerUri: the broker URIs impgate accepts (tcp://, mqtt://, ssl://, mqtts://, IPv6 in
// brackets, default ports), and a clear error for everything else.
#include <catch2/catch.hpp>

#include <string>

#include "bus/mqtt/broker_link.h"

namespace impgate::bus::mqtt {
namespace {

TEST_CASE("parseBrokerUri reads tcp, mqtt, ssl and mqtts URIs") {
  struct Case {
    const char* uri;
    bool tls;
    const char* host;
    uint16_t port;
  };
  const Case cases[] = {
      {"tcp://broker:1884", false, "broker", 1884},
      {"mqtt://broker", false, "broker", 1883},
      {"tcp://127.0.0.1", false, "127.0.0.1", 1883},
      {"ssl://broker", true, "broker", 8883},
      {"mqtts://broker:9883", true, "broker", 9883},
      {"tcp://[::1]:1885", false, "::1", 1885},
      {"mqtts://[fe80::1]", true, "fe80::1", 8883},
      {"tcp://broker:65535/", false, "broker", 65535},
  };
  for (const Case& c : cases) {
    INFO(c.uri);
    auto address = parseBrokerUri(c.uri);
    REQUIRE(address);
    CHECK(address->tls == c.tls);
    CHECK(address->host == c.host);
    CHECK(address->port == c.port);
  }
}

TEST_CASE("parseBrokerUri refuses bad URIs with a clear error") {
  struct Case {
    const char* uri;
    const char* says;
  };
  const Case cases[] = {
      {"broker:1883", "expected tcp://"},
      {"http://broker", "unknown scheme 'http://'"},
      {"tcp://", "no valid host"},
      {"tcp://:1883", "no valid host"},
      {"tcp://user@broker", "no valid host"},
      {"tcp://broker:0", "invalid port"},
      {"tcp://broker:65536", "invalid port"},
      {"tcp://broker:123456", "invalid port"},
      {"tcp://broker:x1", "invalid port"},
      {"tcp://broker:-1", "invalid port"},
      {"tcp://broker:", "invalid port"},
      {"tcp://[::1]:", "invalid port"},
      {"tcp://[::1", "unclosed '['"},
      {"tcp://[::1]1883", "expected ':' after ']'"},
      {"tcp://[]:1883", "no valid host"},
  };
  for (const Case& c : cases) {
    INFO(c.uri);
    auto address = parseBrokerUri(c.uri);
    REQUIRE_FALSE(address);
    CHECK(address.error().message.find(c.says) != std::string::npos);
  }
}

}  // namespace
}  // namespace impgate::bus::mqtt
