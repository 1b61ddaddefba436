// Signal kernels (signal.cuh): one thread per output element, in double.
#include <cmath>

#include "backends/cuda/kernels/common.cuh"
#include "backends/cuda/kernels/elementwise_core.cuh"
#include "backends/cuda/kernels/signal.cuh"
#include "backends/cuda/kernels/window_common.cuh"

namespace kiln::cuda {
namespace {

constexpr int kBlock = 256;
constexpr double kPi = 3.14159265358979323846;

template <typename T>
__global__ void window_kernel(T* __restrict__ y, WindowParams p) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < p.size; i += stride) {
    const double t = 2 * kPi * static_cast<double>(i) / p.denom;
    y[i] = store_as<T>(p.a0 - p.a1 * cos(t) + p.a2 * cos(2 * t));
  }
}

// Mel point i floored to a DFT bin.
__device__ int64_t mel_edge(const MelWeightParams& p, double low_mel, double step, int64_t i) {
  const double hz = 700 * (pow(10.0, (static_cast<double>(i) * step + low_mel) / 2595) - 1);
  return static_cast<int64_t>(floor(static_cast<double>(p.dft_length + 1) * hz / static_cast<double>(p.sample_rate)));
}

// Element (r, c): the CPU writes the rising edge [l, m] (or 1 at m when
// l == m), then the falling edge [m, h) over it.
template <typename T>
__global__ void mel_weight_kernel(T* __restrict__ y, MelWeightParams p, int64_t rows, double low_mel, double step) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  const int64_t total = rows * p.mel_bins;
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += stride) {
    const int64_t r = e / p.mel_bins, c = e % p.mel_bins;
    const int64_t l = mel_edge(p, low_mel, step, c), m = mel_edge(p, low_mel, step, c + 1),
                  h = mel_edge(p, low_mel, step, c + 2);
    double v = 0;
    if (m == l) {
      if (r == m) v = 1;
    } else if (r >= l && r <= m) {
      v = static_cast<double>(r - l) / static_cast<double>(m - l);
    }
    if (r >= m && r < h) v = static_cast<double>(h - r) / static_cast<double>(h - m);
    y[e] = store_as<T>(v);
  }
}

struct Complex {
  double re, im;
};

// The twiddle e^{-+2 pi i q / n} for q = (j * k) mod n, as the CPU's table.
__device__ __forceinline__ Complex twiddle(int64_t q, int64_t n, bool inverse) {
  const double a = 2 * kPi * static_cast<double>(q) / static_cast<double>(n);
  return {cos(a), inverse ? sin(a) : -sin(a)};
}

// Sample j of a DFT line (zero past the input).
template <typename T>
__device__ __forceinline__ Complex dft_sample(const T* x, const DftParams& p, int64_t o, int64_t i, int64_t j,
                                              int64_t used) {
  if (j >= used) return {0, 0};
  const T* s = x + ((o * p.len + j) * p.inner + i) * p.comps;
  return {to_double(s[0]), p.comps == 2 ? to_double(s[1]) : 0.0};
}

// Sample j of a one-sided inverse's line: the Hermitian spectrum rebuilt from
// its first n / 2 + 1 bins (bin 0 and, for even n, bin n / 2 real).
template <typename T>
__device__ __forceinline__ Complex irfft_sample(const T* x, const DftParams& p, int64_t o, int64_t i, int64_t j,
                                                int64_t used) {
  if (j == 0 || 2 * j == p.n) return {dft_sample(x, p, o, i, j, used).re, 0};
  if (2 * j < p.n) return dft_sample(x, p, o, i, j, used);
  const Complex c = dft_sample(x, p, o, i, p.n - j, used);
  return {c.re, -c.im};
}

template <typename T>
__global__ void dft_kernel(const T* __restrict__ x, T* __restrict__ y, DftParams p) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  const int64_t total = p.outer * p.bins * p.inner;
  const int64_t used = p.len < (p.irfft ? p.n / 2 + 1 : p.n) ? p.len : (p.irfft ? p.n / 2 + 1 : p.n);
  const double scale = p.inverse ? 1.0 / static_cast<double>(p.n) : 1.0;
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += stride) {
    const int64_t i = e % p.inner, k = e / p.inner % p.bins, o = e / (p.inner * p.bins);
    double re = 0, im = 0;
    const int64_t terms = p.irfft ? p.n : used;
    for (int64_t j = 0; j < terms; ++j) {
      const Complex s = p.irfft ? irfft_sample(x, p, o, i, j, used) : dft_sample(x, p, o, i, j, used);
      const Complex w = twiddle(j * k % p.n, p.n, p.inverse);
      re += s.re * w.re - s.im * w.im;
      im += s.re * w.im + s.im * w.re;
    }
    T* q = y + e * (p.irfft ? 1 : 2);
    q[0] = store_as<T>(re * scale);
    if (!p.irfft) q[1] = store_as<T>(im * scale);
  }
}

