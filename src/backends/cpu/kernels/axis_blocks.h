// Copying whole slices of tensors along one axis, for the ops that cut a
// tensor into pieces or join pieces (Loop and Scan outputs, sequences,
// SplitToSequence, ConcatFromSequence). Works for every dtype of a byte or
// more, strings included.
#pragma once

#include <vector>

#include "ir/tensor.h"
#include "support/status.h"

namespace kiln {

// Slices [start, start + count) of `t` along `axis` (the axis is kept).
Expected<Tensor> slice_along(const Tensor& t, int64_t axis, int64_t start, int64_t count);
// Slice `index` of `t` along `axis`, the axis removed.
Expected<Tensor> take_along(const Tensor& t, int64_t axis, int64_t index);
// Joins `parts` along an existing `axis`; every other dim must agree.
Expected<Tensor> concat_along(const std::vector<Tensor>& parts, int64_t axis);
// Stacks `parts` (all of one shape) along a new `axis` in [0, rank].
Expected<Tensor> stack_along(const std::vector<Tensor>& parts, int64_t axis);
// Reverses `t` along `axis`.
Expected<Tensor> reverse_along(const Tensor& t, int64_t axis);

}  // namespace kiln
