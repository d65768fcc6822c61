#include "gateway/daemon/gateway_config.h"

#include <catch2/catch.hpp>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "tests/support/testbed.h"

using impgate::gateway::applyConfigFile;
using impgate::gateway::applySetting;
using impgate::gateway::GatewayConfig;
using impgate::gateway::validate;
using impgate::testing::TempDir;
using namespace std::chrono_literals;

namespace {

struct SettingCase {
  const char* key;  // dash spelling
  const char* value;
  std::function<bool(const GatewayConfig&)> applied;
};

// One value for every key, and how to see it landed in the right field.
const std::vector<SettingCase>& everySetting() {
  static const std::vector<SettingCase> cases = {
      {"home", "/srv/imp", [](auto& c) { return c.home == "/srv/imp"; }},
      {"listen", "127.0.0.1:4000", [](auto& c) { return c.listen == "127.0.0.1:4000"; }},
      {"metrics", "", [](auto& c) { return c.metrics.empty(); }},
      {"node", "gw-7", [](auto& c) { return c.node == "gw-7"; }},
      {"reuse-port", "yes", [](auto& c) { return c.reusePort; }},
      {"broker", "ssl://b:8883", [](auto& c) { return c.broker == "ssl://b:8883"; }},
      {"prefix", "site/imp", [](auto& c) { return c.prefix == "site/imp"; }},
      {"mqtt-version", "3", [](auto& c) { return c.mqttVersion == 3; }},
      {"mqtt-username", "gw", [](auto& c) { return c.mqttUsername == "gw"; }},
      {"mqtt-password", "s3cret", [](auto& c) { return c.mqttPassword == "s3cret"; }},
      {"mqtt-ca", "/ca.pem", [](auto& c) { return c.mqttCaFile == "/ca.pem"; }},
      {"mqtt-cert", "/c.pem", [](auto& c) { return c.mqttCertFile == "/c.pem"; }},
      {"mqtt-key", "/k.pem", [](auto& c) { return c.mqttKeyFile == "/k.pem"; }},
      {"mqtt-buffer", "500", [](auto& c) { return c.mqttBuffer == 500; }},
      {"receipts", "all",
       [](auto& c) { return c.receipts == impgate::gateway::ReceiptMode::kAll; }},
      {"tls-cert", "/gw.crt", [](auto& c) { return c.tlsCert == "/gw.crt"; }},
      {"tls-key", "/gw.key", [](auto& c) { return c.tlsKey == "/gw.key"; }},
      {"tls-client-ca", "/fleet.crt", [](auto& c) { return c.tlsClientCa == "/fleet.crt"; }},
      {"allow-tls12", "on", [](auto& c) { return c.allowTls12; }},
      {"keepalive", "15", [](auto& c) { return c.keepalive == 15s; }},
      {"handshake-timeout", "3", [](auto& c) { return c.handshakeTimeout == 3s; }},
      {"max-frame", "4096", [](auto& c) { return c.maxFrame == 4096; }},
      {"max-connections", "7", [](auto& c) { return c.maxConnections == 7; }},
      {"max-inflight", "8", [](auto& c) { return c.maxInflightPublishes == 8; }},
      {"max-pending-deliveries", "9", [](auto& c) { return c.maxPendingDeliveries == 9; }},
      {"max-output-buffer", "65536", [](auto& c) { return c.maxOutputBuffer == 65536; }},
      {"log-level", "debug", [](auto& c) { return c.logLevel == "debug"; }},
      {"log-rate", "50", [](auto& c) { return c.logRate == 50u; }},
  };
  return cases;
}

std::string underscored(std::string key) {
  for (char& c : key) {
    if (c == '-') c = '_';
  }
  return key;
}

GatewayConfig valid() {
  GatewayConfig c;
  c.node = "gw-a";
  return c;
}

// Writes `text` to a file in `dir` and returns its path.
std::string writeFile(const TempDir& dir, const std::string& text) {
  auto path = dir / "impgate.conf";
  std::ofstream(path) << text;
  return path.string();
}

}  // namespace

TEST_CASE("every setting applies with its dash or its underscore spelling") {
  for (const auto& s : everySetting()) {
    for (const std::string& key : {std::string(s.key), underscored(s.key)}) {
      GatewayConfig c;
      auto status = applySetting(key, s.value, c);
      INFO(key << " = " << s.value << " -> "
               << (status ? std::string("ok") : status.error().message));
      CHECK(status);
      CHECK(s.applied(c));
    }
  }
}

