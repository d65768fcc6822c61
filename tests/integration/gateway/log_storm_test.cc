// A port scan while impgate's stderr is a pipe nobody reads (a stuck log collector): the
// gateway must keep serving devices, and count the log lines it could not write.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <thread>

#include "tests/integration/gateway/gateway_fixture.h"
#include "tests/support/wait_until.h"

using namespace impgate;
using namespace impgate::testing;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

// One scanner connection to 127.0.0.1:port: connect, maybe send TLS garbage, close. Connecting
// gives up after 200 ms, so a gateway that stopped accepting cannot hang the storm.
void scanOnce(uint16_t port, bool garbage) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return;
  timeval tv{0, 200 * 1000};
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 && garbage) {
    static const char kGarbage[] = "\x16\x03\x01\x00\x05hello, this is not a ClientHello\r\n";
    ::send(fd, kGarbage, sizeof kGarbage - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
  }
  ::close(fd);
}

}  // namespace

TEST_CASE("a port scan with stderr a pipe nobody reads does not stall devices") {
  GatewayFixtureOptions options;
  options.stderrToUndrainedPipe = true;
  // No line budget and a 64 KiB queue: with the 64 KiB pipe full, the queue fills after some
  // 500 lines, so lines must be dropped for the stuck pipe (not for the rate) whatever the
  // timing; the code before the log queue ignores these and blocks in write(2).
  options.extraEnv = {"IMPGATE_LOG_RATE=0", "IMPGATE_LOG_QUEUE=65536"};
  GatewayFixture gw(options);  // impgate logs at debug level: a line or more per connection
  gw.enroll("calm");
  MqttProbe agent(gw.broker().uri());
  REQUIRE(agent.connect());
  REQUIRE(agent.subscribe("imp/dev/calm/out/+"));

  // The storm: 3000 connections, half plain TCP that closes at once, half TLS garbage, within
  // at most 20 s, on its own thread while the device below works.
  constexpr int kScans = 3000;
  std::atomic<int> scanned{0};
  std::thread storm([&] {
    auto end = Clock::now() + 20s;
    for (int i = 0; i < kScans && Clock::now() < end; ++i) {
      scanOnce(gw.port(), i % 2 == 1);
      scanned = i + 1;
    }
  });
  struct Join {
    std::thread& t;
    ~Join() { t.join(); }
  } join{storm};
  // By now the gateway has produced far more than the 64 KiB the pipe holds.
  REQUIRE(waitUntil([&] { return scanned >= 1000; }, 20s));

  // During the storm: the device connects, and a message goes each way, within short deadlines.
  auto created = device::BlockingDevice::create(gw.deviceConfig("calm"));
  REQUIRE(created);
  auto dev = std::move(*created);
  auto t0 = Clock::now();
  REQUIRE(dev->connect(5s));
  auto status = dev->send("temp", "21", true, 5s);
  INFO("send: " << (status ? "" : status.error().message));
  REQUIRE(status);
  CHECK(*status == protocol::AckStatus::kOk);
  CHECK(agent.waitForTopic("imp/dev/calm/out/temp", 5s));
  REQUIRE(agent.publish("imp/dev/calm/in/led", "on", 1));
  auto received = dev->nextMessage(5s);
  REQUIRE(received);
  CHECK(received->payload == "on");
  CHECK(Clock::now() - t0 < 10s);

  storm.join();
  storm = std::thread([] {});  // joined again by `join`
  CHECK(scanned == kScans);
  // Lines the pipe could not take were dropped and counted, not written by blocking.
  CHECK(waitUntil([&] { return gw.metric("impgate_log_lines_dropped_total") > 0; }, 5s));
  // The scan is over and the device is still served.
  REQUIRE(agent.publish("imp/dev/calm/in/led", "off", 1));
  auto again = dev->nextMessage(5s);
  REQUIRE(again);
  CHECK(again->payload == "off");
}
