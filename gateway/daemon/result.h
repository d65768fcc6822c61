// How the gateway daemon reports failure: its configuration and start-up calls return a Status
// carrying an Error (a code to branch on, and a message fit to show an operator). Nothing here
// throws; broken invariants assert.
#pragma once

#include "gateway/base/result.h"

namespace impgate::gateway {

enum class ErrorCode {
  kInvalidSetting,  // an unknown key, a value it does not take, or a rule between settings
  kIo,              // a config file that cannot be read
  kListen,          // the device listener address is invalid, or cannot be bound or watched
};

using Error = base::Error<ErrorCode>;
using Status = base::Status<ErrorCode>;
template <typename T>
using Result = base::Result<T, ErrorCode>;

}  // namespace impgate::gateway
