// The measurement windows of `kiln perf`, as perf_analyzer judges them: the
// windows of one concurrency level repeat until the last few agree within a
// percentage in throughput and latency, or --max-trials windows have run.
// Pure functions, unit-tested on known figures.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace kiln::cli {

// What one measurement window gives for the stability check.
struct WindowFigures {
  uint64_t requests = 0;  // completed without error within the window
  double throughput = 0;  // inferences per second
  double latency_us = 0;  // the stabilizing latency (p50, or --percentile's)
};

// One window's figures: `batch` inferences per completed request over
// `seconds`, and the `percentile` (nearest rank) of its latencies; no
// requests give zero throughput and latency.
WindowFigures window_figures(const std::vector<double>& sorted_latencies_us, double seconds, int64_t batch,
                             double percentile);

// The windows to report, [first, first + count), and whether they are
// stable.
struct StabilityVerdict {
  bool stable = false;
  size_t first = 0, count = 0;
};

// The last `span` windows (all of them when fewer) are reported. They are
// stable when there are `span` of them, each completed a request, and for
// throughput and latency alike max / min <= 1 + stability_percentage / 100.
StabilityVerdict judge_windows(const std::vector<WindowFigures>& windows, double stability_percentage, size_t span = 3);

}  // namespace kiln::cli
