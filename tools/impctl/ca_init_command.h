// `impctl ca init`: creates the fleet CA, the gateway's server credential, the fleet's
// code-signing key pair and the device database in the home. On a home that has a CA but no
// code-signing key (made before code push), it creates just the signing key.
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
