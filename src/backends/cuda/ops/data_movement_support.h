// Shared by the CUDA registrations of the data-movement family (shape views,
// layout, indexing, generators, Resize): which dtypes the element-size
// kernels take, host reads of shape-like inputs, and fill values as bytes.
#pragma once

#include <cstdint>
#include <vector>

#include "backends/cuda/cuda_kernel.h"
#include "backends/cuda/kernels/layout.cuh"

namespace kiln::cuda::dm {

constexpr int64_t kMaxRank = 8;  // the kernels' limit (kernels/common.cuh)

// Bytes per element when the kernels can move this dtype (1, 2, 4, 8 or 16,
// up to max_bytes); 0 for strings, packed sub-byte types and wider ones.
int element_size(DType t, int max_bytes = 16);

// Node input i is a tensor of a dtype element_size() takes (and, when the
// graph declares its rank, of rank <= kMaxRank).
Status supports_movable(const Node& node, size_t input, int max_bytes = 16);
// Node input i is a numeric tensor (bool too when with_bool).
Status supports_numeric(const Node& node, size_t input, bool with_bool = false);
// Node input i, when present, is int32 or int64.
Status supports_index(const Node& node, size_t input);
// The declared rank of node input i is within kMaxRank (unknown passes).
Status supports_rank(const Node& node, size_t input);
// All of supports_movable(node, 0, max_bytes) and supports_index of `index_inputs`.
Status supports_movable_indexed(const Node& node, std::vector<size_t> index_inputs, int max_bytes = 16);

// Host input i as int64s (empty when omitted).
Expected<std::vector<int64_t>> host_ints(const KernelContext& ctx, size_t i);

int64_t positive_axis(int64_t axis, int64_t rank);

// Element i of `t` as raw bytes (t's dtype is the output's).
ElemBits element_bits(const Tensor& t, int64_t i);
// value (a scalar of any numeric dtype) converted to dtype `to`, as bytes.
ElemBits converted_bits(DType to, const Tensor& value);
ElemBits one_bits(DType to);

// Whether a device index tensor holds int64 (else int32).
inline bool is_i64(const DeviceTensor& t) { return t.dtype == DType::kI64; }

}  // namespace kiln::cuda::dm
