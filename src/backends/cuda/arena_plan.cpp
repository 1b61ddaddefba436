#include "backends/cuda/arena_plan.h"

#include <algorithm>
#include <numeric>

namespace kiln::cuda {

namespace {

size_t align_up(size_t n) { return (n + kArenaAlignment - 1) / kArenaAlignment * kArenaAlignment; }

bool overlap_in_time(const ArenaRequest& a, const ArenaRequest& b) {
  return a.first_step <= b.last_step && b.first_step <= a.last_step;
}

}  // namespace

ArenaLayout plan_arena(const std::vector<ArenaRequest>& requests) {
  ArenaLayout layout;
  layout.offsets.assign(requests.size(), 0);
  std::vector<size_t> order(requests.size());
  std::iota(order.begin(), order.end(), 0);
  // Largest first; ties by first use, then index, so the layout is deterministic.
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    if (requests[a].bytes != requests[b].bytes) return requests[a].bytes > requests[b].bytes;
    return requests[a].first_step < requests[b].first_step;
  });
  std::vector<size_t> placed;
  for (size_t r : order) {
    const size_t size = align_up(requests[r].bytes);
    if (size == 0) continue;
    // Busy byte ranges of the placed tensors that live at the same time, by offset.
    std::vector<std::pair<size_t, size_t>> busy;
    for (size_t p : placed)
      if (overlap_in_time(requests[r], requests[p]))
        busy.emplace_back(layout.offsets[p], layout.offsets[p] + align_up(requests[p].bytes));
    std::sort(busy.begin(), busy.end());
    size_t offset = 0;
    for (const auto& [begin, end] : busy) {
      if (offset + size <= begin) break;
      offset = std::max(offset, end);
    }
    layout.offsets[r] = offset;
    layout.total_bytes = std::max(layout.total_bytes, offset + size);
    placed.push_back(r);
  }
  return layout;
}

}  // namespace kiln::cuda
