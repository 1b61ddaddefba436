// kiln.SpaceToDepthPad on the GPU (ops/space_to_depth_pad.h gives the
// semantics): X [N, C, H, W] (f32, f16 or bf16) read once, Y [N, Hb, Wb,
// 4 * CC] (f32, f16 or bf16) written once, the cast, the zero pads and the
// 2x2 block layout in the same pass.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "kiln/dtype.h"
#include "support/status.h"

namespace kiln::cuda {

struct SpaceToDepthPadParams {
  DType x_dtype = DType::kUndefined, y_dtype = DType::kUndefined;
  const void* x = nullptr;
  void* y = nullptr;
  int64_t n = 0, c = 0, h = 0, w = 0;  // X's dims
  int64_t channels = 0;                // CC >= c
  int64_t top = 0, left = 0;           // the pads before H and W
  int64_t hb = 0, wb = 0;              // Y's dims 1 and 2 (the pads after follow from them)
};

// Whether the kernel takes X of dtype x cast to y: each of f32, f16, bf16.
bool space_to_depth_pad_takes(DType x, DType y);

// One thread per (n, hb, wb, group of 16 bytes of output channels), adjacent
// threads at adjacent wb; Y is written 16 bytes at a time where it is 16-byte
// aligned and 4 * CC fills whole packs, else 8 or 4 bytes. Y must hold fewer
// than 2^31 elements (so does X, which it covers); an error says so.
Status launch_space_to_depth_pad(const SpaceToDepthPadParams& p, cudaStream_t stream);

}  // namespace kiln::cuda
