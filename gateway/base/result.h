// How modules report failure without exceptions: a fallible call returns a Status or a
// Result<T> carrying an Error (a code to branch on, and a message fit to show an operator).
// Each module instantiates these with its own error-code enum in its own result.h (e.g.
// storage/result.h, gateway/base/net/result.h; docs/architecture.md, "Errors", lists them).
// Broken invariants (using a value that is not there) assert.
#pragma once

#include <cassert>
#include <string>
#include <utility>
#include <variant>

namespace impgate::base {

template <typename Code>
struct Error {
  Code code;
  std::string message;
};

// Success, or an Error.
template <typename Code>
class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(Error<Code> error) : error_(std::move(error)), ok_(false) {}  // NOLINT: implicit by design

  bool ok() const { return ok_; }
  explicit operator bool() const { return ok_; }
  const Error<Code>& error() const {
    assert(!ok_);
    return error_;
  }

 private:
  Error<Code> error_{Code{}, {}};
  bool ok_ = true;
};

// A T, or the Error that prevented producing one.
template <typename T, typename Code>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::in_place_index<0>, std::move(value)) {}            // NOLINT: implicit
  Result(Error<Code> error) : v_(std::in_place_index<1>, std::move(error)) {}  // NOLINT: implicit

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

  const Error<Code>& error() const {
    assert(!ok());
    return std::get<1>(v_);
  }
  Status<Code> status() const { return ok() ? Status<Code>() : Status<Code>(error()); }

 private:
  std::variant<T, Error<Code>> v_;
};

}  // namespace impgate::base
