// RNN, GRU and LSTM (src/backends/cpu/kernels/recurrent.cpp is the oracle):
// one thread block per (direction, batch row) walks its sequence step by step;
// per step the block's threads compute the gate pre-activations (x W^T + Wb
// and H R^T + Rb, one output row each, summed in the CPU's order), then the
// cell update, with a block barrier between the phases. Simple and exact to
// the CPU's arithmetic rather than fast: fine for small hidden sizes.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "kiln/dtype.h"
#include "ops/recurrent_attrs.h"
#include "support/status.h"

namespace kiln::cuda {

struct RecurrentParams : RnnShape {
  DType dtype = DType::kF32;  // X, W, R, B, initial states, P and the outputs
  const void *x = nullptr, *w = nullptr, *r = nullptr;
  const void *b = nullptr, *h0 = nullptr, *c0 = nullptr, *p = nullptr;  // null: zeros
  // sequence_lens (null: every row runs seq steps); a length outside [0, seq]
  // is clamped (the CPU kernel rejects it, which a kernel cannot report).
  const void* lens = nullptr;
  DType lens_type = DType::kI32;
  void *y = nullptr, *yh = nullptr, *yc = nullptr;  // null: not wanted
  RnnActivation acts[2 * 3] = {};                   // per_dir per direction
};

// Scratch bytes: per sequence the gate pre-activations (2 x gates x hidden)
// and three state vectors, in the compute type (double for f64, else float).
size_t recurrent_workspace_bytes(DType dtype, int64_t dirs, int64_t batch, int64_t gates, int64_t hidden);
// Whether the kernel takes dtype t (f32, f16, bf16, f64).
bool recurrent_dtype_supported(DType t);
Status launch_recurrent(const RecurrentParams& p, void* workspace, cudaStream_t stream);

}  // namespace kiln::cuda
