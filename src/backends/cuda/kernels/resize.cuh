// Resize (every mode, coordinate transformation, nearest mode, cubic
// coefficient, exclude_outside, antialias, tf_crop_and_resize extrapolation)
// and Col2Im. Both accumulate in double as the CPU oracle does.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <vector>

#include "kiln/dtype.h"
#include "support/status.h"

namespace kiln::cuda {

enum class ResizeMode { kNearest, kLinear, kCubic };
enum class ResizeCoordinate {
  kHalfPixel,
  kHalfPixelSymmetric,
  kPytorchHalfPixel,
  kAlignCorners,
  kAsymmetric,
  kTfCropAndResize,
  kTfHalfPixelForNN
};
enum class NearestMode { kRoundPreferFloor, kRoundPreferCeil, kFloor, kCeil };

// Per dim: the scale and roi the CPU kernel derives from scales/sizes/roi and
// keep_aspect_ratio_policy, and whether the dim is resized at all (the CPU
// skips a dim whose scale is 1 with an unchanged size and the whole roi).
// One thread per output element sums the product of the resized dims' taps.
struct ResizeParams {
  DType dtype = DType::kF32;  // numeric
  const void* x = nullptr;
  void* y = nullptr;
  std::vector<int64_t> in_dims, out_dims;
  std::vector<double> scale, roi_lo, roi_hi;
  std::vector<bool> resized;
  ResizeMode mode = ResizeMode::kNearest;
  ResizeCoordinate coordinate = ResizeCoordinate::kHalfPixel;
  NearestMode nearest = NearestMode::kRoundPreferFloor;
  double cubic_a = -0.75;
  double extrapolation = 0;
  bool antialias = false;
  bool exclude_outside = false;
};
Status launch_resize(const ResizeParams& p, cudaStream_t stream);

// Col2Im: x [N, C * prod(block), L] summed into y [N, C, image...]; one
// thread per output element gathers its (at most one per kernel offset)
// contributions in the CPU's order.
struct Col2ImParams {
  DType dtype = DType::kF32;  // numeric
  const void* x = nullptr;
  void* y = nullptr;
  int64_t batch = 0, channels = 0;
  int64_t blocks_in = 0;  // x's last dim, which must equal the block count of the geometry
  std::vector<int64_t> image, block, dilations, strides, pads;  // pads: begins then ends
};
Status launch_col2im(const Col2ImParams& p, cudaStream_t stream);

}  // namespace kiln::cuda
