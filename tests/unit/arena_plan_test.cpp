// The activation arena's placement (backends/cuda/arena_plan.h): tensors
// whose lifetimes overlap never share bytes; others reuse them.
#ifdef KILN_WITH_CUDA
#include "backends/cuda/arena_plan.h"

#include <gtest/gtest.h>

namespace kiln::cuda {
namespace {

TEST(ArenaPlan, ChainReusesTheFirstBufferOnceItIsDead) {
  // a (step 0..1), b (1..2), c (2..3): a and c never live together.
  auto layout = plan_arena({{1000, 0, 1}, {1000, 1, 2}, {1000, 2, 3}});
  EXPECT_EQ(layout.offsets, (std::vector<size_t>{0, 1024, 0}));
  EXPECT_EQ(layout.total_bytes, 2048u);
}

TEST(ArenaPlan, OverlappingLifetimesNeverShareBytes) {
  std::vector<ArenaRequest> r = {{300, 0, 5}, {700, 2, 3}, {256, 3, 9}, {1, 4, 4}, {5000, 6, 7}};
  auto layout = plan_arena(r);
  for (size_t i = 0; i < r.size(); ++i)
    for (size_t j = i + 1; j < r.size(); ++j) {
      bool live_together = r[i].first_step <= r[j].last_step && r[j].first_step <= r[i].last_step;
      bool bytes_overlap =
          layout.offsets[i] < layout.offsets[j] + r[j].bytes && layout.offsets[j] < layout.offsets[i] + r[i].bytes;
      EXPECT_FALSE(live_together && bytes_overlap) << i << " and " << j;
      EXPECT_EQ(layout.offsets[i] % kArenaAlignment, 0u);
    }
  // The 5000-byte tensor lives after the others except [256, 3..9]: 5120 + 256.
  EXPECT_EQ(layout.total_bytes, 5376u);
}

TEST(ArenaPlan, EmptyRequestsTakeNoSpace) {
  auto layout = plan_arena({{0, 0, 1}, {10, 0, 1}});
  EXPECT_EQ(layout.total_bytes, 256u);
}

}  // namespace
}  // namespace kiln::cuda
#endif
