#include "gateway/base/net/socket.h"

#include <arpa/inet.h>
#include <poll.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cerrno>
#include <string>

using namespace impgate::net;

namespace {

uint16_t portOf(const Endpoint& ep) {
  if (ep.addr.ss_family == AF_INET) {
    return ntohs(reinterpret_cast<const sockaddr_in*>(&ep.addr)->sin_port);
  }
  return ntohs(reinterpret_cast<const sockaddr_in6*>(&ep.addr)->sin6_port);
}

Endpoint parsed(const std::string& text) {
  auto ep = parseEndpoint(text);
  INFO(text << ": " << (ep ? "" : ep.error().message));
  REQUIRE(ep);
  return *ep;
}

// The error parseEndpoint() gives for `text`; fails the test when it parses.
std::string refusal(const std::string& text) {
  auto ep = parseEndpoint(text);
  INFO(text);
  REQUIRE_FALSE(ep);
  return ep.error().message;
}

// Waits up to 5 s for `events` on `fd`; returns the revents (0 on timeout).
short waitFor(int fd, short events) {
  pollfd p{fd, events, 0};
  int n = ::poll(&p, 1, 5000);
  return n == 1 ? p.revents : 0;
}

// Closes a descriptor with the test; -1 (and the error's message in `error`) when the call
// that should have made it failed.
struct Fd {
  int fd;
  explicit Fd(int f) : fd(f) {}
  Fd(const Result<int>& r, std::string& error) : fd(r ? *r : -1) {
    if (!r) error = r.error().message;
  }
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

}  // namespace

TEST_CASE("parseEndpoint reads IPv4 HOST:PORT") {
  Endpoint ep = parsed("127.0.0.1:80");
  CHECK(ep.addr.ss_family == AF_INET);
  CHECK(ep.length == sizeof(sockaddr_in));
  CHECK(portOf(ep) == 80);
  CHECK(ep.text() == "127.0.0.1:80");
}

TEST_CASE("parseEndpoint reads a bracketed IPv6 address") {
  Endpoint ep = parsed("[::1]:443");
  CHECK(ep.addr.ss_family == AF_INET6);
  CHECK(ep.length == sizeof(sockaddr_in6));
  CHECK(portOf(ep) == 443);
  CHECK(ep.text() == "[::1]:443");
}

TEST_CASE("parseEndpoint resolves a local host name") {
  Endpoint ep = parsed("localhost:1");
  CHECK((ep.addr.ss_family == AF_INET || ep.addr.ss_family == AF_INET6));
  CHECK(portOf(ep) == 1);
}

TEST_CASE("parseEndpoint takes an empty host as every IPv4 address") {
  Endpoint ep = parsed(":31314");
  CHECK(ep.text() == "0.0.0.0:31314");
}

TEST_CASE("parseEndpoint accepts the edge ports 0 and 65535") {
  CHECK(portOf(parsed("127.0.0.1:0")) == 0);
  CHECK(portOf(parsed("127.0.0.1:65535")) == 65535);
}

TEST_CASE("parseEndpoint refuses input without a port, quoting it") {
  CHECK_THAT(refusal("127.0.0.1"),
             Catch::Contains("expected host:port") && Catch::Contains("'127.0.0.1'"));
  CHECK_THAT(refusal("abc"), Catch::Contains("expected host:port") && Catch::Contains("'abc'"));
  CHECK_THAT(refusal(""), Catch::Contains("expected host:port"));
  CHECK_THAT(refusal("127.0.0.1:"), Catch::Contains("invalid port"));
  CHECK_THAT(refusal("[::1]"), Catch::Contains("expected [v6-address]:port"));
  CHECK_THAT(refusal("[::1]443"), Catch::Contains("expected [v6-address]:port"));
  CHECK_THAT(refusal("[::1:443"), Catch::Contains("expected [v6-address]:port"));
  CHECK_THAT(refusal("[::1]:"), Catch::Contains("invalid port"));
}

TEST_CASE("parseEndpoint refuses ports that are not 0..65535") {
  CHECK_THAT(refusal("127.0.0.1:70000"), Catch::Contains("invalid port in '127.0.0.1:70000'"));
  CHECK_THAT(refusal("127.0.0.1:65536"), Catch::Contains("invalid port"));
  CHECK_THAT(refusal("127.0.0.1:123456"), Catch::Contains("invalid port"));
  CHECK_THAT(refusal("127.0.0.1:-1"), Catch::Contains("invalid port"));
  CHECK_THAT(refusal("127.0.0.1:8o"), Catch::Contains("invalid port"));
  CHECK_THAT(refusal("127.0.0.1: 80"), Catch::Contains("invalid port"));
}

TEST_CASE("net errors carry a code to branch on") {
  auto bad = parseEndpoint("abc");
  REQUIRE_FALSE(bad);
  CHECK(bad.error().code == ErrorCode::kInvalidAddress);

  auto first = listenOn(parsed("127.0.0.1:0"), false, 16);
  REQUIRE(first);
  Fd owner(*first);
  auto second = listenOn(parsed("127.0.0.1:" + std::to_string(boundPort(owner.fd))), false, 16);
  REQUIRE_FALSE(second);
  CHECK(second.error().code == ErrorCode::kSocket);
}

TEST_CASE("listenOn port 0 gets a port that boundPort reports and that accepts connections") {
  std::string error;
  Fd listener(listenOn(parsed("127.0.0.1:0"), false, 16), error);
  INFO(error);
  REQUIRE(listener.fd >= 0);
  uint16_t port = boundPort(listener.fd);
  REQUIRE(port != 0);

  Fd client(connectNonBlocking(parsed("127.0.0.1:" + std::to_string(port)), nullptr), error);
  INFO(error);
  REQUIRE(client.fd >= 0);
  REQUIRE((waitFor(client.fd, POLLOUT) & POLLOUT) != 0);
  CHECK(socketError(client.fd) == 0);

  // The listener is non-blocking: wait for the connection, then accept it.
  REQUIRE((waitFor(listener.fd, POLLIN) & POLLIN) != 0);
  Fd accepted(::accept4(listener.fd, nullptr, nullptr, SOCK_CLOEXEC));
  REQUIRE(accepted.fd >= 0);
  REQUIRE(::write(client.fd, "x", 1) == 1);
  char c = 0;
  REQUIRE(::read(accepted.fd, &c, 1) == 1);
  CHECK(c == 'x');
}

TEST_CASE("a second listener on a taken port is refused unless both share it with reusePort") {
  std::string error;
  Fd first(listenOn(parsed("127.0.0.1:0"), false, 16), error);
  REQUIRE(first.fd >= 0);
  std::string taken = "127.0.0.1:" + std::to_string(boundPort(first.fd));
  Fd second(listenOn(parsed(taken), false, 16), error);
  CHECK(second.fd < 0);
  CHECK_THAT(error, Catch::Contains("cannot listen on " + taken));

  error.clear();
  Fd shared1(listenOn(parsed("127.0.0.1:0"), true, 16), error);
  REQUIRE(shared1.fd >= 0);
  std::string port = std::to_string(boundPort(shared1.fd));
  Fd shared2(listenOn(parsed("127.0.0.1:" + port), true, 16), error);
  INFO(error);
  CHECK(shared2.fd >= 0);
  CHECK(boundPort(shared2.fd) == boundPort(shared1.fd));
}

TEST_CASE("connectNonBlocking to a closed port reports the refusal") {
  std::string error;
  uint16_t port = 0;
  {
    Fd probe(listenOn(parsed("127.0.0.1:0"), false, 1), error);
    REQUIRE(probe.fd >= 0);
    port = boundPort(probe.fd);
  }
  Fd client(connectNonBlocking(parsed("127.0.0.1:" + std::to_string(port)), nullptr), error);
  if (client.fd < 0) {
    CHECK_THAT(error, Catch::Contains("cannot connect to 127.0.0.1:" + std::to_string(port)));
  } else {
    // The usual case: the connect is in progress and fails asynchronously.
    REQUIRE(waitFor(client.fd, POLLOUT) != 0);
    CHECK(socketError(client.fd) == ECONNREFUSED);
  }
}

TEST_CASE("connectNonBlocking binds the source address it is given") {
  std::string error;
  Fd listener(listenOn(parsed("127.0.0.1:0"), false, 16), error);
  REQUIRE(listener.fd >= 0);
  Endpoint source = parsed("127.0.0.2:0");
  Fd client(
      connectNonBlocking(parsed("127.0.0.1:" + std::to_string(boundPort(listener.fd))), &source),
      error);
  INFO(error);
  REQUIRE(client.fd >= 0);
  REQUIRE((waitFor(listener.fd, POLLIN) & POLLIN) != 0);
  sockaddr_in peer{};
  socklen_t len = sizeof peer;
  Fd accepted(::accept4(listener.fd, reinterpret_cast<sockaddr*>(&peer), &len, SOCK_CLOEXEC));
  REQUIRE(accepted.fd >= 0);
  char text[INET_ADDRSTRLEN] = {};
  ::inet_ntop(AF_INET, &peer.sin_addr, text, sizeof text);
  CHECK(std::string(text) == "127.0.0.2");
}
