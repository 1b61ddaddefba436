// Signal kernels: the window generators (Hann, Hamming, Blackman),
// MelWeightMatrix, DFT and STFT, as the CPU oracle computes them
// (src/backends/cpu/kernels/signal.cpp): everything in double, transforms by
// the direct O(n^2) sum (one thread per output bin) with the twiddle of
// (j * k) mod n, so long signals are slow but the numbers are the CPU's.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "kiln/dtype.h"
#include "support/status.h"

namespace kiln::cuda {

// Whether the signal kernels read and write dtype t (f32, f16, bf16, f64).
bool signal_float_supported(DType t);
// Whether the generators (windows, MelWeightMatrix) write dtype t (numeric).
bool signal_output_supported(DType t);

// y[i] = a0 - a1 cos(t) + a2 cos(2t), t = 2 pi i / denom (size for a
// periodic window, size - 1 for a symmetric one), stored as y_type.
struct WindowParams {
  DType y_type = DType::kF32;
  void* y = nullptr;
  int64_t size = 0;
  double denom = 1;
  double a0 = 0, a1 = 0, a2 = 0;
};
Status launch_window(const WindowParams& p, cudaStream_t stream);

// MelWeightMatrix: [dft_length / 2 + 1, mel_bins] triangular filters between
// mel-spaced points floored to DFT bins.
struct MelWeightParams {
  DType y_type = DType::kF32;
  void* y = nullptr;
  int64_t mel_bins = 0, dft_length = 0, sample_rate = 0;
  double lower_hz = 0, upper_hz = 0;
};
Status launch_mel_weight_matrix(const MelWeightParams& p, cudaStream_t stream);

// DFT of x [outer, len, inner, comps] along the len axis: y [outer, bins,
// inner, 2] (1 for a one-sided inverse, which rebuilds the Hermitian spectrum
// and keeps the real part). n is the DFT length (x is cut or zero-padded).
struct DftParams {
  DType dtype = DType::kF32;  // x and y
  const void* x = nullptr;
  void* y = nullptr;
  int64_t outer = 1, len = 1, inner = 1, comps = 1;
  int64_t n = 1, bins = 1;
  bool inverse = false, irfft = false;
};
Status launch_dft(const DftParams& p, cudaStream_t stream);

// STFT of x [batch, len, comps]: y [batch, frames, bins, 2], frame f taking
// samples [f * step, f * step + frame), times the window (null: ones).
struct StftParams {
  DType dtype = DType::kF32;  // x and y
  DType window_type = DType::kF32;
  const void* x = nullptr;
  const void* window = nullptr;
  void* y = nullptr;
  int64_t batch = 1, len = 1, comps = 1;
  int64_t step = 1, frame = 1, frames = 1, bins = 1;
};
Status launch_stft(const StftParams& p, cudaStream_t stream);

}  // namespace kiln::cuda
