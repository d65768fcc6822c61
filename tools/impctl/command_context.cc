#include "tools/impctl/command_context.h"

#include <pwd.h>
#include <unistd.h>

#include <chrono>
#include <vector>

namespace impgate::impctl {

int CommandContext::fail(std::string_view message) const {
  err << "impctl: error: " << message << '\n';
  return kExitFailed;
}

int CommandContext::usage(std::string_view message) const {
  err << "impctl: error: " << message << '\n';
  return kExitUsage;
}

std::string currentActor() {
  uid_t uid = geteuid();
  long size = sysconf(_SC_GETPW_R_SIZE_MAX);
  std::vector<char> buf(size > 0 ? static_cast<std::size_t>(size) : 16384);
  passwd pw{};
  passwd* found = nullptr;
  if (getpwuid_r(uid, &pw, buf.data(), buf.size(), &found) == 0 && found) {
    return std::string("impctl:") + found->pw_name;
  }
  return "impctl:uid" + std::to_string(uid);
}

std::int64_t currentTimeMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace impgate::impctl
