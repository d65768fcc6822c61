#include "tools/impbench/mosquitto_server.h"

#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>

#include "tools/impbench/interrupt.h"
#include "tools/impbench/tcp_table.h"

namespace impgate::bench {
namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kStartDeadline = std::chrono::seconds(10);
constexpr int kPortAttempts = 5;

bool isExecutable(const std::string& path) {
  return ::access(path.c_str(), X_OK) == 0;
}

void writeConfig(const MosquittoConfig& config, uint16_t port, const std::filesystem::path& path) {
  std::ofstream conf(path, std::ios::trunc);
  conf << "# Written by impbench for one run.\n"
       << "listener " << port << " 127.0.0.1\n"
       << "allow_anonymous true\n"
       << "persistence false\n"
       << "set_tcp_nodelay true\n"
       << "max_queued_messages 0\n"
       << "log_dest stderr\n"
       // "running" (what start-up waits for) is an information message.
       << "log_type error\nlog_type warning\nlog_type notice\nlog_type information\n"
       << "connection_messages false\n";
  if (config.tls) {
    // The same checks impgate makes: TLS 1.3 only, a client certificate from the fleet CA,
    // the certificate's CN as the client's identity.
    conf << "cafile " << config.tls->caFile << "\n"
         << "certfile " << config.tls->certFile << "\n"
         << "keyfile " << config.tls->keyFile << "\n"
         << "require_certificate true\n"
         << "use_identity_as_username true\n"
         << "tls_version tlsv1.3\n";
  }
  // Started as root, mosquitto would switch to the 'mosquitto' user, which cannot read the
  // keys in our temp dir.
  if (::geteuid() == 0) conf << "user root\n";
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

std::string findMosquitto(const std::string& flag) {
  if (!flag.empty()) return isExecutable(flag) ? flag : std::string{};
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

std::unique_ptr<MosquittoServer> MosquittoServer::start(const MosquittoConfig& config,
                                                        std::string& error) {
  std::unique_ptr<MosquittoServer> server(new MosquittoServer());
  // The port is free when chosen, but another process may bind it first; that shows up as an
  // early exit, and a fresh port is tried.
  for (int attempt = 1; attempt <= kPortAttempts; ++attempt) {
    if (server->launch(config, error)) return server;
    if (interrupted()) break;
  }
  return nullptr;
}

bool MosquittoServer::launch(const MosquittoConfig& config, std::string& error) {
  port_ = freeLoopbackPort();
  if (port_ == 0) {
    error = "no free loopback port";
    return false;
  }
  auto confPath = config.dir / (config.name + "-mosquitto.conf");
  auto logPath = config.dir / (config.name + "-mosquitto.log");
  writeConfig(config, port_, confPath);
  if (!process_.start({config.binary, "-c", confPath.string()}, logPath, error)) return false;
  auto deadline = Clock::now() + kStartDeadline;
  for (;;) {
    if (process_.exited()) {
      error = "mosquitto (" + config.name + ") exited during start-up:\n" + process_.logTail();
      return false;
    }
    // Ready: it says it runs (so the listener is its own) and the port listens.
    std::string log = process_.logTail(100000);
    if (log.find(" running") != std::string::npos && isListening(port_)) {
      version_ = versionFrom(log);
      return true;
    }
    if (Clock::now() >= deadline || interrupted()) {
      process_.stop();
      error = interrupted() ? "interrupted"
                            : "mosquitto (" + config.name + ") did not start within 10 s:\n" +
                                  process_.logTail();
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

}  // namespace impgate::bench
