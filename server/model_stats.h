// Per model-version counters behind both the KServe statistics endpoint and
// the Prometheus metrics. Updated by scheduler threads, read by front ends.
#pragma once

#include <atomic>
#include <cmath>
#include <cstdint>
#include <map>
#include <mutex>

namespace kiln::server {

struct DurationStat {
  std::atomic<uint64_t> count{0};
  std::atomic<uint64_t> ns{0};
  void add(uint64_t n) {
    count.fetch_add(1, std::memory_order_relaxed);
    ns.fetch_add(n, std::memory_order_relaxed);
  }
};

// Durations counted in buckets 8 to a decade, from 1.33 us up to 100 s, and
// one more above: a Prometheus histogram, whose counts give quantiles (within
// a bucket's 33% width) where a sum only gives the mean.
struct DurationHistogram {
  static constexpr int kPerDecade = 8;
  static constexpr int kBuckets = 8 * kPerDecade;  // finite ones; bucket kBuckets is +Inf
  // The upper bound of bucket i, in microseconds: 10^((i + 1) / 8).
  static double upper_bound_us(int i) { return std::pow(10.0, (i + 1) / static_cast<double>(kPerDecade)); }
  static int bucket_of(uint64_t ns) {
    const double us = static_cast<double>(ns) / 1000.0;
    if (us <= upper_bound_us(0)) return 0;
    const int i = static_cast<int>(std::ceil(std::log10(us) * kPerDecade - 1e-9)) - 1;
    return i < kBuckets ? i : kBuckets;
  }
  void add(uint64_t ns) {
    counts[bucket_of(ns)].fetch_add(1, std::memory_order_relaxed);
    sum_ns.fetch_add(ns, std::memory_order_relaxed);
  }
  std::atomic<uint64_t> counts[kBuckets + 1] = {};
  std::atomic<uint64_t> sum_ns{0};
};

struct BatchStat {
  uint64_t count = 0;
  uint64_t input_ns = 0, infer_ns = 0, output_ns = 0;
};

// Why a request failed, as Triton's nv_inference_request_failure labels it:
// REJECTED (queue full, timed out in the queue), CANCELED (the client went
// away), BACKEND (the model failed to run), OTHER (an invalid request).
enum class FailReason { kRejected, kCanceled, kBackend, kOther };
constexpr int kFailReasons = 4;
inline const char* fail_reason_name(FailReason r) {
  switch (r) {
    case FailReason::kRejected: return "REJECTED";
    case FailReason::kCanceled: return "CANCELED";
    case FailReason::kBackend: return "BACKEND";
    default: return "OTHER";
  }
}

struct ModelStats {
  DurationStat success;  // whole request: queue + compute
  DurationStat fail;
  std::atomic<uint64_t> fail_by_reason[kFailReasons] = {};
  void add_failure(FailReason r, uint64_t ns) {
    fail.add(ns);
    fail_by_reason[static_cast<int>(r)].fetch_add(1, std::memory_order_relaxed);
  }
  DurationStat queue;
  DurationStat compute_input, compute_infer, compute_output;
  // Per successful request, its time in the scheduler besides the engine run
  // (queue and the input and output copies): kiln_inference_overhead_us.
  DurationHistogram overhead;
  // Per successful HTTP request, the front end's wall time for it less its
  // time in the scheduler (reading and parsing the request, the hand-offs,
  // writing the answer): kiln_inference_frontend_us.
  DurationHistogram frontend;
  std::atomic<uint64_t> inference_count{0};  // batch rows served
  std::atomic<uint64_t> execution_count{0};  // engine runs
  std::atomic<uint64_t> padded_rows{0};      // rows added to reach a batch bucket
  std::atomic<uint64_t> last_inference_ms{0};

  std::mutex batch_mutex;
  std::map<uint64_t, BatchStat> batches;  // by batch size
  void add_batch(uint64_t size, uint64_t input_ns, uint64_t infer_ns, uint64_t output_ns) {
    std::lock_guard<std::mutex> lock(batch_mutex);
    BatchStat& b = batches[size];
    b.count++;
    b.input_ns += input_ns;
    b.infer_ns += infer_ns;
    b.output_ns += output_ns;
  }
};

}  // namespace kiln::server
