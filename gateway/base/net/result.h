// How the network layer reports failure: fallible calls return a Status or a Result<T>
// carrying an Error (a code to branch on, and a message fit to show an operator). Nothing here
// throws; broken invariants (using a value that is not there) assert.
#pragma once

#include "gateway/base/result.h"

namespace impgate::net {

enum class ErrorCode {
  kInvalidAddress,  // an endpoint that is not HOST:PORT or [v6]:PORT, or a port out of range
  kResolve,         // the host name does not resolve
  kSocket,          // the kernel refused socket(), bind(), listen() or connect(); errno text
  kTls,             // OpenSSL refused a context, certificate, key or CA file
};

using Error = base::Error<ErrorCode>;
using Status = base::Status<ErrorCode>;
template <typename T>
using Result = base::Result<T, ErrorCode>;

}  // namespace impgate::net
