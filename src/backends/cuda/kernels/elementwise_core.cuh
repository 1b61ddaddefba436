// The generic elementwise machinery behind kiln's registered elementwise ops
// (included by .cu files only). An op is a small device functor on compute
// values (float for the 16-bit floats, the element type otherwise); the
// launchers here walk the elements:
//   - map1: y[i] = f(x[i]), 128-bit packs when the pointers allow;
//   - map2: y = f(a, b) with numpy broadcasting. Broadcast shapes are first
//     collapsed (adjacent dims with the same broadcast pattern merge); when
//     the result is rank <= 2, every operand is full, a scalar, a row
//     (repeating with a period) or a column (one value per row), and a
//     kernel without per-dim division runs, in 128-bit packs when aligned.
//     A rank-3 result [outer, mid, inner] where one operand is full and the
//     other is [outer, 1, inner] (a squeeze-excitation scale [N,1,1,C]
//     against channels-last [N,H,W,C]) runs a kernel with one division per
//     thread, in packs when inner is whole packs and the pointers aligned.
//     Anything else finds each operand's element through per-dim strides
//     computed on the host (0 where broadcast);
//   - broadcast_kernel: the strided walk for any number of operands, with the
//     op reading and writing through the offsets (Where, variadic folds, Pow).
#pragma once

#include <algorithm>
#include <type_traits>

#include "backends/cuda/kernels/common.cuh"

