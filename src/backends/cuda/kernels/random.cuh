// RandomUniform(Like), RandomNormal(Like), Bernoulli and Multinomial on the
// GPU with a counter-based generator: element i's draw is a hash of (seed,
// stream offset, i) (the SplitMix64 finalizer), so every element is computed
// independently and a seed gives the same values on every run and GPU. The
// values differ from the CPU backend's (a Mersenne Twister); both follow the
// same distributions, and neither reproduces numpy's draws.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "kiln/dtype.h"
#include "support/status.h"

namespace kiln::cuda {

enum class RandomKind { kUniform, kNormal, kBernoulli };

struct RandomParams {
  RandomKind kind = RandomKind::kUniform;
  DType dtype = DType::kF32;  // of y: a float type (uniform, normal) or any numeric type or bool (Bernoulli)
  void* y = nullptr;
  int64_t n = 0;
  uint64_t seed = 0;
  // Unseeded ops: each launch also mixes in a device-side launch counter,
  // advanced after the draw, so runs (and CUDA graph replays) differ.
  bool fresh_each_launch = false;
  double a = 0, b = 1;      // uniform: [low, high); normal: mean, scale
  const void* p = nullptr;  // Bernoulli: the probabilities, n of p_dtype (a float type)
  DType p_dtype = DType::kF32;
};
Status launch_random(const RandomParams& p, cudaStream_t stream);

struct MultinomialParams {
  DType dtype = DType::kF32;  // of x: a float type
  const void* x = nullptr;    // [batch, classes] unnormalized log-probabilities
  void* y = nullptr;          // [batch, samples] of i32 or i64
  bool y_i64 = false;
  int64_t batch = 0, classes = 0, samples = 0;
  uint64_t seed = 0;
  bool fresh_each_launch = false;
};
Status launch_multinomial(const MultinomialParams& p, cudaStream_t stream);

}  // namespace kiln::cuda
