// Unary math kernels without attributes: one element function each. Float-only
// ops compute 16-bit floats in float; f64 stays in double.
#include <cmath>
#include <type_traits>

#include "backends/cpu/kernels/elementwise_apply.h"

namespace kiln {
namespace {

constexpr DTypeSet kSignedNumeric = kFloatTypes | kSignedIntTypes;

template <typename C>
C sign_of(C x) {
  if constexpr (std::is_floating_point_v<C>) {
    if (std::isnan(x)) return x;
  }
  return x > C(0) ? C(1) : (x < C(0) ? C(-1) : C(0));
}

template <typename C>
C abs_of(C x) {
  if constexpr (std::is_unsigned_v<C>)
    return x;
  else if constexpr (std::is_floating_point_v<C>)
    return std::fabs(x);
  else
    return static_cast<C>(x < 0 ? -x : x);
}

template <typename C>
C softplus(C x) {
  // log(1 + exp(x)) without overflow for large x.
  return x > C(0) ? x + std::log1p(std::exp(-x)) : std::log1p(std::exp(x));
}

template <typename C>
C sigmoid(C x) {
  if (x >= C(0)) return C(1) / (C(1) + std::exp(-x));
  C e = std::exp(x);
  return e / (C(1) + e);
}

Status run_is_nan(CpuKernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.allocate_output(0));
  return visit_dtype(x.dtype(), kFloatTypes, [&]<typename T>() {
    map_elements<T, bool>(x, *y, [](T v) { return std::isnan(convert_to<compute_t<T>>(v)); });
    return Status::ok();
  });
}

Status run_is_inf(CpuKernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  bool neg = ctx.node().attr_int("detect_negative", 1) != 0;
  bool pos = ctx.node().attr_int("detect_positive", 1) != 0;
  KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.allocate_output(0));
  return visit_dtype(x.dtype(), kFloatTypes, [&]<typename T>() {
    map_elements<T, bool>(x, *y, [&](T v) {
      using C = compute_t<T>;
      if constexpr (std::is_floating_point_v<C>) {
        C c = convert_to<C>(v);
        return std::isinf(c) && ((c > 0 && pos) || (c < 0 && neg));
      } else {
        return false;
      }
    });
    return Status::ok();
  });
}

Status run_not(CpuKernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.allocate_output(0));
  return visit_dtype(x.dtype(), dtype_bit(DType::kBool), [&]<typename T>() {
    map_elements<bool, bool>(x, *y, [](bool v) { return !v; });
    return Status::ok();
  });
}

#define FLOAT_UNARY(op, expr) KILN_CPU_KERNEL("", op, unary_kernel<kFloatTypes>([](auto x) { return expr; }))

FLOAT_UNARY("Reciprocal", decltype(x)(1) / x);
FLOAT_UNARY("Floor", std::floor(x));
FLOAT_UNARY("Ceil", std::ceil(x));
FLOAT_UNARY("Sqrt", std::sqrt(x));
FLOAT_UNARY("Exp", std::exp(x));
FLOAT_UNARY("Log", std::log(x));
FLOAT_UNARY("Tanh", std::tanh(x));
FLOAT_UNARY("Sigmoid", sigmoid(x));
FLOAT_UNARY("Sin", std::sin(x));
FLOAT_UNARY("Cos", std::cos(x));
FLOAT_UNARY("Tan", std::tan(x));
FLOAT_UNARY("Asin", std::asin(x));
FLOAT_UNARY("Acos", std::acos(x));
FLOAT_UNARY("Atan", std::atan(x));
FLOAT_UNARY("Sinh", std::sinh(x));
FLOAT_UNARY("Cosh", std::cosh(x));
FLOAT_UNARY("Asinh", std::asinh(x));
FLOAT_UNARY("Acosh", std::acosh(x));
FLOAT_UNARY("Atanh", std::atanh(x));
FLOAT_UNARY("Erf", std::erf(x));
FLOAT_UNARY("Round", std::nearbyint(x));  // the default rounding mode: halves to even
FLOAT_UNARY("Softsign", x / (decltype(x)(1) + std::fabs(x)));
FLOAT_UNARY("Softplus", softplus(x));

KILN_CPU_KERNEL("", "Abs", unary_kernel<kNumericTypes>([](auto x) { return abs_of(x); }));
KILN_CPU_KERNEL("", "Neg", unary_kernel<kSignedNumeric>([](auto x) { return -x; }));
KILN_CPU_KERNEL("", "Sign", unary_kernel<kNumericTypes>([](auto x) { return sign_of(x); }));
KILN_CPU_KERNEL("", "Relu",
                unary_kernel<kSignedNumeric>([](auto x) { return x < decltype(x)(0) ? decltype(x)(0) : x; }));
KILN_CPU_KERNEL("", "BitwiseNot", unary_kernel<kIntTypes>([](auto x) { return static_cast<decltype(x)>(~x); }));
KILN_CPU_KERNEL("", "IsNaN", run_is_nan);
KILN_CPU_KERNEL("", "IsInf", run_is_inf);
KILN_CPU_KERNEL("", "Not", run_not);

}  // namespace
}  // namespace kiln
