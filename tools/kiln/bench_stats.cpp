#include "bench_stats.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstdlib>
#include <numeric>

namespace kiln::cli {

double percentile(const std::vector<double>& sorted, double p) {
  assert(!sorted.empty());
  size_t n = sorted.size();
  // The small slack keeps p * n that is an integer in exact arithmetic (90%
  // of 10) from rounding up past it in floating point.
  double rank = std::ceil(p / 100.0 * static_cast<double>(n) - 1e-9);
  size_t k = rank < 1 ? 0 : std::min(n - 1, static_cast<size_t>(rank) - 1);
  return sorted[k];
}

double median(const std::vector<double>& sorted) {
  assert(!sorted.empty());
  size_t n = sorted.size();
  return n % 2 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
}

Summary summarize(std::vector<double> values, const std::vector<double>& percentiles) {
  Summary s;
  s.count = values.size();
  if (values.empty()) {
    for (double p : percentiles) s.percentiles.emplace_back(p, 0.0);
    return s;
  }
  std::sort(values.begin(), values.end());
  s.min = values.front();
  s.max = values.back();
  s.mean = std::accumulate(values.begin(), values.end(), 0.0) / static_cast<double>(values.size());
  s.median = median(values);
  double sq = 0;
  for (double v : values) sq += (v - s.mean) * (v - s.mean);
  s.stddev = std::sqrt(sq / static_cast<double>(values.size()));
  for (double p : percentiles) s.percentiles.emplace_back(p, percentile(values, p));
  return s;
}

std::vector<double> parse_percentiles(const std::string& text) {
  std::vector<double> out;
  size_t start = 0;
  while (start <= text.size()) {
    size_t comma = text.find(',', start);
    std::string item = text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    char* end = nullptr;
    double p = std::strtod(item.c_str(), &end);
    if (item.empty() || *end || !(p >= 0 && p <= 100)) return {};
    out.push_back(p);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

void LayerTimeTable::add(const std::string& name, double ms) {
  auto it = std::lower_bound(index_.begin(), index_.end(), name,
                             [](const std::pair<std::string, size_t>& e, const std::string& n) { return e.first < n; });
  if (it == index_.end() || it->first != name) {
    it = index_.insert(it, {name, layers_.size()});
    layers_.push_back({name, {}});
  }
  layers_[it->second].ms.push_back(ms);
}

double LayerTimeTable::total_ms() const {
  double t = 0;
  for (const auto& l : layers_) t += std::accumulate(l.ms.begin(), l.ms.end(), 0.0);
  return t;
}

}  // namespace kiln::cli
