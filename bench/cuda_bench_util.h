// What kiln_cuda_bench's sections share: CUDA-event timing (warm-up, then the
// median of g_runs runs), bandwidth and throughput lines against the H100
// SXM's peaks, device buffers of constants or random values, the fastest of
// several alternatives, and the registry of sections `--only` picks from (a
// section in a file of its own, bench/cuda_bench_*.cpp, is built into
// kiln_cuda_bench by CMake's glob).
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include "backends/cuda/device.h"
#include "ir/tensor.h"

namespace kiln::cuda {

constexpr double kPeakBytesPerS = 3.35e12;
constexpr double kPeakFp16Flops = 990e12;
inline int g_runs = 50;  // --runs

// Median milliseconds of `fn` over g_runs timed runs after 5 warm-ups.
inline double median_ms(const std::function<Status()>& fn, cudaStream_t stream) {
  for (int i = 0; i < 5; ++i)
    if (Status st = fn(); !st.is_ok()) {
      std::fprintf(stderr, "error: %s\n", st.to_string().c_str());
      std::exit(1);
    }
  auto start = Event::create(), stop = Event::create();
  std::vector<float> times;
  for (int i = 0; i < g_runs; ++i) {
    (void)start->record(stream);
    (void)fn();
    (void)stop->record(stream);
    (void)stop->synchronize();
    times.push_back(*stop->elapsed_ms_since(*start));
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

inline void report_bw(const std::string& name, double ms, double bytes) {
  const double bps = bytes / (ms * 1e-3);
  std::printf("%-44s %9.3f ms %9.1f GB/s  %5.1f%% of peak\n", name.c_str(), ms, bps / 1e9, 100 * bps / kPeakBytesPerS);
}

inline void report_flops(const std::string& name, double ms, double flops) {
  const double fps = flops / (ms * 1e-3);
  std::printf("%-44s %9.3f ms %9.1f TFLOP/s %5.1f%% of fp16 peak\n", name.c_str(), ms, fps / 1e12,
              100 * fps / kPeakFp16Flops);
}

inline DeviceBuffer filled(size_t bytes) {
  auto b = DeviceBuffer::allocate(bytes);
  if (!b.is_ok()) {
    std::fprintf(stderr, "error: %s\n", b.status().to_string().c_str());
    std::exit(1);
  }
  (void)cudaMemset(b->data(), 0x3c, bytes);  // 0x3c3c: ~1.06 in f16, small positive in f32/bf16
  return std::move(b).value();
}

// Random values (products of random data draw more power, so run slower,
// than constants); f16/bf16 bit patterns are made from floats in [-1, 1].
inline void fill_random(DeviceBuffer& b, DType t, int64_t count) {
  std::vector<float> f(static_cast<size_t>(count));
  uint32_t state = 12345;
  for (float& v : f) {
    state = state * 1664525u + 1013904223u;
    v = static_cast<float>(state >> 8) / 8388608.f - 1.f;
  }
  if (t == DType::kF32) {
    (void)b.copy_from_host(f.data(), f.size() * 4);
    return;
  }
  std::vector<uint16_t> h(f.size());
  for (size_t i = 0; i < f.size(); ++i) h[i] = t == DType::kF16 ? f32_to_f16(f[i]) : f32_to_bf16(f[i]);
  (void)b.copy_from_host(h.data(), h.size() * 2);
}

// The fastest of n alternatives (cuBLASLt's algorithms, say): time_ms(i) is
// alternative i's median milliseconds.
struct Fastest {
  double ms = 1e30;
  size_t index = 0;
};
template <typename TimeMs>
Fastest fastest_of(size_t n, TimeMs time_ms) {
  Fastest best;
  for (size_t i = 0; i < n; ++i)
    if (const double ms = time_ms(i); ms < best.ms) best = {ms, i};
  return best;
}

// A section of kiln_cuda_bench (`--only name`; every section without
// --only), in the order registered: cuda_kernels_bench.cpp's own, then each
// bench/cuda_bench_*.cpp's.
struct BenchSection {
  const char* name;
  void (*run)(cudaStream_t);
};
inline std::vector<BenchSection>& bench_sections() {
  static std::vector<BenchSection> sections;
  return sections;
}
struct RegisterBenchSection {
  RegisterBenchSection(const char* name, void (*run)(cudaStream_t)) { bench_sections().push_back({name, run}); }
};
// At namespace scope: KILN_BENCH_SECTION("dw", bench_dw);
#define KILN_BENCH_SECTION(name, fn) static const ::kiln::cuda::RegisterBenchSection kiln_bench_section_##fn(name, fn)

}  // namespace kiln::cuda
