// Ops that sample images at computed coordinates: GridSample, AffineGrid,
// RoiAlign and DeformConv, for f32, f16, bf16 and f64. Coordinates and sums
// are computed in double, as the CPU kernels compute them, so a sample never
// lands on a different pixel than on the CPU (these ops are not hot paths).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "backends/cuda/kernels/conv.cuh"
#include "kiln/dtype.h"
#include "support/status.h"

namespace kiln::cuda {

enum class GridMode { kLinear, kNearest, kCubic };
enum class GridPadding { kZeros, kBorder, kReflection };

// X [N, C, in...] (1 to 3 spatial dims), grid [N, points..., r] with r
// coordinates innermost dim first; y [N, C, points...].
struct GridSampleParams {
  DType dtype = DType::kF32;
  GridMode mode = GridMode::kLinear;
  GridPadding padding = GridPadding::kZeros;
  bool align_corners = false;
  int spatial = 2;
  int64_t batch = 0, channels = 0, points = 0;
  int64_t in[3] = {1, 1, 1};  // the real spatial dims, outermost first
  const void* x = nullptr;
  const void* grid = nullptr;
  void* y = nullptr;
};
Status launch_grid_sample(const GridSampleParams& p, cudaStream_t stream);

// theta [N, r, r + 1]; y [N, size..., r].
struct AffineGridParams {
  DType dtype = DType::kF32;
  bool align_corners = false;
  int spatial = 2;
  int64_t batch = 0;
  int64_t size[3] = {1, 1, 1};  // the real spatial dims, outermost first
  const void* theta = nullptr;
  void* y = nullptr;
};
Status launch_affine_grid(const AffineGridParams& p, cudaStream_t stream);

// X [N, C, H, W], rois [R, 4] (x1, y1, x2, y2) of X's dtype, batch_indices
// [R] int64; y [R, C, out_h, out_w]. An roi whose batch index is outside X
// yields zeros (the CPU kernel reports it; a kernel cannot).
struct RoiAlignParams {
  DType dtype = DType::kF32;
  bool half_pixel = true;
  bool max_mode = false;
  int64_t out_h = 1, out_w = 1, sampling_ratio = 0;
  double spatial_scale = 1.0;
  int64_t batch = 0, channels = 0, height = 0, width = 0, rois = 0;
  const void* x = nullptr;
  const void* roi = nullptr;
  const int64_t* batch_indices = nullptr;
  void* y = nullptr;
};
Status launch_roi_align(const RoiAlignParams& p, cudaStream_t stream);

// 2-D DeformConv: `g` (in[0] = out[0] = 1) as Conv's; offset [N, og*kh*kw*2,
// oh, ow], optional mask [N, og*kh*kw, oh, ow] and bias [M].
struct DeformConvParams {
  DType dtype = DType::kF32;
  WindowGeometry g;
  int64_t offset_group = 1;
  const void* x = nullptr;
  const void* w = nullptr;
  const void* offset = nullptr;
  const void* bias = nullptr;
  const void* mask = nullptr;
  void* y = nullptr;
};
Status launch_deform_conv(const DeformConvParams& p, cudaStream_t stream);

}  // namespace kiln::cuda
