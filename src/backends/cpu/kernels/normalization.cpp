// Normalization kernels. Statistics are accumulated in double; 16-bit floats
// are read and written through float.
#include <cmath>
#include <map>

#include "backends/cpu/cpu_kernel.h"
#include "backends/cpu/dtype_dispatch.h"
#include "backends/cpu/index_util.h"
#include "support/parallel.h"

namespace kiln {
namespace {

// A float tensor's elements as double (any of the float dtypes).
Expected<std::vector<double>> as_doubles(const Tensor& t, const char* what) {
  std::vector<double> out(static_cast<size_t>(t.numel()));
  KILN_RETURN_IF_ERROR(visit_dtype(t.dtype(), kFloatTypes, [&]<typename T>() {
                         for (int64_t i = 0; i < t.numel(); ++i) out[i] = static_cast<compute_t<T>>(t.data<T>()[i]);
                         return Status::ok();
                       }).with_context(what));
  return out;
}

// Writes doubles into a float tensor of its own dtype.
Status store_doubles(Tensor& t, const std::vector<double>& v) {
  return visit_dtype(t.dtype(), kFloatTypes, [&]<typename T>() {
    T* d = t.mutable_data<T>();
    for (int64_t i = 0; i < t.numel(); ++i) d[i] = T(static_cast<compute_t<T>>(v[i]));
    return Status::ok();
  });
}

Status run_batch_norm(CpuKernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  if (x.rank() < 2) return invalid_model("BatchNormalization: input rank {} < 2", x.rank());
  int64_t n = x.dim(0), c = x.dim(1), inner = x.numel() / std::max<int64_t>(n * c, 1);
  KILN_ASSIGN_OR_RETURN(std::vector<double> xv, as_doubles(x, "BatchNormalization X"));
  KILN_ASSIGN_OR_RETURN(std::vector<double> scale, as_doubles(ctx.input(1), "BatchNormalization scale"));
  KILN_ASSIGN_OR_RETURN(std::vector<double> bias, as_doubles(ctx.input(2), "BatchNormalization B"));
  KILN_ASSIGN_OR_RETURN(std::vector<double> mean, as_doubles(ctx.input(3), "BatchNormalization mean"));
  KILN_ASSIGN_OR_RETURN(std::vector<double> var, as_doubles(ctx.input(4), "BatchNormalization var"));
  // Statistics are per channel, or per activation (C x spatial) for the opset < 9 spatial=0 form.
  int64_t per = static_cast<int64_t>(scale.size()) == c ? 1 : inner;
  for (const auto* v : {&scale, &bias, &mean, &var})
    if (static_cast<int64_t>(v->size()) != c * per)
      return invalid_model("BatchNormalization: a parameter has {} values for {} channels", v->size(), c);
  double eps = ctx.node().attr_float("epsilon", 1e-5f);
  bool training = ctx.node().attr_int("training_mode", 0) != 0;
  if (training) {
    double momentum = ctx.node().attr_float("momentum", 0.9f);
    std::vector<double> bm(mean.size(), 0.0), bv(var.size(), 0.0);
    int64_t count = n * inner / per;
    for (int64_t b = 0; b < n; ++b)
      for (int64_t ch = 0; ch < c; ++ch)
        for (int64_t i = 0; i < inner; ++i) bm[ch * per + i % per] += xv[(b * c + ch) * inner + i];
    for (auto& m : bm) m /= static_cast<double>(count);
    for (int64_t b = 0; b < n; ++b)
      for (int64_t ch = 0; ch < c; ++ch)
        for (int64_t i = 0; i < inner; ++i) {
          double d = xv[(b * c + ch) * inner + i] - bm[ch * per + i % per];
          bv[ch * per + i % per] += d * d;
        }
    for (auto& v : bv) v /= static_cast<double>(count);
    std::vector<double> run_mean(mean.size()), run_var(var.size());
    for (size_t i = 0; i < mean.size(); ++i) {
      run_mean[i] = mean[i] * momentum + bm[i] * (1 - momentum);
      run_var[i] = var[i] * momentum + bv[i] * (1 - momentum);
    }
    if (ctx.has_output(1)) KILN_RETURN_IF_ERROR(store_doubles(ctx.allocate_output(1, ctx.input(3).dims()), run_mean));
    if (ctx.has_output(2)) KILN_RETURN_IF_ERROR(store_doubles(ctx.allocate_output(2, ctx.input(4).dims()), run_var));
    mean = std::move(bm);
    var = std::move(bv);
  }
  std::vector<double> y(xv.size());
  for (int64_t b = 0; b < n; ++b)
    for (int64_t ch = 0; ch < c; ++ch)
      for (int64_t i = 0; i < inner; ++i) {
        int64_t k = ch * per + i % per, at = (b * c + ch) * inner + i;
        y[at] = (xv[at] - mean[k]) / std::sqrt(var[k] + eps) * scale[k] + bias[k];
      }
  return store_doubles(ctx.allocate_output(0, x.dims()), y);
}

// Normalizes each of `groups` consecutive blocks of `size` elements to zero
// mean and unit variance (y = (x - mean) / sqrt(var + eps)); optionally
// returns each block's mean and 1/sqrt(var + eps).
void normalize_blocks(std::vector<double>& v, int64_t groups, int64_t size, double eps, bool center,
                      std::vector<double>* means = nullptr, std::vector<double>* inv_std = nullptr) {
  if (means) means->assign(static_cast<size_t>(groups), 0.0);
  if (inv_std) inv_std->assign(static_cast<size_t>(groups), 0.0);
  parallel_for(groups, size * 4, [&](int64_t begin, int64_t end) {
    for (int64_t g = begin; g < end; ++g) {
      double* p = v.data() + g * size;
      double mean = 0;
      if (center) {
        for (int64_t i = 0; i < size; ++i) mean += p[i];
        mean /= static_cast<double>(size);
      }
      double var = 0;
      for (int64_t i = 0; i < size; ++i) var += (p[i] - mean) * (p[i] - mean);
      var /= static_cast<double>(size);
      double inv = 1.0 / std::sqrt(var + eps);
      for (int64_t i = 0; i < size; ++i) p[i] = (p[i] - mean) * inv;
      if (means) (*means)[g] = mean;
      if (inv_std) (*inv_std)[g] = inv;
    }
  });
}

Status run_instance_norm(CpuKernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  if (x.rank() < 3) return invalid_model("InstanceNormalization: input rank {} < 3", x.rank());
  int64_t n = x.dim(0), c = x.dim(1), inner = x.numel() / std::max<int64_t>(n * c, 1);
  KILN_ASSIGN_OR_RETURN(std::vector<double> v, as_doubles(x, "InstanceNormalization input"));
  KILN_ASSIGN_OR_RETURN(std::vector<double> scale, as_doubles(ctx.input(1), "InstanceNormalization scale"));
  KILN_ASSIGN_OR_RETURN(std::vector<double> bias, as_doubles(ctx.input(2), "InstanceNormalization B"));
  if (static_cast<int64_t>(scale.size()) != c || static_cast<int64_t>(bias.size()) != c)
    return invalid_model("InstanceNormalization: scale/B must have {} values", c);
  normalize_blocks(v, n * c, inner, ctx.node().attr_float("epsilon", 1e-5f), true);
  for (int64_t i = 0; i < static_cast<int64_t>(v.size()); ++i) {
    int64_t ch = (i / inner) % c;
    v[i] = v[i] * scale[ch] + bias[ch];
  }
  return store_doubles(ctx.allocate_output(0, x.dims()), v);
}

Status run_group_norm(CpuKernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  if (x.rank() < 2) return invalid_model("GroupNormalization: input rank {} < 2", x.rank());
  int64_t groups = ctx.node().attr_int("num_groups", 1);
  int64_t n = x.dim(0), c = x.dim(1), inner = x.numel() / std::max<int64_t>(n * c, 1);
  if (groups < 1 || c % groups != 0) return invalid_model("GroupNormalization: {} channels, {} groups", c, groups);
  KILN_ASSIGN_OR_RETURN(std::vector<double> v, as_doubles(x, "GroupNormalization input"));
  KILN_ASSIGN_OR_RETURN(std::vector<double> scale, as_doubles(ctx.input(1), "GroupNormalization scale"));
  KILN_ASSIGN_OR_RETURN(std::vector<double> bias, as_doubles(ctx.input(2), "GroupNormalization bias"));
  // Per channel (opset 21) or per group (opset 18); the sizes tell them apart.
  bool per_group = static_cast<int64_t>(scale.size()) == groups && groups != c;
  int64_t want = per_group ? groups : c;
  if (static_cast<int64_t>(scale.size()) != want || static_cast<int64_t>(bias.size()) != want)
    return invalid_model("GroupNormalization: scale/bias have {}/{} values for {} channels", scale.size(), bias.size(),
                         c);
  normalize_blocks(v, n * groups, c / groups * inner, ctx.node().attr_float("epsilon", 1e-5f), true);
  for (int64_t i = 0; i < static_cast<int64_t>(v.size()); ++i) {
    int64_t ch = (i / inner) % c, k = per_group ? ch / (c / groups) : ch;
    v[i] = v[i] * scale[k] + bias[k];
  }
  return store_doubles(ctx.allocate_output(0, x.dims()), v);
}

// Offsets into a parameter broadcast (right-aligned) over the trailing `inner_dims`.
std::vector<int64_t> param_offsets(const Tensor& param, const std::vector<int64_t>& inner_dims) {
  std::vector<int64_t> strides = broadcast_strides(param.dims(), inner_dims);
  int64_t size = checked_numel(inner_dims);
  std::vector<int64_t> out(static_cast<size_t>(size));
  BroadcastWalker w(inner_dims, {strides});
  for (int64_t i = 0; i < size; ++i, w.next()) out[i] = w.offset(0);
  return out;
}

Status check_broadcastable(const Tensor& p, const std::vector<int64_t>& inner, const char* what) {
  if (p.rank() > static_cast<int64_t>(inner.size()))
    return invalid_model("{} rank {} exceeds the normalized dims", what, p.rank());
  for (int64_t i = 0; i < p.rank(); ++i) {
    int64_t pd = p.dim(p.rank() - 1 - i), xd = inner[inner.size() - 1 - i];
    if (pd != 1 && pd != xd)
      return invalid_model("{} shape {} does not broadcast to the normalized dims {}", what,
                           Shape::of(p.dims()).to_string(), Shape::of(inner).to_string());
  }
  return Status::ok();
}

// Y (and each row's mean and 1/std) of LayerNormalization (center = true) or
// RMSNormalization (center = false) of `x` over the dims from `axis` on.
struct LayerNormResult {
  std::vector<double> y, means, inv_std;
  std::vector<int64_t> stat_dims;  // x's dims with those from `axis` on set to 1
};

Expected<LayerNormResult> layer_norm(const Tensor& x, const Tensor& scale_t, const Tensor* bias_t, int64_t axis,
                                     double epsilon, bool center, const char* op) {
  if (axis < -x.rank() || axis >= x.rank())
    return invalid_model("{}: axis {} out of range for rank {}", op, axis, x.rank());
  if (axis < 0) axis += x.rank();
  std::vector<int64_t> inner_dims(x.dims().begin() + axis, x.dims().end());
  int64_t inner = checked_numel(inner_dims), outer = x.numel() / std::max<int64_t>(inner, 1);
  LayerNormResult r;
  KILN_ASSIGN_OR_RETURN(r.y, as_doubles(x, op));
  KILN_ASSIGN_OR_RETURN(std::vector<double> scale, as_doubles(scale_t, op));
  KILN_RETURN_IF_ERROR(check_broadcastable(scale_t, inner_dims, "scale"));
  std::vector<int64_t> s_off = param_offsets(scale_t, inner_dims), b_off;
  std::vector<double> bias;
  if (center && bias_t) {
    KILN_ASSIGN_OR_RETURN(bias, as_doubles(*bias_t, op));
    KILN_RETURN_IF_ERROR(check_broadcastable(*bias_t, inner_dims, "B"));
    b_off = param_offsets(*bias_t, inner_dims);
  }
  std::vector<double>& v = r.y;
  normalize_blocks(v, outer, inner, epsilon, center, &r.means, &r.inv_std);
  for (int64_t i = 0; i < static_cast<int64_t>(v.size()); ++i) {
    int64_t k = i % inner;
    v[i] = v[i] * scale[s_off[k]] + (bias.empty() ? 0.0 : bias[b_off[k]]);
  }
  r.stat_dims = x.dims();
  for (size_t i = static_cast<size_t>(axis); i < r.stat_dims.size(); ++i) r.stat_dims[i] = 1;
  return r;
}

Status run_layer_norm(CpuKernelContext& ctx, bool center) {
  const char* op = center ? "LayerNormalization" : "RMSNormalization";
  const Tensor& x = ctx.input(0);
  KILN_ASSIGN_OR_RETURN(LayerNormResult r, layer_norm(x, ctx.input(1), ctx.has_input(2) ? &ctx.input(2) : nullptr,
                                                      ctx.node().attr_int("axis", -1),
                                                      ctx.node().attr_float("epsilon", 1e-5f), center, op));
  KILN_RETURN_IF_ERROR(store_doubles(ctx.allocate_output(0, x.dims()), r.y));
  if (ctx.has_output(1)) KILN_RETURN_IF_ERROR(store_doubles(ctx.allocate_output(1, r.stat_dims), r.means));
  if (ctx.has_output(2)) KILN_RETURN_IF_ERROR(store_doubles(ctx.allocate_output(2, r.stat_dims), r.inv_std));
  return Status::ok();
}

// kiln.SkipLayerNormalization: Sum = X + Skip computed as the Add kernel does
// (in compute_t<T>, rounded to T), so a 16-bit fused graph normalizes exactly
// the values the unfused one does; then LayerNormalization over the last axis.
Status run_skip_layer_norm(CpuKernelContext& ctx) {
  constexpr const char* op = "SkipLayerNormalization";
  const Tensor &x = ctx.input(0), &skip = ctx.input(1);
  if (x.dtype() != skip.dtype() || x.dims() != skip.dims())
    return invalid_model("{}: Skip {} {} differs from X {} {} (no broadcasting)", op, dtype_name(skip.dtype()),
                         Shape::of(skip.dims()).to_string(), dtype_name(x.dtype()), Shape::of(x.dims()).to_string());
  const int64_t axis = ctx.node().attr_int("axis", -1);
  if (x.rank() == 0 || (axis != -1 && axis != x.rank() - 1))
    return unsupported("{}: axis {} is not the last axis of rank {}; only the last axis (-1) is supported", op, axis,
                       x.rank());
  Tensor sum(x.dtype(), x.dims());
  KILN_RETURN_IF_ERROR(visit_dtype(x.dtype(), kFloatTypes, [&]<typename T>() {
                         const T *a = x.data<T>(), *b = skip.data<T>();
                         T* s = sum.mutable_data<T>();
                         for (int64_t i = 0; i < x.numel(); ++i)
                           s[i] = T(static_cast<compute_t<T>>(a[i]) + static_cast<compute_t<T>>(b[i]));
                         return Status::ok();
                       }).with_context(op));
  KILN_ASSIGN_OR_RETURN(LayerNormResult r, layer_norm(sum, ctx.input(2), ctx.has_input(3) ? &ctx.input(3) : nullptr, -1,
                                                      ctx.node().attr_float("epsilon", 1e-5f), true, op));
  KILN_RETURN_IF_ERROR(store_doubles(ctx.allocate_output(0, x.dims()), r.y));
  if (ctx.has_output(1)) ctx.set_output(1, std::move(sum));
  return Status::ok();
}

Status run_lp_norm(CpuKernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  int64_t axis = ctx.node().attr_int("axis", -1), p = ctx.node().attr_int("p", 2);
  if (p != 1 && p != 2) return unsupported("LpNormalization: p = {}; ONNX allows 1 or 2", p);
  if (axis < -x.rank() || axis >= x.rank()) return invalid_model("LpNormalization: axis {} out of range", axis);
  if (axis < 0) axis += x.rank();
  int64_t len = x.dim(axis), inner = 1;
  for (int64_t i = axis + 1; i < x.rank(); ++i) inner *= x.dim(i);
  int64_t outer = x.numel() / std::max<int64_t>(len * inner, 1);
  KILN_ASSIGN_OR_RETURN(std::vector<double> v, as_doubles(x, "LpNormalization"));
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < inner; ++i) {
      double norm = 0;
      for (int64_t k = 0; k < len; ++k) {
        double e = v[(o * len + k) * inner + i];
        norm += p == 1 ? std::fabs(e) : e * e;
      }
      if (p == 2) norm = std::sqrt(norm);
      for (int64_t k = 0; k < len; ++k) {
        double& e = v[(o * len + k) * inner + i];
        e = norm == 0 ? 0.0 : e / norm;
      }
    }
  return store_doubles(ctx.allocate_output(0, x.dims()), v);
}

Status run_mvn(CpuKernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  std::vector<int64_t> axes = ctx.node().attr_ints("axes", {0, 2, 3});
  std::vector<bool> reduced(static_cast<size_t>(x.rank()), false);
  for (int64_t a : axes) {
    if (a < -x.rank() || a >= x.rank()) return invalid_model("MeanVarianceNormalization: axis {} out of range", a);
    reduced[static_cast<size_t>(a < 0 ? a + x.rank() : a)] = true;
  }
  KILN_ASSIGN_OR_RETURN(std::vector<double> v, as_doubles(x, "MeanVarianceNormalization"));
  // Group elements by their kept coordinates; each group is normalized.
  std::vector<int64_t> strides = strides_of(x.dims());
  std::map<int64_t, std::vector<int64_t>> groups;
  for (int64_t i = 0; i < x.numel(); ++i) {
    int64_t key = 0;
    for (int64_t d = 0; d < x.rank(); ++d)
      if (!reduced[d]) key += (i / strides[d]) % x.dim(d) * strides[d];
    groups[key].push_back(i);
  }
  for (const auto& [key, idx] : groups) {
    double mean = 0, var = 0;
    for (int64_t i : idx) mean += v[i];
    mean /= static_cast<double>(idx.size());
    for (int64_t i : idx) var += (v[i] - mean) * (v[i] - mean);
    var /= static_cast<double>(idx.size());
    for (int64_t i : idx) v[i] = (v[i] - mean) / (std::sqrt(var) + 1e-9);
  }
  return store_doubles(ctx.allocate_output(0, x.dims()), v);
}

Status run_lrn(CpuKernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  if (x.rank() < 3) return invalid_model("LRN: input rank {} < 3", x.rank());
  int64_t size = ctx.node().attr_int("size", 1);
  double alpha = ctx.node().attr_float("alpha", 1e-4f), beta = ctx.node().attr_float("beta", 0.75f);
  double bias = ctx.node().attr_float("bias", 1.0f);
  int64_t n = x.dim(0), c = x.dim(1), inner = x.numel() / std::max<int64_t>(n * c, 1);
  KILN_ASSIGN_OR_RETURN(std::vector<double> v, as_doubles(x, "LRN"));
  std::vector<double> y(v.size());
  int64_t lo = (size - 1) / 2, hi = (size - 1) - lo;  // channels below and above: floor, ceil of (size-1)/2
  for (int64_t b = 0; b < n; ++b)
    for (int64_t ch = 0; ch < c; ++ch)
      for (int64_t i = 0; i < inner; ++i) {
        double sq = 0;
        for (int64_t k = std::max<int64_t>(0, ch - lo); k <= std::min(c - 1, ch + hi); ++k) {
          double e = v[(b * c + k) * inner + i];
          sq += e * e;
        }
        int64_t at = (b * c + ch) * inner + i;
        y[at] = v[at] / std::pow(bias + alpha / static_cast<double>(size) * sq, beta);
      }
  return store_doubles(ctx.allocate_output(0, x.dims()), y);
}

}  // namespace

KILN_CPU_KERNEL("", "BatchNormalization", run_batch_norm);
KILN_CPU_KERNEL("", "InstanceNormalization", run_instance_norm);
KILN_CPU_KERNEL("", "GroupNormalization", run_group_norm);
KILN_CPU_KERNEL("", "LayerNormalization", [](CpuKernelContext& c) { return run_layer_norm(c, true); });
KILN_CPU_KERNEL("", "RMSNormalization", [](CpuKernelContext& c) { return run_layer_norm(c, false); });
KILN_CPU_KERNEL("", "LpNormalization", run_lp_norm);
KILN_CPU_KERNEL("", "MeanVarianceNormalization", run_mvn);
KILN_CPU_KERNEL("", "LRN", run_lrn);
KILN_CPU_KERNEL("kiln", "SkipLayerNormalization", run_skip_layer_norm);

}  // namespace kiln
