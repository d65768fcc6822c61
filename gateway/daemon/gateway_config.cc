#include "gateway/daemon/gateway_config.h"

#include <charconv>
#include <fstream>
#include <functional>

#include "bus/topics/topic_scheme.h"
#include "gateway/base/names.h"

namespace impgate::gateway {
namespace {

Error invalid(std::string message) {
  return Error{ErrorCode::kInvalidSetting, std::move(message)};
}

std::string trim(const std::string& s) {
  auto b = s.find_first_not_of(" \t\r");
  if (b == std::string::npos) return {};
  auto e = s.find_last_not_of(" \t\r");
  return s.substr(b, e - b + 1);
}

template <typename N>
Status parseNumber(const std::string& key, const std::string& v, N& out) {
  N value{};
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), value);
  if (ec != std::errc() || p != v.data() + v.size()) {
    return invalid("setting '" + key + "' needs a number, got '" + v + "'");
  }
  out = value;
  return {};
}

Status parseBool(const std::string& key, const std::string& v, bool& out) {
  if (v == "true" || v == "yes" || v == "on" || v == "1") {
    out = true;
  } else if (v == "false" || v == "no" || v == "off" || v == "0") {
    out = false;
  } else {
    return invalid("setting '" + key + "' needs true or false, got '" + v + "'");
  }
  return {};
}

Status parseSeconds(const std::string& key, const std::string& v, std::chrono::seconds& out) {
  long n = 0;
  if (Status parsed = parseNumber(key, v, n); !parsed) return parsed;
  if (n <= 0) return invalid("setting '" + key + "' must be positive");
  out = std::chrono::seconds(n);
  return {};
}

}  // namespace

Status applySetting(const std::string& rawKey, const std::string& v, GatewayConfig& c) {
  std::string key = rawKey;
  for (char& ch : key) {
    if (ch == '_') ch = '-';
  }
  using Setter = std::function<Status()>;
  auto text = [&](std::string& field) -> Setter {
    return [&field, &v] {
      field = v;
      return Status();
    };
  };
  const std::map<std::string, Setter> setters = {
      {"home", text(c.home)},
      {"listen", text(c.listen)},
      {"metrics", text(c.metrics)},
      {"node", text(c.node)},
      {"reuse-port", [&] { return parseBool(key, v, c.reusePort); }},
      {"broker", text(c.broker)},
      {"prefix", text(c.prefix)},
      {"mqtt-version",
       [&] {
         int version = 0;
         Status parsed = parseNumber(key, v, version);
         c.mqttVersion = version;
         return parsed;
       }},
      {"mqtt-username", text(c.mqttUsername)},
      {"mqtt-password", text(c.mqttPassword)},
      {"mqtt-ca", text(c.mqttCaFile)},
      {"mqtt-cert", text(c.mqttCertFile)},
      {"mqtt-key", text(c.mqttKeyFile)},
      {"mqtt-buffer", [&] { return parseNumber(key, v, c.mqttBuffer); }},
      {"mqtt-connections", [&] { return parseNumber(key, v, c.mqttConnections); }},
      {"receipts",
       [&] {
         if (v == "requested") {
           c.receipts = ReceiptMode::kRequested;
         } else if (v == "all") {
           c.receipts = ReceiptMode::kAll;
         } else {
           return Status(
               invalid("setting '" + key + "' must be 'requested' or 'all', got '" + v + "'"));
         }
         return Status();
       }},
      {"tls-cert", text(c.tlsCert)},
      {"tls-key", text(c.tlsKey)},
      {"tls-client-ca", text(c.tlsClientCa)},
      {"allow-tls12", [&] { return parseBool(key, v, c.allowTls12); }},
      {"code-verify-key", text(c.codeVerifyKey)},
      {"code-cache", text(c.codeCache)},
      {"keepalive", [&] { return parseSeconds(key, v, c.keepalive); }},
      {"handshake-timeout", [&] { return parseSeconds(key, v, c.handshakeTimeout); }},
      {"max-frame", [&] { return parseNumber(key, v, c.maxFrame); }},
      {"max-connections", [&] { return parseNumber(key, v, c.maxConnections); }},
      {"max-inflight", [&] { return parseNumber(key, v, c.maxInflightPublishes); }},
      {"max-pending-deliveries", [&] { return parseNumber(key, v, c.maxPendingDeliveries); }},
      {"delivery-timeout", [&] { return parseSeconds(key, v, c.deliveryTimeout); }},
      {"max-output-buffer", [&] { return parseNumber(key, v, c.maxOutputBuffer); }},
      {"memory-limit", [&] { return parseNumber(key, v, c.memoryLimit); }},
      {"flap-window", [&] { return parseSeconds(key, v, c.flapWindow); }},
      {"flap-max-sessions", [&] { return parseNumber(key, v, c.flapMaxSessions); }},
      {"flap-ban", [&] { return parseSeconds(key, v, c.flapBan); }},
      {"log-level", text(c.logLevel)},
      {"log-rate",
       [&] {
         uint32_t rate = 0;
         Status parsed = parseNumber(key, v, rate);
         if (parsed) c.logRate = rate;
         return parsed;
       }},
  };
  auto it = setters.find(key);
  if (it == setters.end()) return invalid("unknown setting '" + rawKey + "'");
  return it->second();
}

