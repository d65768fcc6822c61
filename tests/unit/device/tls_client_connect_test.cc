// The device's TLS client steps (gateway/device/tls_client_connect.h) over real loopback TCP
// with a throwaway fleet: connect, TLS with the device's credentials, handshake steps.
#include "gateway/device/tls_client_connect.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <string>

#include "tests/unit/base/net/test_fleet.h"

using namespace impgate;
using impgate::testing::TestFleet;
using namespace std::chrono_literals;

namespace {

using Clock = std::chrono::steady_clock;
constexpr int kPollMs = 5000;

// A loopback listener on a port the kernel chose; closed with the test.
struct Listener {
  int fd = -1;
  uint16_t port = 0;
  Listener() {
    fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd >= 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    REQUIRE(::listen(fd, 4) == 0);
    REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
    port = ntohs(addr.sin_port);
  }
  ~Listener() { ::close(fd); }
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;
};

net::Endpoint loopback(uint16_t port) {
  auto endpoint = net::parseEndpoint("127.0.0.1:" + std::to_string(port));
  REQUIRE(endpoint);
  return *endpoint;
}

// Step 1 and the wait for its outcome: the socket, writable.
int connectedSocket(uint16_t port) {
  auto started = device::startTcpConnect(loopback(port), std::nullopt);
  INFO((started ? "" : started.error().message));
  REQUIRE(started);
  int fd = *started;
  pollfd p{fd, POLLOUT, 0};
  REQUIRE(::poll(&p, 1, kPollMs) == 1);
  return fd;
}

// A device's socket, connected through the steps to a gateway socket accepted on loopback.
// Declared before the transports on them, so that it closes the sockets after them.
struct TcpLink {
  Listener gateway;
  int clientFd = -1;
  int serverFd = -1;
  TcpLink() {
    clientFd = connectedSocket(gateway.port);
    serverFd = ::accept4(gateway.fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    REQUIRE(serverFd >= 0);
  }
  ~TcpLink() {
    ::close(serverFd);
    ::close(clientFd);
  }
  TcpLink(const TcpLink&) = delete;
  TcpLink& operator=(const TcpLink&) = delete;
};

std::shared_ptr<device::DeviceCredentials> credentials(TestFleet& fleet, const std::string& id) {
  fleet.enroll(id);
  auto c = device::DeviceCredentials::load(fleet.home().deviceCert(id).string(),
                                           fleet.home().deviceKey(id).string());
  INFO((c ? "" : c.error().message));
  REQUIRE(c);
  return *c;
}

struct Handshake {
  device::HandshakeStep client;
  net::IoStatus server = net::IoStatus::kWantRead;
  int steps = 0;
};

// Runs the client's steps (waiting for what each asks for) and the server's handshake until
// the client is done or failed, or the deadline passes.
Handshake runHandshake(net::Transport& client, int clientFd, net::Transport& server) {
  Handshake out;
  auto deadline = Clock::now() + 5s;
  while (Clock::now() < deadline) {
    out.client = device::stepHandshake(client);
    ++out.steps;
    if (out.client.done || !out.client.error.empty()) break;
    REQUIRE(out.client.watch != 0);
    if (out.server == net::IoStatus::kWantRead || out.server == net::IoStatus::kWantWrite) {
      out.server = server.handshake();
    }
    short events = (out.client.watch & EPOLLOUT) ? POLLIN | POLLOUT : POLLIN;
    pollfd p{clientFd, events, 0};
    ::poll(&p, 1, 50);
  }
  // The server's last flight may still be unread by it; let it finish.
  while ((out.server == net::IoStatus::kWantRead || out.server == net::IoStatus::kWantWrite) &&
         Clock::now() < deadline) {
    out.server = server.handshake();
    ::usleep(1000);
  }
  return out;
}

}  // namespace

TEST_CASE("a refused connect is reported by the TLS step as the connect's error") {
  TestFleet fleet;
  auto tls = fleet.clientContext();
  auto device = credentials(fleet, "dev-1");
  uint16_t port;
  {
    Listener gone;  // a port that was just free and is no longer listened on
    port = gone.port;
  }
  int fd = connectedSocket(port);
  auto transport = device::startTlsClient(fd, *tls, "127.0.0.1", nullptr, *device);
  ::close(fd);
  REQUIRE_FALSE(transport);
  CHECK(transport.error().code == device::ErrorCode::kConnect);
  CHECK(transport.error().message == "connect: Connection refused");
}

TEST_CASE("the steps take a device to an established link under its own identity") {
  TestFleet fleet;
  auto serverTls = fleet.serverContext();
  auto clientTls = fleet.clientContext();  // no certificate of its own: the steps present it
  auto device = credentials(fleet, "dev-7");
  TcpLink link;
  auto made = device::startTlsClient(link.clientFd, *clientTls, "127.0.0.1", nullptr, *device);
  INFO((made ? "" : made.error().message));
  REQUIRE(made);
  auto client = std::move(*made);
  auto server = net::TlsTransport::accept(*serverTls, link.serverFd);
  REQUIRE(server);

  auto outcome = runHandshake(*client, link.clientFd, *server);
  INFO(outcome.client.error);
  CHECK(outcome.client.done);
  CHECK(outcome.steps > 1);  // it waited for the server at least once
  CHECK(outcome.server == net::IoStatus::kOk);
  CHECK(server->peerIdentity() == "dev-7");
}

TEST_CASE("a failed handshake step says tls: and why") {
  TestFleet fleet;
  auto serverTls = fleet.serverContext();
  auto clientTls = fleet.clientContext();
  auto device = credentials(fleet, "dev-1");
  TcpLink link;
  // The gateway's certificate names 127.0.0.1, not this.
  auto made =
      device::startTlsClient(link.clientFd, *clientTls, "gateway.example.com", nullptr, *device);
  REQUIRE(made);
  auto client = std::move(*made);
  auto server = net::TlsTransport::accept(*serverTls, link.serverFd);
  REQUIRE(server);

  auto outcome = runHandshake(*client, link.clientFd, *server);
  CHECK_FALSE(outcome.client.done);
  CHECK_THAT(outcome.client.error, Catch::StartsWith("tls: ") && Catch::Contains("certificate"));
}
