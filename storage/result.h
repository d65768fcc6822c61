// How storage reports failure: every fallible call returns a Status or a Result<T> carrying an
// Error (a code callers can branch on, and a message fit to show an operator). Storage never
// throws; broken invariants (using a value that is not there) assert.
#pragma once

#include "gateway/base/result.h"

namespace impgate::storage {

enum class ErrorCode {
  kSqlite,           // SQLite refused or failed; the message carries its text.
  kNotFound,         // The database file (or a record the caller required) does not exist.
  kSchemaTooNew,     // The file was written by a newer impgate; it is left untouched.
  kInvalidName,      // A device id or group name that fails isValidDeviceId().
  kAlreadyEnrolled,  // enroll() of an id that exists, without asking to replace it.
  kInvalidInput,     // A value that breaks a rule (a hash, a size, a rollout policy, a state).
  kAlreadyExists,    // A group that exists, or a stored version's hash with other bytes.
  kRefused,          // A rule forbids it now (deleting a flagged or live deployment, a rollback
                     // with nothing to roll back to).
};

using Error = base::Error<ErrorCode>;
using Status = base::Status<ErrorCode>;
template <typename T>
using Result = base::Result<T, ErrorCode>;

}  // namespace impgate::storage
