// kiln::Status and kiln::Expected<T>: how every kiln call reports failure.
// Errors a user or a model can cause are values, never exceptions or aborts,
// and every message names what was wrong and with which value.
//
// This header is public and self-contained (standard library only).
#pragma once

#include <cassert>
#include <string>
#include <utility>
#include <variant>

namespace kiln {

enum class ErrorCode {
  kOk = 0,
  kInvalidArgument,  // the caller passed something wrong (flag, shape, name)
  kInvalidModel,     // the model file breaks the ONNX spec
  kUnsupported,      // valid, but kiln cannot do it (yet)
  kNotFound,         // a file, tensor or op that is not there
  kIoError,          // reading or writing failed
  kCorrupt,          // a file is truncated or damaged
  kOutOfRange,       // a value outside what is allowed (profile range, index)
  kInternal,         // a kiln bug
};

// "invalid argument", "corrupt file", ...
const char* error_code_name(ErrorCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(ErrorCode code, std::string message) : code_(code), message_(std::move(message)) {}
  static Status ok() { return {}; }

  bool is_ok() const { return code_ == ErrorCode::kOk; }
  explicit operator bool() const { return is_ok(); }
  ErrorCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // "<code>: <message>", for printing.
  std::string to_string() const;

  // Prefix the message with where the error happened ("while importing node 'x': ...").
  Status with_context(const std::string& context) const;

 private:
  ErrorCode code_ = ErrorCode::kOk;
  std::string message_;
};

// Expected<T>: a T or the Status that explains why there is none. Reading the
// value of an error is a programmer bug (asserts), so check is_ok() first.
template <typename T>
class [[nodiscard]] Expected {
 public:
  Expected(T value) : v_(std::move(value)) {}  // NOLINT(google-explicit-constructor)
  Expected(Status status) : v_(std::move(status)) { assert(!std::get<Status>(v_).is_ok()); }  // NOLINT

  bool is_ok() const { return std::holds_alternative<T>(v_); }
  explicit operator bool() const { return is_ok(); }
  const Status& status() const {
    static const Status ok_status;
    return is_ok() ? ok_status : std::get<Status>(v_);
  }
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace kiln
