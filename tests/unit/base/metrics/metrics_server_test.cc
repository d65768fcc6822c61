#include "gateway/base/metrics/metrics_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <chrono>
#include <string>
#include <vector>

using impgate::metrics::MetricsServer;
using impgate::metrics::Registry;
using Clock = std::chrono::steady_clock;

namespace {

// A connected client socket to 127.0.0.1:port whose reads give up after 5 s.
int connectTo(uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(fd >= 0);
  timeval tv{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  return fd;
}

// Sends `request` and returns everything the server sends until it closes.
std::string exchange(uint16_t port, const std::string& request) {
  int fd = connectTo(port);
  REQUIRE(::send(fd, request.data(), request.size(), MSG_NOSIGNAL) ==
          static_cast<ssize_t>(request.size()));
  std::string out;
  char buf[4096];
  for (;;) {
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return out;
}

std::string body(const std::string& resp) {
  auto pos = resp.find("\r\n\r\n");
  return pos == std::string::npos ? std::string() : resp.substr(pos + 4);
}

struct Served {
  Registry reg;
  MetricsServer server{reg, {.host = "127.0.0.1", .port = 0}};
  Served() {
    reg.counter("impgate_frames_total", "Frames.").inc(3);
    REQUIRE(server.start());
    REQUIRE(server.port() != 0);
  }
};

}  // namespace

TEST_CASE("GET /metrics serves the registry over HTTP/1.1") {
  Served s;
  auto resp = exchange(s.server.port(), "GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n");
  CHECK(resp.starts_with("HTTP/1.1 200 OK\r\n"));
  CHECK(resp.find("Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n") !=
        std::string::npos);
  CHECK(resp.find("Connection: close\r\n") != std::string::npos);
  CHECK(body(resp) == s.reg.render());
  auto len = "Content-Length: " + std::to_string(body(resp).size()) + "\r\n";
  CHECK(resp.find(len) != std::string::npos);
  CHECK(body(resp).find("impgate_frames_total 3\n") != std::string::npos);
}

TEST_CASE("other paths get 404, other methods 405, garbage 400") {
  Served s;
  CHECK(exchange(s.server.port(), "GET / HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 404 "));
  CHECK(exchange(s.server.port(), "GET /metricsx HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 404 "));
  auto post = exchange(s.server.port(), "POST /metrics HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello");
  CHECK(post.starts_with("HTTP/1.1 405 "));
  CHECK(post.find("Allow: GET\r\n") != std::string::npos);
  CHECK(exchange(s.server.port(), "\x16\x03\x01garbage\r\n\r\n").starts_with("HTTP/1.1 400 "));
  std::string huge = "GET /metrics HTTP/1.1\r\nX: " + std::string(10000, 'a');
  CHECK(exchange(s.server.port(), huge).starts_with("HTTP/1.1 431 "));
}

TEST_CASE("a silent client does not hold up a scrape, and is dropped at its deadline") {
  Registry reg;
  MetricsServer server(reg,
                       {.host = "127.0.0.1", .port = 0, .clientTimeout = std::chrono::seconds(2)});
  REQUIRE(server.start());
  int silent = connectTo(server.port());
  ::send(silent, "GET /met", 8, MSG_NOSIGNAL);  // half a request, then nothing

  auto t0 = Clock::now();
  CHECK(exchange(server.port(), "GET /metrics HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 200 "));
  CHECK(Clock::now() - t0 < std::chrono::seconds(1));

  // The server closes the silent connection once its 2 s are up (recv gives up after 5 s).
  char c;
  CHECK(::recv(silent, &c, 1, 0) == 0);
  CHECK(Clock::now() - t0 < std::chrono::milliseconds(4500));
  ::close(silent);
}

TEST_CASE("stop() returns promptly with clients connected, and is idempotent") {
  Registry reg;
  MetricsServer server(reg, {});
  REQUIRE(server.start());
  int idle = connectTo(server.port());
  auto t0 = Clock::now();
  server.stop();
  CHECK(Clock::now() - t0 < std::chrono::seconds(1));
  server.stop();
  char c;
  CHECK(::recv(idle, &c, 1, 0) <= 0);
  ::close(idle);
}

TEST_CASE("start() reports a port that is taken") {
  Registry reg;
  MetricsServer first(reg, {});
  REQUIRE(first.start());
  MetricsServer second(reg, {.host = "127.0.0.1", .port = first.port()});
  auto started = second.start();
  REQUIRE_FALSE(started);
  CHECK(started.error().code == impgate::metrics::ErrorCode::kSocket);
  CHECK(started.error().message.find("bind") != std::string::npos);
}

namespace {

// `count` connections that send nothing: a port scanner, or a client that went away silently.
std::vector<int> idleConnections(uint16_t port, int count) {
  std::vector<int> fds;
  for (int i = 0; i < count; ++i) fds.push_back(connectTo(port));
  return fds;
}

void closeAll(std::vector<int>& fds) {
  for (int fd : fds) ::close(fd);
  fds.clear();
}

// A scrape must be answered, and quickly, whatever the other connections do.
void checkPromptScrape(uint16_t port) {
  auto t0 = Clock::now();
  auto resp = exchange(port, "GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n");
  CHECK(resp.starts_with("HTTP/1.1 200 OK\r\n"));
  CHECK(body(resp).find("impgate_frames_total 3\n") != std::string::npos);
  CHECK(Clock::now() - t0 < std::chrono::seconds(1));
}

}  // namespace

TEST_CASE("idle connections, as many as the cap or far more, never lock a scrape out") {
  Served s;  // default options: 16 connections at most, 5 s to send a request
  auto idle = idleConnections(s.server.port(), 16);
  checkPromptScrape(s.server.port());
  auto more = idleConnections(s.server.port(), 200);
  checkPromptScrape(s.server.port());
  checkPromptScrape(s.server.port());
  closeAll(idle);
  closeAll(more);
}

TEST_CASE("slowloris clients sending a byte at a time never lock a scrape out") {
  Served s;
  const std::string request = "GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n";
  auto slow = idleConnections(s.server.port(), 32);
  // Each client sends one more byte of its request between scrapes, never finishing it.
  for (std::size_t byte = 0; byte < 5; ++byte) {
    for (int fd : slow) ::send(fd, &request[byte], 1, MSG_NOSIGNAL);
    checkPromptScrape(s.server.port());
  }
  closeAll(slow);
}

TEST_CASE("a client that does not read its response does not hold up other scrapes") {
  Registry reg;
  reg.counter("impgate_frames_total", "Frames.").inc(3);
  // A response far larger than the socket buffers, so the server cannot send it in one go.
  auto& family = reg.counterFamily("impgate_padding_total", "Padding.", {"n"});
  for (int i = 0; i < 900; ++i) family.with(std::to_string(i) + std::string(200, 'x')).inc();
  MetricsServer server(reg, {.host = "127.0.0.1", .port = 0, .maxClients = 4});
  REQUIRE(server.start());
  std::vector<int> stalled;
  for (int i = 0; i < 4; ++i) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int small = 4096;
    ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(server.port());
    REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    std::string req = "GET /metrics HTTP/1.1\r\n\r\n";
    ::send(fd, req.data(), req.size(), MSG_NOSIGNAL);  // and then never read
    stalled.push_back(fd);
  }
  checkPromptScrape(server.port());
  closeAll(stalled);
}
