#include "tests/support/mosquitto_fixture.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "tests/support/free_port.h"

namespace impgate::testing {
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

// $IMPGATE_MOSQUITTO, then $PATH, then the sbin directories Debian installs it into (which are
// not on a normal user's PATH).
std::string findMosquitto() {
  if (const char* env = std::getenv("IMPGATE_MOSQUITTO"); env && *env) return env;
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

}  // namespace

MosquittoFixture::MosquittoFixture(std::vector<std::string> extraConfig)
    : dir_("impgate-mosquitto"),
      confPath_(dir_ / "mosquitto.conf"),
      logPath_(dir_ / "mosquitto.log"),
      binary_(findMosquitto()),
      extraConfig_(std::move(extraConfig)) {
  if (binary_.empty()) {
    throw std::runtime_error("mosquitto not found (PATH, /usr/sbin); set IMPGATE_MOSQUITTO");
  }
  // The port is free when chosen but another process may bind it before mosquitto does; that
  // shows up as an early exit, and a fresh port is tried.
  for (int attempt = 1;; ++attempt) {
    port_ = freeLoopbackPort();
    if (port_ == 0) throw std::runtime_error("no free loopback port");
    writeConfig();
    try {
      start();
      return;
    } catch (const std::runtime_error&) {
      if (attempt == kPortAttempts) throw;
    }
  }
}

MosquittoFixture::~MosquittoFixture() {
  stop();
}

std::string MosquittoFixture::uri() const {
  return "tcp://127.0.0.1:" + std::to_string(port_);
}

void MosquittoFixture::writeConfig() const {
  std::ofstream conf(confPath_, std::ios::trunc);
  conf << "# One broker for one test, written by MosquittoFixture.\n"
       << "listener " << port_ << " 127.0.0.1\n"
       << "allow_anonymous true\n"
       << "persistence false\n"
       // 0 = no limit for both: a test must never lose a QoS 1 message to a full queue or an
       // inflight window, which mosquitto does silently.
       << "max_queued_messages 0\n"
       << "max_inflight_messages 0\n"
       << "set_tcp_nodelay true\n"
       << "log_dest stderr\n"
       << "log_type error\nlog_type warning\nlog_type notice\nlog_type information\n"
       << "log_type subscribe\nlog_type unsubscribe\n"
       << "connection_messages true\n";
  // Without this, mosquitto started as root drops to the 'mosquitto' user, which cannot write
  // to our temp dir.
  if (::geteuid() == 0) conf << "user root\n";
  for (const auto& line : extraConfig_) conf << line << "\n";
  if (!conf) throw std::runtime_error("cannot write " + confPath_.string());
}

void MosquittoFixture::start() {
  auto logSizeBefore = std::filesystem::exists(logPath_) ? std::filesystem::file_size(logPath_) : 0;
  broker_.start({binary_, "-c", confPath_.string()}, logPath_);

  // Ready means: mosquitto has said it is running (so the listener is its own, not some other
  // process that grabbed the port) and the port accepts a connection.
  auto deadline = Clock::now() + kStartDeadline;
  for (;;) {
    if (broker_.exited()) {
      throw std::runtime_error("mosquitto exited during start-up:\n" + log());
    }
    if (acceptsConnections(port_)) {
      std::string out = log();
      if (out.size() > logSizeBefore && out.find(" running", logSizeBefore) != std::string::npos) {
        return;
      }
    }
    if (Clock::now() >= deadline) {
      stop();
      throw std::runtime_error("mosquitto did not accept connections within 10 s:\n" + log());
    }
    std::this_thread::sleep_for(kPollStep);
  }
}

void MosquittoFixture::stop() {
  broker_.stop(kStopDeadline);
}

void MosquittoFixture::restart() {
  stop();
  start();
}

}  // namespace impgate::testing
