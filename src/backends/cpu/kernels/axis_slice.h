// Walks the 1-D slices of a tensor along one axis, for kernels that work
// slice by slice (softmax, ArgMax, CumSum, ...).
#pragma once

#include <cstdint>
#include <vector>

#include "support/parallel.h"

namespace kiln {

struct AxisSlices {
  int64_t outer = 1;  // product of the dims before the axis
  int64_t n = 1;      // the axis' length
  int64_t inner = 1;  // product of the dims after it: the stride along the axis

  AxisSlices(const std::vector<int64_t>& dims, int64_t axis) {
    for (int64_t i = 0; i < axis; ++i) outer *= dims[i];
    if (!dims.empty()) n = dims[axis];
    for (size_t i = axis + 1; i < dims.size(); ++i) inner *= dims[i];
  }
  int64_t count() const { return outer * inner; }
  // Offset of element 0 of slice s; element k is at base(s) + k * inner.
  int64_t base(int64_t s) const { return (s / inner) * n * inner + s % inner; }

  // Calls fn(s) for every slice, in parallel.
  template <typename Fn>
  void for_each(Fn fn) const {
    parallel_for(count(), n * 4 + 1, [&](int64_t b, int64_t e) {
      for (int64_t s = b; s < e; ++s) fn(s);
    });
  }
};

}  // namespace kiln
