// What `kiln bench` prints and exports: trtexec's "=== Performance summary
// ===" block, the per-layer table, the JSON files and the one-line summary.
#pragma once

#include <string>
#include <vector>

#include "bench_stats.h"
#include "kiln/runtime.h"
#include "support/status.h"

namespace kiln::cli {

// One timed iteration; times in ms from the start of the timed runs.
struct Iteration {
  double start_ms = 0;
  double end_ms = 0;
  double latency_ms = 0;  // host wall time of the whole iteration (copies included)
  double enqueue_ms = 0;  // host time spent in enqueue()
  double compute_ms = 0;  // device time (IterationTimer), copies excluded
  double h2d_ms = 0, d2h_ms = 0;
};

struct BenchRun {
  std::string model;
  std::string backend;
  bool host_device_copies = false;  // false on the CPU backend: it runs on host memory
  std::vector<Iteration> iterations;
  double walltime_ms = 0;  // first start to last end
  long long batch = 0;     // items per iteration; 0 when the inputs have no batch dim
  std::vector<double> percentiles;
};

void print_performance_summary(const BenchRun& run);
// Layer name, op, time per run (mean), median, percent of the summed layer times.
void print_layer_profile(const LayerTimeTable& table, const Engine& engine);
// "kiln-bench: model=... qps=... latency_mean_ms=...", one line to grep.
std::string summary_line(const BenchRun& run);

Status export_times(const std::string& path, const BenchRun& run);
Status export_profile(const std::string& path, const LayerTimeTable& table, const Engine& engine);
Status export_layer_info(const std::string& path, const Engine& engine);

}  // namespace kiln::cli
