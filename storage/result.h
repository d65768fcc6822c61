// How storage reports failure: every fallible call returns a Status or a Result<T> carrying an
// Error (a code callers can branch on, and a message fit to show an operator). Storage never
// throws; broken invariants (using a value that is not there) assert.
#pragma once

#include <cassert>
#include <string>
#include <utility>
#include <variant>

namespace impgate::storage {

enum class ErrorCode {
  kSqlite,           // SQLite refused or failed; the message carries its text.
  kNotFound,         // The database file (or a record the caller required) does not exist.
  kSchemaTooNew,     // The file was written by a newer impgate; it is left untouched.
  kInvalidName,      // A device id or group name that fails isValidDeviceId().
  kAlreadyEnrolled,  // enroll() of an id that exists, without asking to replace it.
};

struct Error {
  ErrorCode code;
  std::string message;
};

// Success, or an Error.
class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(Error error) : error_(std::move(error)), ok_(false) {}  // NOLINT: implicit by design

  bool ok() const { return ok_; }
  explicit operator bool() const { return ok_; }
  const Error& error() const {
    assert(!ok_);
    return error_;
  }

 private:
  Error error_{ErrorCode::kSqlite, {}};
  bool ok_ = true;
};

// A T, or the Error that prevented producing one.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::in_place_index<0>, std::move(value)) {}      // NOLINT: implicit
  Result(Error error) : v_(std::in_place_index<1>, std::move(error)) {}  // NOLINT: implicit

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() & {
    assert(ok());
    return std::get<0>(v_);
  }
  const T& value() const& {
    assert(ok());
    return std::get<0>(v_);
  }
  T&& value() && {
    assert(ok());
    return std::get<0>(std::move(v_));
  }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  const Error& error() const {
    assert(!ok());
    return std::get<1>(v_);
  }
  Status status() const { return ok() ? Status() : Status(error()); }

 private:
  std::variant<T, Error> v_;
};

}  // namespace impgate::storage
