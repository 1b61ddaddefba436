// What depthwise_conv.cu's kernels and depthwise_conv_tile.cu's share: the
// epilogue (so every tactic rounds alike) and the tile kernel's entry.
#pragma once

#include "backends/cuda/kernels/common.cuh"
#include "backends/cuda/kernels/conv_activation.cuh"
#include "backends/cuda/kernels/depthwise_conv.cuh"

namespace kiln::cuda {

// V outputs: + bias + z, the activation, one rounding, kAct a constant
// (with_activation).
template <typename T, int V, EpilogueActivation kAct>
__device__ __forceinline__ Pack<T, V> dw_finish(float (&acc)[V], const Pack<T, V>* bias, const T* z, float lo,
                                                float hi) {
  using P = Pack<T, V>;
  if (bias) {
    const P bv = *bias;
#pragma unroll
    for (int v = 0; v < V; ++v) acc[v] += to_float(bv.v[v]);
  }
  if (z) {
    const P zv = *reinterpret_cast<const P*>(z);
#pragma unroll
    for (int v = 0; v < V; ++v) acc[v] += to_float(zv.v[v]);
  }
  P out;
#pragma unroll
  for (int v = 0; v < V; ++v) out.v[v] = from_float<T>(conv_activate(acc[v], kAct, lo, hi));
  return out;
}

// The tile kernel (depthwise_conv_tile.cu) for a layer that
// depthwise_conv_tile_applies takes, x, y, bias, z and the workspace 16-byte
// aligned, the weights already transposed into the workspace.
Status launch_depthwise_conv_tile(const DepthwiseConvParams& p, cudaStream_t stream);

// Whether the current device has cp.async (compute capability 8.0 or later),
// asked once per process; the tile kernel is not launched where it has not.
bool depthwise_conv_tile_device_ok();

}  // namespace kiln::cuda
