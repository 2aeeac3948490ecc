// Errors are values: a [[nodiscard]] result carrying a NetBSD errno, and a
// TRY() macro that propagates the error of an expression.
#pragma once

#include <cassert>
#include <utility>
#include <variant>

#include "emul/netbsd.h"

namespace lwpd::emul {

using netbsd::Errno;

template <typename T>
class [[nodiscard]] KResult {
 public:
  KResult(T value) : v_(std::move(value)) {}             // NOLINT: implicit by design
  KResult(Errno e) : v_(e) { assert(e != Errno::kOk); }  // NOLINT

  bool ok() const { return std::holds_alternative<T>(v_); }
  Errno error() const { return ok() ? Errno::kOk : std::get<Errno>(v_); }
  T& value() { return std::get<T>(v_); }
  const T& value() const { return std::get<T>(v_); }
  T release() { return std::move(std::get<T>(v_)); }

 private:
  std::variant<T, Errno> v_;
};

template <>
class [[nodiscard]] KResult<void> {
 public:
  KResult() = default;
  KResult(Errno e) : e_(e) {}  // NOLINT
  bool ok() const { return e_ == Errno::kOk; }
  Errno error() const { return e_; }

 private:
  Errno e_ = Errno::kOk;
};

}  // namespace lwpd::emul

// Evaluate a KResult<T> expression: on error return its errno from the
// enclosing function, otherwise yield the value (GNU statement expression,
// supported by g++ and clang).
#define TRY(expr)                            \
  ({                                         \
    auto _try_r = (expr);                    \
    if (!_try_r.ok()) return _try_r.error(); \
    _try_r.release();                        \
  })

// Evaluate a KResult<void> expression and return its errno on failure.
#define TRY_OK(expr)                         \
  do {                                       \
    auto _try_r = (expr);                    \
    if (!_try_r.ok()) return _try_r.error(); \
  } while (0)
