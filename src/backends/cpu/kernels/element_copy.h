// Copying elements between tensors of one dtype whatever its width: whole
// bytes, packed 2/4-bit elements or strings. Data-movement kernels (Reshape's
// cousins, Gather, Scatter, Pad, ...) are written once against this instead
// of once per dtype.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ir/tensor.h"

namespace kiln {

class ElementCopier {
 public:
  // `dst` must have src's dtype; it is made writable here (once).
  ElementCopier(const Tensor& src, Tensor& dst);
  // Copies `count` consecutive elements from src[src_index] to dst[dst_index].
  void copy(int64_t dst_index, int64_t src_index, int64_t count = 1) const;

 private:
  const uint8_t* src_ = nullptr;
  uint8_t* dst_ = nullptr;
  const std::vector<std::string>* src_strings_ = nullptr;
  std::vector<std::string>* dst_strings_ = nullptr;
  int bits_ = 0;
};

// Advances a row-major multi-index over `dims`; false after the last one.
inline bool next_index(std::vector<int64_t>& index, const std::vector<int64_t>& dims) {
  for (size_t k = index.size(); k-- > 0;) {
    if (++index[k] < dims[k]) return true;
    index[k] = 0;
  }
  return false;
}

// Product of dims[begin, end).
int64_t dims_numel(const std::vector<int64_t>& dims, size_t begin, size_t end);

// Index i of an axis of size n, negative counting from the end; error when out of range.
Expected<int64_t> checked_index(int64_t i, int64_t n, const char* op);

}  // namespace kiln
