#include "gateway/device/blocking_device.h"

#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <thread>

#include "gateway/base/net/tls_transport.h"
#include "gateway/base/protocol/codec.h"
#include "tests/support/wait_until.h"
#include "tests/unit/base/net/test_fleet.h"

using namespace impgate;
using impgate::testing::TestFleet;
using impgate::testing::waitUntil;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

// A listening socket on 127.0.0.1 with a kernel-chosen port.
struct Listener {
  int fd = -1;
  uint16_t port = 0;
  Listener() {
    fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd >= 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    REQUIRE(::listen(fd, 16) == 0);
    socklen_t len = sizeof addr;
    REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
    port = ntohs(addr.sin_port);
  }
  ~Listener() { ::close(fd); }
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;
};

device::BlockingDeviceConfig configFor(TestFleet& fleet, uint16_t port) {
  fleet.enroll("dev-1");
  device::BlockingDeviceConfig config;
  config.options.gateway = "127.0.0.1:" + std::to_string(port);
  config.caFile = fleet.home().caCert().string();
  config.certFile = fleet.home().deviceCert("dev-1").string();
  config.keyFile = fleet.home().deviceKey("dev-1").string();
  config.callTimeout = 300ms;
  return config;
}

// A gateway stand-in that completes TLS, sends WELCOME and then floods the device with PONG
// frames (which the device only notes) for up to `budget`, never reading: the device thread
// spends its time reading them.
class FloodingGateway {
 public:
  FloodingGateway(TestFleet& fleet, std::chrono::seconds budget)
      : ctx_(fleet.serverContext()), budget_(budget) {
    thread_ = std::thread([this] { run(); });
  }
  ~FloodingGateway() { stop(); }
  FloodingGateway(const FloodingGateway&) = delete;
  FloodingGateway& operator=(const FloodingGateway&) = delete;

  uint16_t port() const { return listener_.port; }
  uint64_t flooded() const { return flooded_.load(); }
  void stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }

 private:
  void run() {
    auto deadline = Clock::now() + budget_;
    pollfd p{listener_.fd, POLLIN, 0};
    while (!stop_ && ::poll(&p, 1, 50) == 0) {
    }
    if (stop_) return;
    int fd = ::accept4(listener_.fd, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) return;
    // Blocking with short timeouts, so the loop below keeps checking stop_.
    timeval tv{0, 100 * 1000};
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    {
      auto tls = net::TlsTransport::accept(*ctx_, fd);
      net::IoStatus st = net::IoStatus::kWantRead;
      while (!stop_ && Clock::now() < deadline &&
             (st == net::IoStatus::kWantRead || st == net::IoStatus::kWantWrite)) {
        st = tls->handshake();
      }
      std::vector<uint8_t> welcome;
      protocol::encode(protocol::Welcome{protocol::kVersion, 1, 60, 1, "flood"}, welcome);
      std::vector<uint8_t> pongs;
      for (uint64_t n = 0; pongs.size() < 64 * 1024; ++n)
        protocol::encode(protocol::Pong{n}, pongs);
      bool first = true;
      while (st == net::IoStatus::kOk && !stop_ && Clock::now() < deadline) {
        std::span<const uint8_t> rest(first ? welcome : pongs);
        first = false;
        while (!rest.empty() && !stop_ && Clock::now() < deadline) {
          net::IoResult r = tls->write(rest);
          if (r.status == net::IoStatus::kOk) {
            rest = rest.subspan(r.bytes);
            flooded_ += r.bytes;
          } else if (r.status != net::IoStatus::kWantWrite &&
                     r.status != net::IoStatus::kWantRead) {
            st = r.status;
            break;
          }
        }
      }
    }
    ::close(fd);
  }

  Listener listener_;
  std::unique_ptr<net::TlsContext> ctx_;
  std::chrono::seconds budget_;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> flooded_{0};
  std::thread thread_;
};

// How long `fn` took.
template <typename Fn>
std::chrono::milliseconds timed(Fn&& fn) {
  auto start = Clock::now();
  fn();
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start);
}

}  // namespace

TEST_CASE("connecting to a listener that never answers fails within the timeout") {
  TestFleet fleet;
  Listener silent;  // the kernel completes TCP connects; nobody ever reads or writes
  auto created = device::BlockingDevice::create(configFor(fleet, silent.port));
  REQUIRE(created);
  auto dev = std::move(*created);

  std::optional<device::Status> connected;
  auto took = timed([&] { connected = dev->connect(500ms); });
  REQUIRE(connected);
  REQUIRE_FALSE(*connected);
  CHECK(took < 3s);
  CHECK(connected->error().code == device::ErrorCode::kTimeout);
  CHECK_THAT(connected->error().message, Catch::Contains("timed out"));
  std::optional<device::Result<protocol::AckStatus>> status;
  took = timed([&] { status = dev->send("reading", "{}", true, 500ms); });
  REQUIRE(status);
  CHECK_FALSE(*status);
  CHECK(took < 3s);
  CHECK_FALSE(dev->log(protocol::LogLevel::kInfo, "x"));
  took = timed([&] { dev.reset(); });
  CHECK(took < 3s);
}

TEST_CASE("every call returns within its bound while the device thread is kept busy") {
  TestFleet fleet;
  FloodingGateway gateway(fleet, 20s);
  auto created = device::BlockingDevice::create(configFor(fleet, gateway.port()));
  REQUIRE(created);
  auto dev = std::move(*created);
  auto connected = dev->connect(10s);
  INFO((connected ? "" : connected.error().message));
  REQUIRE(connected);
  // The device has been reading the flood for a while: its thread is busy.
  REQUIRE(waitUntil([&] { return gateway.flooded() > 8u * 1024 * 1024; }, 10s));

  // callTimeout is 300 ms: a call either runs or gives up within it. Without the bound a call
  // waits until the device thread happens to catch up with the flood (seconds).
  constexpr auto kBound = 1s;
  int slow = 0;
  std::chrono::milliseconds slowest{0};
  for (int round = 0; round < 3; ++round) {
    for (auto took : {timed([&] { dev->log(protocol::LogLevel::kInfo, "still there?"); }),
                      timed([&] { (void)dev->send("reading", "{}", false, 300ms); }),
                      timed([&] { dev->resumed(); }), timed([&] { dev->writeRaw("x"); })}) {
      slowest = std::max(slowest, took);
      if (took >= kBound) ++slow;
    }
  }
  CHECK(timed([&] { dev->disconnect(); }) < kBound);
  INFO("slowest call took " << slowest.count() << " ms");
  CHECK(slow == 0);
  // A call that gave up never runs later against freed locals (ASan would tell).
  gateway.stop();
  dev.reset();
}
