// Statistics of `kiln bench`: latency summaries over a run's iterations and
// per-layer totals from a Profiler. Pure functions, unit-tested on known lists.
#pragma once

#include <cstddef>
#include <string>
#include <utility>
#include <vector>

namespace kiln::cli {

// The nearest-rank percentile: the smallest value with at least `p` percent
// of the values at or below it (sorted[ceil(p/100 * n) - 1], p in [0, 100];
// p = 0 gives the minimum). `sorted` must be ascending and not empty.
double percentile(const std::vector<double>& sorted, double p);

// The middle value, or the mean of the two middle values for an even count.
double median(const std::vector<double>& sorted);

struct Summary {
  size_t count = 0;
  double min = 0, max = 0, mean = 0, median = 0;
  double stddev = 0;  // population standard deviation
  // (p, value) for each percentile asked for, in the order asked.
  std::vector<std::pair<double, double>> percentiles;
};

// Summarizes `values` (any order); all zero for an empty list.
Summary summarize(std::vector<double> values, const std::vector<double>& percentiles);

// Parses "90,95,99" (each in [0, 100]); empty on a bad list.
std::vector<double> parse_percentiles(const std::string& text);

// One layer's times over the profiled runs.
struct LayerTimes {
  std::string name;
  std::vector<double> ms;  // one per run
};

// Accumulates Profiler reports in first-seen layer order.
class LayerTimeTable {
 public:
  void add(const std::string& name, double ms);
  const std::vector<LayerTimes>& layers() const { return layers_; }
  double total_ms() const;

 private:
  std::vector<LayerTimes> layers_;
  std::vector<std::pair<std::string, size_t>> index_;  // sorted by name
};

}  // namespace kiln::cli