Status applyConfigFile(const std::string& path, GatewayConfig& config) {
  std::ifstream in(path);
  if (!in) return Error{ErrorCode::kIo, "cannot read config file " + path};
  std::string line;
  int number = 0;
  while (std::getline(in, line)) {
    ++number;
    // '#' starts a comment at the start of a line or after white space, so values such as
    // passwords may still contain it.
    for (std::size_t i = 0; i < line.size(); ++i) {
      if (line[i] == '#' && (i == 0 || line[i - 1] == ' ' || line[i - 1] == '\t')) {
        line.erase(i);
        break;
      }
    }
    line = trim(line);
    if (line.empty()) continue;
    auto eq = line.find('=');
    if (eq == std::string::npos) {
      return invalid(path + ":" + std::to_string(number) + ": expected 'key = value'");
    }
    Status applied = applySetting(trim(line.substr(0, eq)), trim(line.substr(eq + 1)), config);
    if (!applied) {
      return invalid(path + ":" + std::to_string(number) + ": " + applied.error().message);
    }
  }
  return {};
}

Status validate(const GatewayConfig& c) {
  if (!bus::TopicScheme::isValidPrefix(c.prefix)) {
    return invalid("invalid topic prefix '" + c.prefix +
                   "' (levels of [A-Za-z0-9._-] separated by '/')");
  }
  if (!isValidDeviceId(c.node)) {
    return invalid("invalid node name '" + c.node + "' (1-64 characters of [A-Za-z0-9._-])");
  }
  if (c.mqttVersion && *c.mqttVersion != 5 && *c.mqttVersion != 3 && *c.mqttVersion != 4) {
    return invalid("mqtt-version must be 5 or 3 (3.1.1)");
  }
  if (c.keepalive.count() > 65535) return invalid("keepalive must be at most 65535 seconds");
  if (c.mqttBuffer <= 0) return invalid("mqtt-buffer must be positive");
  if (c.mqttConnections < 1 || c.mqttConnections > 64) {
    return invalid("mqtt-connections must be 1 to 64");
  }
  if (c.maxConnections == 0) return invalid("max-connections must be positive");
  if (c.maxInflightPublishes == 0) return invalid("max-inflight must be positive");
  if (c.maxInflightPublishes > 4096) return invalid("max-inflight must be at most 4096");
  if (c.memoryLimit < 1024 * 1024) return invalid("memory-limit must be at least 1048576 bytes");
  if (c.flapMaxSessions == 0) return invalid("flap-max-sessions must be positive");
  return {};
}

}  // namespace impgate::gateway
