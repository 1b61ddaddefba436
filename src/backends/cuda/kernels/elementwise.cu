// Unary: one thread per 16-byte pack when the pointers allow 128-bit access
// (4 floats or 8 halves), else one element a thread; grid-stride loops.
// Binary: shapes are collapsed first (adjacent dims with the same broadcast
// pattern merge, so a row or scalar broadcast becomes rank 2 or 1). Same
// shapes, and a row (a whole number of packs) or scalar broadcast, take
// packed 128-bit paths; anything else finds each output element's inputs
// through per-dim strides, 0 where broadcast. The op is a runtime
// switch: it is uniform across the grid, and it keeps instantiations few.
#include <fmt/ranges.h>

#include "backends/cuda/kernels/common.cuh"
#include "backends/cuda/kernels/elementwise.cuh"

namespace kiln::cuda {
namespace {

__device__ __forceinline__ float apply_unary(UnaryOp op, float x, float alpha) {
  switch (op) {
    case UnaryOp::kRelu: return x > 0.f ? x : (x != x ? x : 0.f);
    case UnaryOp::kSigmoid: return 1.f / (1.f + expf(-x));
    case UnaryOp::kTanh: return tanhf(x);
    case UnaryOp::kGelu: return 0.5f * x * (1.f + erff(x * 0.70710678118654752f));
    case UnaryOp::kGeluTanh: {
      const float inner = 0.79788456080286536f * (x + 0.044715f * x * x * x);
      return 0.5f * x * (1.f + tanhf(inner));
    }
    case UnaryOp::kExp: return expf(x);
    case UnaryOp::kLog: return logf(x);
    case UnaryOp::kSqrt: return sqrtf(x);
    case UnaryOp::kNeg: return -x;
    case UnaryOp::kAbs: return fabsf(x);
    case UnaryOp::kErf: return erff(x);
    case UnaryOp::kReciprocal: return 1.f / x;
    case UnaryOp::kSilu: return x / (1.f + expf(-x));
    case UnaryOp::kLeakyRelu: return x >= 0.f ? x : alpha * x;
    case UnaryOp::kFloor: return floorf(x);
    case UnaryOp::kCeil: return ceilf(x);
    case UnaryOp::kSin: return sinf(x);
    case UnaryOp::kCos: return cosf(x);
  }
  return x;
}

__device__ __forceinline__ float apply_binary(BinaryOp op, float a, float b) {
  switch (op) {
    case BinaryOp::kAdd: return a + b;
    case BinaryOp::kSub: return a - b;
    case BinaryOp::kMul: return a * b;
    case BinaryOp::kDiv: return a / b;
    case BinaryOp::kPow: return powf(a, b);
    case BinaryOp::kMax: return nan_max(a, b);
    case BinaryOp::kMin: return nan_min(a, b);
  }
  return a;
}

// N elements per thread step: N = 16 / sizeof(T) on the packed path, 1 otherwise.
template <typename T, int N>
__global__ void unary_kernel(UnaryOp op, const T* x, T* y, int64_t n, float alpha) {  // may run in place
  const int64_t packs = n / N;
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  const int64_t tid = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  for (int64_t i = tid; i < packs; i += stride) {
    Pack<T, N> p = reinterpret_cast<const Pack<T, N>*>(x)[i];
#pragma unroll
    for (int k = 0; k < N; ++k) p.v[k] = from_float<T>(apply_unary(op, to_float(p.v[k]), alpha));
    reinterpret_cast<Pack<T, N>*>(y)[i] = p;
  }
  for (int64_t i = packs * N + tid; i < n; i += stride) y[i] = from_float<T>(apply_unary(op, to_float(x[i]), alpha));
}

template <typename T, int N>
__global__ void binary_same_kernel(BinaryOp op, const T* __restrict__ a, const T* __restrict__ b, T* __restrict__ y,
                                   int64_t n) {
  const int64_t packs = n / N;
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  const int64_t tid = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  for (int64_t i = tid; i < packs; i += stride) {
    const Pack<T, N> pa = reinterpret_cast<const Pack<T, N>*>(a)[i];
    const Pack<T, N> pb = reinterpret_cast<const Pack<T, N>*>(b)[i];
    Pack<T, N> py;
#pragma unroll
    for (int k = 0; k < N; ++k) py.v[k] = from_float<T>(apply_binary(op, to_float(pa.v[k]), to_float(pb.v[k])));
    reinterpret_cast<Pack<T, N>*>(y)[i] = py;
  }
  for (int64_t i = packs * N + tid; i < n; i += stride)
    y[i] = from_float<T>(apply_binary(op, to_float(a[i]), to_float(b[i])));
}

// One operand full, the other repeating with a period of `period` elements:
// a row over the last dims, or a scalar (period 1). Periods that are whole
// packs let each 16-byte pack of the full operand meet one 16-byte pack of
// the row, so both sides keep 128-bit access and no per-dim division.
template <typename T, int N>
__global__ void binary_row_kernel(BinaryOp op, const T* __restrict__ full, const T* __restrict__ row, T* __restrict__ y,
                                  int64_t n, int64_t period, bool row_on_left) {
  const int64_t packs = n / N, row_packs = period / N;
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  const int64_t tid = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  const float scalar = to_float(row[0]);
  for (int64_t i = tid; i < packs; i += stride) {
    const Pack<T, N> pf = reinterpret_cast<const Pack<T, N>*>(full)[i];
    Pack<T, N> pr;
    if (period > 1) pr = reinterpret_cast<const Pack<T, N>*>(row)[i % row_packs];
    Pack<T, N> py;
#pragma unroll
    for (int k = 0; k < N; ++k) {
      const float f = to_float(pf.v[k]), r = period > 1 ? to_float(pr.v[k]) : scalar;
      py.v[k] = from_float<T>(row_on_left ? apply_binary(op, r, f) : apply_binary(op, f, r));
    }
    reinterpret_cast<Pack<T, N>*>(y)[i] = py;
  }
  for (int64_t i = packs * N + tid; i < n; i += stride) {
    const float f = to_float(full[i]), r = to_float(row[i % period]);
    y[i] = from_float<T>(row_on_left ? apply_binary(op, r, f) : apply_binary(op, f, r));
  }
}

// Collapsed broadcast geometry, right-aligned: dims[kMaxRank-1] is the
// fastest and dims before `first` are unused. Fixed positions let the index
// loop unroll with constant subscripts, so the arrays stay in registers and
// the parameter space instead of being copied to local memory.
template <typename I>
struct BroadcastGeometry {
  int first;
  I dims[kMaxRank];
  I a_strides[kMaxRank];
  I b_strides[kMaxRank];
};

// I is the index type: 32-bit when everything fits, as divisions by the dims
// are the cost of this kernel and 64-bit ones are several times slower.
template <typename T, typename I>
__global__ void binary_broadcast_kernel(BinaryOp op, const T* __restrict__ a, const T* __restrict__ b,
                                        T* __restrict__ y, I n, BroadcastGeometry<I> g) {
  const I stride = I(gridDim.x) * blockDim.x;
  for (I i = I(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    I rest = i, ai = 0, bi = 0;
#pragma unroll
    for (int d = kMaxRank - 1; d > 0; --d) {
      if (d <= g.first) break;
      const I q = rest / g.dims[d], r = rest - q * g.dims[d];
      ai += r * g.a_strides[d];
      bi += r * g.b_strides[d];
      rest = q;
    }
#pragma unroll
    for (int d = 0; d < kMaxRank; ++d) {
      if (d == g.first) {
        ai += rest * g.a_strides[d];
        bi += rest * g.b_strides[d];
      }
    }
    y[i] = from_float<T>(apply_binary(op, to_float(a[ai]), to_float(b[bi])));
  }
}

template <typename T>
Status run_unary(const UnaryParams& p, cudaStream_t stream) {
  constexpr int kBlock = 256;
  constexpr int kPack = 16 / sizeof(T);
  auto x = static_cast<const T*>(p.x);
  auto y = static_cast<T*>(p.y);
  if (aligned16(x) && aligned16(y)) {
    unary_kernel<T, kPack><<<grid_for(p.n / kPack + 1, kBlock), kBlock, 0, stream>>>(p.op, x, y, p.n, p.alpha);
  } else {
    unary_kernel<T, 1><<<grid_for(p.n, kBlock), kBlock, 0, stream>>>(p.op, x, y, p.n, p.alpha);
  }
  return last_launch_status("unary_kernel");
}

struct Collapsed {
  std::vector<int64_t> dims, a_strides, b_strides;
};

// Left-pads both shapes to the output rank, drops size-1 output dims and
// merges neighbours whose broadcast pattern (a full or broadcast, b full or
// broadcast) is the same.
Collapsed collapse(const std::vector<int64_t>& out, std::vector<int64_t> a, std::vector<int64_t> b) {
  a.insert(a.begin(), out.size() - a.size(), 1);
  b.insert(b.begin(), out.size() - b.size(), 1);
  std::vector<int64_t> dims;
  std::vector<bool> a_full, b_full;
  for (size_t d = 0; d < out.size(); ++d) {
    if (out[d] == 1) continue;
    const bool af = a[d] != 1, bf = b[d] != 1;
    if (!dims.empty() && a_full.back() == af && b_full.back() == bf) {
      dims.back() *= out[d];
    } else {
      dims.push_back(out[d]);
      a_full.push_back(af);
      b_full.push_back(bf);
    }
  }
  if (dims.empty()) {
    dims.push_back(1);
    a_full.push_back(true);
    b_full.push_back(true);
  }
  Collapsed c{dims, std::vector<int64_t>(dims.size()), std::vector<int64_t>(dims.size())};
  int64_t as = 1, bs = 1;
  for (size_t d = dims.size(); d-- > 0;) {
    c.a_strides[d] = a_full[d] ? as : 0;
    c.b_strides[d] = b_full[d] ? bs : 0;
    if (a_full[d]) as *= dims[d];
    if (b_full[d]) bs *= dims[d];
  }
  return c;
}

template <typename T, typename I>
void launch_broadcast(const BinaryParams& p, const Collapsed& c, int64_t n, cudaStream_t stream) {
  BroadcastGeometry<I> g{};
  const int rank = static_cast<int>(c.dims.size());
  g.first = kMaxRank - rank;
  for (int d = 0; d < rank; ++d) {
    g.dims[g.first + d] = static_cast<I>(c.dims[d]);
    g.a_strides[g.first + d] = static_cast<I>(c.a_strides[d]);
    g.b_strides[g.first + d] = static_cast<I>(c.b_strides[d]);
  }
  constexpr int kBlock = 256;
  binary_broadcast_kernel<T, I><<<grid_for(n, kBlock), kBlock, 0, stream>>>(
      p.op, static_cast<const T*>(p.a), static_cast<const T*>(p.b), static_cast<T*>(p.y), static_cast<I>(n), g);
}

// The packed row/scalar path when the collapsed shape is [n] with one side
// scalar, or [outer, inner] with one side a row of `inner`; false otherwise.
template <typename T>
bool launch_row_broadcast(const BinaryParams& p, const Collapsed& c, int64_t n, cudaStream_t stream) {
  constexpr int kPack = 16 / sizeof(T);
  const size_t r = c.dims.size();
  // Which side repeats: its stride is 0 on the outer dim (rank 2) or the only dim (rank 1).
  const bool b_rep = (r == 1 && c.b_strides[0] == 0) || (r == 2 && c.b_strides[0] == 0 && c.b_strides[1] == 1 &&
                                                         c.a_strides[0] == c.dims[1] && c.a_strides[1] == 1);
  const bool a_rep = (r == 1 && c.a_strides[0] == 0) || (r == 2 && c.a_strides[0] == 0 && c.a_strides[1] == 1 &&
                                                         c.b_strides[0] == c.dims[1] && c.b_strides[1] == 1);
  if (b_rep == a_rep) return false;
  const T* full = static_cast<const T*>(b_rep ? p.a : p.b);
  const T* row = static_cast<const T*>(b_rep ? p.b : p.a);
  const int64_t period = r == 1 ? 1 : c.dims[1];
  if (!aligned16(full) || !aligned16(p.y) || (period > 1 && (period % kPack != 0 || !aligned16(row)))) return false;
  constexpr int kBlock = 256;
  binary_row_kernel<T, kPack>
      <<<grid_for(n / kPack + 1, kBlock), kBlock, 0, stream>>>(p.op, full, row, static_cast<T*>(p.y), n, period, a_rep);
  return true;
}

template <typename T>
Status run_binary(const BinaryParams& p, const std::vector<int64_t>& out, cudaStream_t stream) {
  constexpr int kBlock = 256;
  constexpr int kPack = 16 / sizeof(T);
  const int64_t n = product(out, 0, out.size());
  if (n == 0) return Status::ok();
  if (product(p.a_dims, 0, p.a_dims.size()) == n && product(p.b_dims, 0, p.b_dims.size()) == n) {
    auto a = static_cast<const T*>(p.a);
    auto b = static_cast<const T*>(p.b);
    auto y = static_cast<T*>(p.y);
    if (aligned16(a) && aligned16(b) && aligned16(y)) {
      binary_same_kernel<T, kPack><<<grid_for(n / kPack + 1, kBlock), kBlock, 0, stream>>>(p.op, a, b, y, n);
    } else {
      binary_same_kernel<T, 1><<<grid_for(n, kBlock), kBlock, 0, stream>>>(p.op, a, b, y, n);
    }
    return last_launch_status("binary_same_kernel");
  }
  const Collapsed c = collapse(out, p.a_dims, p.b_dims);
  if (launch_row_broadcast<T>(p, c, n, stream)) return last_launch_status("binary_row_kernel");
  if (n < (int64_t(1) << 31)) {
    launch_broadcast<T, uint32_t>(p, c, n, stream);
  } else {
    launch_broadcast<T, int64_t>(p, c, n, stream);
  }
  return last_launch_status("binary_broadcast_kernel");
}

}  // namespace

Expected<std::vector<int64_t>> broadcast_dims(const std::vector<int64_t>& a, const std::vector<int64_t>& b) {
  const size_t rank = std::max(a.size(), b.size());
  std::vector<int64_t> out(rank);
  for (size_t i = 0; i < rank; ++i) {
    const int64_t da = i < rank - a.size() ? 1 : a[i - (rank - a.size())];
    const int64_t db = i < rank - b.size() ? 1 : b[i - (rank - b.size())];
    if (da != db && da != 1 && db != 1)
      return invalid_argument("shapes {} and {} do not broadcast (dim {}: {} vs {})", fmt::join(a, "x"),
                              fmt::join(b, "x"), i, da, db);
    out[i] = da == 1 ? db : da;
  }
  return out;
}

Status launch_unary(const UnaryParams& p, cudaStream_t stream) {
  if (p.n == 0) return Status::ok();
  KILN_CUDA_DISPATCH_FLOAT(p.dtype, "unary", return run_unary<T>(p, stream));
  return Status::ok();
}

Status launch_binary(const BinaryParams& p, cudaStream_t stream) {
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> out, broadcast_dims(p.a_dims, p.b_dims));
  if (out.size() > static_cast<size_t>(kMaxRank))
    return unsupported("binary: rank {} (the CUDA kernel broadcasts up to rank {})", out.size(), kMaxRank);
  KILN_CUDA_DISPATCH_FLOAT(p.dtype, "binary", return run_binary<T>(p, out, stream));
  return Status::ok();
}

}  // namespace kiln::cuda
