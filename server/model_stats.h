// Per model-version counters behind both the KServe statistics endpoint and
// the Prometheus metrics. Updated by scheduler threads, read by front ends.
#pragma once

#include <atomic>
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

struct BatchStat {
  uint64_t count = 0;
  uint64_t input_ns = 0, infer_ns = 0, output_ns = 0;
};

struct ModelStats {
  DurationStat success;  // whole request: queue + compute
  DurationStat fail;
  DurationStat queue;
  DurationStat compute_input, compute_infer, compute_output;
  std::atomic<uint64_t> inference_count{0};  // batch rows served
  std::atomic<uint64_t> execution_count{0};  // engine runs
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
