// The direct convolutions: every output element is one thread's sum over its
// group's input channels and the kernel taps that land inside the input.
// Simple and correct for every geometry (any dilation, stride, asymmetric
// pads, 1-D to 3-D), which is why they back up cuDNN; not fast.
#include <cmath>

#include "backends/cuda/kernels/window_common.cuh"

namespace kiln::cuda {
namespace {

constexpr int kBlock = 256;

template <typename T, typename Acc>
__global__ void direct_conv_kernel(const T* __restrict__ x, const T* __restrict__ w, const T* __restrict__ bias,
                                   T* __restrict__ y, WindowGeometry g, int64_t n) {
  const int64_t cg = g.in_channels / g.group, mg = g.out_channels / g.group;
  const int64_t isize = g.in_size(), ksize = g.kernel_size();
  KILN_GRID_STRIDE_LOOP(i, n) {
    const OutputPosition o = output_position(g, i);
    const int64_t m = o.plane % g.out_channels, batch = o.plane / g.out_channels;
    const T* xg = x + (batch * g.in_channels + m / mg * cg) * isize;
    const T* wm = w + m * cg * ksize;
    Acc acc = bias ? load_as<Acc>(bias[m]) : Acc(0);
    for (int64_t c = 0; c < cg; ++c) {
      const T* xc = xg + c * isize;
      const T* wc = wm + c * ksize;
      for_each_tap(g, o, [&](const WindowTap& t) { acc += load_as<Acc>(xc[t.at]) * load_as<Acc>(wc[t.k]); });
    }
    y[i] = store_as<T>(acc);
  }
}

// Channels-last: i runs over [N, H', W', M] in memory order; the channels of
// a tap are contiguous in x ([N, H, W, C]) and in w ([M, R, S, C/group]).
template <typename T, typename Acc>
__global__ void direct_conv_nhwc_kernel(const T* __restrict__ x, const T* __restrict__ w, const T* __restrict__ bias,
                                        T* __restrict__ y, WindowGeometry g, int64_t n) {
  const int64_t cg = g.in_channels / g.group, mg = g.out_channels / g.group;
  const int64_t isize = g.in_size(), ksize = g.kernel_size();
  KILN_GRID_STRIDE_LOOP(i, n) {
    const int64_t m = i % g.out_channels;
    const OutputPosition o = output_position(g, i / g.out_channels);  // o.plane is the batch index
    const T* xg = x + o.plane * isize * g.in_channels + m / mg * cg;
    const T* wm = w + m * ksize * cg;
    Acc acc = bias ? load_as<Acc>(bias[m]) : Acc(0);
    for_each_tap(g, o, [&](const WindowTap& t) {
      const T* xt = xg + t.at * g.in_channels;
      const T* wt = wm + t.k * cg;
      for (int64_t c = 0; c < cg; ++c) acc += load_as<Acc>(xt[c]) * load_as<Acc>(wt[c]);
    });
    y[i] = store_as<T>(acc);
  }
}

// The input coordinate that output coordinate o gathers from through tap k
// of a transposed convolution, or -1 when none does.
__device__ __forceinline__ int64_t transpose_source(const WindowGeometry& g, int a, int64_t o, int64_t k) {
  const int64_t t = o + g.pad_begin[a] - k * g.dilation[a];
  if (t < 0 || t % g.stride[a] != 0) return -1;
  const int64_t i = t / g.stride[a];
  return i < g.in[a] ? i : -1;
}

// ConvTranspose as a gather: y[n, m, o] = sum over (c, k) with
// i * stride + k * dilation - pad_begin = o of x[n, c, i] * w[c, m % mg, k].
template <typename T, typename Acc>
__global__ void transpose_conv_kernel(const T* __restrict__ x, const T* __restrict__ w, const T* __restrict__ bias,
                                      T* __restrict__ y, WindowGeometry g, int64_t n) {
  const int64_t cg = g.in_channels / g.group, mg = g.out_channels / g.group;
  const int64_t isize = g.in_size(), ksize = g.kernel_size();
  KILN_GRID_STRIDE_LOOP(i, n) {
    const OutputPosition o = output_position(g, i);
    const int64_t m = o.plane % g.out_channels, batch = o.plane / g.out_channels;
    const int64_t first = m / mg * cg, mm = m % mg;
    Acc acc = bias ? load_as<Acc>(bias[m]) : Acc(0);
    for (int64_t c = first; c < first + cg; ++c) {
      const T* xc = x + (batch * g.in_channels + c) * isize;
      const T* wc = w + (c * mg + mm) * ksize;
      for (int64_t kd = 0; kd < g.kernel[0]; ++kd) {
        const int64_t id = transpose_source(g, 0, o.d, kd);
        if (id < 0) continue;
        for (int64_t kh = 0; kh < g.kernel[1]; ++kh) {
          const int64_t ih = transpose_source(g, 1, o.h, kh);
          if (ih < 0) continue;
          for (int64_t kw = 0; kw < g.kernel[2]; ++kw) {
            const int64_t iw = transpose_source(g, 2, o.w, kw);
            if (iw < 0) continue;
            acc += load_as<Acc>(xc[(id * g.in[1] + ih) * g.in[2] + iw]) *
                   load_as<Acc>(wc[(kd * g.kernel[1] + kh) * g.kernel[2] + kw]);
          }
        }
      }
    }
    y[i] = store_as<T>(acc);
  }
}

template <typename T>
Status launch_direct_typed(const DirectConvParams& p, int64_t n, cudaStream_t stream) {
  using Acc = std::conditional_t<std::is_same_v<T, double>, double, float>;
  const T* x = static_cast<const T*>(p.x);
  const T* w = static_cast<const T*>(p.w);
  const T* b = static_cast<const T*>(p.bias);
  T* y = static_cast<T*>(p.y);
  if (p.transpose) {
    transpose_conv_kernel<T, Acc><<<grid_for(n, kBlock), kBlock, 0, stream>>>(x, w, b, y, p.g, n);
    return last_launch_status("transpose_conv_kernel");
  }
  if (p.channels_last) {
    direct_conv_nhwc_kernel<T, Acc><<<grid_for(n, kBlock), kBlock, 0, stream>>>(x, w, b, y, p.g, n);
    return last_launch_status("direct_conv_nhwc_kernel");
  }
  direct_conv_kernel<T, Acc><<<grid_for(n, kBlock), kBlock, 0, stream>>>(x, w, b, y, p.g, n);
  return last_launch_status("direct_conv_kernel");
}

// Integer convolution: operands centered on their zero points, summed in
// int64 (the CPU's exact sum), then stored as int32 or requantized.
template <typename XT, typename WT, typename YT>
__global__ void integer_conv_kernel(IntegerConvParams p, int64_t n) {
  const WindowGeometry& g = p.g;
  const XT* x = static_cast<const XT*>(p.x);
  const WT* w = static_cast<const WT*>(p.w);
  const int64_t cg = g.in_channels / g.group, mg = g.out_channels / g.group;
  const int64_t isize = g.in_size(), ksize = g.kernel_size();
  const int32_t xz = p.x_zero ? int32_t(*static_cast<const XT*>(p.x_zero)) : 0;
  KILN_GRID_STRIDE_LOOP(i, n) {
    const OutputPosition o = output_position(g, i);
    const int64_t m = o.plane % g.out_channels, batch = o.plane / g.out_channels;
    const int32_t wz = p.w_zero ? int32_t(static_cast<const WT*>(p.w_zero)[p.w_zero_count == 1 ? 0 : m]) : 0;
    const XT* xg = x + (batch * g.in_channels + m / mg * cg) * isize;
    const WT* wm = w + m * cg * ksize;
    int64_t acc = 0;
    for (int64_t c = 0; c < cg; ++c)
      for_each_tap(g, o, [&](const WindowTap& t) {
        const int32_t xv = int32_t(xg[c * isize + t.at]) - xz;
        const int32_t wv = int32_t(wm[c * ksize + t.k]) - wz;
        acc += int64_t(xv * wv);
      });
    if constexpr (std::is_same_v<YT, int32_t>) {
      static_cast<int32_t*>(p.y)[i] = static_cast<int32_t>(acc);
    } else {
      // The CPU's arithmetic, step for step: double product of the scales,
      // the quotient rounded to float, then to the nearest even integer.
      const double ws = p.w_scale[p.w_scale_count == 1 ? 0 : m];
      const double real = double(acc + (p.bias ? p.bias[m] : 0)) * (double(*p.x_scale) * ws);
      const float scaled = __double2float_rn(real / double(*p.y_scale));
      const float rounded = fminf(fmaxf(rintf(scaled), -1e9f), 1e9f);
      const int64_t yz = p.y_zero ? int64_t(*static_cast<const YT*>(p.y_zero)) : 0;
      int64_t q = int64_t(rounded) + yz;
      constexpr int64_t lo = std::is_same_v<YT, uint8_t> ? 0 : -128, hi = std::is_same_v<YT, uint8_t> ? 255 : 127;
      q = q < lo ? lo : (q > hi ? hi : q);
      static_cast<YT*>(p.y)[i] = static_cast<YT>(q);
    }
  }
}

template <typename XT, typename WT>
Status launch_integer_typed(const IntegerConvParams& p, int64_t n, cudaStream_t stream) {
  const unsigned grid = grid_for(n, kBlock);
  switch (p.y_type) {
    case DType::kI32: integer_conv_kernel<XT, WT, int32_t><<<grid, kBlock, 0, stream>>>(p, n); break;
    case DType::kU8: integer_conv_kernel<XT, WT, uint8_t><<<grid, kBlock, 0, stream>>>(p, n); break;
    case DType::kI8: integer_conv_kernel<XT, WT, int8_t><<<grid, kBlock, 0, stream>>>(p, n); break;
    default: return unsupported("integer conv: output dtype {}", dtype_name(p.y_type));
  }
  return last_launch_status("integer_conv_kernel");
}

template <typename T>
__global__ void fill_channel_bias_kernel(T* __restrict__ y, const T* __restrict__ bias, int64_t channels, int64_t inner,
                                         int64_t n) {
  KILN_GRID_STRIDE_LOOP(i, n) {
    const int64_t c = i / inner % channels;
    y[i] = bias[c];
  }
}

// y over [planes, padded dims]: x where the position maps inside the input, else 0.
template <typename T>
__global__ void zero_pad_kernel(const T* __restrict__ x, T* __restrict__ y, WindowGeometry g, int64_t n) {
  const int64_t pd = g.in[0] + g.pad_begin[0] + g.pad_end[0], ph = g.in[1] + g.pad_begin[1] + g.pad_end[1],
                pw = g.in[2] + g.pad_begin[2] + g.pad_end[2];
  KILN_GRID_STRIDE_LOOP(i, n) {
    const int64_t w = i % pw, h = i / pw % ph, d = i / (pw * ph) % pd, plane = i / (pw * ph * pd);
    const int64_t id = d - g.pad_begin[0], ih = h - g.pad_begin[1], iw = w - g.pad_begin[2];
    const bool inside = id >= 0 && id < g.in[0] && ih >= 0 && ih < g.in[1] && iw >= 0 && iw < g.in[2];
    y[i] = inside ? x[((plane * g.in[0] + id) * g.in[1] + ih) * g.in[2] + iw] : store_as<T>(0.f);
  }
}

template <typename T>
__global__ void crop_kernel(CropParams p, int64_t n) {
  const T* full = static_cast<const T*>(p.full);
  KILN_GRID_STRIDE_LOOP(i, n) {
    const int64_t w = i % p.y_dims[2], h = i / p.y_dims[2] % p.y_dims[1],
                  d = i / (p.y_dims[2] * p.y_dims[1]) % p.y_dims[0],
                  plane = i / (p.y_dims[2] * p.y_dims[1] * p.y_dims[0]);
    const int64_t at =
        ((plane * p.full_dims[0] + d + p.offset[0]) * p.full_dims[1] + h + p.offset[1]) * p.full_dims[2] + w +
        p.offset[2];
    static_cast<T*>(p.y)[i] = full[at];
  }
}

// Element t of row `row` of the past-padded input: past[0, k-1) then x.
template <typename T>
__device__ __forceinline__ float padded_at(const CausalConvParams& p, int64_t row, int64_t t) {
  if (t >= p.kernel - 1) return load_as<float>(static_cast<const T*>(p.x)[row * p.length + t - (p.kernel - 1)]);
  return p.past ? load_as<float>(static_cast<const T*>(p.past)[row * (p.kernel - 1) + t]) : 0.f;
}

// One thread per output element, then one per present-state element.
template <typename T>
__global__ void causal_conv_kernel(CausalConvParams p, int64_t n_out, int64_t n_state) {
  const T* w = static_cast<const T*>(p.w);
  const T* bias = static_cast<const T*>(p.bias);
  KILN_GRID_STRIDE_LOOP(i, n_out + n_state) {
    if (i >= n_out) {
      const int64_t s = i - n_out, row = s / (p.kernel - 1), t = s % (p.kernel - 1);
      static_cast<T*>(p.present)[s] = store_as<T>(padded_at<T>(p, row, p.length + t));
      continue;
    }
    const int64_t row = i / p.length, t = i % p.length, c = row % p.channels;
    float acc = bias ? load_as<float>(bias[c]) : 0.f;
    for (int64_t k = 0; k < p.kernel; ++k)
      acc = __fadd_rn(acc, __fmul_rn(load_as<float>(w[c * p.kernel + k]), padded_at<T>(p, row, t + k)));
    acc = load_as<float>(store_as<T>(acc));  // the convolution's output is a tensor of the input's dtype
    if (p.silu) acc = acc / (1.0f + expf(-acc));
    static_cast<T*>(p.y)[i] = store_as<T>(acc);
  }
}

}  // namespace

Status launch_crop(const CropParams& p, cudaStream_t stream) {
  const int64_t n = p.planes * p.y_dims[0] * p.y_dims[1] * p.y_dims[2];
  if (n == 0) return Status::ok();
  KILN_CUDA_DISPATCH_FLOAT(p.dtype, "ConvTranspose crop",
                           crop_kernel<T><<<grid_for(n, kBlock), kBlock, 0, stream>>>(p, n));
  return last_launch_status("crop_kernel");
}

Status launch_causal_conv(const CausalConvParams& p, cudaStream_t stream) {
  const int64_t rows = p.batch * p.channels, n_out = rows * p.length;
  const int64_t n_state = p.present && p.kernel > 1 ? rows * (p.kernel - 1) : 0;
  if (n_out + n_state == 0) return Status::ok();
  const unsigned grid = grid_for(n_out + n_state, kBlock);
  if (p.dtype == DType::kF64) {
    causal_conv_kernel<double><<<grid, kBlock, 0, stream>>>(p, n_out, n_state);  // in float, as on the CPU
    return last_launch_status("causal_conv_kernel");
  }
  KILN_CUDA_DISPATCH_FLOAT(p.dtype, "CausalConvWithState",
                           causal_conv_kernel<T><<<grid, kBlock, 0, stream>>>(p, n_out, n_state));
  return last_launch_status("causal_conv_kernel");
}

Status launch_direct_conv(const DirectConvParams& p, cudaStream_t stream) {
  const int64_t n = p.g.batch * p.g.out_channels * p.g.out_size();
  if (n == 0) return Status::ok();
  if (p.dtype == DType::kF64) return launch_direct_typed<double>(p, n, stream);
  KILN_CUDA_DISPATCH_FLOAT(p.dtype, "Conv", return launch_direct_typed<T>(p, n, stream));
  return Status::ok();
}

Status launch_integer_conv(const IntegerConvParams& p, cudaStream_t stream) {
  const int64_t n = p.g.batch * p.g.out_channels * p.g.out_size();
  if (n == 0) return Status::ok();
  const bool xu = p.x_type == DType::kU8, wu = p.w_type == DType::kU8;
  if ((!xu && p.x_type != DType::kI8) || (!wu && p.w_type != DType::kI8))
    return unsupported("integer conv: dtypes {} x {} (uint8 and int8 only)", dtype_name(p.x_type),
                       dtype_name(p.w_type));
  if (xu && wu) return launch_integer_typed<uint8_t, uint8_t>(p, n, stream);
  if (xu) return launch_integer_typed<uint8_t, int8_t>(p, n, stream);
  if (wu) return launch_integer_typed<int8_t, uint8_t>(p, n, stream);
  return launch_integer_typed<int8_t, int8_t>(p, n, stream);
}

Status launch_fill_channel_bias(DType dtype, void* y, const void* bias, int64_t batch, int64_t channels, int64_t inner,
                                cudaStream_t stream) {
  const int64_t n = batch * channels * inner;
  if (n == 0) return Status::ok();
  KILN_CUDA_DISPATCH_FLOAT(dtype, "Conv bias", {
    fill_channel_bias_kernel<T><<<grid_for(n, kBlock), kBlock, 0, stream>>>(
        static_cast<T*>(y), static_cast<const T*>(bias), channels, inner, n);
  });
  return last_launch_status("fill_channel_bias_kernel");
}

Status launch_zero_pad(DType dtype, const void* x, void* y, const WindowGeometry& g, cudaStream_t stream) {
  int64_t n = g.batch * g.in_channels;
  for (int a = 0; a < 3; ++a) n *= g.in[a] + g.pad_begin[a] + g.pad_end[a];
  if (n == 0) return Status::ok();
  KILN_CUDA_DISPATCH_FLOAT(dtype, "Conv padding", {
    zero_pad_kernel<T><<<grid_for(n, kBlock), kBlock, 0, stream>>>(static_cast<const T*>(x), static_cast<T*>(y), g, n);
  });
  return last_launch_status("zero_pad_kernel");
}

}  // namespace kiln::cuda