TEST_CASE("receipts is 'requested' by default and takes only 'requested' or 'all'") {
  using impgate::gateway::ReceiptMode;
  GatewayConfig c;
  CHECK(c.receipts == ReceiptMode::kRequested);
  REQUIRE(applySetting("receipts", "all", c));
  CHECK(c.receipts == ReceiptMode::kAll);
  REQUIRE(applySetting("receipts", "requested", c));
  CHECK(c.receipts == ReceiptMode::kRequested);
  for (const char* bad : {"", "none", "ALL", "qos1", "all "}) {
    INFO("'" << bad << "'");
    auto status = applySetting("receipts", bad, c);
    REQUIRE_FALSE(status);
    CHECK(status.error().message ==
          "setting 'receipts' must be 'requested' or 'all', got '" + std::string(bad) + "'");
    CHECK(c.receipts == ReceiptMode::kRequested);
  }
}

TEST_CASE("booleans take true/yes/on/1 and false/no/off/0") {
  for (const char* yes : {"true", "yes", "on", "1"}) {
    GatewayConfig c;
    CHECK(applySetting("reuse-port", yes, c));
    CHECK(c.reusePort);
  }
  for (const char* no : {"false", "no", "off", "0"}) {
    GatewayConfig c;
    c.allowTls12 = true;
    CHECK(applySetting("allow-tls12", no, c));
    CHECK_FALSE(c.allowTls12);
  }
}

TEST_CASE("a value that is not a boolean is refused, naming the setting and the value") {
  GatewayConfig c;
  auto status = applySetting("allow_tls12", "maybe", c);
  REQUIRE_FALSE(status);
  CHECK_THAT(status.error().message, Catch::Contains("allow-tls12") && Catch::Contains("'maybe'") &&
                                         Catch::Contains("true or false"));
  CHECK_FALSE(c.allowTls12);
}

TEST_CASE("a value that is not a number is refused, naming the setting and the value") {
  for (const char* bad : {"lots", "12abc", "", " 12", "1.5", "-3", "99999999999999999999999"}) {
    GatewayConfig c;
    auto status = applySetting("max-inflight", bad, c);
    INFO("value '" << bad << "'");
    REQUIRE_FALSE(status);
    CHECK_THAT(status.error().message, Catch::Contains("'max-inflight'") &&
                                           Catch::Contains("needs a number") &&
                                           Catch::Contains(std::string("'") + bad + "'"));
    // A refused value leaves the default in place.
    CHECK(c.maxInflightPublishes == 64);
  }
}

TEST_CASE("durations must be positive whole seconds") {
  for (const char* key : {"keepalive", "handshake-timeout"}) {
    GatewayConfig c;
    auto zero = applySetting(key, "0", c);
    REQUIRE_FALSE(zero);
    CHECK_THAT(zero.error().message, Catch::Contains(key) && Catch::Contains("must be positive"));
    auto negative = applySetting(key, "-5", c);
    REQUIRE_FALSE(negative);
    CHECK_THAT(negative.error().message, Catch::Contains("must be positive"));
    auto words = applySetting(key, "ten", c);
    REQUIRE_FALSE(words);
    CHECK_THAT(words.error().message, Catch::Contains("needs a number"));
  }
  GatewayConfig c;
  CHECK(c.keepalive == 60s);
  CHECK(c.handshakeTimeout == 10s);
}

TEST_CASE("an unknown setting is refused with the name as it was given") {
  GatewayConfig c;
  auto status = applySetting("colour_scheme", "blue", c);
  REQUIRE_FALSE(status);
  CHECK(status.error().code == impgate::gateway::ErrorCode::kInvalidSetting);
  CHECK(status.error().message == "unknown setting 'colour_scheme'");
  CHECK_FALSE(applySetting("--node", "x", c));
  CHECK_FALSE(applySetting("Node", "x", c));
  CHECK(c.node.empty());
}

TEST_CASE("a config file skips comments and blank lines and trims around '='") {
  TempDir dir;
  auto path = writeFile(dir,
                        "# impgate node configuration\n"
                        "\n"
                        "node = gw-b\n"
                        "   listen=0.0.0.0:4443   \n"
                        "max_inflight = 16   # per device\n"
                        "\t# indented comment\n"
                        "allow-tls12 = true\r\n"
                        "broker = tcp://broker:1883?x=y\n"
                        "mqtt-username =\n");
  GatewayConfig c;
  c.mqttUsername = "before";
  auto status = applyConfigFile(path, c);
  INFO((status ? std::string("ok") : status.error().message));
  REQUIRE(status);
  CHECK(c.node == "gw-b");
  CHECK(c.listen == "0.0.0.0:4443");
  CHECK(c.maxInflightPublishes == 16);
  CHECK(c.allowTls12);
  // Only the first '=' separates key and value.
  CHECK(c.broker == "tcp://broker:1883?x=y");
  CHECK(c.mqttUsername.empty());
}

