// Einsum equations ("ij,jk->ik", "...ii->...i", "bij,bjk"): parsing, and
// resolving the labels of each operand once the ranks are known. Shared by
// Einsum's shape inference and its kernels.
#pragma once

#include <string>
#include <vector>

#include "ir/shape.h"
#include "support/status.h"

namespace kiln {

struct EinsumEquation {
  std::vector<std::string> inputs;  // one term per operand; "..." kept as '.'
  std::string output;               // the term after "->" ('.' for "...")
  bool has_output = false;          // false: implicit output (numpy's rules)
};

// Labels are letters (their char codes) or, for the dims an ellipsis stands
// for, kEllipsisLabel + position counted from the ellipsis' right end.
constexpr int kEllipsisLabel = 1000;

struct EinsumLabels {
  std::vector<std::vector<int>> inputs;  // one label per dim of each operand
  std::vector<int> output;
};

Expected<EinsumEquation> parse_einsum(const std::string& equation, size_t num_inputs);
Expected<EinsumLabels> resolve_einsum(const EinsumEquation& eq, const std::vector<int64_t>& ranks);
// The output dims for operands of these shapes (all of known rank).
Expected<Dims> einsum_output_dims(const EinsumEquation& eq, const std::vector<const Shape*>& shapes);

}  // namespace kiln
