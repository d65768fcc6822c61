// How the PKI reports failure: fallible calls return a Status or a Result<T> carrying an Error
// (a code to branch on, and a message fit to show an operator). Nothing here throws; broken
// invariants (using a value that is not there) assert.
#pragma once

#include "gateway/base/result.h"

namespace impgate::pki {

enum class ErrorCode {
  kInvalidArgument,  // a device id, server name or validity the PKI will not put in a certificate
  kNotFound,         // a key or certificate file (e.g. the CA) does not exist
  kAlreadyExists,    // refusing to overwrite an existing key or certificate
  kIo,               // the file system refused (permissions, not a directory, disk full, ...)
  kCrypto,           // OpenSSL failed, or a key does not match its certificate
};

using Error = base::Error<ErrorCode>;
using Status = base::Status<ErrorCode>;
template <typename T>
using Result = base::Result<T, ErrorCode>;

}  // namespace impgate::pki
