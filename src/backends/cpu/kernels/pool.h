// The CPU MaxPool's loops for kernels that pool a result of their own
// (kiln::FusedConv with pool attributes: the convolution, then this).
#pragma once

#include "ir/graph.h"
#include "ir/tensor.h"
#include "support/status.h"

namespace kiln {

// MaxPool of x (no Indices) under `pool`'s MaxPool attributes (kernel_shape,
// strides, pads, dilations, ceil_mode, channels_last: then x is 4-D [N, H, W,
// C]), exactly as the MaxPool kernel computes it.
Expected<Tensor> max_pool(const Node& pool, const Tensor& x);

}  // namespace kiln
