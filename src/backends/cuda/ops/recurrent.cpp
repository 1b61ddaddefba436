// RNN, GRU and LSTM (kernels/recurrent.cuh): the attributes and shapes as the
// CPU kernel reads and checks them (src/backends/cpu/kernels/recurrent.cpp).
#include "backends/cuda/kernels/recurrent.cuh"

#include "backends/cuda/cuda_kernel.h"

namespace kiln::cuda {
namespace {

DType value_type(const Value* v) { return v ? v->type.dtype : DType::kUndefined; }

size_t recurrent_workspace(const KernelQuery& q, RnnCell cell) {
  const std::vector<int64_t>*x = q.input_dims(0), *r = q.input_dims(2);
  if (!x || !r || x->size() != 3 || r->size() != 3) return 0;
  auto s = read_rnn_attrs(q.node(), cell);
  if (!s.is_ok()) return 0;
  return recurrent_workspace_bytes(q.input_dtype(0), s->dirs, (*x)[s->batch_first ? 0 : 1], s->gates, (*r)[2]);
}

Status run_recurrent(KernelContext& ctx, RnnCell cell) {
  const Node& n = ctx.node();
  RecurrentParams p;
  KILN_ASSIGN_OR_RETURN(static_cast<RnnShape&>(p), read_rnn_attrs(n, cell));
  std::vector<const std::vector<int64_t>*> dims;
  for (size_t i = 0; i < n.inputs.size(); ++i) dims.push_back(ctx.has_input(i) ? &ctx.input(i).dims : nullptr);
  KILN_RETURN_IF_ERROR(check_rnn_inputs(n, p, dims));
  const DeviceTensor &x = ctx.input(0), &w = ctx.input(1), &r = ctx.input(2);
  if (ctx.has_input(3)) p.b = ctx.input(3).data;
  if (ctx.has_input(4)) {
    p.lens = ctx.input(4).data;
    p.lens_type = ctx.input(4).dtype;
    if (p.lens_type != DType::kI32 && p.lens_type != DType::kI64)
      return invalid_model("{}: sequence_lens is {}, not an int32 tensor", n.op_type, dtype_name(p.lens_type));
  }
  if (ctx.has_input(5)) p.h0 = ctx.input(5).data;
  if (cell == RnnCell::kLstm && ctx.has_input(6)) p.c0 = ctx.input(6).data;
  if (cell == RnnCell::kLstm && ctx.has_input(7)) p.p = ctx.input(7).data;
  KILN_ASSIGN_OR_RETURN(auto acts, rnn_activations(n, p));
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

Status supports_recurrent(const Node& n, RnnCell cell) {
  const DType t = value_type(n.input(0));
  if (t != DType::kUndefined && !recurrent_dtype_supported(t))
    return unsupported("{}: dtype {} (the CUDA kernel takes f32, f16, bf16, f64)", n.op_type, dtype_name(t));
  KILN_ASSIGN_OR_RETURN(RnnShape s, read_rnn_attrs(n, cell));
  return rnn_activations(n, s).status();
}

KernelDef recurrent_def(RnnCell cell) {
  return {.run = [cell](KernelContext& c) { return run_recurrent(c, cell); },
          .workspace = [cell](const KernelQuery& q) { return recurrent_workspace(q, cell); },
          .supports = [cell](const Node& n) { return supports_recurrent(n, cell); }};
}

}  // namespace

KILN_CUDA_KERNEL("", "RNN", recurrent_def(RnnCell::kRnn));
KILN_CUDA_KERNEL("", "GRU", recurrent_def(RnnCell::kGru));
KILN_CUDA_KERNEL("", "LSTM", recurrent_def(RnnCell::kLstm));

}  // namespace kiln::cuda
