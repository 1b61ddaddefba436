// Comparisons (to bool), logic on bools, and bitwise ops and shifts on
// integers, as src/backends/cpu/kernels/binary_math.cpp computes them.
#include "backends/cuda/kernels/elementwise_core.cuh"
#include "backends/cuda/kernels/elementwise_ops.cuh"

namespace kiln::cuda {
namespace {

// 16-bit floats compare as floats (exactly their values).
template <typename C>
struct Compare {
  BinaryFn fn;
  __device__ bool operator()(C a, C b) const {
    switch (fn) {
      case BinaryFn::kEqual: return a == b;
      case BinaryFn::kLess: return a < b;
      case BinaryFn::kGreater: return a > b;
      case BinaryFn::kLessOrEqual: return a <= b;
      case BinaryFn::kGreaterOrEqual: return a >= b;
      default: return false;
    }
  }
};

struct Logic {
  BinaryFn fn;
  __device__ bool operator()(bool a, bool b) const {
    switch (fn) {
      case BinaryFn::kAnd: return a && b;
      case BinaryFn::kOr: return a || b;
      default: return a != b;
    }
  }
};

// Shifts by a negative count or by the width or more give 0 (-1 for a
// right shift of a negative value); right shifts of signed values are
// arithmetic.
template <typename C>
struct Bitwise {
  BinaryFn fn;
  __device__ C operator()(C a, C b) const {
    switch (fn) {
      case BinaryFn::kBitwiseAnd: return C(a & b);
      case BinaryFn::kBitwiseOr: return C(a | b);
      case BinaryFn::kBitwiseXor: return C(a ^ b);
      default: break;
    }
    constexpr uint64_t kBits = sizeof(C) * 8;
    const bool left = fn == BinaryFn::kShiftLeft;
    bool out_of_range = static_cast<uint64_t>(b) >= kBits;
    bool negative_a = false;
    if constexpr (std::is_signed_v<C>) {
      out_of_range = out_of_range || b < C(0);
      negative_a = a < C(0);
    }
    if (out_of_range) return (!left && negative_a) ? C(-1) : C(0);
    if (left) return static_cast<C>(wrap_unsigned_t<C>(a) << b);
    return static_cast<C>(a >> b);
  }
};

template <typename F, typename T, typename Y>
Status run_map2(F f, const BinaryFnParams& p, cudaStream_t stream) {
  return launch_map2<F, T, T, Y>(f, p.a, p.a_dims, p.b, p.b_dims, p.y, p.y_dims, stream);
}

}  // namespace

Status launch_compare_fn(const BinaryFnParams& p, cudaStream_t stream) {
  switch (p.fn) {
    case BinaryFn::kEqual:
      if (p.dtype == DType::kBool) return run_map2<Compare<bool>, bool, bool>({p.fn}, p, stream);
      [[fallthrough]];
    case BinaryFn::kLess:
    case BinaryFn::kGreater:
    case BinaryFn::kLessOrEqual:
    case BinaryFn::kGreaterOrEqual:
      KILN_CUDA_DISPATCH_NUMERIC(p.dtype, "comparison",
                                 return run_map2<Compare<compute_of<T>>, T, bool>({p.fn}, p, stream));
      return Status::ok();
    case BinaryFn::kAnd:
    case BinaryFn::kOr:
    case BinaryFn::kXor:
      if (p.dtype != DType::kBool) return unsupported("logic op: dtype {} (bool only)", dtype_name(p.dtype));
      return run_map2<Logic, bool, bool>({p.fn}, p, stream);
    case BinaryFn::kBitwiseAnd:
    case BinaryFn::kBitwiseOr:
    case BinaryFn::kBitwiseXor:
    case BinaryFn::kShiftLeft:
    case BinaryFn::kShiftRight:
      KILN_CUDA_DISPATCH_INT(p.dtype, "bitwise op", return run_map2<Bitwise<T>, T, T>({p.fn}, p, stream));
      return Status::ok();
    default: return internal_error("binary elementwise op {} has no kernel", static_cast<int>(p.fn));
  }
}

}  // namespace kiln::cuda
