// Pools: MaxPool (with Indices), AveragePool, LpPool, the global pools and
// MaxUnpool. Windows that reach into padding skip the padded positions (max,
// lp) or count them per count_include_pad (average). channels_last=1
// (MaxPool without Indices, AveragePool, GlobalAveragePool, GlobalMaxPool):
// X and Y are [N, H, W, C]; the same loops run over NCHW planes and a
// PlaneLayout places each element, so both layouts give the same bits.
#include "backends/cpu/kernels/pool.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>

#include "backends/cpu/cpu_kernel.h"
#include "backends/cpu/dtype_dispatch.h"
#include "backends/cpu/index_util.h"
#include "backends/cpu/kernels/window_plan.h"
#include "support/parallel.h"

namespace kiln {
namespace {

// Window positions inside the explicitly padded input along one dim (the
// extra room ceil_mode adds is not counted).
int64_t padded_count(const WindowPlan& p, int a, int64_t o) {
  int64_t n = 0;
  for (int64_t k = 0; k < p.kernel[a]; ++k) {
    int64_t i = o * p.stride[a] - p.pad_begin[a] + k * p.dilation[a];
    if (i >= -p.pad_begin[a] && i < p.in[a] + p.pad_end[a]) ++n;
  }
  return n;
}

// Runs body(nc, od, oh, ow, o) over every output element, planes in parallel.
template <typename Body>
void for_outputs(const WindowPlan& p, Body body) {
  parallel_for(p.batch * p.channels, p.out_size() * p.kernel_size(), [&](int64_t begin, int64_t end) {
    for (int64_t nc = begin; nc < end; ++nc) {
      int64_t o = 0;
      for (int64_t od = 0; od < p.out[0]; ++od)
        for (int64_t oh = 0; oh < p.out[1]; ++oh)
          for (int64_t ow = 0; ow < p.out[2]; ++ow, ++o) body(nc, od, oh, ow, o);
    }
  });
}

// Where element i of plane nc (= n * C + c) of a [planes, size] tensor lies:
// NCHW keeps planes contiguous, channels-last interleaves them.
struct PlaneLayout {
  int64_t channels = 1;
  bool last = false;
  int64_t at(int64_t nc, int64_t i, int64_t size) const {
    return last ? (nc / channels * size + i) * channels + nc % channels : nc * size + i;
  }
};

bool channels_last(const CpuKernelContext& ctx) { return ctx.node().attr_int("channels_last", 0) != 0; }

// The [N, C, spatial...] dims of x: channels-last X is 4-D [N, H, W, C].
Expected<std::vector<int64_t>> nchw_dims(const CpuKernelContext& ctx, const Tensor& x) {
  if (!channels_last(ctx)) return x.dims();
  const std::string& op = ctx.node().op_type;
  if (op == "LpPool" || op == "GlobalLpPool") return invalid_model("{}: has no channels_last form", op);
  if (x.rank() != 4 || ctx.has_output(1))
    return invalid_model("{}: channels_last takes X [N,H,W,C] and no Indices output, got a {}-D input",
                         ctx.node().op_type, x.rank());
  return std::vector<int64_t>{x.dim(0), x.dim(3), x.dim(1), x.dim(2)};
}

std::vector<int64_t> output_dims(const WindowPlan& p, bool last = false) {
  std::vector<int64_t> dims{p.batch, p.channels};
  for (int64_t d : p.out_dims()) dims.push_back(d);
  if (last) dims = {dims[0], dims[2], dims[3], dims[1]};
  return dims;
}

// MaxPool of x under `node`'s attributes: y from alloc_y(dims), the flat
// argmax into alloc_idx(dims) where given.
Status max_pool_loops(const Node& node, const Tensor& x, const std::vector<int64_t>& dims,
                      const std::function<Tensor&(const std::vector<int64_t>&)>& alloc_y,
                      const std::function<int64_t*(const std::vector<int64_t>&)>& alloc_idx) {
  KILN_ASSIGN_OR_RETURN(WindowPlan p, plan_window(node, dims));
  const PlaneLayout layout{p.channels, node.attr_int("channels_last", 0) != 0};
  Tensor& y = alloc_y(output_dims(p, layout.last));
  int64_t* idx = alloc_idx ? alloc_idx(output_dims(p)) : nullptr;
  bool column_major = node.attr_int("storage_order", 0) != 0;
  return visit_dtype(x.dtype(), kNumericTypes, [&]<typename T>() {
    using C = compute_t<T>;
    const T* xd = x.data<T>();
    T* yd = y.mutable_data<T>();
    int64_t isize = p.in_size(), osize = p.out_size();
    for_outputs(p, [&](int64_t nc, int64_t od, int64_t oh, int64_t ow, int64_t o) {
      C best = std::numeric_limits<C>::lowest();
      int64_t best_at = -1, bd = 0, bh = 0, bw = 0;
      for_window(p, od, oh, ow, [&](const WindowTap& t) {
        C v = static_cast<C>(xd[layout.at(nc, t.input, isize)]);
        if (best_at < 0 || v > best) {
          best = v;
          best_at = t.input;
          bd = t.d, bh = t.h, bw = t.w;
        }
      });
      yd[layout.at(nc, o, osize)] = T(best);
      if (!idx) return;
      // Indices count over the whole tensor; storage_order 1 numbers spatial dims column-major.
      int64_t spatial_index = column_major ? (bw * p.in[1] + bh) * p.in[0] + bd : best_at;
      idx[nc * osize + o] = best_at < 0 ? -1 : nc * isize + spatial_index;
    });
    return Status::ok();
  });
}

Status run_max_pool(CpuKernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> dims, nchw_dims(ctx, x));
  std::function<int64_t*(const std::vector<int64_t>&)> alloc_idx;
  if (ctx.has_output(1))
    alloc_idx = [&](const std::vector<int64_t>& d) { return ctx.allocate_output(1, d).mutable_data<int64_t>(); };
  return max_pool_loops(
      ctx.node(), x, dims, [&](const std::vector<int64_t>& d) -> Tensor& { return ctx.allocate_output(0, d); },
      alloc_idx);
}

}  // namespace

