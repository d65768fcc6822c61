// impgate configured the way production deployments do it: a config file, a custom topic
// prefix, and a broker reached over TLS with a user name and password.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <fstream>

#include "gateway/base/pki/fleet_ca.h"
#include "tests/integration/gateway/gateway_fixture.h"
#include "tests/support/testbed.h"
#include "tests/support/wait_until.h"

using namespace impgate;
using namespace impgate::testing;
using namespace std::chrono_literals;

namespace {

// A mosquitto that only speaks TLS (server certificate from the fleet CA) and only admits
// `user` / `secret`.
class TlsBroker {
 public:
  TlsBroker(const Home& home, const std::filesystem::path& dir) : dir_(dir) {
    port_ = freeLoopbackPort();
    auto passwd = dir_ / "passwd";
    ChildProcess mk;
    mk.start({"/usr/bin/mosquitto_passwd", "-b", "-c", passwd.string(), "user", "secret"},
             dir_ / "passwd.log");
    REQUIRE(waitUntil([&] { return mk.exited(); }, 10s));
    std::ofstream conf(dir_ / "tls.conf");
    conf << "listener " << port_ << " 127.0.0.1\n"
         << "cafile " << home.caCert().string() << "\n"
         << "certfile " << home.gatewayCert().string() << "\n"
         << "keyfile " << home.gatewayKey().string() << "\n"
         << "allow_anonymous false\n"
         << "password_file " << passwd.string() << "\n"
         << "persistence false\n"
         << "log_dest stderr\n";
    if (::geteuid() == 0) conf << "user root\n";
    conf.close();
    process_.start({"/usr/sbin/mosquitto", "-c", (dir_ / "tls.conf").string()},
                   dir_ / "tls-broker.log");
    REQUIRE(waitUntil(
        [&] { return process_.log().find(" running") != std::string::npos || process_.exited(); },
        10s));
    REQUIRE_FALSE(process_.exited());
  }
  std::string uri() const { return "ssl://127.0.0.1:" + std::to_string(port_); }
  uint16_t port() const { return port_; }
  ChildProcess& process() { return process_; }

 private:
  std::filesystem::path dir_;
  uint16_t port_ = 0;
  ChildProcess process_;
};

}  // namespace

TEST_CASE("a config file sets the topic prefix, node name and limits") {
  TempDir confDir("impgate-conf");
  auto path = confDir.path() / "impgate.conf";
  std::ofstream(path) << "# production-like settings\n"
                      << "prefix = acme/prod\n"
                      << "node = from-file   # overridden by the flag below\n"
                      << "keepalive = 30\n"
                      << "max_connections = 500\n";
  GatewayFixtureOptions options;
  options.prefix = "acme/prod";
  options.extraArgs = {"--config", path.string()};
  GatewayFixture gw(options);
  MqttProbe agent(gw.broker().uri());
  REQUIRE(agent.connect());
  REQUIRE(agent.subscribe("acme/prod/dev/+/out/+"));
  auto dev = gw.connectDevice("conf-1");
  auto status = dev->send("temp", "7", true, 5s);
  REQUIRE(status);
  CHECK(*status == protocol::AckStatus::kOk);
  REQUIRE(agent.waitForTopic("acme/prod/dev/conf-1/out/temp", 5s));
  REQUIRE(agent.publish("acme/prod/dev/conf-1/in/led", "on", 1));
  auto m = dev->nextMessage(5s);
  REQUIRE(m);
  CHECK(m->event == "led");
}

TEST_CASE("a bad config file stops impgate with a message naming the line") {
  TempDir confDir("impgate-conf");
  auto path = confDir.path() / "bad.conf";
  std::ofstream(path) << "prefix = imp\nkeepalive = soon\n";
  ChildProcess p;
  p.start({IMPGATE_BINARY, "--config", path.string()}, confDir.path() / "out.log");
  REQUIRE(waitUntil([&] { return p.exited(); }, 10s));
  REQUIRE(p.exitStatus());
  CHECK(WEXITSTATUS(*p.exitStatus()) == 2);
  CHECK(p.log().find("bad.conf:2") != std::string::npos);
  CHECK(p.log().find("keepalive") != std::string::npos);
}

