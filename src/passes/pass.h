// A pass is a function Graph -> Graph, in place: Status run(Graph&, PassContext&).
// Each lives in its own file with a before/after comment, and the pipeline
// (pipeline.cpp) is one visible, ordered list.
#pragma once

#include <set>
#include <string>
#include <vector>

#include "ir/diagnostic.h"
#include "ir/graph.h"
#include "support/status.h"

namespace kiln {

struct PassContext {
  // Constant folding leaves a node alone when its result would be larger.
  size_t max_folded_bytes = size_t(64) << 20;
  // Names of passes that changed the graph, in order (for `kiln build --verbose`).
  std::vector<std::string> changed;
  // Pipeline passes run_passes skips, by name (`kiln build --disablePasses`).
  std::set<std::string> disabled;
};

using PassFn = Status (*)(Graph&, PassContext&);

struct PassInfo {
  const char* name;
  PassFn run;
};

Status fold_constants(Graph& graph, PassContext& ctx);
Status eliminate_identity(Graph& graph, PassContext& ctx);
Status eliminate_common_subexpressions(Graph& graph, PassContext& ctx);
Status eliminate_dead_nodes(Graph& graph, PassContext& ctx);
Status simplify_shape_arithmetic(Graph& graph, PassContext& ctx);
Status fold_shape_where(Graph& graph, PassContext& ctx);
Status fold_batch_norm_into_conv(Graph& graph, PassContext& ctx);
Status patchify_conv_to_matmul(Graph& graph, PassContext& ctx);
Status fuse_conv_activation(Graph& graph, PassContext& ctx);
Status eliminate_transposes(Graph& graph, PassContext& ctx);
Status sink_transposes(Graph& graph, PassContext& ctx);
Status sink_reshapes(Graph& graph, PassContext& ctx);
Status eliminate_reshapes(Graph& graph, PassContext& ctx);
Status fuse_layer_norm(Graph& graph, PassContext& ctx);
Status fuse_gelu(Graph& graph, PassContext& ctx);
Status fuse_attention(Graph& graph, PassContext& ctx);
Status fuse_attention_heads(Graph& graph, PassContext& ctx);
Status fuse_multihead_attention(Graph& graph, PassContext& ctx);
Status fuse_matmul_bias_activation(Graph& graph, PassContext& ctx);

// Lowers the ops that are safe in 16 bits to `target` (f16 or bf16), with
// Casts at the borders; run by the builder for --fp16 / --bf16 on cuda.
Status assign_precision(Graph& graph, DType target);

// On the CUDA backend after assign_precision, before assign_conv_layout: a
// 16-bit stride-2 stem over fewer than 8 channels becomes a stride-1
// channels-last convolution over the input's 2x2 blocks (space-to-depth),
// which one kiln.SpaceToDepthPad makes, reading the input Cast's f32 input
// when the stem is the Cast's only reader (the Cast is erased).
Status space_to_depth_stem(Graph& graph, PassContext& ctx);

// On the CUDA backend after assign_precision: 2-D 16-bit kiln::FusedConv
// layers (grouped and depthwise too) compute channels-last, with the Transposes between them cancelled.
Status assign_conv_layout(Graph& graph, PassContext& ctx);
// After assign_conv_layout: pools reading a channels-last region through a
// Transpose to NCHW pool channels-last, and that Transpose goes.
Status assign_pool_layout(Graph& graph, PassContext& ctx);

// On the CUDA backend before assign_precision: two or more projections of one
// activation that feed one Attention's Q, K, V become one projection (weights
// concatenated along N) and a Split.
Status pack_qkv_projections(Graph& graph, PassContext& ctx);
// On the CUDA backend after assign_precision: a last-axis Split whose three
// outputs are only a 3-D Attention's Q, K, V becomes kiln.PackedAttention,
// which reads them in place.
Status fuse_packed_attention(Graph& graph, PassContext& ctx);

// On the CUDA backend after assign_precision, before fuse_elementwise: a
// residual Add read by a last-axis LayerNormalization becomes one
// kiln::SkipLayerNormalization (the sum an output only where it is read).
Status fuse_skip_layer_norm(Graph& graph, PassContext& ctx);

// On the CUDA backend after assign_conv_layout: groups of elementwise ops
// become kiln::FusedElementwise programs (compiled with NVRTC by the builder).
Status fuse_elementwise(Graph& graph, PassContext& ctx);

// The default pipeline, in order.
const std::vector<PassInfo>& default_pipeline();
// Runs `passes` in order; stops at the first error.
Status run_passes(Graph& graph, PassContext& ctx, const std::vector<PassInfo>& passes);

}  // namespace kiln
