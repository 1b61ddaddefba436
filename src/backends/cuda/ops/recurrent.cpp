// RNN, GRU and LSTM (kernels/recurrent.cuh): the attributes and shapes as the
// CPU kernel reads and checks them (src/backends/cpu/kernels/recurrent.cpp).
#include "backends/cuda/kernels/recurrent.cuh"

#include "backends/cuda/cuda_kernel.h"

namespace kiln::cuda {
namespace {

DType value_type(const Value* v) { return v ? v->type.dtype : DType::kUndefined; }

int64_t gates_of(RnnCell cell) { return cell == RnnCell::kRnn ? 1 : cell == RnnCell::kGru ? 3 : 4; }
int64_t dirs_of(const Node& n) { return n.attr_string("direction", "forward") == "bidirectional" ? 2 : 1; }

Status check_shape(const DeviceTensor& t, const std::vector<int64_t>& want, const Node& n, const char* what) {
  if (t.dims != want)
    return invalid_model("{}: {} has shape {}, expected {}", n.op_type, what, Shape::of(t.dims).to_string(),
                         Shape::of(want).to_string());
  return Status::ok();
}

size_t recurrent_workspace(const KernelQuery& q, RnnCell cell) {
  const std::vector<int64_t>*x = q.input_dims(0), *r = q.input_dims(2);
  if (!x || !r || x->size() != 3 || r->size() != 3) return 0;
  const bool batch_first = q.node().attr_int("layout", 0) == 1;
  const int64_t batch = (*x)[batch_first ? 0 : 1];
  return recurrent_workspace_bytes(q.input_dtype(0), dirs_of(q.node()), batch, gates_of(cell), (*r)[2]);
}

Status run_recurrent(KernelContext& ctx, RnnCell cell) {
  const Node& n = ctx.node();
  RecurrentParams p;
  p.cell = cell;
  p.gates = gates_of(cell);
  p.per_dir = cell == RnnCell::kRnn ? 1 : cell == RnnCell::kGru ? 2 : 3;
  const std::string direction = n.attr_string("direction", "forward");
  p.dirs = dirs_of(n);
  p.reverse = direction == "reverse";
  p.batch_first = n.attr_int("layout", 0) == 1;
  p.linear_before_reset = n.attr_int("linear_before_reset", 0) != 0;
  p.input_forget = n.attr_int("input_forget", 0) != 0;
  p.clip = n.has_attr("clip") ? n.attr_float("clip", 0.0f) : 0.0;
  if (p.clip < 0) return invalid_model("{}: clip {} must be positive", n.op_type, p.clip);
  const DeviceTensor &x = ctx.input(0), &w = ctx.input(1), &r = ctx.input(2);
  if (x.rank() != 3 || r.rank() != 3) return invalid_model("{}: X and R must be 3-D", n.op_type);
  p.seq = x.dims[p.batch_first ? 1 : 0], p.batch = x.dims[p.batch_first ? 0 : 1], p.input = x.dims[2];
  p.hidden = r.dims[2];
  KILN_RETURN_IF_ERROR(check_shape(w, {p.dirs, p.gates * p.hidden, p.input}, n, "W"));
  KILN_RETURN_IF_ERROR(check_shape(r, {p.dirs, p.gates * p.hidden, p.hidden}, n, "R"));
  const std::vector<int64_t> state =
      p.batch_first ? std::vector<int64_t>{p.batch, p.dirs, p.hidden} : std::vector<int64_t>{p.dirs, p.batch, p.hidden};
  if (ctx.has_input(3)) {
    KILN_RETURN_IF_ERROR(check_shape(ctx.input(3), {p.dirs, 2 * p.gates * p.hidden}, n, "B"));
    p.b = ctx.input(3).data;
  }
  if (ctx.has_input(4)) {
    KILN_RETURN_IF_ERROR(check_shape(ctx.input(4), {p.batch}, n, "sequence_lens"));
    p.lens = ctx.input(4).data;
    p.lens_type = ctx.input(4).dtype;
    if (p.lens_type != DType::kI32 && p.lens_type != DType::kI64)
      return invalid_model("{}: sequence_lens is {}, not an int32 tensor", n.op_type, dtype_name(p.lens_type));
  }
  if (ctx.has_input(5)) {
    KILN_RETURN_IF_ERROR(check_shape(ctx.input(5), state, n, "initial_h"));
    p.h0 = ctx.input(5).data;
  }
  if (cell == RnnCell::kLstm && ctx.has_input(6)) {
    KILN_RETURN_IF_ERROR(check_shape(ctx.input(6), state, n, "initial_c"));
    p.c0 = ctx.input(6).data;
  }
  if (cell == RnnCell::kLstm && ctx.has_input(7)) {
    KILN_RETURN_IF_ERROR(check_shape(ctx.input(7), {p.dirs, 3 * p.hidden}, n, "P"));
    p.p = ctx.input(7).data;
  }
  const std::vector<std::string> defaults = cell == RnnCell::kRnn ? std::vector<std::string>{"Tanh"}
                                            : cell == RnnCell::kGru
                                                ? std::vector<std::string>{"Sigmoid", "Tanh"}
                                                : std::vector<std::string>{"Sigmoid", "Tanh", "Tanh"};
  KILN_ASSIGN_OR_RETURN(auto acts, parse_rnn_activations(n, defaults, p.dirs, static_cast<size_t>(p.per_dir)));
  if (acts.size() > std::size(p.acts)) return internal_error("{}: {} activations", n.op_type, acts.size());
  std::copy(acts.begin(), acts.end(), p.acts);
  p.dtype = x.dtype;
  p.x = x.data, p.w = w.data, p.r = r.data;
  if (ctx.has_output(0)) p.y = ctx.output(0).data;
  if (ctx.has_output(1)) p.yh = ctx.output(1).data;
  if (cell == RnnCell::kLstm && ctx.has_output(2)) p.yc = ctx.output(2).data;
  const size_t need = recurrent_workspace_bytes(p.dtype, p.dirs, p.batch, p.gates, p.hidden);
  if (ctx.workspace_bytes() < need)
    return internal_error("{}: workspace of {} bytes, {} needed", n.op_type, ctx.workspace_bytes(), need);
  return launch_recurrent(p, ctx.workspace(), ctx.stream());
}

Status supports_recurrent(const Node& n) {
  const DType t = value_type(n.input(0));
  if (t != DType::kUndefined && !recurrent_dtype_supported(t))
    return unsupported("{}: dtype {} (the CUDA kernel takes f32, f16, bf16, f64)", n.op_type, dtype_name(t));
  const size_t per_dir = n.op_type == "RNN" ? 1 : n.op_type == "GRU" ? 2 : 3;
  std::vector<std::string> defaults(per_dir, "Tanh");
  KILN_ASSIGN_OR_RETURN(auto acts, parse_rnn_activations(n, defaults, dirs_of(n), per_dir));
  (void)acts;
  return Status::ok();
}

KernelDef recurrent_def(RnnCell cell) {
  return {.run = [cell](KernelContext& c) { return run_recurrent(c, cell); },
          .workspace = [cell](const KernelQuery& q) { return recurrent_workspace(q, cell); },
          .supports = supports_recurrent};
}

}  // namespace

KILN_CUDA_KERNEL("", "RNN", recurrent_def(RnnCell::kRnn));
KILN_CUDA_KERNEL("", "GRU", recurrent_def(RnnCell::kGru));
KILN_CUDA_KERNEL("", "LSTM", recurrent_def(RnnCell::kLstm));

}  // namespace kiln::cuda
