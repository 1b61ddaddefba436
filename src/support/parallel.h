// parallel_for: splits [0, n) over the host's threads (OpenMP). The CPU
// backend uses it over batch or outer dims, where the split is trivial.
#pragma once

#include <cstdint>
#include <functional>

namespace kiln {

// Calls fn(begin, end) on disjoint chunks covering [0, n). Runs inline when
// n * cost_per_item is small, so tiny tensors pay no thread overhead.
void parallel_for(int64_t n, int64_t cost_per_item, const std::function<void(int64_t, int64_t)>& fn);
int parallel_threads();

}  // namespace kiln
