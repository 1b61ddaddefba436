// Which part of a layer the autotuner checks against the CPU reference: the
// first rows of the batch. The full layer at the profile's opt shapes would
// take the reference kernels minutes, and the output's first rows depend on
// nothing else, as long as every input that has the batch is cut to the same
// rows. No GPU here: the unit tests run it.
#pragma once

#include <cstdint>
#include <vector>

#include "ir/graph.h"
#include "ir/tensor.h"

namespace kiln {

// For each input (by its dims; empty for an absent one), whether the
// reference takes only its first rows: input 0, and every other input that
// has the same batch: for a batched product input 1 (and kiln.FusedMatMul's
// residual where A is cut); for kiln.FusedConv its residual Z; for Attention K, V, a 4-D mask, the past K/V and the
// per-batch KV lengths.
std::vector<bool> sliced_inputs(const Node& n, const std::vector<std::vector<int64_t>>& dims);

// How many rows: 8 for products (rows of a matrix), 1 elsewhere (a batch).
int64_t reference_rows(const Node& n);

// The first `rows` rows of dim 0 of `t` (all of them if it has fewer).
Tensor first_rows(const Tensor& t, int64_t rows);

}  // namespace kiln
