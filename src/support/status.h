// Status and Expected<T> (declared in the public kiln/status.h) plus the
// fmt-based constructors and the KILN_RETURN_IF_ERROR / KILN_ASSIGN_OR_RETURN
// macros kiln's own code uses.
#pragma once

#include <fmt/format.h>

#include <string>
#include <utility>

#include "kiln/status.h"

namespace kiln {

template <typename... Args>
Status make_error(ErrorCode code, fmt::format_string<Args...> f, Args&&... args) {
  return Status(code, fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
Status invalid_argument(fmt::format_string<Args...> f, Args&&... args) {
  return Status(ErrorCode::kInvalidArgument, fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
Status invalid_model(fmt::format_string<Args...> f, Args&&... args) {
  return Status(ErrorCode::kInvalidModel, fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
Status unsupported(fmt::format_string<Args...> f, Args&&... args) {
  return Status(ErrorCode::kUnsupported, fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
Status internal_error(fmt::format_string<Args...> f, Args&&... args) {
  return Status(ErrorCode::kInternal, fmt::format(f, std::forward<Args>(args)...));
}

}  // namespace kiln

#define KILN_CONCAT_INNER(a, b) a##b
#define KILN_CONCAT(a, b) KILN_CONCAT_INNER(a, b)

#define KILN_RETURN_IF_ERROR(expr)          \
  do {                                      \
    ::kiln::Status _kiln_st = (expr);       \
    if (!_kiln_st.is_ok()) return _kiln_st; \
  } while (0)

#define KILN_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                               \
  if (!tmp.is_ok()) return tmp.status();           \
  lhs = std::move(tmp).value()

// KILN_ASSIGN_OR_RETURN(auto x, compute()): unwraps an Expected or returns its error.
#define KILN_ASSIGN_OR_RETURN(lhs, expr) KILN_ASSIGN_OR_RETURN_IMPL(KILN_CONCAT(_kiln_exp_, __LINE__), lhs, expr)
