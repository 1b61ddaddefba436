// Reshape, Squeeze, Unsqueeze, Flatten and Identity are views: the executor
// places the output with the input (alias_input = 0) and nothing runs.
// Shape and Size write host-known int64s by kernel arguments.
#include <algorithm>

#include "backends/cuda/cuda_status.h"
#include "backends/cuda/ops/data_movement_support.h"

namespace kiln::cuda {
namespace {

Status run_view(KernelContext& ctx) {
  if (ctx.input(0).numel() != ctx.output(0).numel())
    return internal_error("{}: output holds {} elements, the input {}", ctx.node().op_type, ctx.output(0).numel(),
                          ctx.input(0).numel());
  // The executor places the output with the input; should it ever not, copy.
  const DeviceTensor &in = ctx.input(0), &out = ctx.output(0);
  if (in.data == out.data || in.nbytes() == 0) return Status::ok();
  return to_status(cudaMemcpyAsync(out.data, in.data, in.nbytes(), cudaMemcpyDeviceToDevice, ctx.stream()),
                   "cudaMemcpyAsync (view)");
}

// A view moves no bytes, but the tensor must live on the device.
Status supports_view(const Node& node) {
  const Value* v = node.input(0);
  if (!v || !v->type.is_tensor()) return unsupported("{}: the input is not a tensor", node.op_type);
  if (v->type.dtype == DType::kString) return unsupported("{}: string tensors stay on the host", node.op_type);
  return Status::ok();
}

Status run_shape(KernelContext& ctx) {
  const auto& dims = ctx.input(0).dims;
  const auto rank = static_cast<int64_t>(dims.size());
  auto clamp = [&](int64_t v) { return std::clamp(v < 0 ? v + rank : v, int64_t(0), rank); };
  const int64_t start = clamp(ctx.node().attr_int("start", 0)), end = clamp(ctx.node().attr_int("end", rank));
  std::vector<int64_t> values;
  for (int64_t i = start; i < end; ++i) values.push_back(dims[static_cast<size_t>(i)]);
  if (static_cast<int64_t>(values.size()) != ctx.output(0).numel())
    return internal_error("Shape: {} values for an output of {}", values.size(), ctx.output(0).numel());
  return launch_write_i64(ctx.output(0).as<int64_t>(), values, ctx.stream());
}

Status run_size(KernelContext& ctx) {
  return launch_write_i64(ctx.output(0).as<int64_t>(), {ctx.input(0).numel()}, ctx.stream());
}

}  // namespace

KILN_CUDA_KERNEL("", "Reshape", {.run = run_view, .host_inputs = {1}, .supports = supports_view, .alias_input = 0});
KILN_CUDA_KERNEL("", "Squeeze", {.run = run_view, .host_inputs = {1}, .supports = supports_view, .alias_input = 0});
KILN_CUDA_KERNEL("", "Unsqueeze", {.run = run_view, .host_inputs = {1}, .supports = supports_view, .alias_input = 0});
KILN_CUDA_KERNEL("", "Flatten", {.run = run_view, .supports = supports_view, .alias_input = 0});
KILN_CUDA_KERNEL("", "Identity", {.run = run_view, .supports = supports_view, .alias_input = 0});
KILN_CUDA_KERNEL("", "Shape", {.run = run_shape, .supports = supports_view});
KILN_CUDA_KERNEL("", "Size", {.run = run_size, .supports = supports_view});

}  // namespace kiln::cuda
