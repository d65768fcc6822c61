// impagent-echo: the smallest useful agent. It prints every device message, counts them per
// device, and sends each payload straight back to its device as event "echo", so a demo shows
// traffic in both directions. Presence changes and receipts are printed as they arrive.
//
// stdout, one line each (device ids and event names contain no spaces, so this splits cleanly):
//   <device> <event> <payload>                  a device message (payload escaped: \n, \xNN)
//   # online <device>                           presence
//   # offline <device> <reason>
//   # receipt <device> <event> seq=<n> <status> corr=<id>
//   # count <device> <n>                        every --count-every messages, and at exit
#include <signal.h>

#include <CLI/CLI.hpp>

#include <cstdio>
#include <iostream>
#include <map>
#include <mutex>
#include <string>

#include "bus/agent/agent.h"
#include "gateway/base/log.h"

namespace {

// One line per message, whatever bytes the payload holds.
std::string printable(const std::string& payload) {
  std::string out;
  out.reserve(payload.size());
  for (char c : payload) {
    auto u = static_cast<unsigned char>(c);
    if (c == '\\') {
      out.append("\\\\");
    } else if (c == '\n') {
      out.append("\\n");
    } else if (u < 0x20 || u >= 0x7f) {
      char buf[5];
      std::snprintf(buf, sizeof buf, "\\x%02x", u);
      out.append(buf);
    } else {
      out.push_back(c);
    }
  }
  return out;
}

// Handlers run on the MQTT client's thread while main() waits for a signal, so stdout is
// shared: every line is written whole under this lock and flushed.
class Output {
 public:
  void line(const std::string& text) {
    std::lock_guard lock(mutex_);
    std::fwrite(text.data(), 1, text.size(), stdout);
    std::fputc('\n', stdout);
    std::fflush(stdout);
  }

 private:
  std::mutex mutex_;
};

int run(int argc, char** argv) {
  CLI::App app{"impagent-echo: print device messages and echo them back"};
  impgate::bus::Agent::Options opts;
  uint64_t countEvery = 0;
  int qos = 1;
  std::string logLevel = "info";
  app.add_option("--broker", opts.brokerUri, "MQTT broker URI (tcp://host:1883, ssl://host:8883)")
      ->required();
  app.add_option("--prefix", opts.prefix, "topic prefix")->capture_default_str();
  app.add_option("--client-id", opts.clientId, "MQTT client id (default: random)");
  app.add_option("--share", opts.sharedGroup, "join this shared-subscription group");
  app.add_option("--count-every", countEvery, "print a device's message count every N messages")
      ->capture_default_str();
  app.add_option("--qos", qos, "QoS of the echo replies (1 asks for a receipt)")
      ->check(CLI::IsMember({0, 1}))
      ->capture_default_str();
  app.add_option("--username", opts.username, "broker user name");
  app.add_option("--password", opts.password, "broker password");
  app.add_option("--ca-file", opts.caFile, "CA bundle for ssl:// brokers");
  bool mqtt3 = false;
  app.add_flag("--mqtt3", mqtt3, "speak MQTT 3.1.1 (no correlation ids)");
  app.add_option("--log-level", logLevel, "debug, info, warn or error")->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  opts.mqtt5 = !mqtt3;
  impgate::log::Level level;
  if (!impgate::log::parseLevel(logLevel, level)) {
    std::cerr << "impagent-echo: unknown log level '" << logLevel << "'\n";
    return 2;
  }
  impgate::log::setLevel(level);

  // Block the stop signals before any thread exists, so every thread inherits the mask and
  // main() alone takes them with sigwait().
  sigset_t stopSignals;
  sigemptyset(&stopSignals);
  sigaddset(&stopSignals, SIGINT);
  sigaddset(&stopSignals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stopSignals, nullptr);

  Output out;
  std::mutex countsMutex;
  std::map<std::string, uint64_t> counts;
  impgate::bus::Agent agent(opts);

  agent.onAny([&](const std::string& device, const std::string& event, const std::string& payload) {
    out.line(device + " " + event + " " + printable(payload));
    uint64_t n;
    {
      std::lock_guard lock(countsMutex);
      n = ++counts[device];
    }
    if (countEvery > 0 && n % countEvery == 0) {
      out.line("# count " + device + " " + std::to_string(n));
    }
    auto sent = agent.send(device, "echo", payload, qos);
    if (!sent) {
      impgate::log::warn("echo", "echo not sent",
                         {{"device", device}, {"error", impgate::bus::toString(sent.error)}});
    }
  });
  agent.onConnect([&](const std::string& device) { out.line("# online " + device); });
  agent.onDisconnect([&](const std::string& device, const std::string& reason) {
    out.line("# offline " + device + " " + reason);
  });
  agent.onReceipt([&](const impgate::bus::Receipt& r) {
    out.line("# receipt " + r.device + " " + r.event + " seq=" + std::to_string(r.seq) + " " +
             r.status + " corr=" + (r.corr.empty() ? "-" : r.corr));
  });

  if (!agent.start(std::chrono::seconds(10))) return 1;  // the agent logged why

  int sig = 0;
  sigwait(&stopSignals, &sig);
  impgate::log::info("echo", "stopping", {{"signal", sig == SIGINT ? "SIGINT" : "SIGTERM"}});
  agent.stop();
  std::lock_guard lock(countsMutex);
  for (const auto& [device, n] : counts) out.line("# count " + device + " " + std::to_string(n));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {  // start-up failures (allocation, CLI11 internals)
    std::cerr << "impagent-echo: " << e.what() << "\n";
    return 1;
  }
}
