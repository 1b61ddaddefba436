// Helpers of the reduction/normalization/softmax/loss kernel definitions:
// reading a node's dtypes and axes the way the CPU kernels do.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "backends/cuda/cuda_kernel.h"

namespace kiln::cuda {

// The dtype of the node's input i as the graph declares it (kUndefined when omitted).
inline DType input_dtype(const Node& node, size_t i) {
  return i < node.inputs.size() && node.inputs[i] ? node.inputs[i]->type.dtype : DType::kUndefined;
}

inline bool is_float(DType t) { return t == DType::kF32 || t == DType::kF16 || t == DType::kBF16 || t == DType::kF64; }

inline bool is_integer(DType t) { return is_byte_integer(t); }

// Input `i` of `op` must be a float tensor.
inline Status require_float(const Node& node, size_t i, const char* what) {
  const DType t = input_dtype(node, i);
  if (t != DType::kUndefined && !is_float(t))
    return unsupported("{}: {} of dtype {} (the CUDA kernel takes f32, f16, bf16 or f64)", node.op_type, what,
                       dtype_name(t));
  return Status::ok();
}

// `axis` in [-rank, rank) made non-negative; `rank` is at least 1 for ops
// that treat a scalar as a 1-element vector.
inline Expected<int64_t> resolve_axis(const Node& node, int64_t axis, int64_t rank) {
  if (axis < -rank || axis >= rank)
    return invalid_model("{}: axis {} is out of range for rank {}", node.op_type, axis, rank);
  return axis < 0 ? axis + rank : axis;
}

inline int64_t dims_product(const std::vector<int64_t>& d, size_t begin, size_t end) {
  int64_t p = 1;
  for (size_t i = begin; i < end && i < d.size(); ++i) p *= d[i];
  return p;
}

// Scratch pieces are carved 256-byte aligned.
inline size_t align_up_bytes(size_t n) { return (n + 255) / 256 * 256; }

// [outer, n, inner] around `axis` (a scalar is a 1-element vector).
struct AxisView {
  int64_t outer = 1, n = 1, inner = 1;
};

inline Expected<AxisView> axis_view(const Node& node, const std::vector<int64_t>& dims, int64_t axis) {
  const auto rank = static_cast<int64_t>(dims.size());
  KILN_ASSIGN_OR_RETURN(int64_t a, resolve_axis(node, axis, std::max<int64_t>(rank, 1)));
  AxisView v;
  if (rank == 0) return v;
  v.outer = dims_product(dims, 0, static_cast<size_t>(a));
  v.n = dims[static_cast<size_t>(a)];
  v.inner = dims_product(dims, static_cast<size_t>(a) + 1, dims.size());
  return v;
}

}  // namespace kiln::cuda
