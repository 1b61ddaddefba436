// Conv, kiln::FusedConv, ConvInteger, QLinearConv and ConvTranspose: direct loops (no im2col),
// accumulating floats in double and integers in int64, so the result is the
// exactly rounded sum the GPU kernels are checked against.
#include "backends/cpu/kernels/conv.h"

#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "backends/cpu/cpu_kernel.h"
#include "backends/cpu/dtype_dispatch.h"
#include "backends/cpu/kernels/pool.h"
#include "backends/cpu/kernels/window_plan.h"
#include "ir/quantize.h"
#include "ops/fused_activation.h"
#include "ops/fused_pool.h"
#include "support/parallel.h"

namespace kiln {
namespace {

std::vector<int64_t> weight_kernel(const Tensor& w) { return {w.dims().begin() + 2, w.dims().end()}; }

Status check_conv_shapes(const WindowPlan& p, const Tensor& w, int64_t group, const char* op) {
  if (w.rank() != static_cast<int64_t>(p.spatial) + 2)
    return invalid_model("{}: weight rank {} does not match input rank {}", op, w.rank(), p.spatial + 2);
  if (group < 1 || p.channels % group != 0 || w.dim(0) % group != 0)
    return invalid_model("{}: group {} does not divide input channels {} and output channels {}", op, group, p.channels,
                         w.dim(0));
  if (w.dim(1) * group != p.channels)
    return invalid_model("{}: weight has {} channels per group, input {} channels with group {}", op, w.dim(1),
                         p.channels, group);
  return Status::ok();
}

// Calls body(n, m, out_index, acc) with acc = sum over the window of
// x_at(x_flat_index) * w_at(w_flat_index) for every output element.
template <typename Acc, typename XAt, typename WAt, typename Body>
void conv_loops(const WindowPlan& p, int64_t out_channels, int64_t group, XAt x_at, WAt w_at, Body body) {
  int64_t cg = p.channels / group, mg = out_channels / group;
  int64_t ksize = p.kernel_size(), isize = p.in_size();
  parallel_for(p.batch * out_channels, p.out_size() * cg * ksize, [&](int64_t begin, int64_t end) {
    for (int64_t nm = begin; nm < end; ++nm) {
      int64_t n = nm / out_channels, m = nm % out_channels, g = m / mg;
      int64_t o = 0;
      for (int64_t od = 0; od < p.out[0]; ++od)
        for (int64_t oh = 0; oh < p.out[1]; ++oh)
          for (int64_t ow = 0; ow < p.out[2]; ++ow, ++o) {
            Acc acc = 0;
            for (int64_t c = 0; c < cg; ++c) {
              int64_t x_base = (n * p.channels + g * cg + c) * isize;
              int64_t w_base = (m * cg + c) * ksize;
              // Captured by value: with [&], GCC's loop ran tiny_cnn's convs
              // about 15% slower (kiln bench --dumpProfile, RelWithDebInfo).
              for_window(p, od, oh, ow, [&acc, x_at, w_at, x_base, w_base](const WindowTap& t) {
                acc += static_cast<Acc>(x_at(x_base + t.input)) * static_cast<Acc>(w_at(w_base + t.kernel));
              });
            }
            body(n, m, o, acc);
          }
    }
  });
}

// Conv, and kiln::FusedConv's y = act(conv + b + z): the sum and the
// activation in double, rounded once. `x`, `w`, `z` are NCHW; `alloc` gives
// the output of the dims it is asked for.
template <typename Alloc>
Status conv_with_epilogue(const Node& node, const char* op, const Tensor& x, const Tensor& w, const Tensor* b,
                          const Tensor* z, const FusedActivation& act, Alloc alloc) {
  int64_t group = node.attr_int("group", 1);
  KILN_ASSIGN_OR_RETURN(WindowPlan p, plan_window(node, x.dims(), weight_kernel(w)));
  KILN_RETURN_IF_ERROR(check_conv_shapes(p, w, group, op));
  int64_t m_count = w.dim(0);
  if (b && b->numel() != m_count)
    return invalid_model("{}: bias has {} values for {} output channels", op, b->numel(), m_count);
  std::vector<int64_t> dims{p.batch, m_count};
  for (int64_t d : p.out_dims()) dims.push_back(d);
  if (z && (z->dims() != dims || z->dtype() != x.dtype()))
    return invalid_model("{}: residual Z is {}[{}], the convolution's output {}[{}]", op, dtype_name(z->dtype()),
                         fmt::join(z->dims(), ","), dtype_name(x.dtype()), fmt::join(dims, ","));
  Tensor& y = alloc(dims);
  return visit_dtype(x.dtype(), kFloatTypes, [&]<typename T>() {
    const T* xd = x.data<T>();
    const T* wd = w.data<T>();
    const T* bd = b ? b->data<T>() : nullptr;
    const T* zd = z ? z->data<T>() : nullptr;
    T* yd = y.mutable_data<T>();
    int64_t osize = p.out_size();
    conv_loops<double>(
        p, m_count, group, [&](int64_t i) { return static_cast<double>(static_cast<compute_t<T>>(xd[i])); },
        [&](int64_t i) { return static_cast<double>(static_cast<compute_t<T>>(wd[i])); },
        [&](int64_t n, int64_t m, int64_t o, double acc) {
          const int64_t at = (n * m_count + m) * osize + o;
          if (bd) acc += static_cast<double>(static_cast<compute_t<T>>(bd[m]));
          if (zd) acc += static_cast<double>(static_cast<compute_t<T>>(zd[at]));
          yd[at] = T(static_cast<compute_t<T>>(act.apply(acc)));
        });
    return Status::ok();
  });
}

}  // namespace

Expected<Tensor> channels_last_fused_conv(const Node& node, const Tensor& x_nhwc, const Tensor& w, const Tensor* b,
                                          const Tensor* z) {
  KILN_ASSIGN_OR_RETURN(FusedActivation act, read_fused_activation(node));
  const std::vector<int64_t> to_nchw = {0, 3, 1, 2}, to_nhwc = {0, 2, 3, 1};
  const Tensor* four_d[] = {&x_nhwc, &w, z};
  for (size_t i = 0; i < 3; ++i)
    if (four_d[i] && four_d[i]->rank() != 4)
      return invalid_model("FusedConv: channels_last takes 4-D tensors, input {} is {}-D", i == 2 ? 3 : i,
                           four_d[i]->rank());
  const Tensor x = x_nhwc.transposed(to_nchw), w_nchw = w.transposed(to_nchw);
  Tensor z_nchw;
  if (z) z_nchw = z->transposed(to_nchw);
  Tensor y_nchw;
  KILN_RETURN_IF_ERROR(conv_with_epilogue(node, "FusedConv", x, w_nchw, b, z ? &z_nchw : nullptr, act,
                                          [&](std::vector<int64_t> dims) -> Tensor& {
                                            y_nchw = Tensor(x.dtype(), std::move(dims));
                                            return y_nchw;
                                          }));
  return y_nchw.transposed(to_nhwc);
}

namespace {

Status run_conv(CpuKernelContext& ctx) {
  return conv_with_epilogue(ctx.node(), "Conv", ctx.input(0), ctx.input(1), ctx.has_input(2) ? &ctx.input(2) : nullptr,
                            nullptr, FusedActivation{},
                            [&](std::vector<int64_t> dims) -> Tensor& { return ctx.allocate_output(0, dims); });
}

// FusedConv's convolution and epilogue as a tensor of the node's layout
// (channels_last=1: X, Z and Y [N,H,W,C], W [K,R,S,C/group], which
// channels_last_fused_conv transposes to NCHW around the same loops).
Expected<Tensor> fused_conv(CpuKernelContext& ctx) {
  KILN_ASSIGN_OR_RETURN(FusedActivation act, read_fused_activation(ctx.node()));
  const Tensor* b = ctx.has_input(2) ? &ctx.input(2) : nullptr;
  const Tensor* z = ctx.has_input(3) ? &ctx.input(3) : nullptr;
  if (ctx.node().attr_int("channels_last", 0) != 0)
    return channels_last_fused_conv(ctx.node(), ctx.input(0), ctx.input(1), b, z);
  Tensor y;
  KILN_RETURN_IF_ERROR(conv_with_epilogue(ctx.node(), "FusedConv", ctx.input(0), ctx.input(1), b, z, act,
                                          [&](std::vector<int64_t> dims) -> Tensor& {
                                            y = Tensor(ctx.input(0).dtype(), std::move(dims));
                                            return y;
                                          }));
  return y;
}

// With pool attributes (ops/fused_pool.h): the convolution, then the MaxPool
// kernel's loops over it.
Status run_fused_conv(CpuKernelContext& ctx) {
  KILN_ASSIGN_OR_RETURN(std::optional<WindowAttrs> pool, read_fused_pool(ctx.node()));
  if (pool && ctx.has_input(3)) return invalid_model("FusedConv: a pooled convolution takes no residual Z");
  KILN_ASSIGN_OR_RETURN(Tensor y, fused_conv(ctx));
  if (pool) {
    if (y.rank() != 4) return invalid_model("FusedConv: pool attributes need a 2-D convolution");
    Node max_pool_node;
    max_pool_node.op_type = "MaxPool";
    set_max_pool_attrs(*pool, max_pool_node);
    max_pool_node.attrs["channels_last"] = Attribute::of_int(ctx.node().attr_int("channels_last", 0));
    KILN_ASSIGN_OR_RETURN(Tensor pooled, max_pool(max_pool_node, y));
    y = std::move(pooled);
  }
  Tensor& out = ctx.allocate_output(0, y.dims());
  std::memcpy(out.mutable_raw(), y.raw(), y.nbytes());
  return Status::ok();
}

// Reads 8-bit integer tensors (u8 or i8) widened to int32.
Expected<std::vector<int32_t>> widen_8bit(const Tensor& t, const char* what) {
  std::vector<int32_t> out(static_cast<size_t>(t.numel()));
  if (t.dtype() == DType::kU8) {
    for (int64_t i = 0; i < t.numel(); ++i) out[i] = t.data<uint8_t>()[i];
  } else if (t.dtype() == DType::kI8) {
    for (int64_t i = 0; i < t.numel(); ++i) out[i] = t.data<int8_t>()[i];
  } else {
    return unsupported("{} has dtype {}; only uint8 and int8 are allowed", what, dtype_name(t.dtype()));
  }
  return out;
}

// A zero point that is per tensor (one value) or per output channel.
Expected<std::vector<int32_t>> zero_points(const CpuKernelContext& ctx, size_t i, int64_t channels, const char* what) {
  if (!ctx.has_input(i)) return std::vector<int32_t>(1, 0);
  KILN_ASSIGN_OR_RETURN(std::vector<int32_t> z, widen_8bit(ctx.input(i), what));
  if (z.size() != 1 && static_cast<int64_t>(z.size()) != channels)
    return invalid_model("{} has {} values; expected 1 or {}", what, z.size(), channels);
  return z;
}

// x (input 0) and w widened to int32 with their zero points subtracted (x's
// per tensor, w's per tensor or per output channel): the operands of the
// integer convolutions, ready for conv_loops.
struct CenteredConv {
  WindowPlan plan;
  int64_t group = 1;
  int64_t m_count = 0;
  std::vector<int32_t> x, w;
};

Expected<CenteredConv> centered_conv(const CpuKernelContext& ctx, size_t w_index, size_t x_zp, size_t w_zp,
                                     const std::string& op) {
  CenteredConv c;
  const Tensor& x = ctx.input(0);
  const Tensor& w = ctx.input(w_index);
  c.group = ctx.node().attr_int("group", 1);
  KILN_ASSIGN_OR_RETURN(c.plan, plan_window(ctx.node(), x.dims(), weight_kernel(w)));
  KILN_RETURN_IF_ERROR(check_conv_shapes(c.plan, w, c.group, op.c_str()));
  c.m_count = w.dim(0);
  KILN_ASSIGN_OR_RETURN(c.x, widen_8bit(x, (op + " x").c_str()));
  KILN_ASSIGN_OR_RETURN(c.w, widen_8bit(w, (op + " w").c_str()));
  KILN_ASSIGN_OR_RETURN(std::vector<int32_t> xz, zero_points(ctx, x_zp, 1, (op + " x_zero_point").c_str()));
  KILN_ASSIGN_OR_RETURN(std::vector<int32_t> wz, zero_points(ctx, w_zp, c.m_count, (op + " w_zero_point").c_str()));
  int64_t wper = static_cast<int64_t>(c.w.size()) / std::max<int64_t>(c.m_count, 1);
  for (auto& v : c.x) v -= xz[0];
  for (int64_t i = 0; i < static_cast<int64_t>(c.w.size()); ++i) c.w[i] -= wz[wz.size() == 1 ? 0 : i / wper];
  return c;
}

std::vector<int64_t> conv_output_dims(const CenteredConv& c) {
  std::vector<int64_t> dims{c.plan.batch, c.m_count};
  for (int64_t d : c.plan.out_dims()) dims.push_back(d);
  return dims;
}

Status run_conv_integer(CpuKernelContext& ctx) {
  KILN_ASSIGN_OR_RETURN(CenteredConv c, centered_conv(ctx, 1, 2, 3, "ConvInteger"));
  Tensor& y = ctx.allocate_output(0, conv_output_dims(c));
  int32_t* yd = y.mutable_data<int32_t>();
  int64_t osize = c.plan.out_size();
  conv_loops<int64_t>(
      c.plan, c.m_count, c.group, [&](int64_t i) { return c.x[i]; }, [&](int64_t i) { return c.w[i]; },
      [&](int64_t n, int64_t m, int64_t o, int64_t acc) {
        yd[(n * c.m_count + m) * osize + o] = static_cast<int32_t>(acc);
      });
  return Status::ok();
}

// A scale input that is per tensor or per output channel, as float.
Expected<std::vector<float>> scales(const Tensor& t, int64_t channels, const char* what) {
  if (t.dtype() != DType::kF32) return unsupported("{} has dtype {}; expected float", what, dtype_name(t.dtype()));
  std::vector<float> s(t.data<float>(), t.data<float>() + t.numel());
  if (s.size() != 1 && static_cast<int64_t>(s.size()) != channels)
    return invalid_model("{} has {} values; expected 1 or {}", what, s.size(), channels);
  return s;
}

Status run_qlinear_conv(CpuKernelContext& ctx) {
  KILN_ASSIGN_OR_RETURN(CenteredConv c, centered_conv(ctx, 3, 2, 5, "QLinearConv"));
  int64_t m_count = c.m_count;
  KILN_ASSIGN_OR_RETURN(std::vector<float> xs, scales(ctx.input(1), 1, "QLinearConv x_scale"));
  KILN_ASSIGN_OR_RETURN(std::vector<float> ws, scales(ctx.input(4), m_count, "QLinearConv w_scale"));
  KILN_ASSIGN_OR_RETURN(std::vector<float> ys, scales(ctx.input(6), 1, "QLinearConv y_scale"));
  KILN_ASSIGN_OR_RETURN(std::vector<int32_t> yz, zero_points(ctx, 7, 1, "QLinearConv y_zero_point"));
  std::vector<int32_t> bias(static_cast<size_t>(m_count), 0);
  if (ctx.has_input(8)) {
    const Tensor& b = ctx.input(8);
    if (b.dtype() != DType::kI32 || b.numel() != m_count)
      return invalid_model("QLinearConv: bias must be int32 with {} values, got {}{}", m_count, dtype_name(b.dtype()),
                           b.numel());
    bias.assign(b.data<int32_t>(), b.data<int32_t>() + m_count);
  }
  Tensor& y = ctx.allocate_output(0, conv_output_dims(c));
  DType yt = y.dtype();
  void* yd = y.mutable_raw();
  int64_t osize = c.plan.out_size();
  conv_loops<int64_t>(
      c.plan, m_count, c.group, [&](int64_t i) { return c.x[i]; }, [&](int64_t i) { return c.w[i]; },
      [&](int64_t n, int64_t m, int64_t o, int64_t acc) {
        double real = static_cast<double>(acc + bias[m]) * (static_cast<double>(xs[0]) * ws[ws.size() == 1 ? 0 : m]);
        int64_t q = round_half_even(static_cast<float>(real / ys[0])) + yz[0];
        int64_t at = (n * m_count + m) * osize + o;
        if (yt == DType::kU8)
          static_cast<uint8_t*>(yd)[at] = static_cast<uint8_t>(std::clamp<int64_t>(q, 0, 255));
        else
          static_cast<int8_t*>(yd)[at] = static_cast<int8_t>(std::clamp<int64_t>(q, -128, 127));
      });
  return Status::ok();
}

Status run_conv_transpose(CpuKernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  const Tensor& w = ctx.input(1);
  int64_t group = ctx.node().attr_int("group", 1);
  if (w.rank() != x.rank()) return invalid_model("ConvTranspose: weight rank {} != input rank {}", w.rank(), x.rank());
  KILN_ASSIGN_OR_RETURN(WindowPlan p, plan_transpose_window(ctx.node(), x.dims(), weight_kernel(w)));
  if (group < 1 || w.dim(0) != p.channels || p.channels % group != 0)
    return invalid_model("ConvTranspose: weight has {} input channels, input {} with group {}", w.dim(0), p.channels,
                         group);
  int64_t mg = w.dim(1), m_count = mg * group, cg = p.channels / group;
  const Tensor* b = ctx.has_input(2) ? &ctx.input(2) : nullptr;
  if (b && b->numel() != m_count)
    return invalid_model("ConvTranspose: bias has {} values for {} output channels", b->numel(), m_count);
  std::vector<int64_t> dims{p.batch, m_count};
  for (int64_t d : p.out_dims()) dims.push_back(d);
  Tensor& y = ctx.allocate_output(0, dims);
  return visit_dtype(x.dtype(), kFloatTypes, [&]<typename T>() {
    const T* xd = x.data<T>();
    const T* wd = w.data<T>();
    T* yd = y.mutable_data<T>();
    int64_t isize = p.in_size(), osize = p.out_size(), ksize = p.kernel_size();
    // Each (n, m) output plane gathers from its group's input channels alone, so planes run in parallel.
    parallel_for(p.batch * m_count, isize * cg * ksize, [&](int64_t begin, int64_t end) {
      std::vector<double> acc(static_cast<size_t>(osize));
      for (int64_t nm = begin; nm < end; ++nm) {
        int64_t n = nm / m_count, m = nm % m_count, g = m / mg, mm = m % mg;
        std::fill(acc.begin(), acc.end(), b ? static_cast<double>(static_cast<compute_t<T>>(b->data<T>()[m])) : 0.0);
        for (int64_t c = 0; c < cg; ++c) {
          const T* xc = xd + (n * p.channels + g * cg + c) * isize;
          const T* wc = wd + ((g * cg + c) * mg + mm) * ksize;
          for (int64_t i = 0; i < isize; ++i) {
            int64_t id = i / (p.in[1] * p.in[2]), ih = (i / p.in[2]) % p.in[1], iw = i % p.in[2];
            double xv = static_cast<compute_t<T>>(xc[i]);
            for (int64_t k = 0; k < ksize; ++k) {
              int64_t kd = k / (p.kernel[1] * p.kernel[2]), kh = (k / p.kernel[2]) % p.kernel[1], kw = k % p.kernel[2];
              int64_t od = id * p.stride[0] + kd * p.dilation[0] - p.pad_begin[0];
              int64_t oh = ih * p.stride[1] + kh * p.dilation[1] - p.pad_begin[1];
              int64_t ow = iw * p.stride[2] + kw * p.dilation[2] - p.pad_begin[2];
              if (od < 0 || od >= p.out[0] || oh < 0 || oh >= p.out[1] || ow < 0 || ow >= p.out[2]) continue;
              acc[(od * p.out[1] + oh) * p.out[2] + ow] += xv * static_cast<compute_t<T>>(wc[k]);
            }
          }
        }
        for (int64_t o = 0; o < osize; ++o) yd[nm * osize + o] = T(static_cast<compute_t<T>>(acc[o]));
      }
    });
    return Status::ok();
  });
}

}  // namespace

KILN_CPU_KERNEL("", "Conv", run_conv);
KILN_CPU_KERNEL("kiln", "FusedConv", run_fused_conv);
KILN_CPU_KERNEL("", "ConvInteger", run_conv_integer);
KILN_CPU_KERNEL("", "QLinearConv", run_qlinear_conv);
KILN_CPU_KERNEL("", "ConvTranspose", run_conv_transpose);

}  // namespace kiln
