// How the MQTT bridge reports failure: start() returns a Status carrying an Error (a code to
// branch on, and a message fit to show an operator). Connection trouble at run time is not an
// error of start(): the link retries and the bridge logs it; broken invariants assert.
#pragma once

#include "gateway/base/result.h"

namespace impgate::bus {

enum class ErrorCode {
  kInvalidBroker,  // the broker URI, client options or broker TLS files are unusable
};

using Error = base::Error<ErrorCode>;
using Status = base::Status<ErrorCode>;
template <typename T>
using Result = base::Result<T, ErrorCode>;

}  // namespace impgate::bus