namespace kiln::cuda {

// ---- compute types -----------------------------------------------------------

template <typename T>
struct ComputeOf {
  using type = T;
};
template <>
struct ComputeOf<__half> {
  using type = float;
};
template <>
struct ComputeOf<__nv_bfloat16> {
  using type = float;
};
template <typename T>
using compute_of = typename ComputeOf<T>::type;

template <typename T>
__device__ __forceinline__ compute_of<T> widen(T v) {
  if constexpr (kIs16BitFloat<T>)
    return to_float(v);
  else
    return v;
}

// A compute value stored as T: 16-bit floats round from float (a double
// first rounds to float, as the CPU's Half(double) does), others convert.
template <typename T, typename C>
__device__ __forceinline__ T narrow(C v) {
  if constexpr (kIs16BitFloat<T>)
    return from_float<T>(static_cast<float>(v));
  else
    return static_cast<T>(v);
}

// ---- launch geometry ---------------------------------------------------------

constexpr int kEwBlock = 256;

template <typename... Ts>
constexpr int pack_width() {
  constexpr size_t widest = std::max({sizeof(Ts)...});
  return static_cast<int>(16 / widest);
}

// How one operand of a rank <= 2 collapsed broadcast is read at output index i.
enum class SideMode : uint8_t {
  kFull,    // element i
  kScalar,  // element 0
  kRow,     // element i % period: a row repeated over the outer dim
  kCol,     // element i / period: one value per row of `period` elements
};
struct Side {
  SideMode mode = SideMode::kFull;
  int64_t period = 1;
};

__device__ __forceinline__ int64_t side_index(Side s, int64_t i) {
  switch (s.mode) {
    case SideMode::kFull: return i;
    case SideMode::kScalar: return 0;
    case SideMode::kRow: return i % s.period;
    case SideMode::kCol: return i / s.period;
  }
  return i;
}

// The N elements of pack p (elements p*N .. p*N+N-1) as seen by this side.
// Row and column sides have periods that are whole packs (the host checks).
template <typename T, int N>
__device__ __forceinline__ Pack<T, N> load_side_pack(const T* base, Side s, int64_t p) {
  Pack<T, N> out;
  if (s.mode == SideMode::kFull || s.mode == SideMode::kRow) {
    const int64_t q = s.mode == SideMode::kFull ? p : p % (s.period / N);
    out = reinterpret_cast<const Pack<T, N>*>(base)[q];
  } else {
    const T v = base[s.mode == SideMode::kScalar ? 0 : p * N / s.period];
#pragma unroll
    for (int k = 0; k < N; ++k) out.v[k] = v;
  }
  return out;
}

// ---- kernels -----------------------------------------------------------------

// `packed`: x and y are aligned for packs of N; the tail (and everything,
// when not packed) goes one element a thread.
template <typename F, typename X, typename Y>
__global__ void map1_kernel(F f, const X* x, Y* y, int64_t n, bool packed) {  // may run in place
  constexpr int N = pack_width<X, Y>();
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  const int64_t tid = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t packs = packed ? n / N : 0;
  for (int64_t p = tid; p < packs; p += stride) {
    const Pack<X, N> px = reinterpret_cast<const Pack<X, N>*>(x)[p];
    Pack<Y, N> py;
#pragma unroll
    for (int k = 0; k < N; ++k) py.v[k] = narrow<Y>(f(widen(px.v[k])));
    reinterpret_cast<Pack<Y, N>*>(y)[p] = py;
  }
  for (int64_t i = packs * N + tid; i < n; i += stride) y[i] = narrow<Y>(f(widen(x[i])));
}

template <typename F, typename A, typename B, typename Y>
__global__ void map2_fast_kernel(F f, const A* __restrict__ a, Side sa, const B* __restrict__ b, Side sb,
                                 Y* __restrict__ y, int64_t n, bool packed) {
  constexpr int N = pack_width<A, B, Y>();
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  const int64_t tid = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t packs = packed ? n / N : 0;
  for (int64_t p = tid; p < packs; p += stride) {
    const Pack<A, N> pa = load_side_pack<A, N>(a, sa, p);
    const Pack<B, N> pb = load_side_pack<B, N>(b, sb, p);
    Pack<Y, N> py;
#pragma unroll
    for (int k = 0; k < N; ++k) py.v[k] = narrow<Y>(f(widen(pa.v[k]), widen(pb.v[k])));
    reinterpret_cast<Pack<Y, N>*>(y)[p] = py;
  }
  for (int64_t i = packs * N + tid; i < n; i += stride)
    y[i] = narrow<Y>(f(widen(a[side_index(sa, i)]), widen(b[side_index(sb, i)])));
}

// [outer, mid, inner] with one operand full and the other [outer, 1, inner],
// in units of packs (packed) or elements: a thread owns one unit q of an
// outer slice (slice = mid * inner units) and walks the outer index by
// blockIdx.y, so the broadcast operand's unit q % inner is divided out once.
struct MidBroadcast {
  int64_t outer = 1;
  uint32_t slice = 1, inner = 1;
  bool a_is_mid = false;  // which operand is [outer, 1, inner]
  bool packed = false;
};

template <typename F, typename A, typename B, typename Y>
__global__ void map2_mid_kernel(F f, const A* __restrict__ a, const B* __restrict__ b, Y* __restrict__ y,
                                MidBroadcast g) {
  constexpr int N = pack_width<A, B, Y>();
  const uint32_t q = blockIdx.x * blockDim.x + threadIdx.x;
  if (q >= g.slice) return;
  const uint32_t r = q % g.inner;
  for (int64_t o = blockIdx.y; o < g.outer; o += gridDim.y) {
    const int64_t full = o * g.slice + q, mid = o * g.inner + r;
    const int64_t ia = g.a_is_mid ? mid : full, ib = g.a_is_mid ? full : mid;
    if (g.packed) {
      const Pack<A, N> pa = reinterpret_cast<const Pack<A, N>*>(a)[ia];
      const Pack<B, N> pb = reinterpret_cast<const Pack<B, N>*>(b)[ib];
      Pack<Y, N> py;
#pragma unroll
      for (int k = 0; k < N; ++k) py.v[k] = narrow<Y>(f(widen(pa.v[k]), widen(pb.v[k])));
      reinterpret_cast<Pack<Y, N>*>(y)[full] = py;
    } else {
      y[full] = narrow<Y>(f(widen(a[ia]), widen(b[ib])));
    }
  }
}

// Collapsed broadcast geometry of K operands, right-aligned: dims[kMaxRank-1]
// is the fastest and dims before `first` are unused. Fixed positions let the
// index loop unroll with constant subscripts, so the arrays stay in the
// parameter space instead of local memory.
template <int K, typename I>
struct Geometry {
  int first;
  I dims[kMaxRank];
  I strides[K][kMaxRank];
};

// I is the index type: 32-bit when everything fits, as divisions by the dims
// are the cost of this kernel and 64-bit ones are several times slower.
// `op(i, off)` computes output element i from operand k's element off[k].
template <typename Op, int K, typename I>
__global__ void broadcast_kernel(Op op, I n, Geometry<K, I> g) {
  const I stride = I(gridDim.x) * blockDim.x;
  for (I i = I(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    I rest = i, off[K];
#pragma unroll
    for (int k = 0; k < K; ++k) off[k] = 0;
      // No early exit: a fully unrolled loop with constant subscripts keeps g
      // in the parameter space instead of local memory.
#pragma unroll
    for (int d = kMaxRank - 1; d >= 0; --d) {
      if (d > g.first) {
        const I q = rest / g.dims[d], r = rest - q * g.dims[d];
#pragma unroll
        for (int k = 0; k < K; ++k) off[k] += r * g.strides[k][d];
        rest = q;
      } else if (d == g.first) {
#pragma unroll
        for (int k = 0; k < K; ++k) off[k] += rest * g.strides[k][d];
      }
    }
    op(i, off);
  }
}

// The map2 functor as a broadcast_kernel op.
template <typename F, typename A, typename B, typename Y>
struct Map2Op {
  F f;
  const A* a;
  const B* b;
  Y* y;
  template <typename I>
  __device__ __forceinline__ void operator()(I i, const I (&off)[2]) const {
    y[i] = narrow<Y>(f(widen(a[off[0]]), widen(b[off[1]])));
  }
};

// ---- host side ---------------------------------------------------------------

// Operand shapes collapsed against the output: merged dims, and per operand
// the element strides (0 where broadcast). At least one dim.
struct CollapsedShape {
  std::vector<int64_t> dims;
  std::vector<std::vector<int64_t>> strides;  // [operand][dim]
};

// Left-pads each shape to the output's rank, drops size-1 output dims and
// merges neighbours whose pattern (which operands are broadcast) is the same;
// an error when a shape does not broadcast to `out` or the rank passes 8.
Expected<CollapsedShape> collapse_shapes(const std::vector<int64_t>& out,
                                         const std::vector<std::vector<int64_t>>& operands);

// The Side of operand k when the collapse is rank <= 2; false otherwise.
bool side_of(const CollapsedShape& c, size_t k, Side& side);

// Whether a two-operand collapse is [outer, mid, inner] with one operand
// full and the other [outer, 1, inner]; fills g in elements (not packed).
bool mid_broadcast_of(const CollapsedShape& c, MidBroadcast& g);

template <int K, typename I>
Geometry<K, I> make_geometry(const CollapsedShape& c) {
  Geometry<K, I> g{};
  const int rank = static_cast<int>(c.dims.size());
  g.first = kMaxRank - rank;
  for (int d = 0; d < rank; ++d) {
    g.dims[g.first + d] = static_cast<I>(c.dims[d]);
    for (int k = 0; k < K; ++k) g.strides[k][g.first + d] = static_cast<I>(c.strides[k][d]);
  }
  return g;
}

// Runs op over n output elements through the collapsed strides.
template <int K, typename Op>
Status launch_broadcast_op(const Op& op, const CollapsedShape& c, int64_t n, cudaStream_t stream) {
  if (n < (int64_t(1) << 31)) {
    broadcast_kernel<Op, K, uint32_t>
        <<<grid_for(n, kEwBlock), kEwBlock, 0, stream>>>(op, uint32_t(n), make_geometry<K, uint32_t>(c));
  } else {
    broadcast_kernel<Op, K, int64_t>
        <<<grid_for(n, kEwBlock), kEwBlock, 0, stream>>>(op, n, make_geometry<K, int64_t>(c));
  }
  return last_launch_status("broadcast_kernel");
}

template <typename X, typename Y, typename F>
Status launch_map1(F f, const void* x, void* y, int64_t n, cudaStream_t stream) {
  if (n == 0) return Status::ok();
  constexpr int N = pack_width<X, Y>();
  const bool packed = aligned_to(x, sizeof(X) * N) && aligned_to(y, sizeof(Y) * N);
  map1_kernel<F, X, Y><<<grid_for(packed ? n / N + 1 : n, kEwBlock), kEwBlock, 0, stream>>>(
      f, static_cast<const X*>(x), static_cast<Y*>(y), n, packed);
  return last_launch_status("map1_kernel");
}

template <typename F, typename A, typename B, typename Y>
Status launch_map2(F f, const void* a, const std::vector<int64_t>& a_dims, const void* b,
                   const std::vector<int64_t>& b_dims, void* y, const std::vector<int64_t>& y_dims,
                   cudaStream_t stream) {
  const int64_t n = product(y_dims, 0, y_dims.size());
  if (n == 0) return Status::ok();
  KILN_ASSIGN_OR_RETURN(CollapsedShape c, collapse_shapes(y_dims, {a_dims, b_dims}));
  const auto* pa = static_cast<const A*>(a);
  const auto* pb = static_cast<const B*>(b);
  auto* py = static_cast<Y*>(y);
  Side sa, sb;
  if (side_of(c, 0, sa) && side_of(c, 1, sb)) {
    constexpr int N = pack_width<A, B, Y>();
    auto side_packs = [](Side s, const void* p, size_t elem) {
      const bool whole = s.mode == SideMode::kFull || s.mode == SideMode::kScalar || s.period % N == 0;
      const bool vector_loads = s.mode == SideMode::kFull || s.mode == SideMode::kRow;
      return whole && (!vector_loads || aligned_to(p, elem * N));
    };
    const bool packed = side_packs(sa, a, sizeof(A)) && side_packs(sb, b, sizeof(B)) && aligned_to(y, sizeof(Y) * N);
    map2_fast_kernel<F, A, B, Y>
        <<<grid_for(packed ? n / N + 1 : n, kEwBlock), kEwBlock, 0, stream>>>(f, pa, sa, pb, sb, py, n, packed);
    return last_launch_status("map2_fast_kernel");
  }
  if (MidBroadcast g; mid_broadcast_of(c, g)) {
    constexpr int N = pack_width<A, B, Y>();
    g.packed = g.inner % N == 0 && aligned_to(a, sizeof(A) * N) && aligned_to(b, sizeof(B) * N) &&
               aligned_to(y, sizeof(Y) * N);
    if (g.packed) g.slice /= N, g.inner /= N;
    // A slice of fewer units than a warp would leave most of each block idle
    // (at most 65535 blocks walk the outer index): the strided walk then.
    if (g.slice >= 32) {
      const int block = static_cast<int>(std::min<uint32_t>(kEwBlock, (g.slice + 31) / 32 * 32));
      const dim3 grid((g.slice + block - 1) / block, static_cast<unsigned>(std::min<int64_t>(g.outer, 65535)));
      map2_mid_kernel<F, A, B, Y><<<grid, block, 0, stream>>>(f, pa, pb, py, g);
      return last_launch_status("map2_mid_kernel");
    }
  }
  return launch_broadcast_op<2>(Map2Op<F, A, B, Y>{f, pa, pb, py}, c, n, stream);
}

// ---- integer arithmetic that wraps ---------------------------------------------

// Two's-complement wrap-around for every integer width: the arithmetic runs
// in an unsigned type at least 32 bits wide (no promotion to signed int).
template <typename C>
using wrap_unsigned_t = std::conditional_t<sizeof(C) <= 4, uint32_t, uint64_t>;

template <typename C>
__device__ __forceinline__ C wrap_add(C a, C b) {
  if constexpr (std::is_integral_v<C>)
    return static_cast<C>(wrap_unsigned_t<C>(a) + wrap_unsigned_t<C>(b));
  else
    return a + b;
}
template <typename C>
__device__ __forceinline__ C wrap_sub(C a, C b) {
  if constexpr (std::is_integral_v<C>)
    return static_cast<C>(wrap_unsigned_t<C>(a) - wrap_unsigned_t<C>(b));
  else
    return a - b;
}
template <typename C>
__device__ __forceinline__ C wrap_mul(C a, C b) {
  if constexpr (std::is_integral_v<C>)
    return static_cast<C>(wrap_unsigned_t<C>(a) * wrap_unsigned_t<C>(b));
  else
    return a * b;
}

}  // namespace kiln::cuda

// Dtype dispatch: runs the statement with T bound to the storage type of the
// dtype; a dtype outside the set returns `unsupported` naming `what`.
#define KILN_EW_CASE(DT, TYPE, ...) \
  case ::kiln::DType::DT: {         \
    using T = TYPE;                 \
    __VA_ARGS__;                    \
    break;                          \
  }
#define KILN_EW_FLOAT_CASES(...)                  \
  KILN_EW_CASE(kF32, float, __VA_ARGS__)          \
  KILN_EW_CASE(kF16, __half, __VA_ARGS__)         \
  KILN_EW_CASE(kBF16, __nv_bfloat16, __VA_ARGS__) \
  KILN_EW_CASE(kF64, double, __VA_ARGS__)
#define KILN_EW_INT_CASES(...)              \
  KILN_EW_CASE(kI8, int8_t, __VA_ARGS__)    \
  KILN_EW_CASE(kI16, int16_t, __VA_ARGS__)  \
  KILN_EW_CASE(kI32, int32_t, __VA_ARGS__)  \
  KILN_EW_CASE(kI64, int64_t, __VA_ARGS__)  \
  KILN_EW_CASE(kU8, uint8_t, __VA_ARGS__)   \
  KILN_EW_CASE(kU16, uint16_t, __VA_ARGS__) \
  KILN_EW_CASE(kU32, uint32_t, __VA_ARGS__) \
  KILN_EW_CASE(kU64, uint64_t, __VA_ARGS__)
#define KILN_EW_DEFAULT(dtype, what) \
  default:                           \
    return ::kiln::unsupported("{}: dtype {}", what, ::kiln::dtype_name(dtype));

#define KILN_CUDA_DISPATCH_FLOAT64(dtype, what, ...) \
  switch (dtype) {                                   \
    KILN_EW_FLOAT_CASES(__VA_ARGS__)                 \
    KILN_EW_DEFAULT(dtype, what)                     \
  }
#define KILN_CUDA_DISPATCH_INT(dtype, what, ...) \
  switch (dtype) {                               \
    KILN_EW_INT_CASES(__VA_ARGS__)               \
    KILN_EW_DEFAULT(dtype, what)                 \
  }
#define KILN_CUDA_DISPATCH_NUMERIC(dtype, what, ...) \
  switch (dtype) {                                   \
    KILN_EW_FLOAT_CASES(__VA_ARGS__)                 \
    KILN_EW_INT_CASES(__VA_ARGS__)                   \
    KILN_EW_DEFAULT(dtype, what)                     \
  }
