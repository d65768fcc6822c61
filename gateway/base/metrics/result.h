// How the metrics endpoint reports failure: fallible calls return a Status carrying an Error (a
// code to branch on, and a message fit to show an operator). Nothing here throws; broken
// invariants assert.
#pragma once

#include "gateway/base/result.h"

namespace impgate::metrics {

enum class ErrorCode {
  kAlreadyStarted,  // start() on a server that is running
  kResolve,         // the host does not resolve
  kSocket,          // the kernel refused socket(), bind(), listen() or eventfd(); errno text
};

using Error = base::Error<ErrorCode>;
using Status = base::Status<ErrorCode>;
template <typename T>
using Result = base::Result<T, ErrorCode>;

}  // namespace impgate::metrics
