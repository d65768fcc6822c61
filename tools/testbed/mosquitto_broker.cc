#include "tools/testbed/mosquitto_broker.h"

#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "tools/testbed/free_port.h"
#include "tools/testbed/tcp_table.h"

namespace impgate::testbed {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

constexpr milliseconds kStartDeadline{10000};  // generous: sanitizer builds start slowly
constexpr milliseconds kStopDeadline{5000};
constexpr milliseconds kPollStep{5};
constexpr int kPortAttempts = 5;

bool isExecutable(const std::string& path) {
  return ::access(path.c_str(), X_OK) == 0;
}

std::string versionFrom(const std::string& log) {
  const std::string marker = "mosquitto version ";
  auto at = log.find(marker);
  if (at == std::string::npos) return {};
  auto start = at + marker.size();
  auto end = log.find(' ', start);
  return log.substr(start, end == std::string::npos ? std::string::npos : end - start);
}

}  // namespace

std::string findMosquitto(const std::string& given) {
  if (!given.empty()) return isExecutable(given) ? given : std::string{};
  if (const char* path = std::getenv("PATH")) {
    std::stringstream dirs(path);
    std::string dir;
    while (std::getline(dirs, dir, ':')) {
      if (!dir.empty() && isExecutable(dir + "/mosquitto")) return dir + "/mosquitto";
    }
  }
  for (const char* candidate : {"/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"}) {
    if (isExecutable(candidate)) return candidate;
  }
  return {};
}

MosquittoBroker::MosquittoBroker(MosquittoOptions options) : options_(std::move(options)) {
  if (options_.binary.empty()) {
    const char* env = std::getenv("IMPGATE_MOSQUITTO");
    options_.binary = (env && *env) ? env : findMosquitto();
  }
  if (options_.binary.empty()) {
    throw std::runtime_error("mosquitto not found (PATH, /usr/sbin); set IMPGATE_MOSQUITTO");
  }
  if (options_.dir.empty()) {
    ownDir_.emplace("impgate-mosquitto");
    options_.dir = ownDir_->path();
  }
  std::string stem = options_.name.empty() ? "mosquitto" : options_.name + "-mosquitto";
  confPath_ = options_.dir / (stem + ".conf");
  logPath_ = options_.dir / (stem + ".log");
  // The port is free when chosen but another process may bind it before mosquitto does; that
  // shows up as an early exit, and a fresh port is tried.
  for (int attempt = 1;; ++attempt) {
    port_ = freeLoopbackPort();
    if (port_ == 0) throw std::runtime_error("no free loopback port");
    writeConfig();
    try {
      launch();
      return;
    } catch (const std::runtime_error&) {
      if (attempt == kPortAttempts || (options_.interrupted && options_.interrupted())) throw;
    }
  }
}

std::unique_ptr<MosquittoBroker> MosquittoBroker::start(MosquittoOptions options,
                                                        std::string& error) {
  try {
    return std::make_unique<MosquittoBroker>(std::move(options));
  } catch (const std::runtime_error& e) {
    error = e.what();
    return nullptr;
  }
}

MosquittoBroker::~MosquittoBroker() {
  stop();
}

std::string MosquittoBroker::uri() const {
  return "tcp://127.0.0.1:" + std::to_string(port_);
}

std::string MosquittoBroker::label() const {
  return options_.name.empty() ? "mosquitto" : "mosquitto (" + options_.name + ")";
}

void MosquittoBroker::writeConfig() const {
  std::ofstream conf(confPath_, std::ios::trunc);
  conf << "# One broker for one test or benchmark run, written by MosquittoBroker.\n"
       << "listener " << port_ << " 127.0.0.1\n"
       << "allow_anonymous true\n"
       << "persistence false\n"
       << "log_dest stderr\n"
       // "running" (what start-up waits for) is an information message.
       << "log_type error\nlog_type warning\nlog_type notice\nlog_type information\n";
  if (!options_.stockSettings) {
    // 0 = no limit for both: a test must never lose a QoS 1 message to a full queue or an
    // inflight window, which mosquitto does silently.
    conf << "max_queued_messages 0\n"
         << "max_inflight_messages 0\n"
         << "set_tcp_nodelay true\n";
  }
  if (options_.logClients) {
    conf << "log_type subscribe\nlog_type unsubscribe\n"
         << "connection_messages true\n";
  } else {
    conf << "connection_messages false\n";
  }
  if (options_.tls) {
    conf << "cafile " << options_.tls->caFile << "\n"
         << "certfile " << options_.tls->certFile << "\n"
         << "keyfile " << options_.tls->keyFile << "\n"
         << "require_certificate true\n"
         << "use_identity_as_username true\n"
         << "tls_version tlsv1.3\n";
  }
  // Without this, mosquitto started as root drops to the 'mosquitto' user, which cannot read
  // or write our temp dir.
  if (::geteuid() == 0) conf << "user root\n";
  for (const auto& line : options_.extraConfig) conf << line << "\n";
  if (!conf) throw std::runtime_error("cannot write " + confPath_.string());
}

void MosquittoBroker::launch() {
  auto logSizeBefore = std::filesystem::exists(logPath_) ? std::filesystem::file_size(logPath_) : 0;
  broker_.start({options_.binary, "-c", confPath_.string()}, logPath_);

  // Ready means: mosquitto has said it is running (so the listener is its own, not some other
  // process that grabbed the port) and the port listens. Neither check opens a connection.
  auto deadline = Clock::now() + kStartDeadline;
  for (;;) {
    if (broker_.exited()) {
      throw std::runtime_error(label() + " exited during start-up:\n" + logTail());
    }
    std::string out = log();
    if (out.size() > logSizeBefore && out.find(" running", logSizeBefore) != std::string::npos &&
        isListening(port_)) {
      version_ = versionFrom(out.substr(logSizeBefore));
      return;
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

void MosquittoBroker::stop() {
  broker_.stop(kStopDeadline);
}

void MosquittoBroker::restart() {
  stop();
  launch();
}

}  // namespace impgate::testbed
