// DeviceClient's I/O paths when TLS needs the other direction: a read that must first write.
//
// The test thread plays the gateway with a blocking TlsTransport; the device runs on its own
// EventLoop thread.
#include "gateway/device/device_client.h"
#include "tests/support/on_loop.h"

#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <future>
#include <mutex>
#include <thread>
#include <variant>

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

constexpr auto kDeadline = 10s;

uint16_t localPort(int fd) {
  sockaddr_in addr{};
  socklen_t len = sizeof addr;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) return 0;
  return addr.sin_family == AF_INET ? ntohs(addr.sin_port) : 0;
}

uint16_t peerPort(int fd) {
  sockaddr_in addr{};
  socklen_t len = sizeof addr;
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) return 0;
  return ntohs(addr.sin_port);
}

// The device's socket in this process: the one whose local port is the gateway's peer port.
int findSocketWithPort(uint16_t port, int except) {
  for (int fd = 3; fd < 4096; ++fd) {
    if (fd != except && localPort(fd) == port) return fd;
  }
  return -1;
}

int64_t threadCpuMicros() {
  timespec ts{};
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000 + ts.tv_nsec / 1000;
}

// The device side: an EventLoop on its own thread with one DeviceClient.
class DeviceThread {
 public:
  DeviceThread(TestFleet& fleet, uint16_t port) : tls_(fleet.clientContext()) {
    fleet.enroll("dev-1");
    auto loaded = device::DeviceCredentials::load(fleet.home().deviceCert("dev-1"),
                                                  fleet.home().deviceKey("dev-1"));
    REQUIRE(loaded);
    std::shared_ptr<device::DeviceCredentials> credentials = std::move(*loaded);
    device::DeviceOptions options;
    options.gateway = "127.0.0.1:" + std::to_string(port);
    device::DeviceClient::Handlers handlers;
    handlers.onOnline = [this](const protocol::Welcome&) { online = true; };
    handlers.onMessage = [this](std::string_view event, std::span<const uint8_t>) {
      std::lock_guard<std::mutex> lock(mutex_);
      events_.emplace_back(event);
    };
    client_ = std::make_unique<device::DeviceClient>(loop_, *tls_, std::move(credentials), options,
                                                     std::move(handlers));
    thread_ = std::thread([this] { loopError_ = loop_.run(); });
  }
  ~DeviceThread() {
    onLoop([this] {
      client_->disconnect();
      return 0;
    });
    loop_.stop();
    thread_.join();
    CHECK_FALSE(loopError_);
    client_.reset();
  }

  template <typename F>
  std::invoke_result_t<F&> onLoop(F f) {
    return testing::runOnLoop(loop_, std::move(f), kDeadline);
  }
  device::DeviceClient& client() { return *client_; }
  bool heard(const std::string& event) {
    std::lock_guard<std::mutex> lock(mutex_);
    return std::find(events_.begin(), events_.end(), event) != events_.end();
  }

  std::atomic<bool> online{false};

 private:
  std::unique_ptr<net::TlsContext> tls_;
  net::EventLoop loop_;
  std::unique_ptr<device::DeviceClient> client_;
  std::mutex mutex_;
  std::vector<std::string> events_;
  std::thread thread_;
  std::error_code loopError_;  // what run() returned
};

// The gateway side, run by the test thread on a blocking socket with short timeouts.
struct GatewaySide {
  int listenFd = -1;
  int fd = -1;
  uint16_t port = 0;
  std::unique_ptr<net::TlsContext> ctx;
  std::unique_ptr<net::TlsTransport> tls;
  protocol::FrameReader reader;
  std::vector<std::string> events;  // MSG events heard from the device