Expected<Tensor> max_pool(const Node& pool, const Tensor& x) {
  const bool last = pool.attr_int("channels_last", 0) != 0;
  if (x.rank() < 3 || (last && x.rank() != 4))
    return invalid_model("max pool: input of rank {} (channels_last {})", x.rank(), last ? 1 : 0);
  const std::vector<int64_t> dims = last ? std::vector<int64_t>{x.dim(0), x.dim(3), x.dim(1), x.dim(2)} : x.dims();
  Tensor y;
  KILN_RETURN_IF_ERROR(max_pool_loops(
      pool, x, dims,
      [&](const std::vector<int64_t>& d) -> Tensor& {
        y = Tensor(x.dtype(), d);
        return y;
      },
      nullptr));
  return y;
}

namespace {

// AveragePool (p = 0) and LpPool (p >= 1).
Status run_mean_pool(CpuKernelContext& ctx, int64_t lp) {
  const Tensor& x = ctx.input(0);
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> dims, nchw_dims(ctx, x));
  KILN_ASSIGN_OR_RETURN(WindowPlan p, plan_window(ctx.node(), dims));
  const PlaneLayout layout{p.channels, channels_last(ctx)};
  Tensor& y = ctx.allocate_output(0, output_dims(p, layout.last));
  bool include_pad = ctx.node().attr_int("count_include_pad", 0) != 0;
  return visit_dtype(x.dtype(), kFloatTypes, [&]<typename T>() {
    const T* xd = x.data<T>();
    T* yd = y.mutable_data<T>();
    int64_t isize = p.in_size(), osize = p.out_size();
    for_outputs(p, [&](int64_t nc, int64_t od, int64_t oh, int64_t ow, int64_t o) {
      double sum = 0;
      int64_t count = 0;
      for_window(p, od, oh, ow, [&](const WindowTap& t) {
        double v = static_cast<compute_t<T>>(xd[layout.at(nc, t.input, isize)]);
        sum += lp == 0 ? v : std::pow(std::fabs(v), static_cast<double>(lp));
        ++count;
      });
      double r;
      if (lp > 0) {
        r = std::pow(sum, 1.0 / static_cast<double>(lp));
      } else {
        if (include_pad) count = padded_count(p, 0, od) * padded_count(p, 1, oh) * padded_count(p, 2, ow);
        r = count == 0 ? 0.0 : sum / static_cast<double>(count);
      }
      yd[layout.at(nc, o, osize)] = T(static_cast<compute_t<T>>(r));
    });
    return Status::ok();
  });
}

Status run_average_pool(CpuKernelContext& ctx) { return run_mean_pool(ctx, 0); }

Status run_lp_pool(CpuKernelContext& ctx) {
  int64_t lp = ctx.node().attr_int("p", 2);
  if (lp < 1) return invalid_model("LpPool: p is {}, must be >= 1", lp);
  return run_mean_pool(ctx, lp);
}

enum class GlobalKind { kAverage, kMax, kLp };

