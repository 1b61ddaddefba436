// kiln perf -m MODEL: a load generator for a KServe v2 server (kiln serve or
// Triton) with perf_analyzer's flag names: -u URL, -i http|grpc, -b BATCH,
// --concurrency-range N[:M[:STEP]], --shape NAME:D1,D2, --measurement-interval
// MS, --stability-percentage P, --max-trials N, --warmup-request-count N,
// --percentile P, --shared-memory none|system, --output-shared-memory-size B.
// Each concurrent client sends one request at a time with random inputs
// (HTTP/1.1 keep-alive with binary tensor data, or gRPC with raw contents,
// one connection per client; with --shared-memory system the tensors are in
// a shared memory region per client and the requests only name it). Per concurrency level, after the
// warm-up requests and a fifth of an interval unmeasured, it measures windows
// of the interval (a request counts in the window where it completes) until
// the last 3 agree within the stability percentage in throughput and latency,
// or --max-trials windows, as perf_analyzer does. It prints the throughput,
// the client latency percentiles and the server's own breakdown from the
// statistics endpoint (queue, compute input/infer/output per request) over
// those 3 windows, and "server overhead = client latency - compute time";
// with --metrics-url, kiln's own overhead histograms over them (the
// scheduler's, and the HTTP front end's).
#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "bench_stats.h"
#include "commands.h"
#include "kiln/status.h"
#include "perf_client.h"
#include "perf_windows.h"

