// kiln.ExpandDepthwiseConv(X, W1, B1?, W2, B2?): an inverted-residual block's
// 1x1 expansion and its depthwise convolution as one op (MobileNetV2,
// EfficientNet), so the CUDA backend can run both without writing the
// expanded tensor, the block's largest, to memory (fuse_expand_depthwise
// makes it from two channels-last kiln.FusedConv layers):
//
//   E = act1(FusedConv(X, W1, B1))                 X [N, H, W, C], W1 [E, 1, 1, C], B1 [E]
//   Y = act2(FusedConv(E, W2, B2) {group = E})     W2 [E, KH, KW, 1], B2 [E], Y [N, OH, OW, E]
//
// both channels-last, E rounded to X's dtype between the two, exactly as the
// two FusedConv layers compute it. Attributes:
//   expand_activation, expand_activation_params   act1 (fused_activation.h's names)
//   activation, activation_params                 act2
//   strides, pads                                 the depthwise's (dilation 1, no auto_pad)
#pragma once

#include <cstdint>

#include "ir/graph.h"
#include "support/status.h"

namespace kiln {

// The op's input positions.
enum ExpandDepthwiseInput : size_t { kEdX = 0, kEdW1 = 1, kEdB1 = 2, kEdW2 = 3, kEdB2 = 4 };

// The two kiln.FusedConv layers (channels_last=1) the node stands for, with
// the node's inputs (B1, B2 null where omitted) and `expanded` as the
// expansion's output and the depthwise's input; `e` is the expanded channel
// count (the depthwise's group). Their outputs are left empty but for that.
struct ExpandDepthwiseParts {
  Node expand;
  Node depthwise;
};
ExpandDepthwiseParts expand_depthwise_parts(const Node& node, int64_t e, Value* expanded);

}  // namespace kiln