Status run_global_pool(CpuKernelContext& ctx, GlobalKind kind) {
  const Tensor& x = ctx.input(0);
  if (x.rank() < 3) return invalid_model("{}: input rank {} < 3", ctx.node().op_type, x.rank());
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> dims, nchw_dims(ctx, x));
  const PlaneLayout layout{dims[1], channels_last(ctx)};
  int64_t planes = dims[0] * dims[1], size = 1;
  for (size_t i = 2; i < dims.size(); ++i) size *= dims[i], dims[i] = 1;
  if (layout.last) dims = {dims[0], 1, 1, dims[1]};
  Tensor& y = ctx.allocate_output(0, dims);
  double lp = static_cast<double>(ctx.node().attr_int("p", 2));
  return visit_dtype(x.dtype(), kFloatTypes, [&]<typename T>() {
    const T* xd = x.data<T>();
    T* yd = y.mutable_data<T>();
    parallel_for(planes, size, [&](int64_t begin, int64_t end) {
      for (int64_t c = begin; c < end; ++c) {
        double acc = kind == GlobalKind::kMax ? -std::numeric_limits<double>::infinity() : 0.0;
        for (int64_t i = 0; i < size; ++i) {
          double v = static_cast<compute_t<T>>(xd[layout.at(c, i, size)]);
          if (kind == GlobalKind::kMax)
            acc = std::max(acc, v);
          else if (kind == GlobalKind::kAverage)
            acc += v;
          else
            acc += std::pow(std::fabs(v), lp);
        }
        if (kind == GlobalKind::kAverage) acc /= static_cast<double>(size);
        if (kind == GlobalKind::kLp) acc = std::pow(acc, 1.0 / lp);
        yd[layout.at(c, 0, 1)] = T(static_cast<compute_t<T>>(acc));
      }
    });
    return Status::ok();
  });
}

Status run_max_unpool(CpuKernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  const Tensor& ind = ctx.input(1);
  if (ind.dims() != x.dims()) return invalid_model("MaxUnpool: indices shape differs from the input's");
  if (x.rank() < 3) return invalid_model("MaxUnpool: input rank {} < 3", x.rank());
  // Indices address the unpooled tensor of the size the attributes give; an
  // output_shape input then pads that tensor with zeros at the end of each dim.
  size_t spatial = static_cast<size_t>(x.rank()) - 2;
  KILN_ASSIGN_OR_RETURN(WindowAttrs a, read_window_attrs(ctx.node(), spatial));
  std::vector<int64_t> full = {x.dim(0), x.dim(1)};
  for (size_t i = 0; i < spatial; ++i)
    full.push_back((x.dim(i + 2) - 1) * a.strides[i] + a.kernel[i] - a.pads[i] - a.pads[i + spatial]);
  std::vector<int64_t> dims = full;
  if (ctx.has_input(2)) {
    KILN_ASSIGN_OR_RETURN(dims, ctx.input(2).to_i64_vector());
    if (dims.size() != full.size())
      return invalid_model("MaxUnpool: output_shape has {} dims, expected {}", dims.size(), full.size());
    for (size_t i = 0; i < dims.size(); ++i)
      if (dims[i] < full[i])
        return unsupported("MaxUnpool: output_shape dim {} is {}, smaller than the unpooled size {}", i, dims[i],
                           full[i]);
  }
  int64_t full_n = checked_numel(full);
  if (full_n < 0) return invalid_model("MaxUnpool: unpooled dims are negative");
  Tensor& y = ctx.allocate_output(0, dims);
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> at, ind.to_i64_vector());
  std::vector<int64_t> full_strides = strides_of(full), out_strides = strides_of(dims);
  return visit_dtype(x.dtype(), kNumericTypes, [&]<typename T>() {
    const T* xd = x.data<T>();
    T* yd = y.mutable_data<T>();
    for (int64_t i = 0; i < x.numel(); ++i) {
      if (at[i] < 0 || at[i] >= full_n)
        return invalid_model("MaxUnpool: index {} is outside the unpooled tensor of {} elements", at[i], full_n);
      int64_t o = 0;
      for (size_t d = 0; d < full.size(); ++d) o += (at[i] / full_strides[d]) % full[d] * out_strides[d];
      yd[o] = xd[i];
    }
    return Status::ok();
  });
}

}  // namespace

KILN_CPU_KERNEL("", "MaxPool", run_max_pool);
KILN_CPU_KERNEL("", "AveragePool", run_average_pool);
KILN_CPU_KERNEL("", "LpPool", run_lp_pool);
KILN_CPU_KERNEL("", "GlobalAveragePool", [](CpuKernelContext& c) { return run_global_pool(c, GlobalKind::kAverage); });
KILN_CPU_KERNEL("", "GlobalMaxPool", [](CpuKernelContext& c) { return run_global_pool(c, GlobalKind::kMax); });
KILN_CPU_KERNEL("", "GlobalLpPool", [](CpuKernelContext& c) { return run_global_pool(c, GlobalKind::kLp); });
KILN_CPU_KERNEL("", "MaxUnpool", run_max_unpool);

}  // namespace kiln
