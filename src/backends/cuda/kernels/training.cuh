// The optimizer steps of ai.onnx.preview.training (Adagrad, Momentum with
// its nesterov mode, Adam) on one tensor group: elementwise, computed in
// double as the CPU kernel does (training.cpp there), stored in the tensors'
// float dtype. R and T are read on the device, so a step needs no sync.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "kiln/dtype.h"
#include "support/status.h"

namespace kiln::cuda {

enum class OptimizerKind { kAdagrad, kMomentum, kNesterov, kAdam };

struct OptimizerParams {
  OptimizerKind kind = OptimizerKind::kAdagrad;
  DType dtype = DType::kF32;  // of X, G, the states and the outputs
  const void* r = nullptr;    // learning rate: one element of r_dtype
  const void* t = nullptr;    // step count: one element of t_dtype
  DType r_dtype = DType::kF32, t_dtype = DType::kI64;
  const void* x = nullptr;
  const void* g = nullptr;
  const void* s1 = nullptr;  // Adagrad H, Momentum V, Adam V
  const void* s2 = nullptr;  // Adam H
  void* x_out = nullptr;
  void* s1_out = nullptr;
  void* s2_out = nullptr;
  int64_t n = 0;
  // Attributes (each op reads the ones it defines).
  double decay_factor = 0, epsilon = 0, norm_coefficient = 0, norm_coefficient_post = 0, alpha = 0, beta = 0;
};

// r_dtype: f32, f64, f16 or bf16; t_dtype: i64 or i32; dtype: a float type.
Status launch_optimizer(const OptimizerParams& p, cudaStream_t stream);

}  // namespace kiln::cuda
