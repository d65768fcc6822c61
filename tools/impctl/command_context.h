// What every impctl command runs against: the resolved home, who is acting (for the audit log),
// the time of the run, and where output goes. Built once in main(); passing it in keeps the
// commands free of globals.
#pragma once

#include <cstdint>
#include <ostream>
#include <string>
#include <string_view>

#include "gateway/base/home.h"

namespace impgate::impctl {

// Process exit codes; documented in docs/operations.md.
enum ExitCode : int {
  kExitOk = 0,
  kExitFailed = 1,  // the command could not do what was asked (message on stderr)
  kExitUsage = 2,   // the command line itself was wrong
};

struct CommandContext {
  Home home;
  std::string actor;  // "impctl:<user>"
  std::int64_t nowMs = 0;
  std::ostream& out;
  std::ostream& err;

  // Prints "impctl: error: <message>" and returns kExitFailed.
  int fail(std::string_view message) const;
  // The same for a value on the command line that parses but makes no sense (a bad --stage);
  // returns kExitUsage.
  int usage(std::string_view message) const;
};

// "impctl:<login name of the effective uid>", or "impctl:uid<N>" when it has none.
std::string currentActor();
std::int64_t currentTimeMs();

}  // namespace impgate::impctl
