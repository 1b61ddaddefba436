// Binary arithmetic (Add Sub Mul Div Mod Max Min, Mean of two, PRelu), Pow
// with an exponent of any numeric dtype, and SwiGLU; the entry point of every
// BinaryFn (comparisons and bitwise ops are in elementwise_compare.cu). The
// element functions follow src/backends/cpu/kernels/binary_math.cpp.
#include <cmath>

#include "backends/cuda/kernels/elementwise_core.cuh"
#include "backends/cuda/kernels/elementwise_ops.cuh"

namespace kiln::cuda {

Status launch_compare_fn(const BinaryFnParams& p, cudaStream_t stream);  // elementwise_compare.cu

namespace {

template <typename C>
__device__ __forceinline__ bool is_negative(C v) {
  if constexpr (std::is_unsigned_v<C>)
    return false;
  else
    return v < C(0);
}

// Integer division truncates toward zero; MIN / -1 wraps; x / 0 is 0 (the
// CPU reports an error instead, which a kernel cannot).
template <typename C>
__device__ __forceinline__ C divide(C a, C b) {
  if constexpr (std::is_floating_point_v<C>) {
    return a / b;
  } else {
    if (b == C(0)) return C(0);
    if constexpr (std::is_signed_v<C>) {
      if (b == C(-1)) return wrap_sub(C(0), a);
    }
    return static_cast<C>(a / b);
  }
}

// fmod: the dividend's sign (C's fmod and %); otherwise the divisor's (numpy's mod).
template <typename C>
__device__ __forceinline__ C modulo(C a, C b, bool fmod_sign) {
  if constexpr (std::is_floating_point_v<C>) {
    const C r = fmod(a, b);
    if (fmod_sign) return r;
    return (r != C(0) && ((r < C(0)) != (b < C(0)))) ? r + b : r;
  } else {
    if (b == C(0)) return C(0);
    if constexpr (std::is_signed_v<C>) {
      if (b == C(-1)) return C(0);
      const C r = static_cast<C>(a % b);
      return (!fmod_sign && r != 0 && ((r < 0) != (b < 0))) ? static_cast<C>(r + b) : r;
    } else {
      return static_cast<C>(a % b);
    }
  }
}

template <typename C>
__device__ __forceinline__ bool is_nan(C v) {
  if constexpr (std::is_floating_point_v<C>)
    return v != v;
  else
    return false;
}

template <typename C>
struct Arith {
  BinaryFn fn;
  __device__ C operator()(C a, C b) const {
    switch (fn) {
      case BinaryFn::kAdd: return wrap_add(a, b);
      case BinaryFn::kSub: return wrap_sub(a, b);
      case BinaryFn::kMul: return wrap_mul(a, b);
      case BinaryFn::kDiv: return divide(a, b);
      case BinaryFn::kMod: return modulo(a, b, false);
      case BinaryFn::kFmod: return modulo(a, b, true);
      case BinaryFn::kMax: return is_nan(a) ? a : (is_nan(b) ? b : (a < b ? b : a));  // NaN propagates
      case BinaryFn::kMin: return is_nan(a) ? a : (is_nan(b) ? b : (b < a ? b : a));
      case BinaryFn::kMean2: return wrap_add(a, b) / C(2);
      case BinaryFn::kPRelu: return is_negative(a) ? wrap_mul(b, a) : a;
      default: return a;
    }
  }
};

// Each step rounded to the storage type T, as the CPU kernel computes it.
template <typename T>
struct SwiGluFn {
  using C = compute_of<T>;
  double alpha;
  __device__ __forceinline__ static C r(C v) { return widen(narrow<T>(v)); }
  __device__ C operator()(C x, C b) const {
    const C sig = r(C(1) / r(C(1) + r(exp(r(static_cast<C>(-alpha) * x)))));
    return r(r(x * sig) * b);
  }
};

// ---- Pow -----------------------------------------------------------------------

// An exponent of any numeric dtype: integers keep their exact value (as
// two's-complement bits and a sign), floats widen to double.
struct Exponent {
  bool is_int, negative;
  uint64_t bits;
  double value;
};

template <typename Y>
__device__ __forceinline__ Exponent exponent_of(Y v) {
  if constexpr (std::is_integral_v<Y>)
    return {true, is_negative(v), static_cast<uint64_t>(v), static_cast<double>(v)};
  else
    return {false, false, 0, static_cast<double>(widen(v))};
}

__device__ __forceinline__ Exponent load_exponent(const void* p, DType t, int64_t i) {
  switch (t) {
    case DType::kF32: return exponent_of(static_cast<const float*>(p)[i]);
    case DType::kF64: return exponent_of(static_cast<const double*>(p)[i]);
    case DType::kF16: return exponent_of(static_cast<const __half*>(p)[i]);
    case DType::kBF16: return exponent_of(static_cast<const __nv_bfloat16*>(p)[i]);
    case DType::kI8: return exponent_of(static_cast<const int8_t*>(p)[i]);
    case DType::kI16: return exponent_of(static_cast<const int16_t*>(p)[i]);
    case DType::kI32: return exponent_of(static_cast<const int32_t*>(p)[i]);
    case DType::kI64: return exponent_of(static_cast<const int64_t*>(p)[i]);
    case DType::kU8: return exponent_of(static_cast<const uint8_t*>(p)[i]);
    case DType::kU16: return exponent_of(static_cast<const uint16_t*>(p)[i]);
    case DType::kU32: return exponent_of(static_cast<const uint32_t*>(p)[i]);
    default: return exponent_of(static_cast<const uint64_t*>(p)[i]);
  }
}

// Integer powers of integers stay exact (wrapping); anything with a float
// computes in double; an integer base with a non-finite result gives 0.
template <typename X>
__device__ X power(X x, Exponent e) {
  if constexpr (std::is_integral_v<X>) {
    if (e.is_int) {
      if (e.negative) return x == X(1) ? X(1) : (x == X(-1) ? ((e.bits & 1) ? X(-1) : X(1)) : X(0));
      X result(1), base = x;
      for (uint64_t k = e.bits; k; k >>= 1) {
        if (k & 1) result = wrap_mul(result, base);
        base = wrap_mul(base, base);
      }
      return result;
    }
    const double r = pow(static_cast<double>(x), e.value);
    return isfinite(r) ? static_cast<X>(r) : X(0);
  } else {
    return narrow<X>(pow(static_cast<double>(widen(x)), e.value));
  }
}

template <typename X>
struct PowOp {
  const X* x;
  const void* e;
  DType e_dtype;
  X* y;
  template <typename I>
  __device__ __forceinline__ void operator()(I i, const I (&off)[2]) const {
    y[i] = power(x[off[0]], load_exponent(e, e_dtype, int64_t(off[1])));
  }
};

template <typename T>
Status run_pow(const BinaryFnParams& p, cudaStream_t stream) {
  const int64_t n = product(p.y_dims, 0, p.y_dims.size());
  if (n == 0) return Status::ok();
  KILN_ASSIGN_OR_RETURN(CollapsedShape c, collapse_shapes(p.y_dims, {p.a_dims, p.b_dims}));
  PowOp<T> op{static_cast<const T*>(p.a), p.b, p.b_dtype, static_cast<T*>(p.y)};
  return launch_broadcast_op<2>(op, c, n, stream);
}

bool is_numeric(DType t) { return is_compute_float(t) || is_byte_integer(t); }

bool is_float_dtype(DType t) { return t == DType::kF32 || t == DType::kF16 || t == DType::kBF16 || t == DType::kF64; }

template <typename F, typename T>
Status run_same_type(F f, const BinaryFnParams& p, cudaStream_t stream) {
  return launch_map2<F, T, T, T>(f, p.a, p.a_dims, p.b, p.b_dims, p.y, p.y_dims, stream);
}

}  // namespace

Status launch_binary_fn(const BinaryFnParams& p, cudaStream_t stream) {
  switch (p.fn) {
    case BinaryFn::kPow:
      if (!is_numeric(p.b_dtype)) return unsupported("Pow: exponent dtype {}", dtype_name(p.b_dtype));
      KILN_CUDA_DISPATCH_NUMERIC(p.dtype, "Pow", return run_pow<T>(p, stream));
      return Status::ok();
    case BinaryFn::kSwiGLU:
      KILN_CUDA_DISPATCH_FLOAT64(p.dtype, "SwiGLU", return run_same_type<SwiGluFn<T>, T>({p.alpha}, p, stream));
      return Status::ok();
    case BinaryFn::kMean2:
      if (!is_float_dtype(p.dtype)) return unsupported("Mean: dtype {} (floats only)", dtype_name(p.dtype));
      [[fallthrough]];
    case BinaryFn::kAdd:
    case BinaryFn::kSub:
    case BinaryFn::kMul:
    case BinaryFn::kDiv:
    case BinaryFn::kMod:
    case BinaryFn::kFmod:
    case BinaryFn::kMax:
    case BinaryFn::kMin:
    case BinaryFn::kPRelu:
      KILN_CUDA_DISPATCH_NUMERIC(p.dtype, "elementwise arithmetic",
                                 return run_same_type<Arith<compute_of<T>>, T>({p.fn}, p, stream));
      return Status::ok();
    default: return launch_compare_fn(p, stream);
  }
}

}  // namespace kiln::cuda
