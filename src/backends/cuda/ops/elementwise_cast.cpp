// Cast, CastLike and BitCast (src/backends/cpu/kernels/cast.cpp), and Dropout
// at inference (output = input, mask all true; reshape.cpp on the CPU).
#include "backends/cuda/cuda_status.h"
#include "backends/cuda/kernels/data_movement.cuh"
#include "backends/cuda/kernels/elementwise_ops.cuh"
#include "backends/cuda/ops/elementwise_common.h"

namespace kiln::cuda {
namespace {

// Cast's `saturate` (float8 and f4 destinations) and `round_mode` (e8m0), as
// the CPU kernel reads them.
Status run_cast(KernelContext& ctx) {
  const DeviceTensor &x = ctx.input(0), &y = ctx.output(0);
  const Node& node = ctx.node();
  const std::string mode = node.attr_string("round_mode", "up");
  return launch_cast({.from = x.dtype,
                      .to = y.dtype,
                      .x = x.data,
                      .y = y.data,
                      .n = x.numel(),
                      .saturate = node.attr_int("saturate", 1) != 0,
                      .e8m0_round = mode == "down"      ? E8M0Round::kDown
                                    : mode == "nearest" ? E8M0Round::kNearest
                                                        : E8M0Round::kUp},
                     ctx.stream());
}

// String conversions (number parsing and printing) stay on the CPU.
Status require_castable(const Node& node, DType from, DType to) {
  if (cast_supported(from) && cast_supported(to)) return Status::ok();
  return unsupported("{}: {} to {} (the CUDA kernel casts among the numeric and bool dtypes)", node.op_type,
                     dtype_name(from), dtype_name(to));
}

Status supports_cast(const Node& node) {
  const Value* out = node.output(0);
  DType to = out ? out->type.dtype : DType::kUndefined;
  if (to == DType::kUndefined) to = static_cast<DType>(node.attr_int("to", 0));
  return require_castable(node, node_input_dtype(node, 0), to);
}

Status supports_cast_like(const Node& node) {
  return require_castable(node, node_input_dtype(node, 0), node_input_dtype(node, 1));
}

// The same bytes under another dtype of the same width; a bool byte must be 0 or 1.
Status run_bitcast(KernelContext& ctx) {
  const DeviceTensor &x = ctx.input(0), &y = ctx.output(0);
  if (y.dtype == DType::kBool) return launch_to_bool_bytes(x.data, y.data, x.numel(), ctx.stream());
  if (x.nbytes() == 0 || x.data == y.data) return Status::ok();
  KILN_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(y.data, x.data, x.nbytes(), cudaMemcpyDeviceToDevice, ctx.stream()));
  return Status::ok();
}

Status supports_bitcast(const Node& node) {
  if (node_input_dtype(node, 0) == DType::kString) return unsupported("BitCast: strings have no bit pattern");
  return Status::ok();
}

// Dropout with training_mode true and a ratio other than 0 would need random
// masks; like the CPU kernel, the CUDA kernel refuses it (at build time when
// both are constants, else when it runs).
Status check_inference_only(const Tensor* training, const Tensor* ratio) {
  if (!training || training->numel() != 1 || training->element_as_double(0) == 0) return Status::ok();
  const double r = ratio ? ratio->element_as_double(0) : 0.5;
  if (r != 0) return unsupported("Dropout: training_mode with ratio {} is not supported", r);
  return Status::ok();
}

// Output 0 is placed on the input when the executor can (alias_input); the
// copy covers the case where it could not.
Status run_dropout(KernelContext& ctx) {
  if (ctx.has_input(2) && !ctx.host_input(2)) return internal_error("Dropout: training_mode was not read on the host");
  KILN_RETURN_IF_ERROR(check_inference_only(ctx.host_input(2), ctx.has_input(1) ? ctx.host_input(1) : nullptr));
  const DeviceTensor &x = ctx.input(0), &y = ctx.output(0);
  if (x.data != y.data && x.nbytes() > 0)
    KILN_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(y.data, x.data, x.nbytes(), cudaMemcpyDeviceToDevice, ctx.stream()));
  if (ctx.has_output(1) && ctx.output(1).numel() > 0) {
    const DeviceTensor& mask = ctx.output(1);  // bool: one byte an element
    KILN_CUDA_RETURN_IF_ERROR(cudaMemsetAsync(mask.data, 1, mask.nbytes(), ctx.stream()));
  }
  return Status::ok();
}

Status supports_dropout(const Node& node) {
  const Value *training = node.input(2), *ratio = node.input(1);
  if (!training || !training->has_constant()) return Status::ok();
  if (ratio && !ratio->has_constant()) return Status::ok();  // known when it runs
  return check_inference_only(training->constant.get(), ratio ? ratio->constant.get() : nullptr);
}

}  // namespace

KILN_CUDA_KERNEL("", "Cast", {.run = run_cast, .supports = supports_cast});
KILN_CUDA_KERNEL("", "CastLike", {.run = run_cast, .supports = supports_cast_like});
KILN_CUDA_KERNEL("", "BitCast", {.run = run_bitcast, .supports = supports_bitcast});
KILN_CUDA_KERNEL("", "Dropout",
                 {.run = run_dropout, .host_inputs = {1, 2}, .supports = supports_dropout, .alias_input = 0});

}  // namespace kiln::cuda
