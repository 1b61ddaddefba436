// Unary elementwise ops: one functor per family (float math and activations,
// integer ops, predicates, Shrink, Clip) carrying the op as a runtime enum:
// it is uniform across the grid, so the switch costs little, and one kernel a
// dtype keeps the instantiations few. Each expression follows the CPU
// kernel's (src/backends/cpu/kernels/unary_math.cpp, activation.cpp),
// including how NaN passes through its comparisons.
#include <cmath>
#include <limits>

#include "backends/cuda/kernels/elementwise_core.cuh"
#include "backends/cuda/kernels/elementwise_ops.cuh"

namespace kiln::cuda {
namespace {

// std::max / std::min as the CPU calls them (max(0, NaN) is 0, min(1, NaN) is 1).
template <typename C>
__device__ __forceinline__ C std_max(C a, C b) {
  return a < b ? b : a;
}
template <typename C>
__device__ __forceinline__ C std_min(C a, C b) {
  return b < a ? b : a;
}

template <typename C>
__device__ __forceinline__ C softplus(C x) {
  return x > C(0) ? x + log1p(exp(-x)) : log1p(exp(x));
}

// C is float (f32, f16, bf16) or double (f64); the math functions resolve to
// their float overloads for float.
template <typename C>
struct FloatUnary {
  UnaryFn fn;
  float alpha, beta, gamma;

  __device__ C operator()(C x) const {
    const C a = C(alpha);
    switch (fn) {
      case UnaryFn::kReciprocal: return C(1) / x;
      case UnaryFn::kFloor: return floor(x);
      case UnaryFn::kCeil: return ceil(x);
      case UnaryFn::kSqrt: return sqrt(x);
      case UnaryFn::kExp: return exp(x);
      case UnaryFn::kLog: return log(x);
      case UnaryFn::kTanh: return tanh(x);
      case UnaryFn::kSigmoid: {
        if (x >= C(0)) return C(1) / (C(1) + exp(-x));
        const C e = exp(x);
        return e / (C(1) + e);
      }
      case UnaryFn::kSin: return sin(x);
      case UnaryFn::kCos: return cos(x);
      case UnaryFn::kTan: return tan(x);
      case UnaryFn::kAsin: return asin(x);
      case UnaryFn::kAcos: return acos(x);
      case UnaryFn::kAtan: return atan(x);
      case UnaryFn::kSinh: return sinh(x);
      case UnaryFn::kCosh: return cosh(x);
      case UnaryFn::kAsinh: return asinh(x);
      case UnaryFn::kAcosh: return acosh(x);
      case UnaryFn::kAtanh: return atanh(x);
      case UnaryFn::kErf: return erf(x);
      case UnaryFn::kRound: return rint(x);  // round-to-nearest-even, like the CPU's nearbyint
      case UnaryFn::kSoftsign: return x / (C(1) + fabs(x));
      case UnaryFn::kSoftplus: return softplus(x);
      case UnaryFn::kLeakyRelu: return x < C(0) ? a * x : x;
      case UnaryFn::kElu: return x < C(0) ? a * (exp(x) - C(1)) : x;
      case UnaryFn::kSelu: return x <= C(0) ? C(gamma) * (a * exp(x) - a) : C(gamma) * x;
      case UnaryFn::kCelu: return std_max(C(0), x) + std_min(C(0), a * (exp(x / a) - C(1)));
      case UnaryFn::kHardSigmoid: return std_max(C(0), std_min(C(1), a * x + C(beta)));
      case UnaryFn::kHardSwish: return x * std_max(C(0), std_min(C(1), x / C(6) + C(0.5)));
      case UnaryFn::kMish: return x * tanh(softplus(x));
      case UnaryFn::kGelu: return C(0.5) * x * (C(1) + erf(x / sqrt(C(2))));
      case UnaryFn::kGeluTanh: {
        const C k = sqrt(C(2) / C(M_PI));
        return C(0.5) * x * (C(1) + tanh(k * (x + C(0.044715) * x * x * x)));
      }
      case UnaryFn::kThresholdedRelu: return x > a ? x : C(0);
      case UnaryFn::kSwish: return x / (C(1) + exp(-a * x));
      case UnaryFn::kAbs: return fabs(x);
      case UnaryFn::kNeg: return -x;
      case UnaryFn::kSign: return x != x ? x : (x > C(0) ? C(1) : (x < C(0) ? C(-1) : C(0)));
      case UnaryFn::kRelu: return x < C(0) ? C(0) : x;
      default: return x;
    }
  }
};

// Integers compute in their own type; results wrap (Abs and Neg of the most
// negative value give it back).
template <typename C>
struct IntUnary {
  UnaryFn fn;

