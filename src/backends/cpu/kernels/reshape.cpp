// Reshape, Squeeze, Unsqueeze and Flatten: the output shares the input's
// storage with new dims (shape inference computed them). Dropout at inference
// is the same view plus an all-true mask. Shape and Size read the dims.
#include <algorithm>

#include "backends/cpu/cpu_kernel.h"

namespace kiln {
namespace {

Status run_view(CpuKernelContext& ctx) {
  auto dims = ctx.inferred_dims(0);
  if (!dims) return internal_error("{}: output dims are unknown at run time", ctx.node().op_type);
  const Tensor& in = ctx.input(0);
  if (checked_numel(*dims) != in.numel())
    return invalid_argument("{}: output dims {} do not hold the input's {} elements", ctx.node().op_type,
                            Shape::of(*dims).to_string(), in.numel());
  ctx.set_output(0, in.reshaped(*dims));
  return Status::ok();
}

Status run_dropout(CpuKernelContext& ctx) {
  // training_mode=true would need random masks; inference engines run Dropout as identity.
  if (ctx.has_input(2)) {
    const Tensor& t = ctx.input(2);
    if (t.numel() == 1 && t.data<uint8_t>()[0] != 0) {
      double ratio = ctx.has_input(1) ? ctx.input(1).element_as_double(0) : 0.5;
      if (ratio != 0) return unsupported("Dropout: training_mode with ratio {} is not supported", ratio);
    }
  }
  ctx.set_output(0, ctx.input(0));
  if (ctx.has_output(1)) {
    Tensor& mask = ctx.allocate_output(1, ctx.input(0).dims());
    if (mask.numel()) std::fill_n(mask.mutable_data<uint8_t>(), mask.numel(), uint8_t(1));
  }
  return Status::ok();
}

Status run_shape(CpuKernelContext& ctx) {
  const auto& dims = ctx.input(0).dims();
  auto rank = static_cast<int64_t>(dims.size());
  auto clamp = [&](int64_t v) { return std::clamp(v < 0 ? v + rank : v, int64_t(0), rank); };
  int64_t start = clamp(ctx.node().attr_int("start", 0)), end = clamp(ctx.node().attr_int("end", rank));
  std::vector<int64_t> out;
  for (int64_t i = start; i < end; ++i) out.push_back(dims[static_cast<size_t>(i)]);
  ctx.set_output(0, Tensor::vector_i64(out));
  return Status::ok();
}

Status run_size(CpuKernelContext& ctx) {
  ctx.set_output(0, Tensor::scalar_i64(ctx.input(0).numel()));
  return Status::ok();
}

}  // namespace

KILN_CPU_KERNEL("", "Reshape", run_view);
KILN_CPU_KERNEL("", "Squeeze", run_view);
KILN_CPU_KERNEL("", "Unsqueeze", run_view);
KILN_CPU_KERNEL("", "Flatten", run_view);
KILN_CPU_KERNEL("", "Dropout", run_dropout);
KILN_CPU_KERNEL("", "Shape", run_shape);
KILN_CPU_KERNEL("", "Size", run_size);

}  // namespace kiln
