// Turns OpenSSL's thread-local error queue into an Error an operator can read.
#pragma once

#include <string_view>

#include "gateway/base/pki/result.h"

namespace impgate::pki {

// "<context>: <OpenSSL's queued reasons>", draining the queue so later calls start clean.
Error opensslError(std::string_view context);

}  // namespace impgate::pki
