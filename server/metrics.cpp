// Prometheus text format (version 0.0.4) with Triton's metric names, so
// existing dashboards work, plus kiln_ metrics for engine builds and the cache.
#include <fmt/format.h>

#include <sstream>

#include "gpu_metrics.h"
#include "prometheus_text.h"
#include "server.h"

namespace kiln::server {
namespace {

struct Family {
  const char* name;
  const char* help;
  const char* type;
};

}  // namespace

std::string render_metrics(InferenceServer& server) {
  auto stats = server.repository().all_stats();
  std::ostringstream out;
  auto family = [&](const Family& f, auto value_of) {
    out << "# HELP " << f.name << ' ' << f.help << "\n# TYPE " << f.name << ' ' << f.type << '\n';
    for (const auto& [key, s] : stats)
      out << f.name << "{model=\"" << escape_label(key.first) << "\",version=\"" << key.second << "\"} " << value_of(*s)
          << '\n';
  };
  family({"nv_inference_request_success", "Number of successful inference requests, all batch sizes", "counter"},
         [](ModelStats& s) { return s.success.count.load(); });
  // Triton's form: one series per failure reason.
  out << "# HELP nv_inference_request_failure Number of failed inference requests, all batch sizes\n"
      << "# TYPE nv_inference_request_failure counter\n";
  for (const auto& [key, s] : stats)
    for (int r = 0; r < kFailReasons; ++r)
      out << "nv_inference_request_failure{model=\"" << escape_label(key.first) << "\",reason=\""
          << fail_reason_name(static_cast<FailReason>(r)) << "\",version=\"" << key.second << "\"} "
          << s->fail_by_reason[r].load() << '\n';
  family({"nv_inference_count", "Number of inferences performed (does not include cached requests)", "counter"},
         [](ModelStats& s) { return s.inference_count.load(); });
  family(
      {"nv_inference_exec_count", "Number of model executions performed (does not include cached requests)", "counter"},
      [](ModelStats& s) { return s.execution_count.load(); });
  family({"kiln_inference_padded_rows_total", "Rows of padding added to batches to reach a batch bucket", "counter"},
         [](ModelStats& s) { return s.padded_rows.load(); });
  family({"nv_inference_request_duration_us", "Cumulative inference request duration in microseconds", "counter"},
         [](ModelStats& s) { return s.success.ns.load() / 1000; });
  family({"nv_inference_queue_duration_us", "Cumulative inference queuing duration in microseconds", "counter"},
         [](ModelStats& s) { return s.queue.ns.load() / 1000; });
  family({"nv_inference_compute_input_duration_us", "Cumulative compute input duration in microseconds", "counter"},
         [](ModelStats& s) { return s.compute_input.ns.load() / 1000; });
  family({"nv_inference_compute_infer_duration_us", "Cumulative compute inference duration in microseconds", "counter"},
         [](ModelStats& s) { return s.compute_infer.ns.load() / 1000; });
  family({"nv_inference_compute_output_duration_us", "Cumulative inference compute output duration in microseconds",
          "counter"},
         [](ModelStats& s) { return s.compute_output.ns.load() / 1000; });
  // A DurationHistogram of every model version as a Prometheus histogram.
  auto histogram = [&](const Family& f, DurationHistogram ModelStats::*member) {
    out << "# HELP " << f.name << ' ' << f.help << "\n# TYPE " << f.name << ' ' << f.type << '\n';
    for (const auto& [key, s] : stats) {
      const DurationHistogram& h = (*s).*member;
      const std::string labels = fmt::format("model=\"{}\",version=\"{}\"", escape_label(key.first), key.second);
      uint64_t cumulative = 0;
      for (int i = 0; i <= DurationHistogram::kBuckets; ++i) {
        cumulative += h.counts[i].load();
        const std::string le =
            i == DurationHistogram::kBuckets ? "+Inf" : fmt::format("{:.4g}", DurationHistogram::upper_bound_us(i));
        out << f.name << "_bucket{" << labels << ",le=\"" << le << "\"} " << cumulative << '\n';
      }
      out << f.name << "_sum{" << labels << "} " << h.sum_ns.load() / 1000 << '\n'
          << f.name << "_count{" << labels << "} " << cumulative << '\n';
    }
  };
  histogram({"kiln_inference_overhead_us",
             "Per request, the time in the server besides the engine run (queue, input and output copies), in "
             "microseconds",
             "histogram"},
            &ModelStats::overhead);
  histogram({"kiln_inference_frontend_us",
             "Per HTTP request, the HTTP front end's time besides the scheduler's (from the request's header read to "
             "the answer's last byte written, less queue, copies and run), in microseconds",
             "histogram"},
            &ModelStats::frontend);
  const EngineCacheStats& c = server.repository().cache_stats();
  out << "# HELP kiln_engine_build_count Engines built from ONNX models\n# TYPE kiln_engine_build_count counter\n"
      << "kiln_engine_build_count " << c.builds.load() << '\n';
  out << "# HELP kiln_engine_build_duration_us Cumulative engine build time in microseconds\n"
      << "# TYPE kiln_engine_build_duration_us counter\nkiln_engine_build_duration_us " << c.build_us.load() << '\n';
  out << "# HELP kiln_engine_cache_hits Engines loaded from the engine cache\n# TYPE kiln_engine_cache_hits counter\n"
      << "kiln_engine_cache_hits " << c.hits.load() << '\n';
  out << "# HELP kiln_engine_cache_misses Engines not found in the engine cache\n"
      << "# TYPE kiln_engine_cache_misses counter\nkiln_engine_cache_misses " << c.misses.load() << '\n';
  out << format_gpu_metrics(read_gpu_samples());
  return out.str();
}

}  // namespace kiln::server
