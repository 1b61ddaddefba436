// What each --builderOptimizationLevel asks of the tuner (builder/tuning_level.h).
#include "builder/tuning_level.h"

#include <gtest/gtest.h>

namespace kiln {
namespace {

TEST(TuningLevel, CandidatesAndRunsGrowWithTheLevel) {
  const size_t candidates[] = {1, 2, 4, 8, 16, 64};
  const int runs[] = {5, 5, 7, 9, 11, 13};
  for (int level = 0; level <= 5; ++level) {
    EXPECT_EQ(tuning_level(level).candidates, candidates[level]) << level;
    EXPECT_EQ(tuning_level(level).runs, runs[level]) << level;
  }
}

TEST(TuningLevel, OnlyLevelFiveSearchesExhaustively) {
  for (int level = 0; level < 5; ++level) EXPECT_FALSE(tuning_level(level).exhaustive) << level;
  EXPECT_TRUE(tuning_level(5).exhaustive);
}

TEST(TuningLevel, LevelsOutsideTheRangeCountAsTheNearest) {
  EXPECT_EQ(tuning_level(-1).candidates, 1u);
  EXPECT_TRUE(tuning_level(9).exhaustive);
  EXPECT_EQ(tuning_level(9).candidates, 64u);
}

// Level 5's choices come from longer lists, so its timing-cache entries are
// its own: a level-3 entry must not answer a level-5 build (nor the reverse).
TEST(TuningLevel, ExhaustiveSearchKeysTheTimingCacheApart) {
  EXPECT_EQ(tuning_signature_suffix(tuning_level(5)), " exhaustive");
  for (int level = 0; level < 5; ++level) EXPECT_EQ(tuning_signature_suffix(tuning_level(level)), "") << level;
}

}  // namespace
}  // namespace kiln
