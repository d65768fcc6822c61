// `impctl ca init`: creates the fleet CA, the gateway's server credential and the device
// database in the home.
#pragma once

#include <string>
#include <vector>

#include "tools/impctl/command_context.h"

namespace impgate::impctl {

struct CaInitArgs {
  std::vector<std::string> serverNames;
  bool force = false;
};

int runCaInit(const CommandContext& ctx, const CaInitArgs& args);

}  // namespace impgate::impctl
