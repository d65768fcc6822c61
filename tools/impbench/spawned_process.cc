#include "tools/impbench/spawned_process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

namespace impgate::bench {

SpawnedProcess::~SpawnedProcess() {
  stop();
}

bool SpawnedProcess::start(const std::vector<std::string>& args,
                           const std::filesystem::path& logPath, std::string& error) {
  stop();
  logPath_ = logPath;
  status_ = -1;
  // Everything the child needs is prepared before fork(): only async-signal-safe calls after.
  std::vector<std::string> store = args;
  std::vector<char*> argv;
  argv.reserve(store.size() + 1);
  for (auto& a : store) argv.push_back(a.data());
  argv.push_back(nullptr);
  int logFd = ::open(logPath.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (logFd < 0) {
    error = "cannot open " + logPath.string() + ": " + std::strerror(errno);
    return false;
  }
  pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid < 0) {
    error = std::string("fork: ") + std::strerror(errno);
    ::close(logFd);
    return false;
  }
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (::getppid() != parent) ::_exit(1);
    ::setpgid(0, 0);
    // impbench's handlers are replaced by exec, but ignored signals and the mask survive it.
    ::signal(SIGPIPE, SIG_DFL);
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
  return true;
}

bool SpawnedProcess::exited() {
  if (pid_ <= 0) return true;
  int status = 0;
  pid_t r = ::waitpid(pid_, &status, WNOHANG);
  if (r == pid_ || (r < 0 && errno == ECHILD)) {
    status_ = r == pid_ ? status : -1;
    pid_ = -1;
    return true;
  }
  return false;
}

bool SpawnedProcess::waitExit(std::chrono::milliseconds deadline) {
  auto until = std::chrono::steady_clock::now() + deadline;
  while (!exited()) {
    if (std::chrono::steady_clock::now() >= until) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

int SpawnedProcess::stop(std::chrono::milliseconds grace) {
  if (pid_ <= 0) return status_;
  // Until it is reaped the pid stays ours (a zombie cannot be reused), so signalling it is safe.
  ::kill(pid_, SIGTERM);
  if (!waitExit(grace) && pid_ > 0) {
    ::kill(pid_, SIGKILL);
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    status_ = status;
    pid_ = -1;
  }
  return status_;
}

std::string SpawnedProcess::logTail(std::size_t bytes) const {
  std::ifstream in(logPath_, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string all = ss.str();
  return all.size() > bytes ? all.substr(all.size() - bytes) : all;
}

}  // namespace impgate::bench
