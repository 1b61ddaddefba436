// The other normalizations: BatchNormalization (inference, and training's
// batch statistics through launch_mean_var), LpNormalization, LRN and
// MeanVarianceNormalization's final step. f32, f16, bf16 (in float), f64 (in
// double); parameters may have any float dtype.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <vector>

#include "kiln/dtype.h"
#include "support/status.h"

namespace kiln::cuda {

// x viewed as [n, c, inner]; parameter element k = ch * per + i % per (per is
// 1, or inner for the per-activation statistics of spatial=0 models).
struct BatchNormParams {
  DType dtype = DType::kF32;
  const void* x = nullptr;
  void* y = nullptr;
  int64_t n = 0, c = 0, inner = 1, per = 1;
  const void *scale = nullptr, *bias = nullptr, *mean = nullptr, *var = nullptr;
  DType scale_dtype = DType::kF32, bias_dtype = DType::kF32, mean_dtype = DType::kF32, var_dtype = DType::kF32;
  float epsilon = 1e-5f;
};
Status launch_batch_norm(const BatchNormParams& p, cudaStream_t stream);

// out[k] = a[k] * momentum + b[k] * (1 - momentum), out and a of `dtype`,
// b of `b_dtype` (training's running statistics).
struct RunningStatParams {
  DType dtype = DType::kF32, b_dtype = DType::kF32;
  const void* a = nullptr;
  const void* b = nullptr;
  void* out = nullptr;
  int64_t count = 0;
  float momentum = 0.9f;
};
Status launch_running_stat(const RunningStatParams& p, cudaStream_t stream);

// x / ||x||_p along the axis of a [outer, n, inner] view (0 where the norm is 0).
struct LpNormParams {
  DType dtype = DType::kF32;
  const void* x = nullptr;
  void* y = nullptr;
  int64_t outer = 0, n = 0, inner = 1;
  int p = 2;
};
Status launch_lp_norm(const LpNormParams& p, cudaStream_t stream);

// x / (bias + alpha / size * sum of x^2 over the channel window)^beta on [n, c, inner].
struct LrnParams {
  DType dtype = DType::kF32;
  const void* x = nullptr;
  void* y = nullptr;
  int64_t n = 0, c = 0, inner = 1, size = 1;
  float alpha = 1e-4f, beta = 0.75f, bias = 1.f;
};
Status launch_lrn(const LrnParams& p, cudaStream_t stream);

// y = (x - mean[o]) / (sqrt(var[o]) + 1e-9), o the index of x's element among
// the kept dims (mean and var in float, double for f64 x, as launch_mean_var
// writes them).
struct MvnApplyParams {
  DType dtype = DType::kF32;
  const void* x = nullptr;
  void* y = nullptr;
  std::vector<int64_t> dims;
  std::vector<bool> reduced;
  const void* mean = nullptr;
  const void* var = nullptr;
};
Status launch_mvn_apply(const MvnApplyParams& p, cudaStream_t stream);

}  // namespace kiln::cuda
