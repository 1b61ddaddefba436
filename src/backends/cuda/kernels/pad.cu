// Pad (and CenterCropPad, which is a constant Pad). Constant mode, the one
// models use (an image stem's spatial pad, a channels-last channel pad from 3
// or 12 to 8 or 16), takes the row kernel: the dims are first merged where
// that keeps the pad a pad (an unpadded axis folds into the axis outside it,
// so [N,H,W,12] -> [N,H,W,16] is [N*H*W,12] -> [N*H*W,16] and [N,C,H,W]
// padded on H and W is [N*C,H,W]), then each thread writes one 16-byte
// vector of the output (aligned, so one store), finding the input row of its
// first element once (the outer index math, in 32 bits where every offset
// fits) and reading that row's elements or the fill. The other modes
// (reflect, edge, wrap) map every output element on its own (index_map.cuh).
#include <algorithm>

#include "backends/cuda/kernels/index_map.cuh"

namespace kiln::cuda {
namespace {

void row_major_strides(const std::vector<int64_t>& dims, int64_t* strides) {
  int64_t s = 1;
  for (size_t d = dims.size(); d-- > 0;) strides[d] = s, s *= dims[d];
}

__device__ __forceinline__ int64_t pad_source(int64_t c, int64_t n, PadMode mode) {
  if (c >= 0 && c < n) return c;
  if (n <= 0) return -1;  // an empty axis has nothing to reflect, repeat or wrap
  switch (mode) {
    case PadMode::kConstant: return -1;
    case PadMode::kEdge: return c < 0 ? 0 : n - 1;
    case PadMode::kWrap: return ((c % n) + n) % n;
    case PadMode::kReflect: {
      if (n == 1) return 0;
      const int64_t period = 2 * (n - 1), m = ((c % period) + period) % period;
      return m < n ? m : period - m;
    }
  }
  return -1;
}

struct PadMap {
  int rank;
  PadMode mode;
  int64_t out_dims[kMaxRank], in_dims[kMaxRank], in_strides[kMaxRank], before[kMaxRank];
  __device__ int64_t operator()(int64_t i) const {
    int64_t off = 0;
    for (int d = rank - 1; d >= 0; --d) {
      const int64_t c = pad_source(i % out_dims[d] - before[d], in_dims[d], mode);
      if (c < 0) return kFill;
      i /= out_dims[d];
      off += c * in_strides[d];
    }
    return off;
  }
};

// A constant pad as merged axes (rank >= 1): output coordinate c of axis d
// reads input coordinate c - before[d] when that is in [0, in[d]), else the
// fill. The last axis is the row.
struct PadAxes {
  std::vector<int64_t> out, in, before;
};

// Folds every axis that is not padded (out == in, before == 0) into the axis
// outside it: coordinates (a, b) of the pair become a * n + b, and the outer
// axis's pad scales by n. Size-1 axes are unpadded, so they vanish too.
PadAxes merge_pad_axes(const std::vector<int64_t>& in, const std::vector<int64_t>& out,
                       const std::vector<int64_t>& before) {
  PadAxes m;  // innermost first while building
  for (size_t d = out.size(); d-- > 0;) {
    const size_t k = m.out.size();
    if (k > 0 && m.out[k - 1] == m.in[k - 1] && m.before[k - 1] == 0) {
      const int64_t n = m.out[k - 1];
      m.out[k - 1] = out[d] * n, m.in[k - 1] = in[d] * n, m.before[k - 1] = before[d] * n;
    } else {
      m.out.push_back(out[d]), m.in.push_back(in[d]), m.before.push_back(before[d]);
    }
  }
  if (m.out.empty()) m.out = m.in = {1}, m.before = {0};  // rank 0: one element, no pad
  std::reverse(m.out.begin(), m.out.end());
  std::reverse(m.in.begin(), m.in.end());
  std::reverse(m.before.begin(), m.before.end());
  return m;
}

template <typename I>
struct RowPad {
  int rank;
  I out[kMaxRank], in[kMaxRank], before[kMaxRank], in_stride[kMaxRank];

