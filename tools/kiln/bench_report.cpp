#include "bench_report.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <numeric>

namespace kiln::cli {
namespace {

using nlohmann::json;

std::string stats_text(const Summary& s) {
  std::string out = fmt::format("min = {:.5g} ms, max = {:.5g} ms, mean = {:.5g} ms, median = {:.5g} ms", s.min, s.max,
                                s.mean, s.median);
  for (const auto& [p, v] : s.percentiles) out += fmt::format(", percentile({:g}%) = {:.5g} ms", p, v);
  return out;
}

template <typename Get>
Summary summary_of(const BenchRun& run, Get get) {
  std::vector<double> v;
  v.reserve(run.iterations.size());
  for (const Iteration& it : run.iterations) v.push_back(get(it));
  return summarize(std::move(v), run.percentiles);
}

double qps(const BenchRun& run) {
  return run.walltime_ms > 0 ? static_cast<double>(run.iterations.size()) * 1000.0 / run.walltime_ms : 0;
}

Status write_json(const std::string& path, const json& j) {
  std::ofstream f(path);
  if (!f) return make_error(ErrorCode::kIoError, "cannot write '{}'", path);
  f << j.dump(2) << "\n";
  if (!f) return make_error(ErrorCode::kIoError, "cannot write '{}'", path);
  return Status::ok();
}

std::map<std::string, std::string> ops_by_layer(const Engine& engine) {
  std::map<std::string, std::string> ops;
  for (int k = 0; k < engine.num_layers(); ++k)
    if (auto info = engine.layer_info(k)) ops[info->name] = info->op_type;
  return ops;
}

json tensor_json(const LayerTensor& t) {
  json j = {{"name", t.name}, {"dtype", std::string(dtype_name(t.dtype))}, {"constant", t.constant}};
  j["shape"] = t.has_rank ? json(t.dims) : json(nullptr);
  return j;
}

}  // namespace

void print_performance_summary(const BenchRun& run) {
  double q = qps(run);
  Summary latency = summary_of(run, [](const Iteration& i) { return i.latency_ms; });
  Summary enqueue = summary_of(run, [](const Iteration& i) { return i.enqueue_ms; });
  Summary compute = summary_of(run, [](const Iteration& i) { return i.compute_ms; });
  double compute_total = 0;
  for (const Iteration& i : run.iterations) compute_total += i.compute_ms;
  fmt::print("=== Performance summary ===\n");
  fmt::print("Throughput: {:.5g} qps", q);
  if (run.batch > 0) fmt::print(" ({:.5g} items/s at batch {})", q * static_cast<double>(run.batch), run.batch);
  fmt::print("\nLatency: {}\n", stats_text(latency));
  fmt::print("Enqueue Time: {}\n", stats_text(enqueue));
  if (run.host_device_copies) {
    fmt::print("H2D Latency: {}\n", stats_text(summary_of(run, [](const Iteration& i) { return i.h2d_ms; })));
    fmt::print("D2H Latency: {}\n", stats_text(summary_of(run, [](const Iteration& i) { return i.d2h_ms; })));
  } else if (run.backend == "cpu") {
    fmt::print("H2D Latency, D2H Latency: none (the cpu backend runs on host memory: there are no copies)\n");
  } else {
    fmt::print("H2D Latency, D2H Latency: left out (--noDataTransfers: inputs and outputs stay on the device)\n");
  }
  fmt::print("{} Compute Time: {}\n", run.backend == "cpu" ? "CPU" : "GPU", stats_text(compute));
  fmt::print("Total Host Walltime: {:.5g} s ({} iterations)\n", run.walltime_ms / 1000, run.iterations.size());
  fmt::print("Total {} Compute Time: {:.5g} s\n", run.backend == "cpu" ? "CPU" : "GPU", compute_total / 1000);
  if (latency.mean > 0 && latency.stddev / latency.mean > 0.1)
    fmt::print("* Latency varies by {:.1f}% (stddev/mean); the machine may be busy.\n",
               100 * latency.stddev / latency.mean);
  fmt::print(
      "Explanations: Throughput is iterations (x batch) per second of host walltime; Latency spans an "
      "iteration on the host, copies included; Compute Time is the device's time alone.\n");
}

void print_layer_profile(const LayerTimeTable& table, const Engine& engine) {
  auto ops = ops_by_layer(engine);
  double total = table.total_ms();
  size_t runs = 0;
  size_t width = 10;
  for (const auto& l : table.layers()) {
    runs = std::max(runs, l.ms.size());
    width = std::max(width, std::min<size_t>(l.name.size(), 60));
  }
  fmt::print("=== Profile ({} run{}) ===\n", runs, runs == 1 ? "" : "s");
  fmt::print("{:<{}}  {:<18} {:>12} {:>12} {:>8}\n", "Layer", width, "Op", "Time/run ms", "Median ms", "Percent");
  double per_run_total = 0;
  for (const auto& l : table.layers()) {
    double sum = std::accumulate(l.ms.begin(), l.ms.end(), 0.0);
    std::vector<double> sorted = l.ms;
    std::sort(sorted.begin(), sorted.end());
    double mean = sum / static_cast<double>(std::max<size_t>(1, l.ms.size()));
    per_run_total += mean;
    fmt::print("{:<{}}  {:<18} {:>12.4f} {:>12.4f} {:>7.2f}%\n", l.name, width, ops[l.name], mean, median(sorted),
               total > 0 ? 100 * sum / total : 0.0);
  }
  fmt::print("{:<{}}  {:<18} {:>12.4f} {:>12} {:>7.2f}%\n", "Total", width, "", per_run_total, "", 100.0);

  // The same time by op type, largest first: where a model's time goes.
  std::map<std::string, std::pair<int, double>> by_op;  // op -> layers, mean ms per run
  for (const auto& l : table.layers()) {
    auto& [layers, ms] = by_op[ops[l.name]];
    ++layers;
    ms += std::accumulate(l.ms.begin(), l.ms.end(), 0.0) / static_cast<double>(std::max<size_t>(1, l.ms.size()));
  }
  std::vector<std::pair<std::string, std::pair<int, double>>> rows(by_op.begin(), by_op.end());
  std::sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) { return a.second.second > b.second.second; });
  fmt::print("=== Profile by op ===\n{:<28} {:>7} {:>12} {:>8}\n", "Op", "Layers", "Time/run ms", "Percent");
  for (const auto& [op, v] : rows)
    fmt::print("{:<28} {:>7} {:>12.4f} {:>7.2f}%\n", op, v.first, v.second,
               per_run_total > 0 ? 100 * v.second / per_run_total : 0.0);
}