namespace kiln::cli {
namespace {

using kserve::Client;
using kserve::HistogramBuckets;
using kserve::InferTiming;
using kserve::make_client;
using kserve::ModelInfo;
using kserve::PerfOptions;
using kserve::server_histograms;
using kserve::ServerHistograms;
using kserve::ServerStats;
using kserve::TensorInfo;
using Clock = std::chrono::steady_clock;

Status fail(std::string m) { return Status(ErrorCode::kInvalidArgument, std::move(m)); }

size_t datatype_bytes(const std::string& t) {
  if (t == "BOOL" || t == "INT8" || t == "UINT8") return 1;
  if (t == "INT16" || t == "UINT16" || t == "FP16" || t == "BF16") return 2;
  if (t == "INT32" || t == "UINT32" || t == "FP32") return 4;
  if (t == "INT64" || t == "UINT64" || t == "FP64") return 8;
  return 0;
}

// Random elements: floats in [0, 1), integers in [0, 100), bools 0/1.
std::vector<uint8_t> random_data(const std::string& type, int64_t count, std::mt19937& rng) {
  std::vector<uint8_t> out(static_cast<size_t>(count) * datatype_bytes(type));
  std::uniform_real_distribution<float> real(0.0f, 1.0f);
  std::uniform_int_distribution<int> integer(0, 99);
  for (int64_t i = 0; i < count; ++i) {
    uint8_t* at = out.data() + static_cast<size_t>(i) * datatype_bytes(type);
    if (type == "FP32") {
      float v = real(rng);
      std::memcpy(at, &v, 4);
    } else if (type == "FP64") {
      double v = real(rng);
      std::memcpy(at, &v, 8);
    } else if (type == "FP16") {
      // A half in [0.5, 1): exponent 14, random mantissa.
      uint16_t h = static_cast<uint16_t>((14 << 10) | (rng() & 0x3ff));
      std::memcpy(at, &h, 2);
    } else if (type == "BF16") {
      float v = real(rng);
      uint32_t bits;
      std::memcpy(&bits, &v, 4);
      uint16_t b = static_cast<uint16_t>(bits >> 16);
      std::memcpy(at, &b, 2);
    } else if (type == "BOOL") {
      *at = static_cast<uint8_t>(rng() & 1);
    } else {
      // Little-endian integers of any width: the value in the low byte.
      std::memset(at, 0, datatype_bytes(type));
      *at = static_cast<uint8_t>(integer(rng));
    }
  }
  return out;
}

std::string dims_text(const std::vector<int64_t>& d) {
  std::string s;
  for (size_t i = 0; i < d.size(); ++i) s += (i ? "," : "") + std::to_string(d[i]);
  return "[" + s + "]";
}

// The concurrency levels of N[:M[:STEP]].
Expected<std::vector<int>> concurrency_levels(const std::string& spec) {
  std::vector<int> parts;
  size_t at = 0;
  while (at <= spec.size()) {
    size_t end = spec.find(':', at);
    if (end == std::string::npos) end = spec.size();
    std::string p = spec.substr(at, end - at);
    char* stop = nullptr;
    long v = std::strtol(p.c_str(), &stop, 10);
    if (p.empty() || *stop || v < 1 || v > 4096)
      return fail("--concurrency-range '" + spec + "': expected N[:M[:STEP]] with numbers 1..4096");
    parts.push_back(static_cast<int>(v));
    at = end + 1;
  }
  if (parts.size() > 3) return fail("--concurrency-range '" + spec + "': expected N[:M[:STEP]]");
  int lo = parts[0], hi = parts.size() > 1 ? parts[1] : lo, step = parts.size() > 2 ? parts[2] : 1;
  if (hi < lo) return fail("--concurrency-range '" + spec + "': the end is below the start");
  std::vector<int> out;
  for (int c = lo; c <= hi; c += step) out.push_back(c);
  return out;
}

// The shapes to send (the batch dim first when the model batches): the
// model's dims, with --shape giving the dynamic ones.
Expected<std::vector<TensorInfo>> request_inputs(const ModelInfo& info, const PerfOptions& o) {
  std::vector<TensorInfo> out;
  for (const auto& spec : o.shapes) {
    auto colon = spec.rfind(':');
    bool known = false;
    for (const auto& t : info.inputs) known |= colon != std::string::npos && t.name == spec.substr(0, colon);
    if (!known) return fail("--shape '" + spec + "': expected NAME:D1,D2,... naming an input of the model");
  }
  if (info.max_batch_size == 0 && o.batch != 1)
    return fail("-b " + std::to_string(o.batch) + ": the model does not batch (max_batch_size 0)");
  if (info.max_batch_size > 0 && o.batch > info.max_batch_size)
    return fail("-b " + std::to_string(o.batch) + ": above the model's max_batch_size " +
                std::to_string(info.max_batch_size));
  for (const auto& t : info.inputs) {
    if (datatype_bytes(t.datatype) == 0)
      return fail("input '" + t.name + "': datatype " + t.datatype + " is not supported by kiln perf");
    std::vector<int64_t> dims = t.shape;
    if (info.max_batch_size > 0 && !dims.empty()) dims.erase(dims.begin());
    for (const auto& spec : o.shapes) {
      auto colon = spec.rfind(':');
      if (spec.substr(0, colon) != t.name) continue;
      std::vector<int64_t> given;
      std::string list = spec.substr(colon + 1);
      size_t at = 0;
      while (at <= list.size()) {
        size_t end = list.find_first_of(",x", at);
        if (end == std::string::npos) end = list.size();
        char* stop = nullptr;
        std::string d = list.substr(at, end - at);
        long long v = std::strtoll(d.c_str(), &stop, 10);
        if (d.empty() || *stop || v < 0) return fail("--shape '" + spec + "': '" + d + "' is not a dim");
        given.push_back(v);
        at = end + 1;
      }
      if (given.size() != dims.size())
        return fail("--shape '" + spec + "': " + std::to_string(given.size()) + " dims, the input has " +
                    std::to_string(dims.size()) + (info.max_batch_size > 0 ? " (without the batch dim)" : ""));
      for (size_t i = 0; i < dims.size(); ++i)
        if (dims[i] >= 0 && dims[i] != given[i])
          return fail("--shape '" + spec + "': dim " + std::to_string(i) + " is fixed at " + std::to_string(dims[i]));
      dims = given;
    }
    for (int64_t d : dims)
      if (d < 0)
        return fail("input '" + t.name + "' has dynamic dims " + dims_text(dims) + ": give them with --shape " +
                    t.name + ":D1,D2,...");
    if (info.max_batch_size > 0) dims.insert(dims.begin(), o.batch);
    out.push_back({t.name, t.datatype, dims});
  }
  return out;
}

struct LevelResult {
  int concurrency = 0;
  // The reported windows (the stable ones, else the last ones).
  uint64_t requests = 0, errors = 0;
  double seconds = 0;
  std::vector<double> latencies_us;  // sorted
  // The client's split of them (sorted each; empty where not measured).
  std::vector<double> send_us, wait_us, recv_us;
  ServerStats server;  // their difference
  bool have_server = false;
  // The server's overhead quantiles over them (--metrics-url), us; and its
  // HTTP front end's, where HTTP requests ran.
  bool have_overhead = false, have_frontend = false;
  double overhead_p50 = 0, overhead_p99 = 0, frontend_p50 = 0, frontend_p99 = 0;
  std::string overhead_error;
  // Every window of the level.
  size_t windows = 0;
  bool stable = false;
  uint64_t all_errors = 0;
  std::string first_error;
};

// How many observations bucket i (cumulative, as Prometheus counts) gained
// from `before` to `after`; the snapshots have the same buckets.
uint64_t bucket_gain(const HistogramBuckets& before, const HistogramBuckets& after, size_t i) {
  return after[i].second - std::min(after[i].second, before[i].second);
}

// How many observations a histogram gained from `before` to `after`.
uint64_t bucket_count(const HistogramBuckets& before, const HistogramBuckets& after) {
  if (before.size() != after.size() || after.empty()) return 0;
  return bucket_gain(before, after, after.size() - 1);
}

// The q-quantile (0..1) of the requests between two snapshots, interpolated
// linearly within its bucket; the last finite bound for the +Inf bucket.
double bucket_quantile(const HistogramBuckets& before, const HistogramBuckets& after, double q) {
  if (before.size() != after.size() || after.empty()) return 0;
  const double total = static_cast<double>(bucket_count(before, after)), want = q * total;
  double lower = 0, prev = 0;  // the bound and cumulative count of the bucket before i
  for (size_t i = 0; i < after.size(); ++i) {
    const double c = static_cast<double>(bucket_gain(before, after, i));
    const double upper = after[i].first;
    if (c >= want && c > prev) {
      if (std::isinf(upper)) return lower;
      return lower + (upper - lower) * (want - prev) / (c - prev);
    }
    if (!std::isinf(upper)) lower = upper;
    prev = c;
  }
  return lower;
}

// bench's nearest-rank percentile; 0 without latencies.
double percentile_of(const std::vector<double>& sorted, double p) { return sorted.empty() ? 0 : percentile(sorted, p); }

// One finished request: when it finished, its latency, and its error if it
// failed.
struct Completion {
  Clock::time_point end;
  double latency_us = 0;
  std::string error;
  InferTiming timing;
};

// The clients of one concurrency level, each on its own thread with its own
// connection, sending one request at a time. Recorded completions carry the
// time they finished, so a request in flight across a window boundary counts
// in the window where it completes.
class ClientPool {
 public:
  ClientPool(const PerfOptions& o, const ModelInfo& info, const std::vector<TensorInfo>& inputs,
             const std::vector<std::vector<uint8_t>>& data)
      : o_(o), info_(info), inputs_(inputs), data_(data) {}
  ClientPool(const ClientPool&) = delete;
  ClientPool& operator=(const ClientPool&) = delete;
  ~ClientPool() { stop(); }