// Start-up errors come back as values through several modules (net, daemon, bridge, metrics);
// the operator still sees the same message and exit code.
TEST_CASE("start-up failures stop impgate with exit 1 and the module's message") {
  TempDir dir("impgate-startup");
  Home home(dir / "home");
  auto ca = pki::FleetCa::init(home, pki::InitOptions{});
  REQUIRE(ca);
  auto run = [&](const std::vector<std::string>& extra, const std::string& name) {
    std::vector<std::string> args = {IMPGATE_BINARY, "--home", home.root().string(), "--node",
                                     "startup"};
    args.insert(args.end(), extra.begin(), extra.end());
    auto p = std::make_unique<ChildProcess>();
    p->start(args, dir / (name + ".log"));
    REQUIRE(waitUntil([&] { return p->exited(); }, 10s));
    REQUIRE(p->exitStatus());
    CHECK(WEXITSTATUS(*p->exitStatus()) == 1);
    return p->log();
  };
  CHECK_THAT(run({"--listen", "nonsense", "--metrics", "off"}, "listen"),
             Catch::Contains("impgate: expected host:port, got 'nonsense'"));
  CHECK_THAT(
      run({"--listen", "127.0.0.1:0", "--metrics", "off", "--broker", "bogus://x:1"}, "broker"),
      Catch::Contains("impgate: invalid broker URI 'bogus://x:1'"));
  // A metrics port another socket holds.
  int taken = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(taken >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  REQUIRE(::bind(taken, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  REQUIRE(::listen(taken, 1) == 0);
  REQUIRE(::getsockname(taken, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
  std::string metrics = "127.0.0.1:" + std::to_string(ntohs(addr.sin_port));
  CHECK_THAT(run({"--listen", "127.0.0.1:0", "--metrics", metrics}, "metrics"),
             Catch::Contains("impgate: metrics: bind " + metrics));
  ::close(taken);
  CHECK_THAT(run({"--tls-cert", (dir / "missing.crt").string(), "--metrics", "off"}, "tls"),
             Catch::Contains("impgate: cannot load certificate " + (dir / "missing.crt").string()));
}

TEST_CASE("impgate reaches an ssl:// broker with a user name and password") {
  TempDir brokerDir("impgate-tls-broker");
  // The fixture's home must exist before the broker can use its certificates: make the home
  // first with a fixture that does not start the gateway against it yet.
  GatewayFixtureOptions probeOptions;
  GatewayFixture plain(probeOptions);
  TlsBroker broker(plain.home(), brokerDir.path());
  GatewayFixtureOptions options;
  options.brokerUri = broker.uri();
  options.node = "tls-node";
  options.extraArgs = {"--tls-cert",      plain.home().gatewayCert().string(),
                       "--tls-key",       plain.home().gatewayKey().string(),
                       "--tls-client-ca", plain.home().caCert().string(),
                       "--mqtt-ca",       plain.home().caCert().string(),
                       "--mqtt-username", "user",
                       "--mqtt-password", "secret"};
  GatewayFixture gw(options);
  // The devices trust the CA of the fixture's own home; use credentials from `plain`'s CA.
  plain.enroll("tls-dev");
  auto config = plain.deviceConfig("tls-dev");
  config.options.gateway = gw.endpoint();
  auto created = device::BlockingDevice::create(config);
  REQUIRE(created);
  auto dev = std::move(*created);
  REQUIRE(dev->connect(10s));
  // ACK ok means the broker acknowledged the publish over TLS.
  auto status = dev->send("temp", "9", true, 10s);
  INFO((status ? "" : status.error().message) << "\n" << gw.process().log());
  REQUIRE(status);
  CHECK(*status == protocol::AckStatus::kOk);
  CHECK(gw.metric("impgate_bus_connected") == 1);

  // An agent on the TLS broker reaches the device.
  ChildProcess pub;
  pub.start({"/usr/bin/mosquitto_pub", "-h", "127.0.0.1", "-p", std::to_string(broker.port()),
             "--cafile", plain.home().caCert().string(), "-u", "user", "-P", "secret", "-q", "1",
             "-t", "imp/dev/tls-dev/in/led", "-m", "on"},
            brokerDir.path() / "pub.log");
  REQUIRE(waitUntil([&] { return pub.exited(); }, 10s));
  auto m = dev->nextMessage(10s);
  REQUIRE(m);
  CHECK(m->payload == "on");
}

TEST_CASE("with a wrong broker password the gateway reports the bus down and fails ACKs") {
  TempDir brokerDir("impgate-tls-broker");
  GatewayFixture plain;
  TlsBroker broker(plain.home(), brokerDir.path());
  GatewayFixtureOptions options;
  options.brokerUri = broker.uri();
  options.extraArgs = {"--tls-cert",      plain.home().gatewayCert().string(),
                       "--tls-key",       plain.home().gatewayKey().string(),
                       "--tls-client-ca", plain.home().caCert().string(),
                       "--mqtt-ca",       plain.home().caCert().string(),
                       "--mqtt-username", "user",
                       "--mqtt-password", "wrong",
                       "--mqtt-buffer",   "1"};
  GatewayFixture gw(options);
  CHECK(waitUntil([&] { return gw.metric("impgate_bus_connected") == 0; }, 10s));
  CHECK(waitUntil(
      [&] { return gw.process().log().find("cannot reach broker") != std::string::npos; }, 10s));
  // Devices still connect; with a one-message outage buffer the second message is refused at
  // once instead of waiting for a broker that will not come.
  plain.enroll("nobus");
  auto config = plain.deviceConfig("nobus");
  config.options.gateway = gw.endpoint();
  auto created = device::BlockingDevice::create(config);
  REQUIRE(created);
  auto dev = std::move(*created);
  REQUIRE(dev->connect(10s));
  (void)dev->send("a", "1", false, 1s);
  auto status = dev->send("b", "2", true, 10s);
  REQUIRE(status);
  CHECK(*status == protocol::AckStatus::kFailed);
}
