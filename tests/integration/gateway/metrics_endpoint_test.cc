// The Prometheus endpoint of the real impgate binary under idle and slowloris connections.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <vector>

#include "tests/integration/gateway/gateway_fixture.h"

using namespace impgate::testing;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

int connectTo(uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(fd >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  return fd;
}

void checkPromptScrape(GatewayFixture& gw) {
  auto t0 = Clock::now();
  auto page = gw.scrapeMetrics();
  CHECK(page.starts_with("HTTP/1.1 200 OK\r\n"));
  CHECK(page.find("\nimpgate_connections ") != std::string::npos);
  CHECK(Clock::now() - t0 < 1s);
}

}  // namespace

TEST_CASE("idle and slowloris connections to /metrics never lock Prometheus out") {
  GatewayFixture gw;
  std::vector<int> held;
  for (int i = 0; i < 16; ++i) held.push_back(connectTo(gw.metricsPort()));
  checkPromptScrape(gw);
  for (int i = 0; i < 200; ++i) held.push_back(connectTo(gw.metricsPort()));
  checkPromptScrape(gw);
  // Slowloris: a byte of a request at a time on the newest connections, never finishing it.
  const std::string request = "GET /metrics HTTP/1.1\r\n";
  for (std::size_t byte = 0; byte < 3; ++byte) {
    for (std::size_t i = held.size() - 16; i < held.size(); ++i) {
      ::send(held[i], &request[byte], 1, MSG_NOSIGNAL);
    }
    checkPromptScrape(gw);
  }
  for (int fd : held) ::close(fd);
}
