#include "tools/impbench/process_stats.h"

#include <unistd.h>

#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace impgate::bench {
namespace {

namespace fs = std::filesystem;

// utime and stime are fields 14 and 15 of /proc/<pid>/stat. Field 2 (the command) is in
// parentheses and may hold spaces, so counting starts after the last ')'.
bool readCpuTicks(const fs::path& proc, uint64_t& ticks) {
  std::ifstream in(proc / "stat");
  std::string line;
  if (!std::getline(in, line)) return false;
  auto close = line.rfind(')');
  if (close == std::string::npos) return false;
  std::istringstream fields(line.substr(close + 1));
  std::string field;
  uint64_t utime = 0, stime = 0;
  // After ')': field 3 (state) is the first token; utime is field 14.
  for (int index = 3; index <= 15 && (fields >> field); ++index) {
    if (index == 14) utime = std::stoull(field);
    if (index == 15) stime = std::stoull(field);
  }
  ticks = utime + stime;
  return true;
}

// The first number of /proc/<pid>/task/<tid>/schedstat is the thread's time on a CPU in ns.
void readThreadsCpu(const fs::path& proc, pid_t pid, ProcessSample& sample) {
  std::error_code ec;
  const std::string mainTask = std::to_string(pid);
  for (const auto& task : fs::directory_iterator(proc / "task", ec)) {
    std::ifstream in(task.path() / "schedstat");
    uint64_t ns = 0;
    if (!(in >> ns)) continue;
    sample.cpu += std::chrono::nanoseconds(ns);
    if (task.path().filename() == mainTask) sample.mainThreadCpu = std::chrono::nanoseconds(ns);
  }
}

uint64_t statusKiB(const std::string& status, const std::string& key) {
  auto at = status.find("\n" + key + ":");
  if (at == std::string::npos) return 0;
  return std::stoull(status.substr(at + key.size() + 2));
}

}  // namespace

std::optional<ProcessSample> sampleProcess(pid_t pid) {
  fs::path proc = fs::path("/proc") / std::to_string(pid);
  ProcessSample sample;
  if (!readCpuTicks(proc, sample.cpuTicks)) return std::nullopt;
  readThreadsCpu(proc, pid, sample);

  std::ifstream in(proc / "status");
  std::stringstream text;
  text << "\n" << in.rdbuf();
  std::string status = text.str();
  sample.rssKiB = statusKiB(status, "VmRSS");
  sample.rssAnonKiB = statusKiB(status, "RssAnon");

  std::error_code ec;
  for (auto it = fs::directory_iterator(proc / "fd", ec); !ec && it != fs::directory_iterator();
       it.increment(ec)) {
    ++sample.fds;
  }
  if (ec) return std::nullopt;
  return sample;
}

double ticksToSeconds(uint64_t ticks) {
  static const long perSecond = ::sysconf(_SC_CLK_TCK);
  return static_cast<double>(ticks) / static_cast<double>(perSecond > 0 ? perSecond : 100);
}

std::chrono::nanoseconds threadCpuTime() {
  timespec ts{};
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec);
}

}  // namespace impgate::bench
