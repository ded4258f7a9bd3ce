// Status and StatusOr<T>: how every fallible phivault function reports failure.
//
// A Status is a code plus a message meant for operators and clients. Messages
// must never contain health data or secrets: they can reach logs and
// OperationOutcome diagnostics. Both types are [[nodiscard]], so an ignored
// error is a compile error under -Werror.
//
// Thread-safety: values; safe to copy and move between threads.
#ifndef PHIVAULT_COMMON_STATUS_H_
#define PHIVAULT_COMMON_STATUS_H_

#include <cassert>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace phivault {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,     // malformed input: 400
  kNotFound,            // 404
  kGone,                // deleted resource: 410
  kConflict,            // 409
  kPreconditionFailed,  // If-Match mismatch: 412
  kAlreadyExists,       // 409 / conditional create with several matches: 412
  kPermissionDenied,    // 403
  kUnauthenticated,     // 401
  kTooLarge,            // 413
  kUnsupportedMedia,    // 415
  kUnsupported,         // valid but not implemented: 501 / 400 as the caller decides
  kDataLoss,            // integrity check failed: stored data was modified outside phivault
  kUnavailable,         // retry later: 503
  kResourceExhausted,   // limits: 429 / 503
  kInternal,            // bug or environment failure: 500
};

std::string_view StatusCodeName(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return Status(); }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // FHIRPath of the element an input error is about (OperationOutcome
  // issue.expression, e.g. "Observation.status"); empty when not known.
  const std::string& expression() const { return expression_; }
  Status WithExpression(std::string expression) && {
    expression_ = std::move(expression);
    return std::move(*this);
  }
  std::string ToString() const;

  // Marks a status as deliberately ignored; reads better than a cast.
  void IgnoreError() const {}

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
  std::string expression_;
};

inline Status InvalidArgument(std::string m) { return {StatusCode::kInvalidArgument, std::move(m)}; }
inline Status NotFound(std::string m) { return {StatusCode::kNotFound, std::move(m)}; }
inline Status Internal(std::string m) { return {StatusCode::kInternal, std::move(m)}; }
inline Status DataLoss(std::string m) { return {StatusCode::kDataLoss, std::move(m)}; }
inline Status Unavailable(std::string m) { return {StatusCode::kUnavailable, std::move(m)}; }
inline Status PermissionDenied(std::string m) { return {StatusCode::kPermissionDenied, std::move(m)}; }

template <typename T>
class [[nodiscard]] StatusOr {
 public:
  // REQUIRES: !status.ok()
  StatusOr(Status status) : v_(std::move(status)) {  // NOLINT: implicit by design
    assert(!std::get<Status>(v_).ok());
  }
  StatusOr(T value) : v_(std::move(value)) {}  // NOLINT: implicit by design

  bool ok() const { return std::holds_alternative<T>(v_); }
  Status status() const { return ok() ? Status::Ok() : std::get<Status>(v_); }

  // REQUIRES: ok()
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

 private:
  std::variant<Status, T> v_;
};

}  // namespace phivault

// Propagates a non-OK Status from the enclosing function.
#define PV_RETURN_IF_ERROR(expr)              \
  do {                                        \
    ::phivault::Status pv_status_ = (expr);   \
    if (!pv_status_.ok()) return pv_status_;  \
  } while (0)

#define PV_CONCAT_INNER(a, b) a##b
#define PV_CONCAT(a, b) PV_CONCAT_INNER(a, b)
// PV_ASSIGN_OR_RETURN(auto x, Fn()) declares x from a StatusOr or returns its error.
#define PV_ASSIGN_OR_RETURN(lhs, expr) PV_ASSIGN_OR_RETURN_IMPL(PV_CONCAT(pv_so_, __LINE__), lhs, expr)
#define PV_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                             \
  if (!tmp.ok()) return tmp.status();            \
  lhs = std::move(tmp).value()

#endif  // PHIVAULT_COMMON_STATUS_H_
