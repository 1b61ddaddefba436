#include "support/parallel.h"

#include <algorithm>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace kiln {

int parallel_threads() {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

void parallel_for(int64_t n, int64_t cost_per_item, const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  // About a millisecond of work per thread: below that, waking threads costs more than it saves.
  constexpr int64_t kMinWorkPerThread = 1 << 20;
  int64_t threads = std::min<int64_t>(
      parallel_threads(), std::max<int64_t>(1, n * std::max<int64_t>(cost_per_item, 1) / kMinWorkPerThread));
  threads = std::min(threads, n);
  if (threads <= 1) {
    fn(0, n);
    return;
  }
  int64_t chunk = (n + threads - 1) / threads;
#ifdef _OPENMP
#pragma omp parallel for num_threads(static_cast <int>(threads)) schedule(static)
#endif
  for (int64_t t = 0; t < threads; ++t) {
    int64_t b = t * chunk, e = std::min(n, b + chunk);
    if (b < e) fn(b, e);
  }
}

}  // namespace kiln
