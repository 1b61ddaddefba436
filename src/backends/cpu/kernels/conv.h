// The CPU reference of a channels-last kiln::FusedConv, for the kernels that
// compose it (kiln.ExpandDepthwiseConv runs its two layers through it, so it
// gives their bits exactly).
#pragma once

#include "ir/graph.h"
#include "ir/tensor.h"
#include "support/status.h"

namespace kiln {

// y = act(conv(x, w) + b + z) for FusedConv `node`'s attributes (its
// activation, group, strides, pads, dilations; channels_last is assumed):
// x [N, H, W, C], w [K, R, S, C/group], b [K] and z (y's shape) optional,
// y [N, OH, OW, K] of x's dtype, summed in double and rounded once.
Expected<Tensor> channels_last_fused_conv(const Node& node, const Tensor& x, const Tensor& w, const Tensor* b,
                                          const Tensor* z);

}  // namespace kiln
