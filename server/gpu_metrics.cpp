#include "gpu_metrics.h"

#include <dlfcn.h>

#include <mutex>
#include <sstream>

#include "prometheus_text.h"

namespace kiln::server {
namespace {

// The few NVML declarations used (nvml.h's types and v2 entry points; the
// layouts are NVML's stable ABI).
using NvmlReturn = int;  // NVML_SUCCESS is 0
struct NvmlDeviceSt;
using NvmlDevice = NvmlDeviceSt*;
struct NvmlUtilization {
  unsigned int gpu;     // percent of time a kernel ran over the last sample period
  unsigned int memory;  // percent of time device memory was read or written
};
struct NvmlMemory {
  unsigned long long total;
  unsigned long long free;
  unsigned long long used;
};
constexpr unsigned int kUuidBufferSize = 96;  // NVML_DEVICE_UUID_V2_BUFFER_SIZE is 96

struct Nvml {
  NvmlReturn (*init)() = nullptr;
  NvmlReturn (*device_count)(unsigned int*) = nullptr;
  NvmlReturn (*device_by_index)(unsigned int, NvmlDevice*) = nullptr;
  NvmlReturn (*uuid)(NvmlDevice, char*, unsigned int) = nullptr;
  NvmlReturn (*utilization)(NvmlDevice, NvmlUtilization*) = nullptr;
  NvmlReturn (*memory)(NvmlDevice, NvmlMemory*) = nullptr;
  bool ready = false;
};

template <typename F>
bool resolve(void* lib, const char* name, F& f) {
  f = reinterpret_cast<F>(dlsym(lib, name));
  return f != nullptr;
}

// Loaded and initialised once; the library stays loaded for the process.
const Nvml& nvml() {
  static Nvml n;
  static std::once_flag once;
  std::call_once(once, [] {
    void* lib = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!lib) return;
    bool ok = resolve(lib, "nvmlInit_v2", n.init) && resolve(lib, "nvmlDeviceGetCount_v2", n.device_count) &&
              resolve(lib, "nvmlDeviceGetHandleByIndex_v2", n.device_by_index) &&
              resolve(lib, "nvmlDeviceGetUUID", n.uuid) &&
              resolve(lib, "nvmlDeviceGetUtilizationRates", n.utilization) &&
              resolve(lib, "nvmlDeviceGetMemoryInfo", n.memory);
    n.ready = ok && n.init() == 0;
  });
  return n;
}

}  // namespace

std::vector<GpuSample> read_gpu_samples() {
  const Nvml& n = nvml();
  std::vector<GpuSample> out;
  unsigned int count = 0;
  if (!n.ready || n.device_count(&count) != 0) return out;
  for (unsigned int i = 0; i < count; ++i) {
    NvmlDevice dev = nullptr;
    char uuid[kUuidBufferSize] = {};
    NvmlUtilization util{};
    NvmlMemory mem{};
    if (n.device_by_index(i, &dev) != 0 || n.uuid(dev, uuid, kUuidBufferSize) != 0 || n.memory(dev, &mem) != 0)
      continue;
    GpuSample s;
    s.uuid = uuid;
    // Utilization is not supported on every GPU (or under MIG): 0 then, as Triton reports it.
    if (n.utilization(dev, &util) == 0) s.utilization = util.gpu / 100.0;
    s.memory_total = mem.total;
    s.memory_used = mem.used;
    out.push_back(std::move(s));
  }
  return out;
}

std::string format_gpu_metrics(const std::vector<GpuSample>& samples) {
  if (samples.empty()) return "";
  std::ostringstream out;
  auto family = [&](const char* name, const char* help, auto value_of) {
    out << "# HELP " << name << ' ' << help << "\n# TYPE " << name << " gauge\n";
    for (const auto& s : samples)
      out << name << "{gpu_uuid=\"" << escape_label(s.uuid) << "\"} " << value_of(s) << '\n';
  };
  family("nv_gpu_utilization", "GPU utilization rate [0.0 - 1.0)", [](const GpuSample& s) { return s.utilization; });
  family("nv_gpu_memory_total_bytes", "GPU total memory, in bytes", [](const GpuSample& s) { return s.memory_total; });
  family("nv_gpu_memory_used_bytes", "GPU used memory, in bytes", [](const GpuSample& s) { return s.memory_used; });
  return out.str();
}

}  // namespace kiln::server
