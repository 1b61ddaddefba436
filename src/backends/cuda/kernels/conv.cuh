// Direct (one thread per output element) convolution kernels: Conv for the
// float types, ConvInteger and QLinearConv for 8-bit integers, ConvTranspose
// as a gather, plus the small helpers of the cuDNN path (bias add, explicit
// zero padding, FusedConv's epilogue). Every input is seen as 3-D spatial (1-D and 2-D inputs get
// leading spatial dims of size 1), as the CPU kernels see it.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "kiln/dtype.h"
#include "support/status.h"

namespace kiln::cuda {

// The loop bounds of one sliding-window op (conv, pool) on [N, C, D, H, W].
struct WindowGeometry {
  int64_t batch = 0;
  int64_t in_channels = 0;   // input channels (pools: channels)
  int64_t out_channels = 0;  // output channels (pools: channels)
  int64_t group = 1;
  int64_t in[3] = {1, 1, 1};
  int64_t out[3] = {1, 1, 1};
  int64_t kernel[3] = {1, 1, 1};
  int64_t stride[3] = {1, 1, 1};
  int64_t dilation[3] = {1, 1, 1};
  int64_t pad_begin[3] = {0, 0, 0};
  int64_t pad_end[3] = {0, 0, 0};

  __host__ __device__ int64_t in_size() const { return in[0] * in[1] * in[2]; }
  __host__ __device__ int64_t out_size() const { return out[0] * out[1] * out[2]; }
  __host__ __device__ int64_t kernel_size() const { return kernel[0] * kernel[1] * kernel[2]; }
};

// Conv / ConvTranspose on f32, f16, bf16 (accumulated in float) or f64
// (in double). Weights as ONNX gives them: Conv [M, C/group, k...],
// ConvTranspose [C, M/group, k...]. `bias` (M values) may be null.
// channels_last (Conv only, 2-D): x [N, H, W, C], w [M, R, S, C/group],
// y [N, H', W', M]; a thread per output element in memory order, so a warp
// reads adjacent channels of each tap (depthwise: adjacent input channels).
struct DirectConvParams {
  DType dtype = DType::kF32;
  WindowGeometry g;
  bool transpose = false;
  bool channels_last = false;
  const void* x = nullptr;
  const void* w = nullptr;
  const void* bias = nullptr;
  void* y = nullptr;
};
Status launch_direct_conv(const DirectConvParams& p, cudaStream_t stream);

// ConvInteger (y int32) and QLinearConv (y requantized to u8/i8). x and w are
// u8 or i8; zero points have their tensor's dtype and are per tensor (count
// 1) or, for w, per output channel. QLinearConv's scales are f32 (w's per
// tensor or per channel) and its bias int32.
struct IntegerConvParams {
  WindowGeometry g;
  DType x_type = DType::kU8, w_type = DType::kU8, y_type = DType::kI32;
  const void* x = nullptr;
  const void* w = nullptr;
  void* y = nullptr;
  const void* x_zero = nullptr;  // null: 0
  const void* w_zero = nullptr;
  int64_t w_zero_count = 1;
  // QLinearConv only (y_type u8 / i8):
  const float* x_scale = nullptr;
  const float* w_scale = nullptr;
  int64_t w_scale_count = 1;
  const float* y_scale = nullptr;
  const void* y_zero = nullptr;  // y's dtype; null: 0
  const int32_t* bias = nullptr;
};
Status launch_integer_conv(const IntegerConvParams& p, cudaStream_t stream);

// y[n, c, ...] = bias[c] over [batch, channels, inner]: the cuDNN path adds
// the convolution to it (beta 1), so the sum is rounded once, as on the CPU.
Status launch_fill_channel_bias(DType dtype, void* y, const void* bias, int64_t batch, int64_t channels, int64_t inner,
                                cudaStream_t stream);

// kiln::FusedConv's epilogue where cuDNN fuses none: y = act(y + bias[c] +
// z) over [batch, channels, inner], in place, computed in float (f64: double)
// and rounded once. bias ([channels]) and z (y's shape) may be null.
enum class EpilogueActivation { kNone, kRelu, kClip, kSigmoid, kSilu };
struct ConvEpilogueParams {
  DType dtype = DType::kF32;
  void* y = nullptr;
  const void* bias = nullptr;
  const void* z = nullptr;
  int64_t batch = 0, channels = 0, inner = 0;
  EpilogueActivation act = EpilogueActivation::kNone;
  float lo = 0, hi = 0;  // kClip's bounds
};
Status launch_conv_epilogue(const ConvEpilogueParams& p, cudaStream_t stream);

// A whole kiln::FusedConv for kiln's own channels-last kernels (depthwise_conv.cuh,
// stem_conv.cuh): x [N, H, W, Cin], w in FusedConv's channels-last layout,
// y [N, OH, OW, Cout] = act(conv(x, w) + bias[co] + z), summed in float and
// rounded once. g is the convolution's geometry (NCHW order, 2-D: spatial
// dims 1 and 2); bias ([Cout]) and z (y's shape) may be null.
struct FusedConvOperands {
  DType dtype = DType::kF16;
  WindowGeometry g;
  const void* x = nullptr;
  const void* w = nullptr;
  const void* bias = nullptr;
  const void* z = nullptr;
  void* y = nullptr;
  EpilogueActivation act = EpilogueActivation::kNone;
  float lo = 0, hi = 0;  // kClip's bounds
};

// Copies x [N, C, in...] into y [N, C, in + pad_begin + pad_end ...] with
// zeros around it (asymmetric pads, which cuDNN does not take).
Status launch_zero_pad(DType dtype, const void* x, void* y, const WindowGeometry& g, cudaStream_t stream);

// y [planes, y_dims] = the window of full [planes, full_dims] that starts at
// `offset`: ConvTranspose's crop of a cuDNN result computed with the smaller
// of each dim's two pads.
struct CropParams {
  DType dtype = DType::kF32;
  const void* full = nullptr;
  void* y = nullptr;
  int64_t planes = 0;
  int64_t full_dims[3] = {1, 1, 1};
  int64_t y_dims[3] = {1, 1, 1};
  int64_t offset[3] = {0, 0, 0};
};
Status launch_crop(const CropParams& p, cudaStream_t stream);

// CausalConvWithState: a depthwise causal 1-D convolution of x [B, C, L]
// with w [C, 1, k], each row preceded by its past state [B, C, k - 1] (zeros
// when null); y [B, C, L] (optionally SiLU'd) and the present state (the last
// k - 1 entries of the padded row; may be null). Summed in float in the CPU's
// order; y is rounded to its dtype before the SiLU, as on the CPU.
struct CausalConvParams {
  DType dtype = DType::kF32;
  int64_t batch = 0, channels = 0, length = 0, kernel = 1;
  bool silu = false;
  const void* x = nullptr;
  const void* w = nullptr;
  const void* bias = nullptr;  // [C] or null
  const void* past = nullptr;
  void* y = nullptr;
  void* present = nullptr;
};
Status launch_causal_conv(const CausalConvParams& p, cudaStream_t stream);

}  // namespace kiln::cuda
