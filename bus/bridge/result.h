// How the MQTT bridge reports failure: start() returns a Status carrying an Error (a code to
// branch on, and a message fit to show an operator). Paho's exceptions stop at the bridge and
// become these; broken invariants assert.
#pragma once

#include "gateway/base/result.h"

namespace impgate::bus {

enum class ErrorCode {
  kInvalidBroker,  // Paho refused the broker URI or client options; the message carries its text
};

using Error = base::Error<ErrorCode>;
using Status = base::Status<ErrorCode>;
template <typename T>
using Result = base::Result<T, ErrorCode>;

}  // namespace impgate::bus