  // The input offset of output row `row`'s element 0 (before the last axis's
  // shift), or -1 when the row lies in the pad of an outer axis.
  __device__ __forceinline__ I source_row(I row) const {
    I off = 0;
    for (int d = rank - 2; d >= 0; --d) {
      I c = row;  // the outermost axis needs no modulo: row < out[0]
      if (d > 0) {
        const I q = row / out[d];
        c = row - q * out[d];
        row = q;
      }
      c -= before[d];
      if (c < 0 || c >= in[d]) return -1;
      off += c * in_stride[d];
    }
    return off;
  }
};

template <typename E, int V>
struct alignas(sizeof(E) * V) ElemVec {
  E e[V];
};

// Thread t writes output elements [t*V, t*V + V): the whole vector in one
// store (y is aligned to sizeof(E)*V), element by element at the tail. A
// vector that crosses into the next row finds that row's source again.
template <typename E, int V, typename I>
__global__ void pad_rows_kernel(const E* __restrict__ x, E* __restrict__ y, I n, RowPad<I> p, ElemBits fill_bits) {
  const E fill = bits_as<E>(fill_bits);
  const int last = p.rank - 1;
  const I width = p.out[last], in_width = p.in[last], shift = p.before[last];
  const I vectors = (n + V - 1) / V, stride = I(gridDim.x) * I(blockDim.x);
  for (I t = I(blockIdx.x) * I(blockDim.x) + I(threadIdx.x); t < vectors; t += stride) {
    const I i0 = t * V;
    I row = i0 / width, col = i0 - row * width;
    I src = p.source_row(row);
    ElemVec<E, V> v;
#pragma unroll
    for (int k = 0; k < V; ++k) {
      const I c = col - shift;
      v.e[k] = src >= 0 && c >= 0 && c < in_width ? x[src + c] : fill;
      if (++col == width && k + 1 < V) {
        col = 0;
        src = p.source_row(++row);
      }
    }
    if (i0 + V <= n) {
      *reinterpret_cast<ElemVec<E, V>*>(y + i0) = v;
    } else {
      for (int k = 0; k < V && i0 + k < n; ++k) y[i0 + k] = v.e[k];
    }
  }
}

template <typename E, int V, typename I>
void launch_pad_rows_as(const void* x, void* y, int64_t n, const PadAxes& m, ElemBits fill, cudaStream_t stream) {
  RowPad<I> p{};
  p.rank = static_cast<int>(m.out.size());
  int64_t strides[kMaxRank];
  row_major_strides(m.in, strides);
  for (int d = 0; d < p.rank; ++d) {
    p.out[d] = static_cast<I>(m.out[d]);
    p.in[d] = static_cast<I>(m.in[d]);
    p.before[d] = static_cast<I>(m.before[d]);
    p.in_stride[d] = static_cast<I>(strides[d]);
  }
  constexpr int kBlock = 256;
  pad_rows_kernel<E, V, I><<<grid_for((n + V - 1) / V, kBlock), kBlock, 0, stream>>>(
      static_cast<const E*>(x), static_cast<E*>(y), static_cast<I>(n), p, fill);
}

// 32-bit index math when every offset, coordinate and pad stays well inside
// int32 (the grid-stride loop adds up to a grid's threads past the end).
bool fits_int32(const PadAxes& m, int64_t n) {
  constexpr int64_t kLimit = int64_t(1) << 30;
  int64_t in_numel = 1;
  for (size_t d = 0; d < m.out.size(); ++d) {
    in_numel *= m.in[d];
    if (m.out[d] >= kLimit || m.in[d] >= kLimit || m.before[d] >= kLimit || m.before[d] <= -kLimit) return false;
  }
  return n < kLimit && in_numel < kLimit;
}

template <typename E>
void launch_pad_rows(const void* x, void* y, int64_t n, const PadAxes& m, ElemBits fill, cudaStream_t stream) {
  constexpr int kVec = sizeof(E) >= 16 ? 1 : 16 / static_cast<int>(sizeof(E));
  const bool small = fits_int32(m, n);
  if (aligned16(y))
    small ? launch_pad_rows_as<E, kVec, int32_t>(x, y, n, m, fill, stream)
          : launch_pad_rows_as<E, kVec, int64_t>(x, y, n, m, fill, stream);
  else
    small ? launch_pad_rows_as<E, 1, int32_t>(x, y, n, m, fill, stream)
          : launch_pad_rows_as<E, 1, int64_t>(x, y, n, m, fill, stream);
}

}  // namespace

Status launch_pad(const PadParams& p, cudaStream_t stream) {
  const size_t rank = p.out_dims.size();
  if (p.in_dims.size() != rank || p.before.size() != rank)
    return invalid_argument("pad: in_dims, out_dims and before need one entry per dim ({})", rank);
  if (rank > static_cast<size_t>(kMaxRank))
    return unsupported("pad: rank {} (the CUDA kernel takes up to {})", rank, kMaxRank);
  const int64_t n = product(p.out_dims, 0, rank);
  if (n == 0) return Status::ok();
  if (p.mode == PadMode::kConstant) {
    const PadAxes m = merge_pad_axes(p.in_dims, p.out_dims, p.before);
    KILN_CUDA_DISPATCH_WIDTH(p.elem_size, "pad", launch_pad_rows<E>(p.x, p.y, n, m, p.fill, stream));
    return last_launch_status("pad_rows_kernel");
  }
  PadMap m{};
  m.rank = static_cast<int>(rank);
  m.mode = p.mode;
  row_major_strides(p.in_dims, m.in_strides);
  for (size_t d = 0; d < rank; ++d) {
    m.out_dims[d] = p.out_dims[d];
    m.in_dims[d] = p.in_dims[d];
    m.before[d] = p.before[d];
  }
  return launch_map_copy(p.elem_size, p.x, p.y, n, m, "pad_kernel", p.fill, {}, stream);
}

}  // namespace kiln::cuda
