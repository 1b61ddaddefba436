// Index arithmetic shared by CPU kernels: row-major strides and broadcasting.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace kiln {

// Row-major strides in elements: strides_of({2,3,4}) = {12,4,1}.
std::vector<int64_t> strides_of(const std::vector<int64_t>& dims);

// Strides for reading a tensor of `in_dims` as if broadcast to `out_dims`
// (numpy rules, ranks aligned on the right): 0 along broadcast dims.
std::vector<int64_t> broadcast_strides(const std::vector<int64_t>& in_dims, const std::vector<int64_t>& out_dims);

// Walks every index of `dims` in row-major order, keeping one flat offset per
// operand (each with its own strides, e.g. from broadcast_strides):
//
//   BroadcastWalker w(out_dims, {a_strides, b_strides});
//   for (int64_t i = 0; i < n; ++i, w.next()) out[i] = a[w.offset(0)] + b[w.offset(1)];
class BroadcastWalker {
 public:
  BroadcastWalker(std::vector<int64_t> dims, std::vector<std::vector<int64_t>> operand_strides);
  int64_t offset(size_t operand) const { return offsets_[operand]; }
  void next();

 private:
  std::vector<int64_t> dims_;
  std::vector<std::vector<int64_t>> strides_;
  std::vector<int64_t> index_;
  std::vector<int64_t> offsets_;
};

}  // namespace kiln
