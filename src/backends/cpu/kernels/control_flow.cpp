// If, Loop and Scan: run their bodies through the executor
// (ctx.run_subgraph), which lets a body read the values around it.
#include <algorithm>
#include <limits>

#include "backends/cpu/cpu_kernel.h"
#include "backends/cpu/kernels/axis_blocks.h"

namespace kiln {
namespace {

const Graph* body_of(const CpuKernelContext& ctx, const char* key) {
  const Attribute* a = ctx.node().attr(key);
  return a && a->g ? a->g.get() : nullptr;
}

Tensor bool_scalar(bool b) { return Tensor::from_vector<uint8_t>(DType::kBool, {}, {static_cast<uint8_t>(b)}); }

Expected<bool> read_bool(const RunValue& v, const char* what) {
  if (!v.is_tensor() || v.tensor.numel() != 1) return invalid_argument("{} must be a tensor of one element", what);
  return v.tensor.element_as_double(0) != 0;
}

Status run_if(CpuKernelContext& ctx) {
  KILN_ASSIGN_OR_RETURN(bool cond, read_bool(ctx.input_value(0), "If's cond"));
  const Graph* branch = body_of(ctx, cond ? "then_branch" : "else_branch");
  if (!branch) return invalid_model("If: the branch graph is missing");
  KILN_ASSIGN_OR_RETURN(std::vector<RunValue> outs, ctx.run_subgraph(*branch, {}));
  if (outs.size() < ctx.num_outputs())
    return invalid_model("If: the branch gave {} outputs, the node has {}", outs.size(), ctx.num_outputs());
  for (size_t i = 0; i < ctx.num_outputs(); ++i)
    if (ctx.has_output(i)) ctx.set_output(i, std::move(outs[i]));
  return Status::ok();
}

// Dims of a scan output that had no iterations: what inference knows, else
// the body's per-iteration dims with a 0 inserted.
std::vector<int64_t> empty_scan_dims(const CpuKernelContext& ctx, size_t out, const Value* body_out, int64_t axis) {
  if (auto d = ctx.inferred_dims(out)) return *d;
  std::vector<int64_t> dims;
  if (body_out && body_out->type.shape.is_fixed()) dims = body_out->type.shape.fixed_dims();
  if (axis < 0) axis += static_cast<int64_t>(dims.size()) + 1;
  axis = std::clamp<int64_t>(axis, 0, static_cast<int64_t>(dims.size()));
  dims.insert(dims.begin() + axis, 0);
  return dims;
}

Status set_scan_output(CpuKernelContext& ctx, size_t out, std::vector<Tensor>& parts, const Value* body_out,
                       int64_t axis) {
  if (!ctx.has_output(out)) return Status::ok();
  if (parts.empty()) {
    ctx.allocate_output(out, empty_scan_dims(ctx, out, body_out, axis));
    return Status::ok();
  }
  if (axis < 0) axis += parts[0].rank() + 1;
  KILN_ASSIGN_OR_RETURN(Tensor t, stack_along(parts, axis));
  ctx.set_output(out, std::move(t));
  return Status::ok();
}

Status run_loop(CpuKernelContext& ctx) {
  const Graph* body = body_of(ctx, "body");
  if (!body) return invalid_model("Loop: attribute 'body' is missing");
  int64_t max_trips = std::numeric_limits<int64_t>::max();
  if (ctx.has_input(0)) {
    KILN_ASSIGN_OR_RETURN(auto m, ctx.input(0).to_i64_vector());
    if (m.size() != 1) return invalid_argument("Loop: M must have one element, has {}", m.size());
    max_trips = m[0];
  }
  bool cond = true;
  if (ctx.has_input(1)) {
    KILN_ASSIGN_OR_RETURN(cond, read_bool(ctx.input_value(1), "Loop's cond"));
  }
  size_t n_carried = ctx.num_inputs() > 2 ? ctx.num_inputs() - 2 : 0;
  size_t n_scan = ctx.num_outputs() - n_carried;
  std::vector<RunValue> carried;
  for (size_t i = 0; i < n_carried; ++i) carried.push_back(ctx.input_value(2 + i));
  std::vector<std::vector<Tensor>> scans(n_scan);
  for (int64_t i = 0; i < max_trips && cond; ++i) {
    std::vector<RunValue> in{RunValue::of(Tensor::scalar_i64(i)), RunValue::of(bool_scalar(cond))};
    in.insert(in.end(), carried.begin(), carried.end());
    KILN_ASSIGN_OR_RETURN(std::vector<RunValue> out, ctx.run_subgraph(*body, std::move(in)));
    if (out.size() != 1 + n_carried + n_scan)
      return invalid_model("Loop: the body gave {} outputs, expected {}", out.size(), 1 + n_carried + n_scan);
    // Without a cond input the body's cond output is ignored (a plain for loop).
    if (ctx.has_input(1)) {
      KILN_ASSIGN_OR_RETURN(cond, read_bool(out[0], "Loop body's cond output"));
    }
    for (size_t k = 0; k < n_carried; ++k) carried[k] = std::move(out[1 + k]);
    for (size_t k = 0; k < n_scan; ++k) {
      if (!out[1 + n_carried + k].is_tensor()) return invalid_model("Loop: scan output {} is not a tensor", k);
      scans[k].push_back(std::move(out[1 + n_carried + k].tensor));
    }
  }
  for (size_t k = 0; k < n_carried; ++k)
    if (ctx.has_output(k)) ctx.set_output(k, std::move(carried[k]));
  for (size_t k = 0; k < n_scan; ++k)
    KILN_RETURN_IF_ERROR(set_scan_output(ctx, n_carried + k, scans[k], body->outputs[1 + n_carried + k], 0));
  return Status::ok();
}

Status run_scan(CpuKernelContext& ctx) {
  const Graph* body = body_of(ctx, "body");
  if (!body) return invalid_model("Scan: attribute 'body' is missing");
  const Node& n = ctx.node();
  auto n_scan_in = static_cast<size_t>(n.attr_int("num_scan_inputs", 0));
  size_t n_state = ctx.num_inputs() - n_scan_in;
  size_t n_scan_out = ctx.num_outputs() - n_state;
  auto in_axes = n.attr_ints("scan_input_axes", std::vector<int64_t>(n_scan_in, 0));
  auto in_dirs = n.attr_ints("scan_input_directions", std::vector<int64_t>(n_scan_in, 0));
  auto out_axes = n.attr_ints("scan_output_axes", std::vector<int64_t>(n_scan_out, 0));
  auto out_dirs = n.attr_ints("scan_output_directions", std::vector<int64_t>(n_scan_out, 0));
  int64_t steps = -1;
  for (size_t j = 0; j < n_scan_in; ++j) {
    const Tensor& x = ctx.input(n_state + j);
    int64_t& axis = in_axes[j];
    if (axis < 0) axis += x.rank();
    if (axis < 0 || axis >= x.rank()) return invalid_model("Scan: scan_input_axes[{}] is out of range", j);
    if (steps >= 0 && x.dim(axis) != steps)
      return invalid_argument("Scan: scan input {} has {} steps, scan input 0 has {}", j, x.dim(axis), steps);
    steps = x.dim(axis);
  }
  std::vector<RunValue> states;
  for (size_t i = 0; i < n_state; ++i) states.push_back(ctx.input_value(i));
  std::vector<std::vector<Tensor>> scans(n_scan_out);
  for (int64_t t = 0; t < steps; ++t) {
    std::vector<RunValue> in = states;
    for (size_t j = 0; j < n_scan_in; ++j) {
      int64_t at = in_dirs[j] == 1 ? steps - 1 - t : t;
      KILN_ASSIGN_OR_RETURN(Tensor slice, take_along(ctx.input(n_state + j), in_axes[j], at));
      in.push_back(RunValue::of(std::move(slice)));
    }
    KILN_ASSIGN_OR_RETURN(std::vector<RunValue> out, ctx.run_subgraph(*body, std::move(in)));
    if (out.size() != n_state + n_scan_out)
      return invalid_model("Scan: the body gave {} outputs, expected {}", out.size(), n_state + n_scan_out);
    for (size_t i = 0; i < n_state; ++i) states[i] = std::move(out[i]);
    for (size_t k = 0; k < n_scan_out; ++k) scans[k].push_back(std::move(out[n_state + k].tensor));
  }
  for (size_t i = 0; i < n_state; ++i)
    if (ctx.has_output(i)) ctx.set_output(i, std::move(states[i]));
  for (size_t k = 0; k < n_scan_out; ++k) {
    if (out_dirs[k] == 1) std::reverse(scans[k].begin(), scans[k].end());
    KILN_RETURN_IF_ERROR(set_scan_output(ctx, n_state + k, scans[k], body->outputs[n_state + k], out_axes[k]));
  }
  return Status::ok();
}

}  // namespace

KILN_CPU_KERNEL("", "If", run_if);
KILN_CPU_KERNEL("", "Loop", run_loop);
KILN_CPU_KERNEL("", "Scan", run_scan);

}  // namespace kiln
