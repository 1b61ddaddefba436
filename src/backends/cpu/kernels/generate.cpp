// Ops that create values from a description: Range, ConstantOfShape, OneHot.
#include <cmath>

#include "backends/cpu/cpu_kernel.h"
#include "backends/cpu/dtype_dispatch.h"
#include "backends/cpu/kernels/element_copy.h"
#include "ir/element_cast.h"

namespace kiln {
namespace {

Status run_range(CpuKernelContext& ctx) {
  const Tensor &s = ctx.input(0), &l = ctx.input(1), &d = ctx.input(2);
  return visit_dtype(s.dtype(), kNumericTypes, [&]<typename T>() -> Status {
    using C = compute_t<T>;
    C start = static_cast<C>(s.data<T>()[0]), limit = static_cast<C>(l.data<T>()[0]),
      delta = static_cast<C>(d.data<T>()[0]);
    if (delta == C(0)) return invalid_argument("Range: delta is 0");
    double n = std::ceil((static_cast<double>(limit) - static_cast<double>(start)) / static_cast<double>(delta));
    auto count = std::max<int64_t>(0, static_cast<int64_t>(n));
    Tensor& out = ctx.allocate_output(0, {count});
    T* o = out.mutable_data<T>();
    for (int64_t i = 0; i < count; ++i) o[i] = T(static_cast<C>(start + static_cast<C>(i) * delta));
    return Status::ok();
  });
}

Status run_constant_of_shape(CpuKernelContext& ctx) {
  KILN_ASSIGN_OR_RETURN(auto dims, ctx.input(0).to_i64_vector());
  for (int64_t d : dims)
    if (d < 0) return invalid_argument("ConstantOfShape: dim {} is negative", d);
  Tensor& out = ctx.allocate_output(0, dims);
  const Attribute* value = ctx.node().attr("value");
  if (!value || out.numel() == 0) return Status::ok();  // zeros
  const Tensor& v = value->t;
  ElementCopier copy(v, out);
  for (int64_t i = 0; i < out.numel(); ++i) copy.copy(i, 0);
  return Status::ok();
}

Status run_onehot(CpuKernelContext& ctx) {
  const Tensor &indices = ctx.input(0), &values = ctx.input(2);
  if (values.numel() != 2)
    return invalid_argument("OneHot: values must hold [off, on], has {} elements", values.numel());
  Scalar depth_s = read_scalar(ctx.input(1).dtype(), ctx.input(1).raw(), 0);
  auto depth = static_cast<int64_t>(depth_s.as_double());
  auto out_dims = indices.dims();
  const auto out_rank = static_cast<int64_t>(out_dims.size()) + 1;
  int64_t axis = ctx.node().attr_int("axis", -1);
  if (axis < 0) axis += out_rank;
  out_dims.insert(out_dims.begin() + axis, depth);
  Tensor& out = ctx.allocate_output(0, out_dims);
  const int64_t outer = dims_numel(indices.dims(), 0, static_cast<size_t>(axis));
  const int64_t inner = dims_numel(indices.dims(), static_cast<size_t>(axis), indices.dims().size());
  ElementCopier copy(values, out);
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t d = 0; d < depth; ++d)
      for (int64_t i = 0; i < inner; ++i) copy.copy((o * depth + d) * inner + i, 0);
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < inner; ++i) {
      // Out-of-range indices select nothing (a row of "off"); negatives count from the end.
      auto at = static_cast<int64_t>(read_scalar(indices.dtype(), indices.raw(), o * inner + i).as_double());
      if (at < 0) at += depth;
      if (at >= 0 && at < depth) copy.copy((o * depth + at) * inner + i, 1);
    }
  return Status::ok();
}

}  // namespace

KILN_CPU_KERNEL("", "Range", run_range);
KILN_CPU_KERNEL("", "ConstantOfShape", run_constant_of_shape);
KILN_CPU_KERNEL("", "OneHot", run_onehot);

}  // namespace kiln