std::string summary_line(const BenchRun& run) {
  Summary s = summary_of(run, [](const Iteration& i) { return i.latency_ms; });
  std::string line = fmt::format("kiln-bench: model={} backend={} iterations={} qps={:.6g}", run.model, run.backend,
                                 run.iterations.size(), qps(run));
  if (run.batch > 0) line += fmt::format(" batch={} items_per_s={:.6g}", run.batch, qps(run) * run.batch);
  line += fmt::format(" latency_ms: min={:.6g} mean={:.6g} median={:.6g}", s.min, s.mean, s.median);
  for (const auto& [p, v] : s.percentiles) line += fmt::format(" p{:g}={:.6g}", p, v);
  line += fmt::format(" max={:.6g}", s.max);
  Summary compute = summary_of(run, [](const Iteration& i) { return i.compute_ms; });
  line += fmt::format(" compute_ms: median={:.6g}", compute.median);
  return line;
}

Status export_times(const std::string& path, const BenchRun& run) {
  json iters = json::array();
  for (size_t k = 0; k < run.iterations.size(); ++k) {
    const Iteration& i = run.iterations[k];
    iters.push_back({{"iteration", k},
                     {"startMs", i.start_ms},
                     {"endMs", i.end_ms},
                     {"latencyMs", i.latency_ms},
                     {"enqueueMs", i.enqueue_ms},
                     {"computeMs", i.compute_ms},
                     {"h2dMs", i.h2d_ms},
                     {"d2hMs", i.d2h_ms}});
  }
  return write_json(path, {{"model", run.model},
                           {"backend", run.backend},
                           {"batch", run.batch},
                           {"walltimeMs", run.walltime_ms},
                           {"qps", qps(run)},
                           {"iterations", iters}});
}

Status export_profile(const std::string& path, const LayerTimeTable& table, const Engine& engine) {
  auto ops = ops_by_layer(engine);
  double total = table.total_ms();
  size_t runs = 0;
  json layers = json::array();
  for (const auto& l : table.layers()) {
    runs = std::max(runs, l.ms.size());
    double sum = std::accumulate(l.ms.begin(), l.ms.end(), 0.0);
    std::vector<double> sorted = l.ms;
    std::sort(sorted.begin(), sorted.end());
    layers.push_back({{"name", l.name},
                      {"op", ops[l.name]},
                      {"count", l.ms.size()},
                      {"timeMs", sum},
                      {"averageMs", sum / static_cast<double>(std::max<size_t>(1, l.ms.size()))},
                      {"medianMs", median(sorted)},
                      {"percentage", total > 0 ? 100 * sum / total : 0.0}});
  }
  return write_json(path, {{"runs", runs}, {"totalMs", total}, {"layers", layers}});
}

Status export_layer_info(const std::string& path, const Engine& engine) {
  json layers = json::array();
  for (int k = 0; k < engine.num_layers(); ++k) {
    KILN_ASSIGN_OR_RETURN(LayerInfo info, engine.layer_info(k));
    json ins = json::array(), outs = json::array();
    for (const auto& t : info.inputs) ins.push_back(tensor_json(t));
    for (const auto& t : info.outputs) outs.push_back(tensor_json(t));
    layers.push_back({{"name", info.name},
                      {"op", info.op_type},
                      {"domain", info.domain},
                      {"precision", info.precision},
                      {"tactic", info.tactic},
                      {"tacticMs", info.tactic_ms},
                      {"inputs", ins},
                      {"outputs", outs}});
  }
  json io = json::array();
  for (int i = 0; i < engine.num_io_tensors(); ++i) {
    std::string name = engine.io_tensor_name(i);
    auto dims = engine.tensor_dim_names(name);
    io.push_back({{"name", name},
                  {"mode", engine.tensor_io_mode(name) == TensorIOMode::kInput ? "input" : "output"},
                  {"dtype", std::string(dtype_name(engine.tensor_dtype(name)))},
                  {"shape", dims ? json(*dims) : json(nullptr)}});
  }
  return write_json(path, {{"backend", engine.backend()},
                           {"device", engine.device()},
                           {"kilnVersion", engine.kiln_version()},
                           {"bindings", io},
                           {"layers", layers}});
}

}  // namespace kiln::cli