  // Connects `concurrency` clients, which then wait; the first connection
  // error, if any.
  Status start(int concurrency) {
    for (int c = 0; c < concurrency; ++c) threads_.emplace_back([this, c] { run_client(c); });
    while (connected_.load() < concurrency) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    std::lock_guard<std::mutex> lock(mutex_);
    return connect_error_.empty() ? Status::ok() : fail(connect_error_);
  }
  // Sends `count` requests over the clients and waits until all finished
  // (failed ones too); none is recorded.
  void warm_up(int64_t count) {
    if (count <= 0) return;
    warmup_left_.store(count);
    phase_.store(kWarmup);
    while (warmup_done_.load() < count) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  // Every client sends; completions are not recorded.
  void load() { phase_.store(kLoad); }
  // Every client sends; completions are recorded.
  void record() { phase_.store(kRecord); }
  // The completions recorded since the last call.
  std::vector<Completion> take() {
    std::vector<Completion> out;
    std::lock_guard<std::mutex> lock(mutex_);
    out.swap(completions_);
    return out;
  }
  void stop() {
    phase_.store(kStop);
    for (auto& t : threads_) t.join();
    threads_.clear();
  }

 private:
  enum Phase { kHold, kWarmup, kLoad, kRecord, kStop };

  void run_client(int index) {
    auto client = make_client(o_, index);
    Status st = client ? (*client)->connect() : client.status();
    if (st.is_ok()) st = (*client)->prepare(info_, inputs_, data_);
    if (!st.is_ok()) {
      std::lock_guard<std::mutex> lock(mutex_);
      if (connect_error_.empty()) connect_error_ = st.message();
    }
    connected_.fetch_add(1);
    while (st.is_ok()) {
      const int phase = phase_.load();
      if (phase == kStop) break;
      if (phase == kHold || (phase == kWarmup && warmup_left_.fetch_sub(1) <= 0)) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
        continue;
      }
      InferTiming timing;
      const auto t0 = Clock::now();
      Status s = (*client)->infer(timing);
      const auto t1 = Clock::now();
      if (phase == kWarmup) {
        warmup_done_.fetch_add(1);
        continue;
      }
      if (phase_.load() != kRecord) continue;
      Completion c{t1, std::chrono::duration<double, std::micro>(t1 - t0).count(), s.is_ok() ? "" : s.message(),
                   timing};
      std::lock_guard<std::mutex> lock(mutex_);
      completions_.push_back(std::move(c));
    }
  }

