// How the PKI reports failure: fallible calls return a Status or a Result<T> carrying an Error
// (a code to branch on, and a message fit to show an operator). Nothing here throws; broken
// invariants (using a value that is not there) assert.
#pragma once

#include <cassert>
#include <string>
#include <utility>
#include <variant>

namespace impgate::pki {

enum class ErrorCode {
  kInvalidArgument,  // a device id, server name or validity the PKI will not put in a certificate
  kNotFound,         // a key or certificate file (e.g. the CA) does not exist
  kAlreadyExists,    // refusing to overwrite an existing key or certificate
  kIo,               // the file system refused (permissions, not a directory, disk full, ...)
  kCrypto,           // OpenSSL failed, or a key does not match its certificate
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
  Error error_{ErrorCode::kIo, {}};
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

}  // namespace impgate::pki
