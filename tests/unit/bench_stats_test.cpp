// kiln bench's statistics: percentiles, median and summaries on known lists.
#include "bench_stats.h"

#include <gtest/gtest.h>

#include <cmath>

namespace kiln::cli {
namespace {

const std::vector<double> kOneToTen = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};

TEST(BenchStats, PercentileIsNearestRank) {
  EXPECT_EQ(percentile(kOneToTen, 90), 9);
  EXPECT_EQ(percentile(kOneToTen, 95), 10);
  EXPECT_EQ(percentile(kOneToTen, 99), 10);
  EXPECT_EQ(percentile(kOneToTen, 50), 5);
  EXPECT_EQ(percentile(kOneToTen, 10), 1);
  EXPECT_EQ(percentile(kOneToTen, 11), 2);
}

TEST(BenchStats, PercentileBoundsGiveMinAndMax) {
  EXPECT_EQ(percentile(kOneToTen, 0), 1);
  EXPECT_EQ(percentile(kOneToTen, 100), 10);
  EXPECT_EQ(percentile({7}, 0), 7);
  EXPECT_EQ(percentile({7}, 99), 7);
}

TEST(BenchStats, PercentileOfHundredValuesPicksTheRankedValue) {
  std::vector<double> v;
  for (int i = 1; i <= 100; ++i) v.push_back(i * 0.5);
  EXPECT_EQ(percentile(v, 90), 45);
  EXPECT_EQ(percentile(v, 95), 47.5);
  EXPECT_EQ(percentile(v, 99), 49.5);
  EXPECT_EQ(percentile(v, 99.9), 50);
}

TEST(BenchStats, MedianAveragesTheMiddlePairOfAnEvenCount) {
  EXPECT_EQ(median(kOneToTen), 5.5);
  EXPECT_EQ(median({1, 2, 10}), 2);
  EXPECT_EQ(median({4}), 4);
}

TEST(BenchStats, SummarizeSortsAndReportsEveryStatistic) {
  Summary s = summarize({4, 1, 3, 2}, {50, 75, 100});
  EXPECT_EQ(s.count, 4u);
  EXPECT_EQ(s.min, 1);
  EXPECT_EQ(s.max, 4);
  EXPECT_EQ(s.mean, 2.5);
  EXPECT_EQ(s.median, 2.5);
  EXPECT_DOUBLE_EQ(s.stddev, std::sqrt(1.25));
  ASSERT_EQ(s.percentiles.size(), 3u);
  EXPECT_EQ(s.percentiles[0], std::make_pair(50.0, 2.0));
  EXPECT_EQ(s.percentiles[1], std::make_pair(75.0, 3.0));
  EXPECT_EQ(s.percentiles[2], std::make_pair(100.0, 4.0));
}

TEST(BenchStats, SummarizeOfNothingIsAllZero) {
  Summary s = summarize({}, {99});
  EXPECT_EQ(s.count, 0u);
  EXPECT_EQ(s.mean, 0);
  ASSERT_EQ(s.percentiles.size(), 1u);
  EXPECT_EQ(s.percentiles[0].second, 0);
}

TEST(BenchStats, ParsePercentilesAcceptsACommaListInRange) {
  EXPECT_EQ(parse_percentiles("90,95,99"), (std::vector<double>{90, 95, 99}));
  EXPECT_EQ(parse_percentiles("99.9"), (std::vector<double>{99.9}));
  EXPECT_TRUE(parse_percentiles("").empty());
  EXPECT_TRUE(parse_percentiles("90,").empty());
  EXPECT_TRUE(parse_percentiles("101").empty());
  EXPECT_TRUE(parse_percentiles("-1").empty());
  EXPECT_TRUE(parse_percentiles("ninety").empty());
}

TEST(BenchStats, LayerTimeTableKeepsFirstSeenOrderAndSums) {
  LayerTimeTable t;
  t.add("conv", 2);
  t.add("add", 0.5);
  t.add("conv", 4);
  t.add("add", 1.5);
  ASSERT_EQ(t.layers().size(), 2u);
  EXPECT_EQ(t.layers()[0].name, "conv");
  EXPECT_EQ(t.layers()[0].ms, (std::vector<double>{2, 4}));
  EXPECT_EQ(t.layers()[1].name, "add");
  EXPECT_EQ(t.total_ms(), 8);
}

}  // namespace
}  // namespace kiln::cli
