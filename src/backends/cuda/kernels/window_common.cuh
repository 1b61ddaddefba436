// Device-side pieces shared by the sliding-window kernels (conv.cu, pool.cu)
// and used by others (recurrent.cu, signal.cu, conv_epilogue.cu):
// loads and stores that widen to an accumulator type (float for the 16-bit
// floats and f32, double for f64, the integer itself for integers) and the
// split of a flat output index into (plane, d, h, w).
#pragma once

#include <type_traits>

#include "backends/cuda/kernels/common.cuh"
#include "backends/cuda/kernels/conv.cuh"

namespace kiln::cuda {

// The type arithmetic on T runs in: float for the 16-bit floats, T otherwise.
template <typename T>
using ComputeT = std::conditional_t<kIs16BitFloat<T>, float, T>;

template <typename Acc, typename T>
__device__ __forceinline__ Acc load_as(T v) {
  if constexpr (kIs16BitFloat<T>)
    return static_cast<Acc>(to_float(v));
  else
    return static_cast<Acc>(v);
}

template <typename T, typename Acc>
__device__ __forceinline__ T store_as(Acc v) {
  if constexpr (kIs16BitFloat<T>)
    return from_float<T>(static_cast<float>(v));
  else
    return static_cast<T>(v);
}

// A flat index over [planes, out[0], out[1], out[2]] split into its parts.
struct OutputPosition {
  int64_t plane, d, h, w;
};

__device__ __forceinline__ OutputPosition output_position(const WindowGeometry& g, int64_t i) {
  OutputPosition p;
  p.w = i % g.out[2];
  i /= g.out[2];
  p.h = i % g.out[1];
  i /= g.out[1];
  p.d = i % g.out[0];
  p.plane = i / g.out[0];
  return p;
}

// Input coordinate of kernel tap k along spatial dim a for output o.
__device__ __forceinline__ int64_t input_coord(const WindowGeometry& g, int a, int64_t o, int64_t k) {
  return o * g.stride[a] - g.pad_begin[a] + k * g.dilation[a];
}

// One tap of a window that falls inside the input: its input coordinates,
// its offset in the input plane and its offset in the kernel.
struct WindowTap {
  int64_t d, h, w, at, k;
};

// Calls fn(tap) for every kernel tap of output o inside the input, in kernel
// order; taps that fall in the padding are skipped.
template <typename Fn>
__device__ __forceinline__ void for_each_tap(const WindowGeometry& g, const OutputPosition& o, Fn&& fn) {
  for (int64_t kd = 0; kd < g.kernel[0]; ++kd) {
    const int64_t id = input_coord(g, 0, o.d, kd);
    if (id < 0 || id >= g.in[0]) continue;
    for (int64_t kh = 0; kh < g.kernel[1]; ++kh) {
      const int64_t ih = input_coord(g, 1, o.h, kh);
      if (ih < 0 || ih >= g.in[1]) continue;
      for (int64_t kw = 0; kw < g.kernel[2]; ++kw) {
        const int64_t iw = input_coord(g, 2, o.w, kw);
        if (iw < 0 || iw >= g.in[2]) continue;
        fn(WindowTap{id, ih, iw, (id * g.in[1] + ih) * g.in[2] + iw, (kd * g.kernel[1] + kh) * g.kernel[2] + kw});
      }
    }
  }
}

// Grid-stride loop bounds.
#define KILN_GRID_STRIDE_LOOP(i, n) \
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < (n); i += int64_t(gridDim.x) * blockDim.x)

}  // namespace kiln::cuda
