// `impctl device enroll ID`: issues a device's key and certificate from the fleet CA and records
// the device in the registry.
#pragma once

#include <string>

#include "tools/impctl/command_context.h"

namespace impgate::impctl {

struct DeviceEnrollArgs {
  std::string id;
  std::string group = "default";
  bool reissue = false;  // replace an enrolled device's credentials
  // When > 0, `id` is a prefix and devices <id>00001 .. <id><count> are enrolled (a test or
  // simulator fleet; the numbering matches `impdev simulate --prefix`).
  long count = 0;
};

int runDeviceEnroll(const CommandContext& ctx, const DeviceEnrollArgs& args);

}  // namespace impgate::impctl