  __device__ C operator()(C x) const {
    switch (fn) {
      case UnaryFn::kAbs:
        if constexpr (std::is_signed_v<C>)
          return x < C(0) ? wrap_sub(C(0), x) : x;
        else
          return x;
      case UnaryFn::kNeg: return wrap_sub(C(0), x);
      case UnaryFn::kSign:
        if constexpr (std::is_signed_v<C>)
          return x > C(0) ? C(1) : (x < C(0) ? C(-1) : C(0));
        else
          return x > C(0) ? C(1) : C(0);
      case UnaryFn::kRelu:
        if constexpr (std::is_signed_v<C>)
          return x < C(0) ? C(0) : x;
        else
          return x;
      case UnaryFn::kBitwiseNot: return C(~x);
      default: return x;
    }
  }
};

// Shrink compares and offsets in double, then converts to the compute type.
template <typename C>
struct ShrinkFn {
  double lambd, bias;
  __device__ C operator()(C x) const {
    const double d = static_cast<double>(x);
    if (d < -lambd) return static_cast<C>(d + bias);
    if (d > lambd) return static_cast<C>(d - bias);
    return C(0);
  }
};

template <typename C>
struct FloatPredicate {
  UnaryFn fn;
  bool pos, neg;
  __device__ bool operator()(C x) const {
    if (fn == UnaryFn::kIsNaN) return x != x;
    return isinf(x) && ((x > C(0) && pos) || (x < C(0) && neg));
  }
};

struct NotFn {
  __device__ bool operator()(bool x) const { return !x; }
};

// Clip's bound k: absent -> the compute type's limit; x's dtype -> read as
// such; another dtype -> through double (the CPU's element_as_double).
template <typename T>
struct ClipFn {
  using C = compute_of<T>;
  const void* bound[2];
  bool same[2];
  DType dtype[2];
  C fallback[2];

  __device__ __forceinline__ C bound_value(int k) const {
    if (!bound[k]) return fallback[k];
    if (same[k]) return widen(*static_cast<const T*>(bound[k]));
    return static_cast<C>(load_as_double(bound[k], dtype[k], 0));
  }
  __device__ C operator()(C x) const {
    const C lo = bound_value(0), hi = bound_value(1);
    x = x < lo ? lo : x;  // NaN stays NaN; min > max gives max
    return x > hi ? hi : x;
  }
};

bool is_float_dtype(DType t) { return t == DType::kF32 || t == DType::kF16 || t == DType::kBF16 || t == DType::kF64; }

bool takes_integers(UnaryFn fn) {
  return fn == UnaryFn::kAbs || fn == UnaryFn::kNeg || fn == UnaryFn::kSign || fn == UnaryFn::kRelu ||
         fn == UnaryFn::kBitwiseNot || fn == UnaryFn::kShrink;
}

template <typename T>
Status run_float_unary(const UnaryFnParams& p, cudaStream_t s) {
  using C = compute_of<T>;
  if (p.fn == UnaryFn::kIsNaN || p.fn == UnaryFn::kIsInf)
    return launch_map1<T, bool>(FloatPredicate<C>{p.fn, p.detect_positive, p.detect_negative}, p.x, p.y, p.n, s);
  if (p.fn == UnaryFn::kShrink) return launch_map1<T, T>(ShrinkFn<C>{p.alpha, p.beta}, p.x, p.y, p.n, s);
  return launch_map1<T, T>(FloatUnary<C>{p.fn, p.alpha, p.beta, p.gamma}, p.x, p.y, p.n, s);
}

template <typename T>
Status run_int_unary(const UnaryFnParams& p, cudaStream_t s) {
  if (p.fn == UnaryFn::kShrink) return launch_map1<T, T>(ShrinkFn<T>{p.alpha, p.beta}, p.x, p.y, p.n, s);
  return launch_map1<T, T>(IntUnary<T>{p.fn}, p.x, p.y, p.n, s);
}

template <typename T>
Status run_clip(const ClipParams& p, cudaStream_t s) {
  using C = compute_of<T>;
  ClipFn<T> f{{p.min, p.max},
              {p.min_dtype == p.dtype, p.max_dtype == p.dtype},
              {p.min_dtype, p.max_dtype},
              {std::numeric_limits<C>::lowest(), std::numeric_limits<C>::max()}};
  return launch_map1<T, T>(f, p.x, p.y, p.n, s);
}

}  // namespace

Status launch_unary_fn(const UnaryFnParams& p, cudaStream_t stream) {
  const char* what = "elementwise unary";
  if (p.fn == UnaryFn::kNot) {
    if (p.dtype != DType::kBool) return unsupported("Not: dtype {} (bool only)", dtype_name(p.dtype));
    return launch_map1<bool, bool>(NotFn{}, p.x, p.y, p.n, stream);
  }
  if (is_float_dtype(p.dtype)) {
    if (p.fn == UnaryFn::kBitwiseNot) return unsupported("BitwiseNot: dtype {}", dtype_name(p.dtype));
    KILN_CUDA_DISPATCH_FLOAT64(p.dtype, what, return run_float_unary<T>(p, stream));
  }
  if (!takes_integers(p.fn)) return unsupported("{}: dtype {} (floats only)", what, dtype_name(p.dtype));
  KILN_CUDA_DISPATCH_INT(p.dtype, what, return run_int_unary<T>(p, stream));
  return Status::ok();
}

Status launch_clip(const ClipParams& p, cudaStream_t stream) {
  KILN_CUDA_DISPATCH_NUMERIC(p.dtype, "Clip", return run_clip<T>(p, stream));
  return Status::ok();
}

}  // namespace kiln::cuda
