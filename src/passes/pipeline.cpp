// The optimization pipeline: every pass kiln runs, in the order it runs them.
#include <fmt/format.h>

#include "passes/pass.h"

namespace kiln {

const std::vector<PassInfo>& default_pipeline() {
  static const std::vector<PassInfo> passes = {
      {"eliminate_identity", eliminate_identity},
      {"fold_constants", fold_constants},
      // Dead readers (a Dropout mask's unused CastLike) would hide single-reader patterns.
      {"eliminate_dead_nodes", eliminate_dead_nodes},
      {"simplify_shape_arithmetic", simplify_shape_arithmetic},
      // Before the fusions: attention masks built by Expand get their shapes.
      {"fold_shape_where", fold_shape_where},
      {"fold_batch_norm_into_conv", fold_batch_norm_into_conv},
      // After the BN fold (its scale and shift are in W and B by then); before
      // fuse_conv_activation and the transpose clean-up, which cancels the
      // layer's NCHW Transpose against the readers' Reshape and Transpose.
      {"patchify_conv_to_matmul", patchify_conv_to_matmul},
      // After the BN fold: Conv -> BN -> Relu is Conv -> Relu by then.
      {"fuse_conv_activation", fuse_conv_activation},
      {"eliminate_transposes", eliminate_transposes},
      {"sink_transposes", sink_transposes},
      {"eliminate_reshapes", eliminate_reshapes},
      // The fusions match single-reader chains: the readers the passes above left dead go first.
      {"eliminate_dead_nodes", eliminate_dead_nodes},
      // Before CSE, which could merge an intermediate of one pattern with another reader's.
      {"fuse_layer_norm", fuse_layer_norm},
      {"fuse_gelu", fuse_gelu},
      // After the reshape/transpose clean-up, so K^T's chain is in its simplest form.
      {"fuse_attention", fuse_attention},
      // The K^T chains fuse_attention replaced are dead readers of K until removed.
      {"eliminate_dead_nodes", eliminate_dead_nodes},
      {"fuse_attention_heads", fuse_attention_heads},
      // After fuse_gelu (an activation is one node by then) and before the
      // epilogue fusion, which then finds the activation next to its MatMul.
      {"sink_reshapes", sink_reshapes},
      {"eliminate_reshapes", eliminate_reshapes},
      {"eliminate_common_subexpressions", eliminate_common_subexpressions},
      // Last of the rewrites: the others see plain MatMul/Add/activation nodes.
      {"fuse_matmul_bias_activation", fuse_matmul_bias_activation},
      {"eliminate_dead_nodes", eliminate_dead_nodes},
      // After the epilogue fusion: the packed projection is one FusedMatMul.
      {"fuse_multihead_attention", fuse_multihead_attention},
      {"eliminate_dead_nodes", eliminate_dead_nodes},
  };
  return passes;
}

Status run_passes(Graph& graph, PassContext& ctx, const std::vector<PassInfo>& passes) {
  for (const PassInfo& p : passes) {
    if (ctx.disabled.count(p.name)) continue;
    size_t nodes_before = graph.nodes().size();
    size_t changed_before = ctx.changed.size();
    Status st = p.run(graph, ctx);
    if (!st.is_ok()) return st.with_context(fmt::format("pass {}", p.name));
    if (graph.nodes().size() != nodes_before && ctx.changed.size() == changed_before) ctx.changed.push_back(p.name);
  }
  return Status::ok();
}

}  // namespace kiln
