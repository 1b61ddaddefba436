#include "builder/reference_slice.h"

#include <algorithm>
#include <cstring>

namespace kiln {

namespace {

// MatMul and kiln.FusedMatMul: numpy-batched products.
bool is_batched_product(const Node& n) {
  return (n.domain.empty() && n.op_type == "MatMul") || (n.domain == "kiln" && n.op_type == "FusedMatMul");
}

}  // namespace

std::vector<bool> sliced_inputs(const Node& n, const std::vector<std::vector<int64_t>>& dims) {
  std::vector<bool> slice(dims.size(), false);
  if (dims.empty() || dims[0].empty()) return slice;
  slice[0] = true;
  const int64_t batch = dims[0][0];
  // Input i when it has `rank` dims and the batch first.
  auto slice_if_batched = [&](size_t i, size_t rank) {
    if (i < dims.size() && dims[i].size() == rank && dims[i][0] == batch) slice[i] = true;
  };
  if (n.domain == "kiln" && n.op_type == "FusedConv") slice_if_batched(3, dims[0].size());
  if (n.domain.empty() && n.op_type == "Attention") {
    for (size_t i : {1, 2}) slice_if_batched(i, dims[0].size());
    for (size_t i : {3, 4, 5}) slice_if_batched(i, 4);
    slice_if_batched(6, 1);
  }
  // QKV is batch-major; attn_mask is sliced as Attention's is.
  if (n.domain == "kiln" && n.op_type == "PackedAttention") slice_if_batched(1, 4);
  if (is_batched_product(n) && dims.size() > 1 && dims[0].size() >= 3 && dims[1].size() >= 3)
    slice[1] = dims[1][0] == dims[0][0];
  if (is_batched_product(n) && dims.size() > 1 && dims[1].size() >= 3 && dims[0].size() < 3) slice[0] = false;
  if (is_batched_product(n) && dims[0].size() < 2) slice[0] = false;  // a 1-D A's only dim is K
  // FusedMatMul's residual has the output's shape: its rows are A's where A's are cut.
  if (n.domain == "kiln" && n.op_type == "FusedMatMul" && slice[0] && dims.size() > 3 &&
      dims[3].size() == dims[0].size() && dims[3][0] == batch)
    slice[3] = true;
  return slice;
}

int64_t reference_rows(const Node& n) {
  return is_batched_product(n) || (n.domain.empty() && n.op_type == "Gemm") ? 8 : 1;
}

Tensor first_rows(const Tensor& t, int64_t rows) {
  std::vector<int64_t> d = t.dims();
  const int64_t keep = std::min(rows, d[0]);
  const size_t bytes = t.nbytes() / static_cast<size_t>(std::max<int64_t>(d[0], 1)) * static_cast<size_t>(keep);
  d[0] = keep;
  Tensor out(t.dtype(), d);
  if (bytes) std::memcpy(out.mutable_raw(), t.raw(), bytes);
  return out;
}

}  // namespace kiln
