// How the device SDK reports failure: fallible calls return a Status or a Result<T> carrying an
// Error (a code to branch on, and a message fit to show an operator). Nothing here throws;
// broken invariants (using a value that is not there) assert.
#pragma once

#include "gateway/base/result.h"

namespace impgate::device {

enum class ErrorCode {
  kCredentials,  // the device certificate or key is unreadable, or they do not match
  kTls,          // OpenSSL refused the TLS context, the TLS set-up or the handshake
  kConnect,      // the gateway address is invalid, or the TCP connect failed
  kOffline,      // the link went down or the gateway refused the device (BYE); message says why
  kNotSent,      // the client refused to send (not connected, too large, backpressure, ...)
  kTimeout,      // no WELCOME or ACK within the caller's timeout
  kBusy,         // the device thread did not take the call within callTimeout
  kStorage,      // a CodeStore could not read or write the device's code (message says what)
};

using Error = base::Error<ErrorCode>;
using Status = base::Status<ErrorCode>;
template <typename T>
using Result = base::Result<T, ErrorCode>;

}  // namespace impgate::device
