// Helpers shared by infer functions: broadcasting, axes, dim arithmetic.
//
// Symbolic dim arithmetic keeps products readable and exact: a symbolic dim is
// a product of a coefficient and symbols ("batch*seq", "2*seq"), so Reshape's
// -1 and Flatten stay symbolic instead of becoming unknown.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "ops/op_schema.h"

namespace kiln {

// Inside a shape value, a literal -1 (Reshape's "infer this dim") is kept as
// this marker, since a Dim holds no negative size. The arithmetic below treats
// it as unknown, so it never turns into a wrong size.
Dim minus_one_marker();
bool is_minus_one(const Dim& d);

Dim dim_mul(const Dim& a, const Dim& b);
// a / b when exact (fixed, or symbol products that divide), else unknown.
Dim dim_div(const Dim& a, const Dim& b);
Dim dim_add(const Dim& a, const Dim& b);
Dim dim_sub(const Dim& a, const Dim& b);
Dim dims_product(const Dims& dims, size_t begin, size_t end);

// Numpy-style broadcast of two or more shapes; error names both dims when they clash.
Expected<Shape> broadcast_shapes(const std::vector<const Shape*>& shapes);

// Maps a possibly negative axis into [0, rank); error if out of range.
Expected<int64_t> normalize_axis(int64_t axis, int64_t rank, const char* what = "axis");

// Requires input i to be a tensor of a known rank; error otherwise.
Status require_rank(const InferContext& ctx, size_t i, const char* op);

// Upgrade for ops whose opset < 6 form had the legacy `consumed_inputs` attribute.
Status drop_consumed_inputs(UpgradeContext& ctx);

// Sets output 0 to input 0's type (the elementwise-unary rule).
Status infer_same_as_input0(InferContext& ctx);
// Output 0 is the broadcast of all inputs, dtype of input 0 (Add, Where's data, ...).
Status infer_broadcast(InferContext& ctx);
// As infer_broadcast but the output is bool (comparisons, logical ops).
Status infer_broadcast_bool(InferContext& ctx);

}  // namespace kiln
