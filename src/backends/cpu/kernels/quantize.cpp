// QuantizeLinear, DequantizeLinear, DynamicQuantizeLinear and QLinearMatMul.
// Quantized elements of every width (packed 2/4-bit integers, 8-bit and 4-bit
// floats) go through ir/quantize.h.
#include "ir/quantize.h"

#include <algorithm>
#include <cmath>

#include "backends/cpu/cpu_kernel.h"
#include "backends/cpu/dtype_dispatch.h"
#include "backends/cpu/index_util.h"

namespace kiln {
namespace {

// Maps an element of x to its scale/zero-point element (per tensor, per axis or blocked).
struct ScaleIndex {
  int64_t d = 1, inner = 1, block = 0, scale_d = 1;
  bool per_tensor = true;

  int64_t operator()(int64_t i) const {
    if (per_tensor) return 0;
    int64_t r = i % inner, a = (i / inner) % d, o = i / (inner * d);
    if (block == 0) return a;
    return (o * scale_d + a / block) * inner + r;
  }
};

Expected<ScaleIndex> scale_index(const CpuKernelContext& ctx, const Tensor& x, const Tensor& scale, const char* op) {
  ScaleIndex s;
  int64_t block = ctx.node().attr_int("block_size", 0);
  if (scale.numel() == 1 && (block == 0 || x.numel() <= 1)) return s;
  int64_t axis = ctx.node().attr_int("axis", 1);
  if (axis < -x.rank() || axis >= x.rank())
    return invalid_model("{}: axis {} out of range for rank {}", op, axis, x.rank());
  if (axis < 0) axis += x.rank();
  s.per_tensor = false;
  s.d = x.dim(axis);
  for (int64_t i = axis + 1; i < x.rank(); ++i) s.inner *= x.dim(i);
  s.block = block;
  if (block == 0) {
    if (scale.numel() != s.d) return invalid_model("{}: scale has {} values for axis size {}", op, scale.numel(), s.d);
    return s;
  }
  s.scale_d = (s.d + block - 1) / block;
  if (scale.rank() != x.rank() || scale.dim(axis) != s.scale_d || scale.numel() != x.numel() / s.d * s.scale_d)
    return invalid_model("{}: blocked scale shape {} does not match x {} with block_size {}", op,
                         Shape::of(scale.dims()).to_string(), Shape::of(x.dims()).to_string(), block);
  return s;
}

Status run_quantize(CpuKernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  const Tensor& scale = ctx.input(1);
  const Tensor* zp = ctx.has_input(2) ? &ctx.input(2) : nullptr;
  KILN_ASSIGN_OR_RETURN(ScaleIndex si, scale_index(ctx, x, scale, "QuantizeLinear"));
  if (zp && zp->numel() != scale.numel()) return invalid_model("QuantizeLinear: y_zero_point and y_scale sizes differ");
  Tensor& y = ctx.allocate_output(0, x.dims());
  DType yt = y.dtype();
  bool saturate = ctx.node().attr_int("saturate", 1) != 0;
  // The division runs at the scale's precision (or the precision attribute's).
  DType precision = static_cast<DType>(ctx.node().attr_int("precision", 0));
  if (precision == DType::kUndefined) precision = scale.dtype();
  bool narrow = is_narrow_float(yt);
  if (!narrow && !dtype_is_integer(yt))
    return unsupported("QuantizeLinear: output dtype {} is not supported", dtype_name(yt));
  for (int64_t i = 0; i < x.numel(); ++i) {
    int64_t k = si(i);
    float q = static_cast<float>(numeric_element(x, i)) / static_cast<float>(numeric_element(scale, k));
    if (precision == DType::kF16) q = f16_to_f32(f32_to_f16(q));
    if (precision == DType::kBF16) q = bf16_to_f32(f32_to_bf16(q));
    if (narrow) {
      float v = q + (zp ? static_cast<float>(numeric_element(*zp, k)) : 0.0f);
      uint8_t bits = f32_to_narrow_float(v, yt, saturate);
      if (yt == DType::kF4E2M1) {
        uint8_t& byte = y.mutable_data<uint8_t>()[i / 2];
        int shift = static_cast<int>(i % 2) * 4;
        byte = static_cast<uint8_t>((byte & ~(0xf << shift)) | ((bits & 0xf) << shift));
      } else {
        y.mutable_data<uint8_t>()[i] = bits;
      }
      continue;
    }
    if (std::isnan(q)) q = 0;  // saturating NaN has no better answer; ORT gives the zero point
    double r = static_cast<double>(round_half_even(static_cast<double>(q))) + (zp ? integer_element(*zp, k) : 0);
    r = std::clamp(r, static_cast<double>(integer_min(yt)), static_cast<double>(integer_max(yt)));
    set_integer_element(y, i, static_cast<int64_t>(r));
  }
  return Status::ok();
}

Status run_dequantize(CpuKernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  const Tensor& scale = ctx.input(1);
  const Tensor* zp = ctx.has_input(2) ? &ctx.input(2) : nullptr;
  KILN_ASSIGN_OR_RETURN(ScaleIndex si, scale_index(ctx, x, scale, "DequantizeLinear"));
  if (zp && zp->numel() != scale.numel())
    return invalid_model("DequantizeLinear: x_zero_point and x_scale sizes differ");
  if (zp && zp->dtype() != x.dtype())
    return invalid_model("DequantizeLinear: x_zero_point is {} but x is {}", dtype_name(zp->dtype()),
                         dtype_name(x.dtype()));
  if (!is_narrow_float(x.dtype()) && !dtype_is_integer(x.dtype()))
    return unsupported("DequantizeLinear: input dtype {} is not supported", dtype_name(x.dtype()));
  Tensor& y = ctx.allocate_output(0, x.dims());
  return visit_dtype(y.dtype(), kFloatTypes, [&]<typename T>() {
    T* yd = y.mutable_data<T>();
    for (int64_t i = 0; i < x.numel(); ++i) {
      int64_t k = si(i);
      float v = static_cast<float>(numeric_element(x, i)) - (zp ? static_cast<float>(numeric_element(*zp, k)) : 0.0f);
      yd[i] = T(static_cast<compute_t<T>>(v * static_cast<float>(numeric_element(scale, k))));
    }
    return Status::ok();
  });
}

Status run_dynamic_quantize(CpuKernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  float lo = 0, hi = 0;
  std::vector<float> v(static_cast<size_t>(x.numel()));
  for (int64_t i = 0; i < x.numel(); ++i) {
    v[i] = static_cast<float>(numeric_element(x, i));
    lo = std::min(lo, v[i]);
    hi = std::max(hi, v[i]);
  }
  float scale = (hi - lo) / 255.0f;
  int64_t zp = scale == 0 ? 0 : std::clamp<int64_t>(round_half_even(-lo / scale), 0, 255);
  Tensor& y = ctx.allocate_output(0, x.dims());
  for (int64_t i = 0; i < x.numel(); ++i) {
    int64_t q = scale == 0 ? 0 : round_half_even(v[i] / scale) + zp;
    y.mutable_data<uint8_t>()[i] = static_cast<uint8_t>(std::clamp<int64_t>(q, 0, 255));
  }
  ctx.allocate_output(1, {}).mutable_data<float>()[0] = scale;
  ctx.allocate_output(2, {}).mutable_data<uint8_t>()[0] = static_cast<uint8_t>(zp);
  return Status::ok();
}

// A per-tensor parameter, or one per row (a) / column (b).
Expected<std::vector<double>> qparam(const CpuKernelContext& ctx, size_t i, int64_t count, const char* what) {
  const Tensor& t = ctx.input(i);
  if (t.numel() != 1 && t.numel() != count)
    return invalid_model("QLinearMatMul: {} has {} values; expected 1 or {}", what, t.numel(), count);
  std::vector<double> out(static_cast<size_t>(t.numel()));
  for (int64_t k = 0; k < t.numel(); ++k) out[k] = numeric_element(t, k);
  return out;
}

Status run_qlinear_matmul(CpuKernelContext& ctx) {
  const Tensor& a = ctx.input(0);
  const Tensor& b = ctx.input(3);
  auto yd = ctx.inferred_dims(0);
  if (!yd) return internal_error("QLinearMatMul: output dims were not inferred");
  std::vector<int64_t> ad = a.dims(), bd = b.dims();
  if (ad.size() == 1) ad.insert(ad.begin(), 1);
  if (bd.size() == 1) bd.push_back(1);
  int64_t m = ad[ad.size() - 2], k = ad.back(), n = bd.back();
  if (bd[bd.size() - 2] != k) return invalid_model("QLinearMatMul: inner dims {} and {} differ", k, bd[bd.size() - 2]);
  KILN_ASSIGN_OR_RETURN(std::vector<double> as, qparam(ctx, 1, m, "a_scale"));
  KILN_ASSIGN_OR_RETURN(std::vector<double> az, qparam(ctx, 2, m, "a_zero_point"));
  KILN_ASSIGN_OR_RETURN(std::vector<double> bs, qparam(ctx, 4, n, "b_scale"));
  KILN_ASSIGN_OR_RETURN(std::vector<double> bz, qparam(ctx, 5, n, "b_zero_point"));
  KILN_ASSIGN_OR_RETURN(std::vector<double> ys, qparam(ctx, 6, 1, "y_scale"));
  KILN_ASSIGN_OR_RETURN(std::vector<double> yz, qparam(ctx, 7, 1, "y_zero_point"));
  std::vector<int64_t> batch_a(ad.begin(), ad.end() - 2), batch_b(bd.begin(), bd.end() - 2);
  std::vector<int64_t> batch(yd->begin(), yd->end() - (a.rank() > 1 ? 1 : 0) - (b.rank() > 1 ? 1 : 0));
  Tensor& y = ctx.allocate_output(0, *yd);
  DType yt = y.dtype();
  int64_t batches = checked_numel(batch);
  BroadcastWalker w(batch, {broadcast_strides(batch_a, batch), broadcast_strides(batch_b, batch)});
  for (int64_t t = 0; t < batches; ++t, w.next()) {
    int64_t a0 = w.offset(0) * m * k, b0 = w.offset(1) * k * n;
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) {
        double acc = 0;  // integer-valued products: exact in double for 8-bit operands
        double za = az[az.size() == 1 ? 0 : i], zb = bz[bz.size() == 1 ? 0 : j];
        for (int64_t p = 0; p < k; ++p)
          acc += (numeric_element(a, a0 + i * k + p) - za) * (numeric_element(b, b0 + p * n + j) - zb);
        double real = acc * as[as.size() == 1 ? 0 : i] * bs[bs.size() == 1 ? 0 : j];
        int64_t q = round_half_even(static_cast<float>(real / ys[0])) + static_cast<int64_t>(yz[0]);
        set_integer_element(y, (t * m + i) * n + j, std::clamp(q, integer_min(yt), integer_max(yt)));
      }
  }
  return Status::ok();
}

}  // namespace

KILN_CPU_KERNEL("", "QuantizeLinear", run_quantize);
KILN_CPU_KERNEL("", "DequantizeLinear", run_dequantize);
KILN_CPU_KERNEL("", "DynamicQuantizeLinear", run_dynamic_quantize);
KILN_CPU_KERNEL("", "QLinearMatMul", run_qlinear_matmul);

}  // namespace kiln