  const PerfOptions& o_;
  const ModelInfo& info_;
  const std::vector<TensorInfo>& inputs_;
  const std::vector<std::vector<uint8_t>>& data_;
  std::atomic<int> phase_{kHold};
  std::atomic<int64_t> warmup_left_{0}, warmup_done_{0};
  std::atomic<int> connected_{0};
  std::mutex mutex_;
  std::vector<Completion> completions_;
  std::string connect_error_;
  std::vector<std::thread> threads_;
};

// The server's cumulative figures at a window boundary.
struct Snapshot {
  std::optional<ServerStats> stats;
  std::optional<ServerHistograms> histograms;  // with --metrics-url
  std::string histograms_error;
};

Snapshot take_snapshot(const PerfOptions& o, Client& control) {
  Snapshot s;
  auto stats = control.stats();
  if (stats) s.stats = *stats;
  if (!o.metrics_url.empty()) {
    auto h = server_histograms(o);
    if (h) {
      s.histograms = std::move(*h);
    } else {
      s.histograms_error = h.status().message();
    }
  }
  return s;
}

ServerStats stats_difference(const ServerStats& before, const ServerStats& after) {
  auto d = [](uint64_t a, uint64_t b) { return b >= a ? b - a : 0; };
  return {d(before.success, after.success),
          d(before.fail, after.fail),
          d(before.success_ns, after.success_ns),
          d(before.queue_ns, after.queue_ns),
          d(before.input_ns, after.input_ns),
          d(before.infer_ns, after.infer_ns),
          d(before.output_ns, after.output_ns),
          d(before.inference_count, after.inference_count),
          d(before.execution_count, after.execution_count)};
}

// The latency percentile the windows must agree on: --percentile's, else the
// median (perf_analyzer's default is the average; the median ignores the
// few requests that waited for a plan build).
double stabilizing_percentile(const PerfOptions& o) { return o.percentile ? o.percentile : 50; }

// The level's figures over windows [first, first + count): the client's
// requests, the server's counters between the boundary snapshots.
LevelResult merge_windows(const PerfOptions& o, const std::vector<std::vector<Completion>>& windows,
                          const std::vector<Clock::time_point>& bounds, const std::vector<Snapshot>& snapshots,
                          size_t first, size_t count) {
  LevelResult r;
  r.windows = windows.size();
  for (size_t i = 0; i < windows.size(); ++i)
    for (const auto& c : windows[i]) {
      const bool reported = i >= first && i < first + count;
      if (c.error.empty()) {
        if (!reported) continue;
        r.latencies_us.push_back(c.latency_us);
        if (c.timing.wait_us >= 0) {
          r.send_us.push_back(c.timing.send_us);
          r.wait_us.push_back(c.timing.wait_us);
          r.recv_us.push_back(c.timing.recv_us);
        }
        continue;
      }
      r.all_errors++;
      if (reported) r.errors++;
      if (r.first_error.empty()) r.first_error = c.error;
    }
  for (auto* v : {&r.latencies_us, &r.send_us, &r.wait_us, &r.recv_us}) std::sort(v->begin(), v->end());
  r.requests = r.latencies_us.size();
  r.seconds = std::chrono::duration<double>(bounds[first + count] - bounds[first]).count();
  const Snapshot &before = snapshots[first], &after = snapshots[first + count];
  if (before.stats && after.stats) {
    r.have_server = true;
    r.server = stats_difference(*before.stats, *after.stats);
  }
  if (!o.metrics_url.empty()) {
    if (!before.histograms || !after.histograms) {
      r.overhead_error = !before.histograms ? before.histograms_error : after.histograms_error;
    } else {
      const ServerHistograms &b = *before.histograms, &a = *after.histograms;
      r.have_overhead = true;
      r.overhead_p50 = bucket_quantile(b.overhead, a.overhead, 0.5);
      r.overhead_p99 = bucket_quantile(b.overhead, a.overhead, 0.99);
      r.have_frontend = bucket_count(b.frontend, a.frontend) > 0;
      r.frontend_p50 = bucket_quantile(b.frontend, a.frontend, 0.5);
      r.frontend_p99 = bucket_quantile(b.frontend, a.frontend, 0.99);
    }
  }
  return r;
}

// perf_analyzer's measurement: windows of --measurement-interval ms until
// the last three agree within --stability-percentage in throughput and
// latency, or --max-trials windows; each window is printed as it ends.
Expected<LevelResult> run_level(const PerfOptions& o, int concurrency, Client& control, const ModelInfo& info,
                                const std::vector<TensorInfo>& inputs, const std::vector<std::vector<uint8_t>>& data) {
  ClientPool pool(o, info, inputs, data);
  Status started = pool.start(concurrency);
  if (!started.is_ok()) return started;
  if (o.warmup_requests > 0) {
    const auto t0 = Clock::now();
    pool.warm_up(o.warmup_requests);
    fmt::print("  warm-up: {} requests in {:.2f} s\n", o.warmup_requests,
               std::chrono::duration<double>(Clock::now() - t0).count());
    std::fflush(stdout);
  }
  pool.load();
  std::this_thread::sleep_for(std::chrono::milliseconds(std::max(100, o.interval_ms / 5)));
  std::vector<Snapshot> snapshots{take_snapshot(o, control)};
  std::vector<Clock::time_point> bounds{Clock::now()};
  pool.record();
  std::vector<std::vector<Completion>> windows;
  std::vector<Completion> pending;  // finished after the last boundary
  std::vector<WindowFigures> figures;
  StabilityVerdict verdict;
  for (int trial = 0; trial < o.max_trials && !verdict.stable; ++trial) {
    std::this_thread::sleep_until(bounds.back() + std::chrono::milliseconds(o.interval_ms));
    const auto end = Clock::now();
    // The snapshot's round trip gives the requests that finished just before
    // `end` time to be handed over; a later one counts in the next window.
    snapshots.push_back(take_snapshot(o, control));
    for (auto& c : pool.take()) pending.push_back(std::move(c));
    std::vector<Completion> window, later;
    for (auto& c : pending) {
      if (c.end >= end) {
        later.push_back(std::move(c));
      } else if (c.end >= bounds.front()) {
        window.push_back(std::move(c));
      }
    }
    pending.swap(later);
    const double seconds = std::chrono::duration<double>(end - bounds.back()).count();
    bounds.push_back(end);
    std::vector<double> latencies;
    uint64_t errors = 0;
    for (const auto& c : window) {
      if (c.error.empty()) {
        latencies.push_back(c.latency_us);
      } else {
        errors++;
      }
    }
    std::sort(latencies.begin(), latencies.end());
    figures.push_back(window_figures(latencies, seconds, o.batch, stabilizing_percentile(o)));
    windows.push_back(std::move(window));
    fmt::print(
        "  window {}: {} requests in {:.2f} s, {} errors, throughput {:.1f} infer/sec, p{:.0f} latency {:.0f} usec\n",
        windows.size(), figures.back().requests, seconds, errors, figures.back().throughput, stabilizing_percentile(o),
        figures.back().latency_us);
    std::fflush(stdout);
    verdict = judge_windows(figures, o.stability_percentage);
  }
  pool.stop();
  LevelResult r = merge_windows(o, windows, bounds, snapshots, verdict.first, verdict.count);
  r.concurrency = concurrency;
  r.stable = verdict.stable;
  return r;
}

void print_level(const PerfOptions& o, const LevelResult& r) {
  const auto& l = r.latencies_us;
  double avg = 0;
  for (double v : l) avg += v;
  avg = l.empty() ? 0 : avg / static_cast<double>(l.size());
  double throughput = r.seconds > 0 ? static_cast<double>(r.requests * static_cast<uint64_t>(o.batch)) / r.seconds : 0;
  const size_t shown = std::min<size_t>(r.windows, 3);
  const std::string which =
      shown == 1 ? fmt::format("window {}", r.windows) : fmt::format("windows {}-{}", r.windows - shown + 1, r.windows);
  if (r.stable) {
    fmt::print("  stable after {} windows; the figures of {}:\n", r.windows, which);
  } else {
    fmt::print(
        "  unstable after {} windows (the last 3 not within {}% in throughput and p{:.0f} latency; a longer "
        "--measurement-interval or more --max-trials may help); the figures of {}:\n",
        r.windows, o.stability_percentage, stabilizing_percentile(o), which);
  }
  fmt::print("  client: {} requests in {:.2f} s, {} errors, throughput {:.1f} infer/sec\n", r.requests, r.seconds,
             r.errors, throughput);
  fmt::print("  client latency: avg {:.0f} us, p50 {:.0f} us, p90 {:.0f} us, p95 {:.0f} us, p99 {:.0f} us\n", avg,
             percentile_of(l, 50), percentile_of(l, 90), percentile_of(l, 95), percentile_of(l, 99));
  if (!r.wait_us.empty())
    fmt::print("  client time (medians): send {:.0f} us + response wait {:.0f} us + receive {:.0f} us\n",
               percentile_of(r.send_us, 50), percentile_of(r.wait_us, 50), percentile_of(r.recv_us, 50));
  if (!r.first_error.empty()) fmt::print("  first error: {}\n", r.first_error);
  if (r.have_server && r.server.success > 0) {
    const ServerStats& s = r.server;
    double n = static_cast<double>(s.success);
    auto us = [&](uint64_t ns) { return static_cast<double>(ns) / n / 1000.0; };
    double compute = us(s.input_ns) + us(s.infer_ns) + us(s.output_ns);
    fmt::print(
        "  server: {} requests, {} executions (avg batch {:.1f}); per request: total {:.0f} us = queue {:.0f} us + "
        "compute input {:.0f} us + compute infer {:.0f} us + compute output {:.0f} us\n",
        s.success, s.execution_count,
        s.execution_count ? static_cast<double>(s.inference_count) / static_cast<double>(s.execution_count) : 0.0,
        us(s.success_ns), us(s.queue_ns), us(s.input_ns), us(s.infer_ns), us(s.output_ns));
    fmt::print(
        "  server overhead = client latency - compute time: {:.0f} us at the median (p50 {:.0f} - compute {:.0f}), "
        "{:.0f} us on average\n",
        percentile_of(l, 50) - compute, percentile_of(l, 50), compute, avg - compute);
    // perf_analyzer's view: the client's own sending and reading left out.
    if (!r.wait_us.empty())
      fmt::print(
          "  server overhead = response wait - compute time: {:.0f} us at the median (wait p50 {:.0f} - compute "
          "{:.0f})\n",
          percentile_of(r.wait_us, 50) - compute, percentile_of(r.wait_us, 50), compute);
  } else if (!r.have_server) {
    fmt::print("  server: the statistics endpoint did not answer\n");
  }
  if (r.have_overhead)
    fmt::print(
        "  server overhead (kiln's timestamps: queue and copies, without the engine run): p50 {:.1f} us, p99 {:.1f} "
        "us\n",
        r.overhead_p50, r.overhead_p99);
  else if (!r.overhead_error.empty())
    fmt::print("  server overhead: {}\n", r.overhead_error);
  if (r.have_frontend)
    fmt::print(
        "  HTTP front end (kiln's timestamps: the request's header read to the answer's last byte written, less its "
        "time in the scheduler): p50 {:.1f} us, p99 {:.1f} us\n",
        r.frontend_p50, r.frontend_p99);
}

int perf(const PerfOptions& o) {
  auto levels = concurrency_levels(o.concurrency);
  if (!levels) {
    fmt::print(stderr, "kiln perf: {}\n", levels.status().message());
    return kExitUsageError;
  }
  if (o.batch < 1 || o.interval_ms < 1 || o.percentile < 0 || o.percentile > 100) {
    fmt::print(stderr, "kiln perf: -b, --measurement-interval must be positive and --percentile 1..100\n");
    return kExitUsageError;
  }
  if (o.max_trials < 1 || !(o.stability_percentage >= 0) || o.warmup_requests < 0) {
    fmt::print(stderr,
               "kiln perf: --max-trials must be positive, --stability-percentage and --warmup-request-count not "
               "negative\n");
    return kExitUsageError;
  }
  auto control = make_client(o, -1);
  Status st = control ? (*control)->connect() : control.status();
  auto info = st.is_ok() ? (*control)->model_info() : Expected<ModelInfo>(st);
  if (!info) {
    fmt::print(stderr, "kiln perf: {}\n", info.status().message());
    return kExitModelError;
  }
  auto inputs = request_inputs(*info, o);
  if (!inputs) {
    fmt::print(stderr, "kiln perf: {}\n", inputs.status().message());
    return kExitUsageError;
  }
  std::mt19937 rng(1);
  std::vector<std::vector<uint8_t>> data;
  std::string shown;
  for (const auto& t : *inputs) {
    int64_t n = 1;
    for (int64_t d : t.shape) n *= d;
    data.push_back(random_data(t.datatype, n, rng));
    shown += fmt::format("{}{} {} {}", shown.empty() ? "" : ", ", t.name, t.datatype, dims_text(t.shape));
  }
  fmt::print("kiln perf: model '{}', {} {}{}, batch size {}, measurement interval {} ms\n  inputs (random): {}\n",
             o.model, o.protocol == "grpc" ? "gRPC" : "HTTP",
             o.url.empty() ? (o.protocol == "grpc" ? "localhost:8001" : "localhost:8000") : o.url,
             o.shared_memory == "system" ? " with system shared memory" : "", o.batch, o.interval_ms, shown);
  if (o.busy_wait_us > 0)
    fmt::print("  each client polls its {} for the answer up to {} us before it blocks (--busy-wait-us)\n",
               o.protocol == "grpc" ? "completion queue" : "socket", o.busy_wait_us);
  fmt::print(
      "  windows of {} ms until the last 3 are within {}% in throughput and p{:.0f} latency, at most {}; {} warm-up "
      "requests per level\n",
      o.interval_ms, o.stability_percentage, stabilizing_percentile(o), o.max_trials, o.warmup_requests);
  std::vector<LevelResult> results;
  uint64_t errors = 0;
  std::vector<int> unstable;
  for (int c : *levels) {
    fmt::print("Concurrency {}:\n", c);
    std::fflush(stdout);
    auto r = run_level(o, c, **control, *info, *inputs, data);
    if (!r) {
      fmt::print(stderr, "kiln perf: {}\n", r.status().message());
      return kExitModelError;
    }
    print_level(o, *r);
    errors += r->all_errors;
    if (!r->stable) unstable.push_back(c);
    results.push_back(std::move(*r));
  }
  // perf_analyzer's closing lines: the latency is the average, or the
  // --percentile one.
  fmt::print("Inferences/Second vs. Client {} Batch Latency\n",
             o.percentile ? "p" + std::to_string(o.percentile) : std::string("Average"));
  for (const auto& r : results) {
    double avg = 0;
    for (double v : r.latencies_us) avg += v;
    avg = r.latencies_us.empty() ? 0 : avg / static_cast<double>(r.latencies_us.size());
    double lat = o.percentile ? percentile_of(r.latencies_us, o.percentile) : avg;
    double throughput =
        r.seconds > 0 ? static_cast<double>(r.requests * static_cast<uint64_t>(o.batch)) / r.seconds : 0;
    fmt::print("Concurrency: {}, throughput: {:.1f} infer/sec, latency {:.0f} usec\n", r.concurrency, throughput, lat);
  }
  // Like perf_analyzer, an unstable level fails the run; its figures are
  // printed all the same.
  for (int c : unstable)
    fmt::print(stderr, "kiln perf: concurrency {}: no stable measurement within {} windows of {} ms\n", c, o.max_trials,
               o.interval_ms);
  return errors || !unstable.empty() ? kExitModelError : kExitOk;
}

}  // namespace

void add_perf_command(CLI::App& app, int& exit_code) {
  auto o = std::make_shared<PerfOptions>();
  auto* cmd = app.add_subcommand(
      "perf", "Load-test a model served over KServe v2 (kiln serve, Triton): throughput, latency, server breakdown");
  cmd->add_option("-m,--model-name", o->model, "Model to load-test")->required();
  cmd->add_option("-x,--model-version", o->version, "Model version (default: the server's choice)");
  cmd->add_option("-u,--url", o->url, "Server HOST:PORT (default localhost:8000 for http, localhost:8001 for grpc)");
  cmd->add_option("-i,--protocol", o->protocol, "http or grpc")->check(CLI::IsMember({"http", "grpc"}));
  cmd->add_option("-b,--batch-size", o->batch, "Batch size of each request (models with max_batch_size > 0)");
  cmd->add_option("--concurrency-range", o->concurrency, "Concurrent clients: N[:M[:STEP]] (default 1)");
  cmd->add_option("--shape", o->shapes, "NAME:D1,D2,... for an input's dynamic dims (without the batch dim)");
  cmd->add_option("-p,--measurement-interval", o->interval_ms,
                  "Milliseconds of each measurement window (default 5000)");
  cmd->add_option("-s,--stability-percentage", o->stability_percentage,
                  "The last 3 windows are stable when max/min of throughput and of latency are within this percent "
                  "(default 10)");
  cmd->add_option("-r,--max-trials", o->max_trials,
                  "Windows per concurrency level before giving up on stability (default 10)");
  cmd->add_option("--warmup-request-count", o->warmup_requests,
                  "Requests sent and not measured before each concurrency level's windows (default 0)");
  cmd->add_option("--percentile", o->percentile,
                  "Report this latency percentile in the summary and judge stability by it (default: average in the "
                  "summary, p50 for stability)");
  cmd->add_option("--metrics-url", o->metrics_url,
                  "HOST:PORT of the server's /metrics: print its own overhead per request (p50, p99), the "
                  "scheduler's and the HTTP front end's");
  cmd->add_option("--shared-memory", o->shared_memory,
                  "none, or system: each client's tensors in a POSIX shared memory region registered with the server "
                  "(default none)")
      ->check(CLI::IsMember({"none", "system"}));
  cmd->add_option("--output-shared-memory-size", o->output_shared_memory_size,
                  "Bytes of shared memory per output with --shared-memory system (default 102400)");
  cmd->add_option("--busy-wait-us", o->busy_wait_us,
                  "Each client polls for the answer (HTTP: its socket, gRPC: its completion queue) up to this many "
                  "microseconds before it blocks, keeping its own wake-up out of the latency (kiln's own option; "
                  "default 0: block at once, as perf_analyzer)")
      ->check(CLI::Range(0, 1000000));
  cmd->callback([o, &exit_code] { exit_code = perf(*o); });
}

}  // namespace kiln::cli
