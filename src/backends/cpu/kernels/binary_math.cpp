// Binary elementwise kernels with numpy broadcasting: arithmetic, Pow, Mod,
// bit shifts and bitwise ops, comparisons and logic, and the variadic
// Sum/Mean/Max/Min. Signed integer arithmetic wraps (two's complement) like
// numpy instead of being undefined; integer division by zero is an error.
#include <cmath>
#include <limits>
#include <type_traits>

#include "backends/cpu/kernels/elementwise_apply.h"

namespace kiln {
namespace {

template <typename C>
constexpr bool kIsSignedInt = std::is_integral_v<C>&& std::is_signed_v<C>;

template <typename C>
using wide_unsigned_t = std::make_unsigned_t<std::conditional_t<std::is_same_v<C, bool>, uint8_t, C>>;

template <typename C>
C wrap_add(C a, C b) {
  if constexpr (kIsSignedInt<C>)
    return static_cast<C>(static_cast<wide_unsigned_t<C>>(a) + static_cast<wide_unsigned_t<C>>(b));
  else
    return static_cast<C>(a + b);
}
template <typename C>
C wrap_sub(C a, C b) {
  if constexpr (kIsSignedInt<C>)
    return static_cast<C>(static_cast<wide_unsigned_t<C>>(a) - static_cast<wide_unsigned_t<C>>(b));
  else
    return static_cast<C>(a - b);
}
template <typename C>
C wrap_mul(C a, C b) {
  if constexpr (kIsSignedInt<C>) {
    return static_cast<C>(static_cast<wide_unsigned_t<C>>(a) * static_cast<wide_unsigned_t<C>>(b));
  } else if constexpr (std::is_same_v<C, uint16_t> || std::is_same_v<C, uint8_t>) {
    return static_cast<C>(static_cast<uint32_t>(a) * static_cast<uint32_t>(b));  // no promotion to signed int
  } else {
    return static_cast<C>(a * b);
  }
}

// Integer division truncates toward zero (C++ and the ONNX spec); MIN / -1 wraps.
template <typename C>
C divide(C a, C b) {
  if constexpr (std::is_floating_point_v<C>)
    return a / b;
  else if constexpr (kIsSignedInt<C>)
    return b == C(-1) ? wrap_sub(C(0), a) : static_cast<C>(a / b);
  else
    return static_cast<C>(a / b);
}

// Mod: fmod=1 takes the dividend's sign (C's fmod and %), fmod=0 the divisor's (numpy's mod).
template <typename C>
C modulo(C a, C b, bool fmod) {
  if constexpr (std::is_floating_point_v<C>) {
    if (fmod) return std::fmod(a, b);
    C r = std::fmod(a, b);
    return (r != C(0) && ((r < C(0)) != (b < C(0)))) ? r + b : r;
  } else if constexpr (kIsSignedInt<C>) {
    if (b == C(-1)) return C(0);
    C r = static_cast<C>(a % b);
    return (!fmod && r != 0 && ((r < 0) != (b < 0))) ? static_cast<C>(r + b) : r;
  } else {
    return static_cast<C>(a % b);
  }
}

template <typename C>
C max_of(C a, C b) {
  if (a != a) return a;  // NaN propagates (numpy's maximum)
  if (b != b) return b;
  return a < b ? b : a;
}
template <typename C>
C min_of(C a, C b) {
  if (a != a) return a;
  if (b != b) return b;
  return b < a ? b : a;
}

template <typename T>
Status require_no_zero(const CpuKernelContext& ctx, const Tensor& b) {
  if constexpr (std::is_integral_v<T>) {
    const T* p = b.data<T>();
    for (int64_t i = 0; i < b.numel(); ++i)
      if (p[i] == T(0)) return make_error(ErrorCode::kOutOfRange, "{}: integer division by zero", ctx.node().op_type);
  }
  return Status::ok();
}

// out = f(a, b) in compute_t<T>; both inputs and the output have dtype T.
template <DTypeSet kTypes, bool kNoZeroDivisor = false, typename F>
CpuKernelFn binary_kernel(F f) {
  return [f](CpuKernelContext& ctx) -> Status {
    const Tensor &a = ctx.input(0), &b = ctx.input(1);
    KILN_ASSIGN_OR_RETURN(Tensor * out, ctx.allocate_output(0));
    return visit_dtype_in<kTypes>(a.dtype(), [&]<typename T>() {
      if constexpr (kNoZeroDivisor) KILN_RETURN_IF_ERROR(require_no_zero<T>(ctx, b));
      using C = compute_t<T>;
      map_broadcast<T, T, T>(a, b, *out,
                             [&](T x, T y) { return convert_to<T>(f(convert_to<C>(x), convert_to<C>(y))); });
      return Status::ok();
    });
  };
}

// out = f(a, b) as bool; inputs of one dtype T.
template <DTypeSet kTypes, typename F>
CpuKernelFn compare_kernel(F f) {
  return [f](CpuKernelContext& ctx) -> Status {
    const Tensor &a = ctx.input(0), &b = ctx.input(1);
    KILN_ASSIGN_OR_RETURN(Tensor * out, ctx.allocate_output(0));
    return visit_dtype_in<kTypes>(a.dtype(), [&]<typename T>() {
      using C = compute_t<T>;
      map_broadcast<T, T, bool>(a, b, *out, [&](T x, T y) { return f(convert_to<C>(x), convert_to<C>(y)); });
      return Status::ok();
    });
  };
}

Status run_equal(CpuKernelContext& ctx) {
  const Tensor &a = ctx.input(0), &b = ctx.input(1);
  if (a.dtype() != DType::kString) return compare_kernel<kAllPlainTypes>([](auto x, auto y) { return x == y; })(ctx);
  KILN_ASSIGN_OR_RETURN(Tensor * out, ctx.allocate_output(0));
  bool* po = out->mutable_data<bool>();
  BroadcastWalker w(out->dims(), {broadcast_strides(a.dims(), out->dims()), broadcast_strides(b.dims(), out->dims())});
  for (int64_t i = 0; i < out->numel(); ++i, w.next()) po[i] = a.strings()[w.offset(0)] == b.strings()[w.offset(1)];
  return Status::ok();
}

// Integer powers stay exact; anything with a float computes in double.
template <typename X, typename Y>
X power(X x, Y y) {
  if constexpr (std::is_integral_v<compute_t<X>> && std::is_integral_v<Y>) {
    if constexpr (std::is_signed_v<Y>) {
      if (y < 0) return x == X(1) ? X(1) : (x == X(-1) ? ((y % 2) ? X(-1) : X(1)) : X(0));
    }
    X result(1), base = x;
    for (auto e = static_cast<uint64_t>(y); e; e >>= 1) {
      if (e & 1) result = wrap_mul(result, base);
      base = wrap_mul(base, base);
    }
    return result;
  } else {
    double r = std::pow(convert_to<double>(x), convert_to<double>(y));
    if constexpr (std::is_integral_v<X>) {
      if (!std::isfinite(r)) return X(0);
    }
    return convert_to<X>(r);
  }
}

Status run_pow(CpuKernelContext& ctx) {
  const Tensor &a = ctx.input(0), &b = ctx.input(1);
  KILN_ASSIGN_OR_RETURN(Tensor * out, ctx.allocate_output(0));
  return visit_dtype_in<kNumericTypes>(a.dtype(), [&]<typename X>() {
    return visit_dtype_in<kNumericTypes>(b.dtype(), [&]<typename Y>() {
      map_broadcast<X, Y, X>(a, b, *out, [](X x, Y y) { return power(x, y); });
      return Status::ok();
    });
  });
}

Status run_mod(CpuKernelContext& ctx) {
  bool fmod = ctx.node().attr_int("fmod", 0) != 0;
  auto fn = binary_kernel<kNumericTypes, true>([fmod](auto x, auto y) { return modulo(x, y, fmod); });
  return fn(ctx);
}

template <typename C>
C shift(C a, C b, bool left) {
  constexpr int kBits = sizeof(C) * 8;
  using U = wide_unsigned_t<C>;
  if (b < C(0) || static_cast<uint64_t>(b) >= kBits) return (!left && a < C(0)) ? C(-1) : C(0);
  if (left) return static_cast<C>(static_cast<U>(static_cast<U>(a) << b));
  return static_cast<C>(a >> b);  // arithmetic for signed (C++20)
}

Status run_bitshift(CpuKernelContext& ctx) {
  bool left = ctx.node().attr_string("direction", "") == "LEFT";
  auto fn = binary_kernel<kIntTypes>([left](auto x, auto y) { return shift(x, y, left); });
  return fn(ctx);
}

// Sum, Mean, Max, Min over any number of broadcast inputs.
template <DTypeSet kTypes, typename Step>
CpuKernelFn variadic_kernel(Step step, bool mean = false) {
  return [step, mean](CpuKernelContext& ctx) -> Status {
    std::vector<const Tensor*> ins;
    for (size_t i = 0; i < ctx.num_inputs(); ++i)
      if (ctx.has_input(i)) ins.push_back(&ctx.input(i));
    KILN_ASSIGN_OR_RETURN(Tensor * out, ctx.allocate_output(0));
    return visit_dtype_in<kTypes>(ins[0]->dtype(), [&]<typename T>() {
      using C = compute_t<T>;
      auto n = static_cast<C>(ins.size());
      fold_broadcast<T>(ins, *out, step, [&](C acc) { return mean ? acc / n : acc; });
      return Status::ok();
    });
  };
}

constexpr DTypeSet kSignedNumeric = kFloatTypes | kSignedIntTypes;
constexpr DTypeSet kBoolType = dtype_bit(DType::kBool);
auto add_fn = [](auto x, auto y) { return wrap_add(x, y); };

KILN_CPU_KERNEL("", "Add", binary_kernel<kNumericTypes>(add_fn));
KILN_CPU_KERNEL("", "Sub", binary_kernel<kNumericTypes>([](auto x, auto y) { return wrap_sub(x, y); }));
KILN_CPU_KERNEL("", "Mul", binary_kernel<kNumericTypes>([](auto x, auto y) { return wrap_mul(x, y); }));
KILN_CPU_KERNEL("", "Div", (binary_kernel<kNumericTypes, true>([](auto x, auto y) { return divide(x, y); })));
KILN_CPU_KERNEL("", "Pow", run_pow);
KILN_CPU_KERNEL("", "Mod", run_mod);
KILN_CPU_KERNEL("", "BitShift", run_bitshift);
KILN_CPU_KERNEL("", "BitwiseAnd", binary_kernel<kIntTypes>([](auto x, auto y) { return x & y; }));
KILN_CPU_KERNEL("", "BitwiseOr", binary_kernel<kIntTypes>([](auto x, auto y) { return x | y; }));
KILN_CPU_KERNEL("", "BitwiseXor", binary_kernel<kIntTypes>([](auto x, auto y) { return x ^ y; }));
KILN_CPU_KERNEL("", "Equal", run_equal);
KILN_CPU_KERNEL("", "Less", compare_kernel<kNumericTypes>([](auto x, auto y) { return x < y; }));
KILN_CPU_KERNEL("", "Greater", compare_kernel<kNumericTypes>([](auto x, auto y) { return x > y; }));
KILN_CPU_KERNEL("", "LessOrEqual", compare_kernel<kNumericTypes>([](auto x, auto y) { return x <= y; }));
KILN_CPU_KERNEL("", "GreaterOrEqual", compare_kernel<kNumericTypes>([](auto x, auto y) { return x >= y; }));
KILN_CPU_KERNEL("", "And", compare_kernel<kBoolType>([](bool x, bool y) { return x && y; }));
KILN_CPU_KERNEL("", "Or", compare_kernel<kBoolType>([](bool x, bool y) { return x || y; }));
KILN_CPU_KERNEL("", "Xor", compare_kernel<kBoolType>([](bool x, bool y) { return x != y; }));
KILN_CPU_KERNEL("", "Sum", variadic_kernel<kNumericTypes>(add_fn));
KILN_CPU_KERNEL("", "Mean", variadic_kernel<kFloatTypes>(add_fn, true));
KILN_CPU_KERNEL("", "Max", variadic_kernel<kNumericTypes>([](auto x, auto y) { return max_of(x, y); }));
KILN_CPU_KERNEL("", "Min", variadic_kernel<kNumericTypes>([](auto x, auto y) { return min_of(x, y); }));

}  // namespace
}  // namespace kiln
