#include "backends/cpu/index_util.h"

namespace kiln {

std::vector<int64_t> strides_of(const std::vector<int64_t>& dims) {
  std::vector<int64_t> s(dims.size(), 1);
  for (size_t i = dims.size(); i-- > 1;) s[i - 1] = s[i] * dims[i];
  return s;
}

std::vector<int64_t> broadcast_strides(const std::vector<int64_t>& in_dims, const std::vector<int64_t>& out_dims) {
  std::vector<int64_t> in_strides = strides_of(in_dims);
  std::vector<int64_t> out(out_dims.size(), 0);
  size_t offset = out_dims.size() - in_dims.size();
  for (size_t i = 0; i < in_dims.size(); ++i) out[offset + i] = in_dims[i] == 1 ? 0 : in_strides[i];
  return out;
}

BroadcastWalker::BroadcastWalker(std::vector<int64_t> dims, std::vector<std::vector<int64_t>> operand_strides)
    : dims_(std::move(dims)),
      strides_(std::move(operand_strides)),
      index_(dims_.size(), 0),
      offsets_(strides_.size(), 0) {}

void BroadcastWalker::next() {
  for (size_t d = dims_.size(); d-- > 0;) {
    if (++index_[d] < dims_[d]) {
      for (size_t k = 0; k < strides_.size(); ++k) offsets_[k] += strides_[k][d];
      return;
    }
    for (size_t k = 0; k < strides_.size(); ++k) offsets_[k] -= strides_[k][d] * (dims_[d] - 1);
    index_[d] = 0;
  }
}

}  // namespace kiln
