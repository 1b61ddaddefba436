// assign_pool_layout: on the CUDA backend, after assign_conv_layout, a pool
// that reads a channels-last region through a Transpose back to NCHW pools
// channels-last itself (channels_last=1, see ops/nn.cpp), so that Transpose
// goes; the one its output gets cancels against the next layer's
// (SqueezeNet's and ResNet's MaxPools) or is a small [N, C, 1, 1] one (a
// GlobalAveragePool head), the size of the pooled tensor at most.
//
//   %t: f16[1,8,4,4] = Transpose(%c) {perm=[0,3,1,2]}     %p_nhwc: f16[1,3,3,8] = MaxPool(%c)
//   %p: f16[1,8,3,3] = MaxPool(%t) {kernel_shape=[2,2]}  ->     {channels_last=1, kernel_shape=[2,2]}
//                                                           %p: f16[1,8,3,3] = Transpose(%p_nhwc) {perm=[0,3,1,2]}
//
// A pool qualifies when it is 2-D MaxPool without an Indices output,
// AveragePool, GlobalAveragePool or GlobalMaxPool (any dtype: the NHWC
// kernels take what the NCHW ones do). A windowed pool also needs every
// reader of its input Transpose to qualify, so that Transpose goes rather
// than gain a partner of the pool's size. A global pool's own Transpose is
// of [N, C, 1, 1], so it goes channels-last regardless; in a
// squeeze-excitation block that leaves the Mul the input Transpose's only
// reader, and sink_transposes moves it below the Mul.
#include "ir/rewrite.h"
#include "passes/pass.h"
#include "passes/pass_util.h"

namespace kiln {
namespace {

const std::vector<int64_t> kToNchw = {0, 3, 1, 2};

bool rank4(const Value* v) { return v && v->type.is_tensor() && v->type.shape.rank() == 4; }

bool is_global(const Node& n) { return n.op_type == "GlobalAveragePool" || n.op_type == "GlobalMaxPool"; }

bool has_nhwc_form(const Node& n) {
  if (!n.domain.empty() || n.attr_int("channels_last", 0) != 0 || n.inputs.size() != 1) return false;
  if (n.op_type == "MaxPool") {
    if (n.outputs.size() > 1 && n.outputs[1]) return false;
  } else if (n.op_type != "AveragePool" && n.op_type != "GlobalAveragePool" && n.op_type != "GlobalMaxPool") {
    return false;
  }
  return rank4(n.input(0)) && rank4(n.output(0));
}

// The Transpose to NCHW that `pool` reads, when it and all its readers can go channels-last.
Node* nchw_transpose_read_by(const Graph& graph, const Node& pool) {
  if (!has_nhwc_form(pool)) return nullptr;
  Node* t = pass_util::producer_of(pool.input(0), "Transpose");
  if (!t || !t->input(0) || pass_util::transpose_perm(*t) != kToNchw || is_graph_output(graph, t->outputs[0]))
    return nullptr;
  if (is_global(pool)) return t;
  for (const Node* reader : graph.users(t->outputs[0]))
    if (!has_nhwc_form(*reader)) return nullptr;
  return t;
}

}  // namespace

Status assign_pool_layout(Graph& graph, PassContext& ctx) {
  // A pool feeding another pool (or a Relu then a pool) gives the next one
  // its Transpose only once rewritten and sunk: rounds until none qualifies
  // (each pool goes channels-last once, so they end).
  for (;;) {
    std::vector<std::pair<Node*, Node*>> pools;  // (pool, the Transpose it reads)
    for (const auto& n : graph.nodes())
      if (Node* t = nchw_transpose_read_by(graph, *n)) pools.emplace_back(n.get(), t);
    if (pools.empty()) return Status::ok();
    for (auto [pool, t] : pools) {
      pool->inputs[0] = t->inputs[0];
      pass_util::transpose_output(graph, *pool, kToNchw, "_nhwc");
      pool->attrs["channels_last"] = Attribute::of_int(1);
      pool->metadata["kiln.layout"] = "NHWC";
    }
    pass_util::sort_topologically(graph);
    KILN_RETURN_IF_ERROR(eliminate_transposes(graph, ctx));
    KILN_RETURN_IF_ERROR(eliminate_dead_nodes(graph, ctx));
    KILN_RETURN_IF_ERROR(sink_transposes(graph, ctx));
  }
}

}  // namespace kiln
