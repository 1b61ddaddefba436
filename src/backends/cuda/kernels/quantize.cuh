// QuantizeLinear, DequantizeLinear and DynamicQuantizeLinear, as the CPU
// kernels compute them (ir/quantize.h): the scale division in float (rounded
// to f16/bf16 when the precision asks), round half to even, saturation to the
// integer range; narrow floats (f8 kinds, f4e2m1) encoded with round to
// nearest even and the `saturate` rule. Packed types (4- and 2-bit integers,
// f4e2m1) are read and written whole bytes at a time.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "kiln/dtype.h"
#include "support/status.h"

namespace kiln::cuda {

// Which scale (and zero point) element applies to element i of x.
struct ScaleLayout {
  bool per_tensor = true;
  int64_t axis_dim = 1, inner = 1;  // x's size along the axis and after it
  int64_t block = 0;                // block_size (0: per axis)
  int64_t scale_blocks = 1;         // the scale's size along the axis when blocked
};

struct QuantizeParams {
  DType x_type = DType::kF32;
  DType scale_type = DType::kF32;
  DType y_type = DType::kI8;  // the zero point's dtype too
  const void* x = nullptr;
  const void* scale = nullptr;
  const void* zero = nullptr;  // optional
  void* y = nullptr;
  int64_t n = 0;
  ScaleLayout layout;
  bool saturate = true;
  DType precision = DType::kF32;  // the division's (f32, f16 or bf16)
};
Status launch_quantize(const QuantizeParams& p, cudaStream_t stream);

struct DequantizeParams {
  DType x_type = DType::kI8;  // the zero point's dtype too
  DType scale_type = DType::kF32;
  DType y_type = DType::kF32;
  const void* x = nullptr;
  const void* scale = nullptr;
  const void* zero = nullptr;  // optional
  void* y = nullptr;
  int64_t n = 0;
  ScaleLayout layout;
};
Status launch_dequantize(const DequantizeParams& p, cudaStream_t stream);

// Whether the kernels read (and Quantize writes) this element dtype.
bool quantized_dtype_supported(DType t);
// Whether it is a float dtype the kernels read for x, scales and DQ's output.
bool real_dtype_supported(DType t);

// DynamicQuantizeLinear: y uint8, scale f32 scalar, zero point uint8 scalar.
struct DynamicQuantizeParams {
  DType x_type = DType::kF32;
  const void* x = nullptr;
  void* y = nullptr;
  void* scale = nullptr;
  void* zero = nullptr;
  int64_t n = 0;
};
Status launch_dynamic_quantize(const DynamicQuantizeParams& p, cudaStream_t stream);

}  // namespace kiln::cuda
