// DFT, STFT, window functions and MelWeightMatrix. Transforms are computed
// in double by the direct O(n^2) sum with an exact twiddle table: slow for
// long signals, but simple and accurate (this is the oracle).
#include <cmath>
#include <complex>
#include <numbers>

#include "backends/cpu/cpu_kernel.h"
#include "backends/cpu/dtype_dispatch.h"
#include "support/parallel.h"

namespace kiln {
namespace {

using Complex = std::complex<double>;

// X[k] = sum_j x[j] e^{-+2 pi i jk/n} for k < bins; `x` has `len` <= n samples
// (the rest are zeros).
void dft_line(const Complex* x, int64_t len, int64_t n, int64_t bins, bool inverse, Complex* out) {
  std::vector<Complex> twiddle(static_cast<size_t>(n));
  for (int64_t j = 0; j < n; ++j) {
    double a = 2 * std::numbers::pi * static_cast<double>(j) / static_cast<double>(n);
    twiddle[static_cast<size_t>(j)] = Complex(std::cos(a), inverse ? std::sin(a) : -std::sin(a));
  }
  for (int64_t k = 0; k < bins; ++k) {
    Complex sum = 0;
    for (int64_t j = 0; j < len; ++j) sum += x[j] * twiddle[static_cast<size_t>((j * k) % n)];
    out[k] = sum;
  }
}

Expected<int64_t> scalar_int(const CpuKernelContext& ctx, size_t i, const char* what) {
  KILN_ASSIGN_OR_RETURN(auto v, ctx.input(i).to_i64_vector());
  if (v.size() != 1) return invalid_argument("{} must be a scalar, has {} elements", what, v.size());
  return v[0];
}

Status run_dft(CpuKernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  int64_t rank = x.rank();
  int64_t axis = -2;
  if (ctx.has_input(2)) {
    KILN_ASSIGN_OR_RETURN(axis, scalar_int(ctx, 2, "DFT axis"));
  }
  if (axis < 0) axis += rank;
  if (axis < 0 || axis >= rank - 1) return invalid_argument("DFT: axis is out of range for rank {}", rank);
  bool inverse = ctx.node().attr_int("inverse", 0) != 0, onesided = ctx.node().attr_int("onesided", 0) != 0;
  int64_t comps = x.dims().back(), len = x.dim(axis);
  if (comps != 1 && comps != 2) return invalid_argument("DFT: the last dim must be 1 or 2, is {}", comps);
  int64_t n = inverse && onesided ? 2 * (len - 1) : len;
  if (ctx.has_input(1)) {
    KILN_ASSIGN_OR_RETURN(n, scalar_int(ctx, 1, "DFT dft_length"));
  }
  if (n < 1) return invalid_argument("DFT: dft_length {} must be positive", n);
  // A one-sided inverse (irfft) rebuilds the full Hermitian spectrum and keeps the real part.
  bool irfft = inverse && onesided;
  int64_t bins = !inverse && onesided ? n / 2 + 1 : n;
  std::vector<int64_t> out_dims = x.dims();
  out_dims[axis] = bins;
  out_dims.back() = irfft ? 1 : 2;
  Tensor& y = ctx.allocate_output(0, out_dims);
  int64_t outer = 1, inner = 1;
  for (int64_t i = 0; i < axis; ++i) outer *= x.dim(i);
  for (int64_t i = axis + 1; i < rank - 1; ++i) inner *= x.dim(i);
  return visit_dtype(x.dtype(), kFloatTypes, [&]<typename T>() {
    const T* in = x.data<T>();
    T* out = y.mutable_data<T>();
    parallel_for(outer * inner, n * n, [&](int64_t begin, int64_t end) {
      std::vector<Complex> line(static_cast<size_t>(n)), res(static_cast<size_t>(n));
      for (int64_t l = begin; l < end; ++l) {
        int64_t o = l / inner, i = l % inner;
        int64_t used = std::min(len, irfft ? n / 2 + 1 : n);
        std::fill(line.begin(), line.end(), Complex(0));
        for (int64_t j = 0; j < used; ++j) {
          const T* p = in + ((o * len + j) * inner + i) * comps;
          line[static_cast<size_t>(j)] =
              Complex(static_cast<double>(p[0]), comps == 2 ? static_cast<double>(p[1]) : 0.0);
        }
        if (irfft) {
          line[0] = line[0].real();
          for (int64_t j = 1; j < n - j; ++j)
            line[static_cast<size_t>(n - j)] = std::conj(line[static_cast<size_t>(j)]);
          if (n % 2 == 0) line[static_cast<size_t>(n / 2)] = line[static_cast<size_t>(n / 2)].real();
          used = n;
        }
        dft_line(line.data(), used, n, bins, inverse, res.data());
        double scale = inverse ? 1.0 / static_cast<double>(n) : 1.0;
        for (int64_t k = 0; k < bins; ++k) {
          T* q = out + ((o * bins + k) * inner + i) * (irfft ? 1 : 2);
          q[0] = static_cast<T>(res[static_cast<size_t>(k)].real() * scale);
          if (!irfft) q[1] = static_cast<T>(res[static_cast<size_t>(k)].imag() * scale);
        }
      }
    });
    return Status::ok();
  });
}

Status run_stft(CpuKernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  if (x.rank() != 3) return invalid_argument("STFT: signal must be [batch, length, 1 or 2]");
  int64_t batch = x.dim(0), len = x.dim(1), comps = x.dim(2);
  KILN_ASSIGN_OR_RETURN(int64_t step, scalar_int(ctx, 1, "STFT frame_step"));
  bool has_window = ctx.has_input(2);
  int64_t frame = has_window ? ctx.input(2).numel() : len;
  if (ctx.has_input(3)) {
    KILN_ASSIGN_OR_RETURN(frame, scalar_int(ctx, 3, "STFT frame_length"));
  }
  if (has_window && ctx.input(2).numel() != frame)
    return invalid_argument("STFT: the window has {} samples, frame_length is {}", ctx.input(2).numel(), frame);
  if (step < 1 || frame < 1 || frame > len)
    return invalid_argument("STFT: frame_step {} and frame_length {} do not fit a signal of {}", step, frame, len);
  bool onesided = ctx.node().attr_int("onesided", 1) != 0;
  int64_t frames = 1 + (len - frame) / step, bins = onesided ? frame / 2 + 1 : frame;
  Tensor& y = ctx.allocate_output(0, {batch, frames, bins, 2});
  std::vector<double> window(static_cast<size_t>(frame), 1.0);
  if (has_window)
    for (int64_t j = 0; j < frame; ++j) window[static_cast<size_t>(j)] = ctx.input(2).element_as_double(j);
  return visit_dtype(x.dtype(), kFloatTypes, [&]<typename T>() {
    const T* in = x.data<T>();
    T* out = y.mutable_data<T>();
    parallel_for(batch * frames, frame * bins, [&](int64_t begin, int64_t end) {
      std::vector<Complex> line(static_cast<size_t>(frame)), res(static_cast<size_t>(bins));
      for (int64_t l = begin; l < end; ++l) {
        int64_t b = l / frames, f = l % frames;
        for (int64_t j = 0; j < frame; ++j) {
          const T* p = in + (b * len + f * step + j) * comps;
          double w = window[static_cast<size_t>(j)];
          line[static_cast<size_t>(j)] =
              Complex(static_cast<double>(p[0]) * w, comps == 2 ? static_cast<double>(p[1]) * w : 0.0);
        }
        dft_line(line.data(), frame, frame, bins, false, res.data());
        for (int64_t k = 0; k < bins; ++k) {
          out[(l * bins + k) * 2] = static_cast<T>(res[static_cast<size_t>(k)].real());
          out[(l * bins + k) * 2 + 1] = static_cast<T>(res[static_cast<size_t>(k)].imag());
        }
      }
    });
    return Status::ok();
  });
}

// Writes `values` (computed in double) into output 0 with its inferred dtype.
Status write_output(CpuKernelContext& ctx, std::vector<int64_t> dims, const std::vector<double>& values) {
  Tensor& y = ctx.allocate_output(0, std::move(dims));
  return visit_dtype(y.dtype(), kNumericTypes, [&]<typename T>() {
    T* out = y.mutable_data<T>();
    for (size_t i = 0; i < values.size(); ++i) out[i] = static_cast<T>(values[i]);
    return Status::ok();
  });
}

// Hann, Hamming and Blackman: sums of cosines of 2 pi n / N, where N is the
// size (periodic) or the size - 1 (symmetric).
Status run_window(CpuKernelContext& ctx, double a0, double a1, double a2) {
  KILN_ASSIGN_OR_RETURN(int64_t size, scalar_int(ctx, 0, "window size"));
  if (size < 0) return invalid_argument("{}: size {} is negative", ctx.node().op_type, size);
  bool periodic = ctx.node().attr_int("periodic", 1) != 0;
  auto denom = static_cast<double>(periodic ? size : size - 1);
  std::vector<double> w(static_cast<size_t>(size));
  for (int64_t i = 0; i < size; ++i) {
    double t = 2 * std::numbers::pi * static_cast<double>(i) / denom;
    w[static_cast<size_t>(i)] = a0 - a1 * std::cos(t) + a2 * std::cos(2 * t);
  }
  return write_output(ctx, {size}, w);
}

Status run_hann(CpuKernelContext& ctx) { return run_window(ctx, 0.5, 0.5, 0); }
Status run_hamming(CpuKernelContext& ctx) { return run_window(ctx, 25.0 / 46.0, 21.0 / 46.0, 0); }
Status run_blackman(CpuKernelContext& ctx) { return run_window(ctx, 0.42, 0.5, 0.08); }

// Triangular filters between mel-spaced points, as the ONNX reference
// computes them (bin edges floored to DFT bins).
Status run_mel_weight_matrix(CpuKernelContext& ctx) {
  KILN_ASSIGN_OR_RETURN(int64_t mel_bins, scalar_int(ctx, 0, "num_mel_bins"));
  KILN_ASSIGN_OR_RETURN(int64_t dft_length, scalar_int(ctx, 1, "dft_length"));
  KILN_ASSIGN_OR_RETURN(int64_t sample_rate, scalar_int(ctx, 2, "sample_rate"));
  double lower = ctx.input(3).element_as_double(0), upper = ctx.input(4).element_as_double(0);
  if (mel_bins < 1 || dft_length < 1 || sample_rate < 1 || !(lower >= 0) || !(upper > lower))
    return invalid_argument("MelWeightMatrix: needs positive sizes and 0 <= lower_edge_hertz < upper_edge_hertz");
  int64_t rows = dft_length / 2 + 1;
  auto to_mel = [](double hz) { return 2595 * std::log10(1 + hz / 700); };
  double low = to_mel(lower), step = (to_mel(upper) - low) / static_cast<double>(mel_bins + 2);
  std::vector<int64_t> edge(static_cast<size_t>(mel_bins + 2));
  for (int64_t i = 0; i < mel_bins + 2; ++i) {
    double hz = 700 * (std::pow(10.0, (static_cast<double>(i) * step + low) / 2595) - 1);
    edge[static_cast<size_t>(i)] =
        static_cast<int64_t>(std::floor(static_cast<double>(dft_length + 1) * hz / static_cast<double>(sample_rate)));
  }
  std::vector<double> w(static_cast<size_t>(rows * mel_bins), 0.0);
  auto at = [&](int64_t r, int64_t c) -> double* {
    return r >= 0 && r < rows ? &w[static_cast<size_t>(r * mel_bins + c)] : nullptr;
  };
  for (int64_t i = 0; i < mel_bins; ++i) {
    int64_t l = edge[static_cast<size_t>(i)], c = edge[static_cast<size_t>(i + 1)],
            h = edge[static_cast<size_t>(i + 2)];
    if (c == l) {
      if (double* p = at(c, i)) *p = 1;
    } else {
      for (int64_t j = l; j <= c; ++j)
        if (double* p = at(j, i)) *p = static_cast<double>(j - l) / static_cast<double>(c - l);
    }
    for (int64_t j = c; j < h; ++j)
      if (double* p = at(j, i)) *p = static_cast<double>(h - j) / static_cast<double>(h - c);
  }
  return write_output(ctx, {rows, mel_bins}, w);
}

Status run_image_decoder(CpuKernelContext& ctx) {
  return unsupported("ImageDecoder: kiln does not decode images; decode before inference");
}

}  // namespace

KILN_CPU_KERNEL("", "DFT", run_dft);
KILN_CPU_KERNEL("", "STFT", run_stft);
KILN_CPU_KERNEL("", "HannWindow", run_hann);
KILN_CPU_KERNEL("", "HammingWindow", run_hamming);
KILN_CPU_KERNEL("", "BlackmanWindow", run_blackman);
KILN_CPU_KERNEL("", "MelWeightMatrix", run_mel_weight_matrix);
KILN_CPU_KERNEL("", "ImageDecoder", run_image_decoder);

}  // namespace kiln
