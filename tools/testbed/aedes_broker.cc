#include "tools/testbed/aedes_broker.h"

#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "tools/testbed/free_port.h"
#include "tools/testbed/tcp_table.h"

#ifndef IMPGATE_AEDES_DIR
#error "IMPGATE_AEDES_DIR (the source tree's tools/testbed/aedes) must be defined by the build"
#endif

namespace impgate::testbed {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

constexpr milliseconds kStartDeadline{10000};  // generous: a loaded machine starts node slowly
constexpr milliseconds kStopDeadline{5000};
constexpr milliseconds kPollStep{5};

bool isExecutable(const std::string& path) {
  return ::access(path.c_str(), X_OK) == 0;
}

std::string fromEnv(const char* name) {
  const char* value = std::getenv(name);
  return value ? value : "";
}

struct ReadyLine {
  std::string version;
  uint16_t port = 0;
};

// "... aedes 0.51.3 ready on 127.0.0.1:37031\n", once the whole line is in `out`.
std::optional<ReadyLine> readyLine(const std::string& out) {
  const std::string marker = " ready on 127.0.0.1:";
  auto at = out.find(marker);
  if (at == std::string::npos) return std::nullopt;
  auto end = out.find('\n', at);
  if (end == std::string::npos) return std::nullopt;
  ReadyLine ready;
  auto portText = out.substr(at + marker.size(), end - at - marker.size());
  unsigned long port = 0;
  try {
    port = std::stoul(portText);
  } catch (const std::exception&) {
    return std::nullopt;
  }
  if (port == 0 || port > 65535) return std::nullopt;
  ready.port = static_cast<uint16_t>(port);
  const std::string name = "aedes ";
  auto lineStart = out.rfind('\n', at);
  auto nameAt = out.find(name, lineStart == std::string::npos ? 0 : lineStart);
  if (nameAt != std::string::npos && nameAt < at) {
    ready.version = out.substr(nameAt + name.size(), at - nameAt - name.size());
  }
  return ready;
}

}  // namespace

std::string findNode(const std::string& given) {
  if (!given.empty()) return isExecutable(given) ? given : std::string{};
  if (const char* path = std::getenv("PATH")) {
    for (const char* name : {"/node", "/nodejs"}) {
      std::stringstream dirs(path);
      std::string dir;
      while (std::getline(dirs, dir, ':')) {
        if (!dir.empty() && isExecutable(dir + name)) return dir + name;
      }
    }
  }
  for (const char* candidate : {"/usr/bin/node", "/usr/bin/nodejs", "/usr/local/bin/node"}) {
    if (isExecutable(candidate)) return candidate;
  }
  return {};
}

AedesBroker::AedesBroker(AedesOptions options) : options_(std::move(options)) {
  if (options_.node.empty()) {
    std::string env = fromEnv("IMPGATE_NODE");
    options_.node = env.empty() ? findNode() : env;
  }
  if (options_.node.empty() || !isExecutable(options_.node)) {
    throw std::runtime_error(
        "node (Node.js) not found (PATH, /usr/bin, /usr/local/bin); the aedes test broker needs "
        "it: run tools/install-deps.sh or set IMPGATE_NODE");
  }
  if (options_.packageDir.empty()) {
    std::string env = fromEnv("IMPGATE_AEDES_DIR");
    options_.packageDir = env.empty() ? std::string(IMPGATE_AEDES_DIR) : env;
  }
  auto script = options_.packageDir / "broker.js";
  auto package = options_.packageDir / "node_modules" / "aedes" / "package.json";
  if (!std::filesystem::exists(script)) {
    throw std::runtime_error("aedes test broker: no " + script.string() +
                             " (set IMPGATE_AEDES_DIR to the directory that holds it)");
  }
  if (!std::filesystem::exists(package)) {
    throw std::runtime_error("aedes test broker: the npm package aedes is not installed in " +
                             (options_.packageDir / "node_modules").string() +
                             ": run tools/install-deps.sh (npm ci there)");
  }
  if (options_.dir.empty()) {
    ownDir_.emplace("impgate-aedes");
    options_.dir = ownDir_->path();
  }
  logPath_ = options_.dir / (options_.name.empty() ? "aedes.log" : options_.name + "-aedes.log");
  // Port 0: the kernel picks a free port as the broker binds it, so no other process can take
  // it in between; the ready line says which.
  launch(0);
}

AedesBroker::~AedesBroker() {
  stop();
}

std::string AedesBroker::uri() const {
  return "tcp://127.0.0.1:" + std::to_string(port_);
}

std::string AedesBroker::label() const {
  return options_.name.empty() ? "aedes" : "aedes (" + options_.name + ")";
}

void AedesBroker::launch(uint16_t port) {
  auto logSizeBefore = std::filesystem::exists(logPath_) ? std::filesystem::file_size(logPath_) : 0;
  broker_.start({options_.node, (options_.packageDir / "broker.js").string(), std::to_string(port)},
                logPath_);

  // Ready means: the broker printed its ready line (so the listener is its own) and the port
  // listens. Neither check opens a connection.
  auto deadline = Clock::now() + kStartDeadline;
  for (;;) {
    if (broker_.exited()) {
      throw std::runtime_error(label() + " exited during start-up:\n" + logTail());
    }
    std::string out = log();
    if (out.size() > logSizeBefore) {
      auto ready = readyLine(out.substr(logSizeBefore));
      if (ready && (port == 0 || ready->port == port) && isListening(ready->port)) {
        port_ = ready->port;
        version_ = ready->version;
        return;
      }
    }
    bool interrupted = options_.interrupted && options_.interrupted();
    if (Clock::now() >= deadline || interrupted) {
      stop();
      throw std::runtime_error(interrupted ? "interrupted"
                                           : label() + " did not start within 10 s:\n" + logTail());
    }
    std::this_thread::sleep_for(kPollStep);
  }
}

void AedesBroker::stop() {
  broker_.stop(kStopDeadline);
}

void AedesBroker::restart() {
  stop();
  launch(port_);
}

}  // namespace impgate::testbed
