// kiln perf's measurement windows: when the last three agree (perf_analyzer's
// stability rule) and which windows the report covers.
#include "perf_windows.h"

#include <gtest/gtest.h>

namespace kiln::cli {
namespace {

WindowFigures w(double throughput, double latency_us, uint64_t requests = 100) {
  return {requests, throughput, latency_us};
}

TEST(PerfWindows, ThreeWindowsWithinTenPercentAreStable) {
  const auto v = judge_windows({w(100, 1000), w(105, 1050), w(109, 1090)}, 10);
  EXPECT_TRUE(v.stable);
  EXPECT_EQ(v.first, 0u);
  EXPECT_EQ(v.count, 3u);
}

TEST(PerfWindows, FewerThanThreeWindowsAreNeverStable) {
  const auto v = judge_windows({w(100, 1000), w(100, 1000)}, 10);
  EXPECT_FALSE(v.stable);
  EXPECT_EQ(v.first, 0u);
  EXPECT_EQ(v.count, 2u);
  EXPECT_FALSE(judge_windows({}, 10).stable);
  EXPECT_EQ(judge_windows({}, 10).count, 0u);
}

TEST(PerfWindows, ThroughputSpreadAboveThePercentageIsUnstable) {
  EXPECT_FALSE(judge_windows({w(100, 1000), w(105, 1000), w(111, 1000)}, 10).stable);
  EXPECT_TRUE(judge_windows({w(100, 1000), w(105, 1000), w(111, 1000)}, 11).stable);
}

TEST(PerfWindows, LatencySpreadAboveThePercentageIsUnstable) {
  EXPECT_FALSE(judge_windows({w(100, 1000), w(100, 1000), w(100, 1120)}, 10).stable);
  EXPECT_TRUE(judge_windows({w(100, 1000), w(100, 1000), w(100, 1120)}, 12.5).stable);
}

TEST(PerfWindows, MaxOverMinExactlyAtTheLimitIsStable) {
  EXPECT_TRUE(judge_windows({w(100, 1000), w(110, 1100), w(100, 1000)}, 10).stable);
}

TEST(PerfWindows, OnlyTheLastThreeWindowsCount) {
  // A cold start (plans built for new batch sizes) then three steady windows.
  const auto v = judge_windows({w(3, 900000), w(400, 80000), w(900, 40000), w(950, 39000), w(920, 40500)}, 10);
  EXPECT_TRUE(v.stable);
  EXPECT_EQ(v.first, 2u);
  EXPECT_EQ(v.count, 3u);
}

TEST(PerfWindows, UnstableWindowsStillNameTheLastThree) {
  const auto v = judge_windows({w(100, 1000), w(200, 1000), w(300, 1000), w(400, 1000)}, 10);
  EXPECT_FALSE(v.stable);
  EXPECT_EQ(v.first, 1u);
  EXPECT_EQ(v.count, 3u);
}

TEST(PerfWindows, AWindowWithoutCompletedRequestsIsNeverStable) {
  // Three empty windows agree exactly, yet measure nothing.
  EXPECT_FALSE(judge_windows({w(0, 0, 0), w(0, 0, 0), w(0, 0, 0)}, 10).stable);
  EXPECT_FALSE(judge_windows({w(100, 1000), w(0, 0, 0), w(100, 1000)}, 1000).stable);
}

TEST(PerfWindows, ZeroPercentNeedsEqualWindows) {
  EXPECT_TRUE(judge_windows({w(100, 1000), w(100, 1000), w(100, 1000)}, 0).stable);
  EXPECT_FALSE(judge_windows({w(100, 1000), w(100, 1000), w(100.5, 1000)}, 0).stable);
}

TEST(PerfWindows, FiguresAreBatchTimesRequestsPerSecondAndTheNearestRankLatency) {
  const auto f = window_figures({10, 20, 30, 40}, 2.0, 8, 50);
  EXPECT_EQ(f.requests, 4u);
  EXPECT_EQ(f.throughput, 16.0);  // 4 requests * 8 / 2 s
  EXPECT_EQ(f.latency_us, 20.0);
  EXPECT_EQ(window_figures({10, 20, 30, 40}, 2.0, 8, 95).latency_us, 40.0);
}

TEST(PerfWindows, FiguresOfAnEmptyWindowAreZero) {
  const auto f = window_figures({}, 5.0, 1, 50);
  EXPECT_EQ(f.requests, 0u);
  EXPECT_EQ(f.throughput, 0.0);
  EXPECT_EQ(f.latency_us, 0.0);
}

}  // namespace
}  // namespace kiln::cli
