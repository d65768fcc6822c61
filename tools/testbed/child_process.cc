#include "tools/testbed/child_process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace impgate::testbed {

std::string readWholeFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

ChildProcess::~ChildProcess() {
  stop();
}

void ChildProcess::start(const std::vector<std::string>& args, const std::filesystem::path& logPath,
                         const std::vector<std::string>& extraEnv, Stderr stderrTo) {
  stop();
  logPath_ = logPath;
  status_.reset();
  // Everything the child needs is prepared before fork(): only async-signal-safe calls after.
  std::vector<std::string> argStore = args;
  std::vector<char*> argv;
  for (auto& a : argStore) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<std::string> envStore;
  for (char** e = environ; *e; ++e) envStore.emplace_back(*e);
  for (const auto& e : extraEnv) envStore.push_back(e);
  std::vector<char*> envp;
  for (auto& e : envStore) envp.push_back(e.data());
  envp.push_back(nullptr);

  int logFd = ::open(logPath.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (logFd < 0) throw std::runtime_error("open " + logPath.string() + ": " + strerror(errno));
  int errPipe[2] = {-1, -1};
  if (stderrTo == Stderr::kUndrainedPipe && ::pipe2(errPipe, O_CLOEXEC) != 0) {
    ::close(logFd);
    throw std::runtime_error(std::string("pipe: ") + strerror(errno));
  }
  pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid < 0) {
    ::close(logFd);
    if (errPipe[0] >= 0) ::close(errPipe[0]);
    if (errPipe[1] >= 0) ::close(errPipe[1]);
    throw std::runtime_error(std::string("fork: ") + strerror(errno));
  }
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (::getppid() != parent) ::_exit(1);
    ::setpgid(0, 0);  // a Ctrl-C at the terminal is for the parent, which stops its children
    ::signal(SIGPIPE, SIG_DFL);  // an ignored signal survives exec, like the mask below
    // The test may block signals in its threads; the mask survives exec, so clear it.
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    int devNull = ::open("/dev/null", O_RDONLY);
    if (devNull >= 0) ::dup2(devNull, 0);
    ::dup2(logFd, 1);
    ::dup2(errPipe[1] >= 0 ? errPipe[1] : logFd, 2);
    ::execve(argv[0], argv.data(), envp.data());
    ::_exit(127);
  }
  ::close(logFd);
  if (errPipe[1] >= 0) ::close(errPipe[1]);
  stderrPipe_ = errPipe[0];
  pid_ = pid;
}

void ChildProcess::closeStderrPipe() {
  if (stderrPipe_ >= 0) ::close(stderrPipe_);
  stderrPipe_ = -1;
}

bool ChildProcess::exited() {
  if (pid_ <= 0) return true;
  int status = 0;
  pid_t r = ::waitpid(pid_, &status, WNOHANG);
  if (r == pid_) {
    status_ = status;
    pid_ = -1;
    closeStderrPipe();
    return true;
  }
  if (r < 0 && errno == ECHILD) {
    pid_ = -1;
    closeStderrPipe();
    return true;
  }
  return false;
}

std::optional<int> ChildProcess::stop(std::chrono::milliseconds grace) {
  if (pid_ <= 0) return std::nullopt;
  ::kill(pid_, SIGTERM);
  auto deadline = std::chrono::steady_clock::now() + grace;
  while (!exited()) {
    if (std::chrono::steady_clock::now() >= deadline) {
      kill();
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return status_;
}

void ChildProcess::kill() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  int status = 0;
  while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  status_ = status;
  pid_ = -1;
  closeStderrPipe();
}

bool ChildProcess::tryStart(const std::vector<std::string>& args,
                            const std::filesystem::path& logPath, std::string& error) {
  try {
    start(args, logPath);
    return true;
  } catch (const std::runtime_error& e) {
    error = e.what();
    return false;
  }
}

std::string ChildProcess::log() const {
  return readWholeFile(logPath_);
}

std::string ChildProcess::logTail(std::size_t bytes) const {
  std::string all = log();
  return all.size() > bytes ? all.substr(all.size() - bytes) : all;
}

}  // namespace impgate::testbed
