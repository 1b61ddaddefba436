#include "perf_windows.h"

#include <algorithm>

#include "bench_stats.h"

namespace kiln::cli {

WindowFigures window_figures(const std::vector<double>& sorted_latencies_us, double seconds, int64_t batch,
                             double percentile_p) {
  WindowFigures w;
  w.requests = sorted_latencies_us.size();
  if (w.requests == 0) return w;
  w.throughput = seconds > 0 ? static_cast<double>(w.requests) * static_cast<double>(batch) / seconds : 0;
  w.latency_us = percentile(sorted_latencies_us, percentile_p);
  return w;
}

StabilityVerdict judge_windows(const std::vector<WindowFigures>& windows, double stability_percentage, size_t span) {
  StabilityVerdict v;
  v.count = std::min(windows.size(), span);
  v.first = windows.size() - v.count;
  if (span == 0 || windows.size() < span) return v;
  const auto last = windows.begin() + static_cast<std::ptrdiff_t>(v.first);
  const double limit = 1.0 + stability_percentage / 100.0;
  auto within = [&](double WindowFigures::*field) {
    const auto [lo, hi] =
        std::minmax_element(last, windows.end(), [&](const auto& a, const auto& b) { return a.*field < b.*field; });
    return (*lo).*field > 0 && (*hi).*field / (*lo).*field <= limit;
  };
  const bool all_completed = std::all_of(last, windows.end(), [](const WindowFigures& w) { return w.requests > 0; });
  v.stable = all_completed && within(&WindowFigures::throughput) && within(&WindowFigures::latency_us);
  return v;
}

}  // namespace kiln::cli