TEST_CASE("a config file line without '=' is refused as FILE:LINE") {
  TempDir dir;
  auto path = writeFile(dir, "# header\nnode = gw-b\n\njust some words\nprefix = x\n");
  GatewayConfig c;
  auto status = applyConfigFile(path, c);
  REQUIRE_FALSE(status);
  CHECK(status.error().message == path + ":4: expected 'key = value'");
}

TEST_CASE("a bad setting in a config file is refused as FILE:LINE with the setting's status") {
  TempDir dir;
  SECTION("bad value") {
    auto path = writeFile(dir, "node = gw-b\nkeepalive = soon\n");
    GatewayConfig c;
    auto status = applyConfigFile(path, c);
    REQUIRE_FALSE(status);
    CHECK_THAT(status.error().message, Catch::StartsWith(path + ":2: ") &&
                                           Catch::Contains("'keepalive'") &&
                                           Catch::Contains("'soon'"));
  }
  SECTION("unknown key") {
    auto path = writeFile(dir, "\n\n\ncolour = blue\n");
    GatewayConfig c;
    auto status = applyConfigFile(path, c);
    REQUIRE_FALSE(status);
    CHECK(status.error().message == path + ":4: unknown setting 'colour'");
  }
}

TEST_CASE("a config file that cannot be read is refused with its path") {
  TempDir dir;
  GatewayConfig c;
  auto missing = (dir / "missing.conf").string();
  auto status = applyConfigFile(missing, c);
  REQUIRE_FALSE(status);
  CHECK(status.error().code == impgate::gateway::ErrorCode::kIo);
  CHECK(status.error().message == "cannot read config file " + missing);
}

TEST_CASE("validate accepts the defaults once a node name is set") {
  CHECK(validate(valid()));
  for (int version : {3, 4, 5}) {
    GatewayConfig c = valid();
    c.mqttVersion = version;
    CHECK(validate(c));
  }
}

TEST_CASE("validate refuses a topic prefix the topic scheme cannot use") {
  for (const char* prefix : {"", "/imp", "imp/", "a//b", "imp/+", "imp/#", "i mp"}) {
    GatewayConfig c = valid();
    c.prefix = prefix;
    auto status = validate(c);
    INFO("prefix '" << prefix << "'");
    REQUIRE_FALSE(status);
    CHECK_THAT(status.error().message,
               Catch::Contains("invalid topic prefix '" + std::string(prefix) + "'"));
  }
  GatewayConfig nested = valid();
  nested.prefix = "site-1/imp.v1";
  CHECK(validate(nested));
}

TEST_CASE("validate refuses a node name that is not a valid id") {
  for (const char* node : {"", ".hidden", "gw a", "gw/a", "gw+"}) {
    GatewayConfig c = valid();
    c.node = node;
    auto status = validate(c);
    INFO("node '" << node << "'");
    REQUIRE_FALSE(status);
    CHECK_THAT(status.error().message,
               Catch::Contains("invalid node name '" + std::string(node) + "'"));
  }
  GatewayConfig tooLong = valid();
  tooLong.node = std::string(65, 'n');
  CHECK_FALSE(validate(tooLong));
}

TEST_CASE("validate refuses MQTT versions other than 3, 3.1.1 and 5") {
  for (int version : {0, 1, 2, 6}) {
    GatewayConfig c = valid();
    c.mqttVersion = version;
    auto status = validate(c);
    INFO("version " << version);
    REQUIRE_FALSE(status);
    CHECK_THAT(status.error().message, Catch::Contains("mqtt-version"));
  }
}

TEST_CASE("validate refuses zero connection and in-flight limits") {
  GatewayConfig noConnections = valid();
  noConnections.maxConnections = 0;
  auto e1 = validate(noConnections);
  REQUIRE_FALSE(e1);
  CHECK_THAT(e1.error().message, Catch::Contains("max-connections"));

  GatewayConfig noInflight = valid();
  noInflight.maxInflightPublishes = 0;
  auto e2 = validate(noInflight);
  REQUIRE_FALSE(e2);
  CHECK_THAT(e2.error().message, Catch::Contains("max-inflight"));
}

// WELCOME carries the keepalive as a u16: a larger value would tell devices something else
// than the gateway enforces.
TEST_CASE("validate refuses a keepalive that WELCOME cannot carry") {
  GatewayConfig c = valid();
  REQUIRE(applySetting("keepalive", "70000", c));
  auto status = validate(c);
  REQUIRE_FALSE(status);
  CHECK_THAT(status.error().message, Catch::Contains("keepalive"));
}
