// The max pool a kiln::FusedConv may apply to its activated result
// (fuse_conv_max_pool puts it there on the CUDA backend), read from its
// attributes:
//
//   pool_kernel   [kh, kw]           the 2-D window (required for a pool)
//   pool_strides  [sh, sw]           default [1, 1]
//   pool_pads     [hb, wb, he, we]   explicit pads, default 0
//
// Dilation 1, floor-mode output dims, no Indices: MaxPool's semantics over
// the convolution's output (windows skip positions in the padding). Y is then
// the pooled shape; a FusedConv with a pool has no residual Z.
#pragma once

#include <optional>
#include <vector>

#include "ir/graph.h"
#include "ops/window_geometry.h"
#include "support/status.h"

namespace kiln {

// The pool's window attributes (as a MaxPool's, 2-D) where the node has
// pool_kernel; nullopt where it has none; an error where they are malformed.
Expected<std::optional<WindowAttrs>> read_fused_pool(const Node& node);

// Sets the MaxPool attributes (kernel_shape, strides, pads) of `pool` from
// the FusedConv's pool attributes `a` (read_fused_pool's).
void set_max_pool_attrs(const WindowAttrs& a, Node& pool);

}  // namespace kiln
