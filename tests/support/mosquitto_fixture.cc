#include "tests/support/mosquitto_fixture.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <vector>

#include "tests/support/free_port.h"

namespace impgate::testing {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

constexpr milliseconds kStartDeadline{10000};  // generous: sanitizer builds start slowly
constexpr milliseconds kStopDeadline{5000};
constexpr milliseconds kPollStep{5};
constexpr int kPortAttempts = 5;

bool isExecutable(const std::string& path) { return ::access(path.c_str(), X_OK) == 0; }

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

bool acceptsConnections(uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  ::close(fd);
  return ok;
}

std::string readFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Reaps `pid` if it has exited; returns true when it is gone.
bool reaped(pid_t pid) {
  int status = 0;
  pid_t r = ::waitpid(pid, &status, WNOHANG);
  return r == pid || (r < 0 && errno == ECHILD);
}

}  // namespace

MosquittoFixture::MosquittoFixture()
    : dir_("impgate-mosquitto"),
      confPath_(dir_ / "mosquitto.conf"),
      logPath_(dir_ / "mosquitto.log"),
      binary_(findMosquitto()) {
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

MosquittoFixture::~MosquittoFixture() { stop(); }

std::string MosquittoFixture::uri() const {
  return "tcp://127.0.0.1:" + std::to_string(port_);
}

std::string MosquittoFixture::log() const { return readFile(logPath_); }

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
  if (!conf) throw std::runtime_error("cannot write " + confPath_.string());
}

void MosquittoFixture::start() {
  // Everything the child needs is prepared before fork(): only async-signal-safe calls after.
  std::string conf = confPath_.string();
  std::vector<char*> argv = {binary_.data(), const_cast<char*>("-c"), conf.data(), nullptr};
  int logFd = ::open(logPath_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (logFd < 0) throw std::runtime_error("open " + logPath_.string() + ": " + strerror(errno));
  auto logSizeBefore = std::filesystem::file_size(logPath_);
  pid_t parent = ::getpid();

  pid_t pid = ::fork();
  if (pid < 0) {
    ::close(logFd);
    throw std::runtime_error(std::string("fork: ") + strerror(errno));
  }
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (::getppid() != parent) ::_exit(1);
    // A test may block signals for its own threads; the mask survives exec, so clear it or
    // mosquitto never sees our SIGTERM.
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    int devNull = ::open("/dev/null", O_RDONLY);
    if (devNull >= 0) ::dup2(devNull, 0);
    ::dup2(logFd, 1);
    ::dup2(logFd, 2);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  ::close(logFd);
  pid_ = pid;

  // Ready means: mosquitto has said it is running (so the listener is its own, not some other
  // process that grabbed the port) and the port accepts a connection.
  auto deadline = Clock::now() + kStartDeadline;
  for (;;) {
    if (reaped(pid_)) {
      pid_ = -1;
      throw std::runtime_error("mosquitto exited during start-up:\n" + log());
    }
    if (acceptsConnections(port_)) {
      std::string out = log();
      if (out.size() > logSizeBefore &&
          out.find(" running", logSizeBefore) != std::string::npos) {
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
  if (pid_ <= 0) return;
  ::kill(pid_, SIGTERM);
  auto deadline = Clock::now() + kStopDeadline;
  while (!reaped(pid_)) {
    if (Clock::now() >= deadline) {
      ::kill(pid_, SIGKILL);
      int status = 0;
      while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
      }
      break;
    }
    std::this_thread::sleep_for(milliseconds(2));
  }
  pid_ = -1;
}

void MosquittoFixture::restart() {
  stop();
  start();
}

}  // namespace impgate::testing
