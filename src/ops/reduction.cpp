// Reductions (Reduce*), ArgMax/ArgMin and the cumulative CumSum/CumProd.
// Each row is the op's whole definition in kiln.
#include <fmt/format.h>

#include <algorithm>

#include "ops/infer_util.h"

namespace kiln {
namespace {

// The reduced axes when they are known: normalized and checked for repeats.
// Empty means "all axes" unless noop_with_empty_axes (the caller decides).
Expected<std::vector<int64_t>> normalized_axes(const std::vector<int64_t>& axes, int64_t rank, const char* op) {
  std::vector<int64_t> out;
  for (int64_t a : axes) {
    KILN_ASSIGN_OR_RETURN(int64_t n, normalize_axis(a, rank, "axes"));
    if (std::find(out.begin(), out.end(), n) != out.end())
      return invalid_model("{}: axis {} is repeated in axes", op, a);
    out.push_back(n);
  }
  return out;
}

Status infer_reduce(InferContext& ctx) {
  const char* op = ctx.node().op_type.c_str();
  KILN_RETURN_IF_ERROR(require_rank(ctx, 0, op));
  const Shape& in = ctx.input_shape(0);
  DType dtype = ctx.input_dtype(0);
  bool keepdims = ctx.attr_int("keepdims", 1) != 0;
  bool noop = ctx.attr_int("noop_with_empty_axes", 0) != 0;
  std::optional<std::vector<int64_t>> axes = std::vector<int64_t>{};
  if (ctx.has_input(1)) {
    axes = ctx.input_ints(1);
    if (!axes && ctx.input_shape(1).numel() == 0) axes = std::vector<int64_t>{};
  }
  if (!in.has_rank()) {
    ctx.set_output(0, dtype, Shape());
    return Status::ok();
  }
  if (!axes) {
    // Which axes is only known at run time: the rank may still be.
    auto count = ctx.input_shape(1).numel();
    if (keepdims)
      ctx.set_output(0, dtype, Shape(Dims(in.dims->size(), Dim::unknown())));
    else if (count && *count > 0)
      ctx.set_output(0, dtype, Shape(Dims(in.dims->size() - *count, Dim::unknown())));
    else
      ctx.set_output(0, dtype, Shape());
    return Status::ok();
  }
  if (axes->empty() && noop) return infer_same_as_input0(ctx);
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> reduced, normalized_axes(*axes, in.rank(), op));
  Dims out;
  for (int64_t i = 0; i < in.rank(); ++i) {
    bool r = reduced.empty() || std::find(reduced.begin(), reduced.end(), i) != reduced.end();
    if (!r)
      out.push_back(in[i]);
    else if (keepdims)
      out.emplace_back(1);
  }
  ctx.set_output(0, dtype, Shape(std::move(out)));
  return Status::ok();
}

Status infer_arg_reduce(InferContext& ctx) {
  const char* op = ctx.node().op_type.c_str();
  KILN_RETURN_IF_ERROR(require_rank(ctx, 0, op));
  const Shape& in = ctx.input_shape(0);
  if (!in.has_rank()) {
    ctx.set_output(0, DType::kI64, Shape());
    return Status::ok();
  }
  KILN_ASSIGN_OR_RETURN(int64_t axis, normalize_axis(ctx.attr_int("axis", 0), in.rank()));
  bool keepdims = ctx.attr_int("keepdims", 1) != 0;
  Dims out;
  for (int64_t i = 0; i < in.rank(); ++i) {
    if (i != axis)
      out.push_back(in[i]);
    else if (keepdims)
      out.emplace_back(1);
  }
  ctx.set_output(0, DType::kI64, Shape(std::move(out)));
  return Status::ok();
}

Status infer_cumulative(InferContext& ctx) {
  const char* op = ctx.node().op_type.c_str();
  KILN_RETURN_IF_ERROR(require_rank(ctx, 0, op));
  if (ctx.input_shape(1).has_rank() && ctx.input_shape(1).rank() > 1)
    return invalid_model("{}: axis must be a scalar, got shape {}", op, ctx.input_shape(1).to_string());
  auto axis = ctx.input_ints(1);
  if (axis && axis->size() == 1 && ctx.input_shape(0).has_rank())
    KILN_RETURN_IF_ERROR(normalize_axis((*axis)[0], ctx.input_shape(0).rank()).status());
  return infer_same_as_input0(ctx);
}

void reduce_op(const char* name, int axes_input_since) {
  OpRegistration(OpSchema{.name = name,
                          .min_inputs = 1,
                          .max_inputs = 2,
                          .infer = infer_reduce,
                          .upgrades = {{axes_input_since, [](UpgradeContext& c) {
                                          c.move_ints_attr_to_input("axes", 1);
                                          return Status::ok();
                                        }}}});
}

[[maybe_unused]] const bool registered = [] {
  reduce_op("ReduceSum", 13);
  for (const char* op : {"ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2", "ReduceLogSum",
                         "ReduceLogSumExp", "ReduceSumSquare"})
    reduce_op(op, 18);
  // select_last_index (opset 12) defaults to 0, the older behaviour.
  for (const char* op : {"ArgMax", "ArgMin"})
    OpRegistration(OpSchema{.name = op, .min_inputs = 1, .max_inputs = 1, .infer = infer_arg_reduce});
  OpRegistration(
      OpSchema{.name = "CumSum", .since_opset = 11, .min_inputs = 2, .max_inputs = 2, .infer = infer_cumulative});
  OpRegistration(
      OpSchema{.name = "CumProd", .since_opset = 26, .min_inputs = 2, .max_inputs = 2, .infer = infer_cumulative});
  return true;
}();

}  // namespace
}  // namespace kiln
