// How the code-push bus contract (bus/fleet) reports a payload it cannot use: decoders return a
// Result carrying an Error (a code to branch on, and a message that names the document and the
// field, fit to log or show an operator). Payloads come from the broker, so nothing here
// throws or asserts on their content.
#pragma once

#include "gateway/base/result.h"

namespace impgate::bus::fleet {

enum class ErrorCode {
  kMalformed,     // not JSON, not an object, a field missing, of the wrong type or out of range
  kBadSignature,  // a signed envelope whose signature does not verify
};

using Error = base::Error<ErrorCode>;
using Status = base::Status<ErrorCode>;
template <typename T>
using Result = base::Result<T, ErrorCode>;

}  // namespace impgate::bus::fleet
