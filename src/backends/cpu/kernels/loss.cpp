// NegativeLogLikelihoodLoss and SoftmaxCrossEntropyLoss (= log-softmax over
// the class axis, then the NLL loss). Inputs are [N, C, D...] scores and
// [N, D...] class indices; per-element losses are -weight[t] * x[n, t, d],
// 0 where t == ignore_index, and "mean" divides by the sum of the weights used.
#include <cmath>
#include <limits>
#include <optional>

#include "backends/cpu/kernels/axis_slice.h"
#include "backends/cpu/kernels/elementwise_apply.h"

namespace kiln {
namespace {

// x: [N, C, D] log-probabilities (in double); writes the loss.
template <typename T, typename TI>
Status nll(const CpuKernelContext& ctx, const std::vector<double>& x, const Tensor& x_shape, const Tensor& target,
           Tensor& loss) {
  const std::string& op = ctx.node().op_type;
  const int64_t n = x_shape.dim(0), c = x_shape.dim(1), d = n == 0 ? 0 : x_shape.numel() / (n * c);
  if (target.numel() != n * d)
    return invalid_model("{}: target has {} elements, expected {}", op, target.numel(), n * d);
  std::optional<int64_t> ignore;
  if (ctx.node().has_attr("ignore_index")) ignore = ctx.node().attr_int("ignore_index", 0);
  const Tensor* weight = ctx.has_input(2) ? &ctx.input(2) : nullptr;
  if (weight && weight->numel() != c)
    return invalid_model("{}: weight has {} elements, C is {}", op, weight->numel(), c);
  const std::string reduction = ctx.node().attr_string("reduction", "mean");
  const TI* t = target.data<TI>();
  std::vector<double> per(static_cast<size_t>(n * d));
  double loss_sum = 0, weight_sum = 0;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t k = 0; k < d; ++k) {
      const auto cls = static_cast<int64_t>(t[i * d + k]);
      if (ignore && cls == *ignore) continue;
      if (cls < 0 || cls >= c)
        return make_error(ErrorCode::kOutOfRange, "{}: class {} is out of range [0, {})", op, cls, c);
      double w = weight ? convert_to<double>(weight->data<T>()[cls]) : 1.0;
      per[i * d + k] = -w * x[(i * c + cls) * d + k];
      loss_sum += per[i * d + k];
      weight_sum += w;
    }
  T* out = loss.mutable_data<T>();
  if (reduction == "none") {
    for (size_t i = 0; i < per.size(); ++i) out[i] = convert_to<T>(per[i]);
  } else {
    out[0] = convert_to<T>(reduction == "sum" ? loss_sum : loss_sum / weight_sum);
  }
  return Status::ok();
}

template <typename T>
Status run_loss_as(CpuKernelContext& ctx, bool softmax) {
  const Tensor &x = ctx.input(0), &target = ctx.input(1);
  if (x.rank() < 2) return invalid_model("{}: input must be [N, C, ...]", ctx.node().op_type);
  std::vector<double> v(static_cast<size_t>(x.numel()));
  for (int64_t i = 0; i < x.numel(); ++i) v[i] = convert_to<double>(x.data<T>()[i]);
  if (softmax) {
    AxisSlices slices(x.dims(), 1);
    slices.for_each([&](int64_t s) {
      double* p = v.data() + slices.base(s);
      double max = -std::numeric_limits<double>::infinity(), sum = 0;
      for (int64_t k = 0; k < slices.n; ++k) max = std::max(max, p[k * slices.inner]);
      for (int64_t k = 0; k < slices.n; ++k) sum += std::exp(p[k * slices.inner] - max);
      for (int64_t k = 0; k < slices.n; ++k) p[k * slices.inner] -= max + std::log(sum);
    });
    if (ctx.has_output(1)) {
      KILN_ASSIGN_OR_RETURN(Tensor * log_prob, ctx.allocate_output(1));
      T* lp = log_prob->mutable_data<T>();
      for (size_t i = 0; i < v.size(); ++i) lp[i] = convert_to<T>(v[i]);
    }
  }
  KILN_ASSIGN_OR_RETURN(Tensor * loss, ctx.allocate_output(0));
  if (target.dtype() == DType::kI32) return nll<T, int32_t>(ctx, v, x, target, *loss);
  if (target.dtype() == DType::kI64) return nll<T, int64_t>(ctx, v, x, target, *loss);
  return unsupported("{}: target dtype {} is not supported (i32 or i64)", ctx.node().op_type,
                     dtype_name(target.dtype()));
}

CpuKernelFn loss_kernel(bool softmax) {
  return [softmax](CpuKernelContext& ctx) -> Status {
    return visit_dtype_in<kFloatTypes>(ctx.input(0).dtype(),
                                       [&]<typename T>() { return run_loss_as<T>(ctx, softmax); });
  };
}

}  // namespace

KILN_CPU_KERNEL("", "NegativeLogLikelihoodLoss", loss_kernel(false));
KILN_CPU_KERNEL("", "SoftmaxCrossEntropyLoss", loss_kernel(true));

}  // namespace kiln
