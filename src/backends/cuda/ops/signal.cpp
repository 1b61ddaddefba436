// DFT, STFT, the window generators (Hann, Hamming, Blackman) and
// MelWeightMatrix, as the CPU kernels compute them
// (src/backends/cpu/kernels/signal.cpp). Sizes, lengths and axes are read on
// the host; the values are computed on the device in double.
#include "backends/cuda/kernels/signal.cuh"

#include "backends/cuda/cuda_kernel.h"

namespace kiln::cuda {
namespace {

DType value_type(const Value* v) { return v ? v->type.dtype : DType::kUndefined; }

// Host input i as one integer.
Expected<int64_t> host_scalar(const KernelContext& ctx, size_t i, const char* what) {
  const Tensor* t = ctx.host_input(i);
  if (!t) return internal_error("{}: {} was not read on the host", ctx.node().op_type, what);
  KILN_ASSIGN_OR_RETURN(auto v, t->to_i64_vector());
  if (v.size() != 1) return invalid_argument("{} must be a scalar, has {} elements", what, v.size());
  return v[0];
}

Expected<double> host_double(const KernelContext& ctx, size_t i, const char* what) {
  const Tensor* t = ctx.host_input(i);
  if (!t || t->numel() != 1)
    return invalid_argument("{}: {} must be a scalar known on the host", ctx.node().op_type, what);
  return t->element_as_double(0);
}

// The dtype output 0 gets, as shape inference gives it (untyped: checked when it runs).
Status supports_output(const Node& node, bool (*ok)(DType)) {
  const DType t = value_type(node.output(0));
  if (t == DType::kUndefined || ok(t)) return Status::ok();
  return unsupported("{}: output dtype {}", node.op_type, dtype_name(t));
}

Status supports_float_input(const Node& node, size_t i) {
  const DType t = value_type(node.input(i));
  if (t == DType::kUndefined || signal_float_supported(t)) return Status::ok();
  return unsupported("{}: dtype {} (the CUDA kernel takes f32, f16, bf16, f64)", node.op_type, dtype_name(t));
}

Status run_window(KernelContext& ctx, double a0, double a1, double a2) {
  KILN_ASSIGN_OR_RETURN(const int64_t size, host_scalar(ctx, 0, "window size"));
  if (size < 0) return invalid_argument("{}: size {} is negative", ctx.node().op_type, size);
  const DeviceTensor& y = ctx.output(0);
  if (y.numel() != size) return internal_error("{}: output size differs from shape inference", ctx.node().op_type);
  const bool periodic = ctx.node().attr_int("periodic", 1) != 0;
  WindowParams p;
  p.y_type = y.dtype;
  p.y = y.data;
  p.size = size;
  p.denom = static_cast<double>(periodic ? size : size - 1);
  p.a0 = a0, p.a1 = a1, p.a2 = a2;
  return launch_window(p, ctx.stream());
}

Status supports_generator(const Node& node) { return supports_output(node, signal_output_supported); }

Status run_mel_weight_matrix(KernelContext& ctx) {
  MelWeightParams p;
  KILN_ASSIGN_OR_RETURN(p.mel_bins, host_scalar(ctx, 0, "num_mel_bins"));
  KILN_ASSIGN_OR_RETURN(p.dft_length, host_scalar(ctx, 1, "dft_length"));
  KILN_ASSIGN_OR_RETURN(p.sample_rate, host_scalar(ctx, 2, "sample_rate"));
  KILN_ASSIGN_OR_RETURN(p.lower_hz, host_double(ctx, 3, "lower_edge_hertz"));
  KILN_ASSIGN_OR_RETURN(p.upper_hz, host_double(ctx, 4, "upper_edge_hertz"));
  if (p.mel_bins < 1 || p.dft_length < 1 || p.sample_rate < 1 || !(p.lower_hz >= 0) || !(p.upper_hz > p.lower_hz))
    return invalid_argument("MelWeightMatrix: needs positive sizes and 0 <= lower_edge_hertz < upper_edge_hertz");
  const DeviceTensor& y = ctx.output(0);
  if (y.numel() != (p.dft_length / 2 + 1) * p.mel_bins)
    return internal_error("MelWeightMatrix: output size differs from shape inference");
  p.y_type = y.dtype;
  p.y = y.data;
  return launch_mel_weight_matrix(p, ctx.stream());
}

Status run_dft(KernelContext& ctx) {
  const DeviceTensor &x = ctx.input(0), &y = ctx.output(0);
  const int64_t rank = x.rank();
  int64_t axis = -2;
  if (ctx.has_input(2)) {
    KILN_ASSIGN_OR_RETURN(axis, host_scalar(ctx, 2, "DFT axis"));
  }
  if (axis < 0) axis += rank;
  if (axis < 0 || axis >= rank - 1) return invalid_argument("DFT: axis is out of range for rank {}", rank);
  const bool inverse = ctx.node().attr_int("inverse", 0) != 0, onesided = ctx.node().attr_int("onesided", 0) != 0;
  DftParams p;
  p.comps = x.dims.back();
  p.len = x.dims[static_cast<size_t>(axis)];
  if (p.comps != 1 && p.comps != 2) return invalid_argument("DFT: the last dim must be 1 or 2, is {}", p.comps);
  p.n = inverse && onesided ? 2 * (p.len - 1) : p.len;
  if (ctx.has_input(1)) {
    KILN_ASSIGN_OR_RETURN(p.n, host_scalar(ctx, 1, "DFT dft_length"));
  }
  if (p.n < 1) return invalid_argument("DFT: dft_length {} must be positive", p.n);
  p.inverse = inverse;
  p.irfft = inverse && onesided;
  p.bins = !inverse && onesided ? p.n / 2 + 1 : p.n;
  for (int64_t i = 0; i < axis; ++i) p.outer *= x.dims[static_cast<size_t>(i)];
  for (int64_t i = axis + 1; i < rank - 1; ++i) p.inner *= x.dims[static_cast<size_t>(i)];
  if (y.numel() != p.outer * p.bins * p.inner * (p.irfft ? 1 : 2))
    return internal_error("DFT: output size differs from shape inference");
  p.dtype = x.dtype;
  p.x = x.data;
  p.y = y.data;
  return launch_dft(p, ctx.stream());
}

Status run_stft(KernelContext& ctx) {
  const DeviceTensor &x = ctx.input(0), &y = ctx.output(0);
  if (x.rank() != 3) return invalid_argument("STFT: signal must be [batch, length, 1 or 2]");
  StftParams p;
  p.batch = x.dims[0], p.len = x.dims[1], p.comps = x.dims[2];
  if (p.comps != 1 && p.comps != 2) return invalid_argument("STFT: the last dim must be 1 or 2, is {}", p.comps);
  KILN_ASSIGN_OR_RETURN(p.step, host_scalar(ctx, 1, "STFT frame_step"));
  const bool has_window = ctx.has_input(2);
  p.frame = has_window ? ctx.input(2).numel() : p.len;
  if (ctx.has_input(3)) {
    KILN_ASSIGN_OR_RETURN(p.frame, host_scalar(ctx, 3, "STFT frame_length"));
  }
  if (has_window && ctx.input(2).numel() != p.frame)
    return invalid_argument("STFT: the window has {} samples, frame_length is {}", ctx.input(2).numel(), p.frame);
  if (p.step < 1 || p.frame < 1 || p.frame > p.len)
    return invalid_argument("STFT: frame_step {} and frame_length {} do not fit a signal of {}", p.step, p.frame,
                            p.len);
  const bool onesided = ctx.node().attr_int("onesided", 1) != 0;
  p.frames = 1 + (p.len - p.frame) / p.step;
  p.bins = onesided ? p.frame / 2 + 1 : p.frame;
  if (y.numel() != p.batch * p.frames * p.bins * 2)
    return internal_error("STFT: output size differs from shape inference");
  p.dtype = x.dtype;
  p.x = x.data;
  p.y = y.data;
  if (has_window) {
    p.window = ctx.input(2).data;
    p.window_type = ctx.input(2).dtype;
  }
  return launch_stft(p, ctx.stream());
}

Status supports_stft(const Node& node) {
  KILN_RETURN_IF_ERROR(supports_float_input(node, 0));
  if (node.input(2)) {
    KILN_RETURN_IF_ERROR(supports_float_input(node, 2));
  }
  return Status::ok();
}

}  // namespace

KILN_CUDA_KERNEL("", "HannWindow",
                 {.run = [](KernelContext& c) { return run_window(c, 0.5, 0.5, 0); },
                  .host_inputs = {0},
                  .supports = supports_generator});
KILN_CUDA_KERNEL("", "HammingWindow",
                 {.run = [](KernelContext& c) { return run_window(c, 25.0 / 46.0, 21.0 / 46.0, 0); },
                  .host_inputs = {0},
                  .supports = supports_generator});
KILN_CUDA_KERNEL("", "BlackmanWindow",
                 {.run = [](KernelContext& c) { return run_window(c, 0.42, 0.5, 0.08); },
                  .host_inputs = {0},
                  .supports = supports_generator});
KILN_CUDA_KERNEL("", "MelWeightMatrix",
                 {.run = run_mel_weight_matrix, .host_inputs = {0, 1, 2, 3, 4}, .supports = supports_generator});
KILN_CUDA_KERNEL("", "DFT", {.run = run_dft, .host_inputs = {1, 2}, .supports = [](const Node& n) {
                               return supports_float_input(n, 0);
                             }});
KILN_CUDA_KERNEL("", "STFT", {.run = run_stft, .host_inputs = {1, 3}, .supports = supports_stft});

}  // namespace kiln::cuda
