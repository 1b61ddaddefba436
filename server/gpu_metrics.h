// Triton's GPU metrics (nv_gpu_utilization, nv_gpu_memory_total_bytes,
// nv_gpu_memory_used_bytes, labelled gpu_uuid) read through NVML, which is
// loaded with dlopen("libnvidia-ml.so.1") on first use: kiln has no link-time
// dependency on the driver, and without NVML or a GPU the metrics are simply
// absent. Server state, not kiln runtime state: it lives here in server/.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace kiln::server {

struct GpuSample {
  std::string uuid;           // "GPU-8f6c..."
  double utilization = 0;     // fraction of the last sample period the GPU was busy, 0..1
  uint64_t memory_total = 0;  // bytes
  uint64_t memory_used = 0;   // bytes
};

// One sample per GPU NVML sees; empty when NVML cannot be loaded or
// initialised, or there is no GPU. A GPU whose query fails is left out.
// Thread-safe.
std::vector<GpuSample> read_gpu_samples();

// The three metric families in Prometheus text format; "" for no samples
// (Triton also leaves the families out without GPUs).
std::string format_gpu_metrics(const std::vector<GpuSample>& samples);

}  // namespace kiln::server
