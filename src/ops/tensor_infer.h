// Helpers shared by the tensor ops' infer functions (tensor_*.cpp).
#pragma once

#include <optional>

#include "ops/infer_util.h"

namespace kiln {

// Input i's dims when it is a tensor of known rank, else null.
const Dims* known_dims(const InferContext& ctx, size_t i);

// A shape of `rank` unknown dims, or of unknown rank when rank < 0.
Shape unknown_dims(int64_t rank);

// The length of a 1-D input when its shape fixes it, else -1.
int64_t static_length(const InferContext& ctx, size_t i);

// Contents of a shape-like input (Reshape's shape, Concat's parts) as dims.
// A Dim cannot hold a negative number, so a literal negative entry (Reshape's
// -1) is kept as the symbol "-1" (see is_minus_one); everything else is as
// input_dims_value gives it.
std::optional<Dims> shape_entries(const InferContext& ctx, size_t i);

}  // namespace kiln