  explicit GatewaySide(TestFleet& fleet) : ctx(fleet.serverContext()) {
    listenFd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(listenFd >= 0);
    // A small receive buffer (inherited by the accepted socket): the device's sends pile up in
    // the device's own send queue as soon as this side stops reading.
    int small = 4096;
    ::setsockopt(listenFd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(listenFd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    REQUIRE(::listen(listenFd, 4) == 0);
    port = localPort(listenFd);
  }
  ~GatewaySide() {
    tls.reset();
    if (fd >= 0) ::close(fd);
    ::close(listenFd);
  }

  void accept() {
    pollfd p{listenFd, POLLIN, 0};
    REQUIRE(::poll(&p, 1, 5000) == 1);
    fd = ::accept4(listenFd, nullptr, nullptr, SOCK_CLOEXEC);
    REQUIRE(fd >= 0);
    timeval tv{0, 50 * 1000};
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    tls = net::TlsTransport::accept(*ctx, fd);
    REQUIRE(tls);
    auto deadline = Clock::now() + kDeadline;
    net::IoStatus st = net::IoStatus::kWantRead;
    while ((st == net::IoStatus::kWantRead || st == net::IoStatus::kWantWrite) &&
           Clock::now() < deadline) {
      st = tls->handshake();
    }
    INFO(tls->lastError());
    REQUIRE(st == net::IoStatus::kOk);
  }

  template <typename FrameT>
  void send(const FrameT& frame) {
    std::vector<uint8_t> bytes;
    protocol::encode(frame, bytes);
    std::span<const uint8_t> rest(bytes);
    auto deadline = Clock::now() + kDeadline;
    while (!rest.empty() && Clock::now() < deadline) {
      net::IoResult r = tls->write(rest);
      if (r.status == net::IoStatus::kOk) {
        rest = rest.subspan(r.bytes);
      } else {
        INFO(tls->lastError());
        REQUIRE((r.status == net::IoStatus::kWantWrite || r.status == net::IoStatus::kWantRead));
      }
    }
    REQUIRE(rest.empty());
  }

  // Reads frames until `events` holds `count` MSGs, or the deadline passes.
  bool readMessages(std::size_t count) {
    auto deadline = Clock::now() + kDeadline;
    while (events.size() < count && Clock::now() < deadline) {
      uint8_t buf[16 * 1024];
      net::IoResult r = tls->read(buf);
      if (r.status == net::IoStatus::kOk) {
        auto err =
            reader.feed(std::span<const uint8_t>(buf, r.bytes), [&](uint8_t type, auto body) {
              protocol::Frame frame;
              if (protocol::decode(type, body, frame) == protocol::DecodeError::kNone) {
                if (auto* msg = std::get_if<protocol::Msg>(&frame)) events.emplace_back(msg->event);
              }
              return true;
            });
        if (err != protocol::DecodeError::kNone) return false;
      } else if (r.status != net::IoStatus::kWantRead && r.status != net::IoStatus::kWantWrite) {
        return false;
      }
    }
    return events.size() >= count;
  }
};

}  // namespace

TEST_CASE("a device read that needs a write waits for writability without spinning, then goes on") {
  TestFleet fleet;
  GatewaySide gateway(fleet);
  DeviceThread device(fleet, gateway.port);
  device.onLoop([&] {
    device.client().connect();
    return 0;
  });
  gateway.accept();
  gateway.send(protocol::Welcome{protocol::kVersion, 1, 60, 1, "node-a"});
  REQUIRE(waitUntil([&] { return device.online.load(); }, kDeadline));
  int deviceFd = findSocketWithPort(peerPort(gateway.fd), gateway.fd);
  REQUIRE(deviceFd >= 0);

  // The gateway stops reading; the device sends until 64 KiB wait in its own send queue (its
  // send buffer made large so that no write of its own is left pending).
  std::string payload(1000, 'p');
  auto bytes =
      std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(payload.data()), payload.size());
  struct Fill {
    std::size_t messages = 0;
    int mss = 0;
    int unsent = 0;
  };
  Fill fill = device.onLoop([&] {
    int big = 4 * 1024 * 1024;
    ::setsockopt(deviceFd, SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
    Fill f;
    for (; f.messages < 2000; ++f.messages) {
      int queued = 0;
      ::ioctl(deviceFd, SIOCOUTQ, &queued);
      if (queued >= 64 * 1024) break;
      device.client().send("fill", bytes, false);
    }
    // TCP appends a small write to the last unsent segment whatever the send buffer says; fill
    // that segment to the brim (segments are MSS-sized while the window is this small) so the
    // next write needs a new segment, which the full send buffer refuses.
    socklen_t len = sizeof f.mss;
    ::getsockopt(deviceFd, IPPROTO_TCP, TCP_MAXSEG, &f.mss, &len);
    if (f.mss <= 0) return f;
    ::ioctl(deviceFd, SIOCOUTQNSD, &f.unsent);
    std::size_t room = static_cast<std::size_t>(f.mss - f.unsent % f.mss);
    std::vector<uint8_t> probe;
    protocol::encode(protocol::Msg{1, false, "fill", {}}, probe);
    std::size_t overhead = probe.size() + 22;  // TLS 1.3 record: header, content type, tag
    while (room < overhead + 1) room += static_cast<std::size_t>(f.mss);
    std::string last(room - overhead, 'l');
    device.client().send(
        "fill",
        std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(last.data()), last.size()),
        false);
    ++f.messages;
    ::ioctl(deviceFd, SIOCOUTQNSD, &f.unsent);
    return f;
  });
  std::size_t sent = fill.messages;
  INFO("mss " << fill.mss << ", unsent " << fill.unsent);
  REQUIRE(fill.mss > 0);
  // Now its send buffer is smaller than what waits in it: the socket is full, and a key update
  // requested now has to wait for the gateway to read.
  REQUIRE(device.onLoop([&] {
    int small = 1;
    ::setsockopt(deviceFd, SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    return device.client().requestKeyUpdate();
  }));

  // A message for the device: its read must first send the KeyUpdate and cannot.
  gateway.send(protocol::Msg{1, false, "to-device", {}});
  // While it waits, the device's loop must not spin on the unread input.
  int64_t cpuBefore = device.onLoop([] { return threadCpuMicros(); });
  std::this_thread::sleep_for(500ms);  // a measuring window, not a wait for a condition
  int64_t cpuAfter = device.onLoop([] { return threadCpuMicros(); });
  INFO("device thread CPU in the window: " << (cpuAfter - cpuBefore) << " us");
  CHECK(cpuAfter - cpuBefore < 30 * 1000);

  // The gateway reads again: the device's KeyUpdate and every queued message arrive, and the
  // message for the device is read; then both directions work under the new keys.
  CHECK(gateway.readMessages(sent));
  CHECK(waitUntil([&] { return device.heard("to-device"); }, kDeadline));
  gateway.send(protocol::Msg{2, false, "after-update", {}});
  CHECK(waitUntil([&] { return device.heard("after-update"); }, kDeadline));
  device.onLoop([&] { return device.client().send("device-after", {}, false); });
  CHECK(gateway.readMessages(sent + 1));
  CHECK(gateway.events.back() == "device-after");

  // The other direction: the gateway asks for a key update; the device answers with its next
  // write, and traffic goes on both ways.
  REQUIRE(gateway.tls->requestKeyUpdate());
  gateway.send(protocol::Msg{3, false, "gateway-updated", {}});
  CHECK(waitUntil([&] { return device.heard("gateway-updated"); }, kDeadline));
  device.onLoop([&] { return device.client().send("device-final", {}, false); });
  CHECK(gateway.readMessages(sent + 2));
  CHECK(gateway.events.back() == "device-final");
}