template <typename T, typename W>
__global__ void stft_kernel(const T* __restrict__ x, const W* __restrict__ window, T* __restrict__ y, StftParams p) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  const int64_t total = p.batch * p.frames * p.bins;
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += stride) {
    const int64_t k = e % p.bins, f = e / p.bins % p.frames, b = e / (p.bins * p.frames);
    double re = 0, im = 0;
    for (int64_t j = 0; j < p.frame; ++j) {
      const T* s = x + (b * p.len + f * p.step + j) * p.comps;
      const double w = window ? to_double(window[j]) : 1.0;
      const double sr = to_double(s[0]) * w, si = p.comps == 2 ? to_double(s[1]) * w : 0.0;
      const Complex t = twiddle(j * k % p.frame, p.frame, false);
      re += sr * t.re - si * t.im;
      im += sr * t.im + si * t.re;
    }
    y[e * 2] = store_as<T>(re);
    y[e * 2 + 1] = store_as<T>(im);
  }
}

template <typename T, typename W>
Status launch_stft_with(const StftParams& p, int64_t total, cudaStream_t stream) {
  stft_kernel<T, W><<<grid_for(total, kBlock), kBlock, 0, stream>>>(
      static_cast<const T*>(p.x), static_cast<const W*>(p.window), static_cast<T*>(p.y), p);
  return last_launch_status("stft_kernel");
}

template <typename T>
Status launch_stft_as(const StftParams& p, int64_t total, cudaStream_t stream) {
  if (!p.window) return launch_stft_with<T, T>(p, total, stream);
  switch (p.window_type) {
    case DType::kF32: return launch_stft_with<T, float>(p, total, stream);
    case DType::kF16: return launch_stft_with<T, __half>(p, total, stream);
    case DType::kBF16: return launch_stft_with<T, __nv_bfloat16>(p, total, stream);
    case DType::kF64: return launch_stft_with<T, double>(p, total, stream);
    default: return unsupported("STFT: window dtype {}", dtype_name(p.window_type));
  }
}

}  // namespace

bool signal_float_supported(DType t) { return is_compute_float(t); }
bool signal_output_supported(DType t) { return is_compute_float(t) || is_byte_integer(t); }

Status launch_window(const WindowParams& p, cudaStream_t stream) {
  if (p.size <= 0) return Status::ok();
  KILN_CUDA_DISPATCH_NUMERIC(p.y_type, "window", {
    window_kernel<T><<<grid_for(p.size, kBlock), kBlock, 0, stream>>>(static_cast<T*>(p.y), p);
    return last_launch_status("window_kernel");
  });
  return Status::ok();
}

Status launch_mel_weight_matrix(const MelWeightParams& p, cudaStream_t stream) {
  const int64_t rows = p.dft_length / 2 + 1, total = rows * p.mel_bins;
  if (total <= 0) return Status::ok();
  auto to_mel = [](double hz) { return 2595 * std::log10(1 + hz / 700); };
  const double low = to_mel(p.lower_hz), step = (to_mel(p.upper_hz) - low) / static_cast<double>(p.mel_bins + 2);
  KILN_CUDA_DISPATCH_NUMERIC(p.y_type, "MelWeightMatrix", {
    mel_weight_kernel<T><<<grid_for(total, kBlock), kBlock, 0, stream>>>(static_cast<T*>(p.y), p, rows, low, step);
    return last_launch_status("mel_weight_kernel");
  });
  return Status::ok();
}

Status launch_dft(const DftParams& p, cudaStream_t stream) {
  const int64_t total = p.outer * p.bins * p.inner;
  if (total <= 0) return Status::ok();
  if (p.n < 1) return invalid_argument("DFT: dft_length {} must be positive", p.n);
  KILN_CUDA_DISPATCH_FLOAT64(p.dtype, "DFT", {
    dft_kernel<T><<<grid_for(total, kBlock), kBlock, 0, stream>>>(static_cast<const T*>(p.x), static_cast<T*>(p.y), p);
    return last_launch_status("dft_kernel");
  });
  return Status::ok();
}

Status launch_stft(const StftParams& p, cudaStream_t stream) {
  const int64_t total = p.batch * p.frames * p.bins;
  if (total <= 0) return Status::ok();
  KILN_CUDA_DISPATCH_FLOAT64(p.dtype, "STFT", return launch_stft_as<T>(p, total, stream));
  return Status::ok();
}

}  // namespace kiln::cuda
