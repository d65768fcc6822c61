// `impctl device list`: the registry as a table for people or a JSON array for scripts.
#pragma once

#include "tools/impctl/command_context.h"

namespace impgate::impctl {

struct DeviceListArgs {
  bool json = false;
};

int runDeviceList(const CommandContext& ctx, const DeviceListArgs& args);

}  // namespace impgate::impctl
