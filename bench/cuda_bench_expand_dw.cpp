// kiln_cuda_bench --only expanddw: each distinct MobileNetV2 and
// EfficientNet-B0 expansion block at batch 128 f16 (channels-last), the fused
// kernel (kiln_expand_dw) against the unfused pair it replaces: the 1x1 as
// cuBLASLt's GEMM with bias and Relu in its epilogue (the best of its first
// 4 algorithms; the real layers' Clip or SiLU costs the same bytes) then
// kiln_dw (the better of the one-pixel and strip kernels). GB/s counts each
// route's own bytes (fused: x, W1, W2, y; unfused: x, W1, the expanded tensor
// written and read once, W2, y); "at 3 TB/s" is each route's bytes at that
// rate, the time a memory-bound kernel would take.
#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "backends/cuda/cublaslt_matmul.h"
#include "backends/cuda/kernels/depthwise_conv.cuh"
#include "backends/cuda/kernels/expand_depthwise_conv.cuh"
#include "cuda_bench_util.h"

namespace kiln::cuda {
namespace {

struct Block {
  const char* name;
  int64_t h, c, e, k, s;
  EpilogueActivation act;
};

void bench_expand_dw(cudaStream_t s) {
  constexpr auto kClip = EpilogueActivation::kClip;
  constexpr auto kSilu = EpilogueActivation::kSilu;
  const Block blocks[] = {
      {"MobileNetV2 112 16->96 k3 s2", 112, 16, 96, 3, 2, kClip},
      {"MobileNetV2 56 24->144 k3 s1", 56, 24, 144, 3, 1, kClip},
      {"MobileNetV2 56 24->144 k3 s2", 56, 24, 144, 3, 2, kClip},
      {"MobileNetV2 28 32->192 k3 s1", 28, 32, 192, 3, 1, kClip},
      {"MobileNetV2 28 32->192 k3 s2", 28, 32, 192, 3, 2, kClip},
      {"MobileNetV2 14 64->384 k3 s1", 14, 64, 384, 3, 1, kClip},
      {"MobileNetV2 14 96->576 k3 s1", 14, 96, 576, 3, 1, kClip},
      {"MobileNetV2 14 96->576 k3 s2", 14, 96, 576, 3, 2, kClip},
      {"MobileNetV2 7 160->960 k3 s1", 7, 160, 960, 3, 1, kClip},
      {"EfficientNet-B0 112 16->96 k3 s2", 112, 16, 96, 3, 2, kSilu},
      {"EfficientNet-B0 56 24->144 k3 s1", 56, 24, 144, 3, 1, kSilu},
      {"EfficientNet-B0 56 24->144 k5 s2", 56, 24, 144, 5, 2, kSilu},
      {"EfficientNet-B0 28 40->240 k5 s1", 28, 40, 240, 5, 1, kSilu},
      {"EfficientNet-B0 28 40->240 k3 s2", 28, 40, 240, 3, 2, kSilu},
      {"EfficientNet-B0 14 80->480 k3 s1", 14, 80, 480, 3, 1, kSilu},
      {"EfficientNet-B0 14 80->480 k5 s1", 14, 80, 480, 5, 1, kSilu},
      {"EfficientNet-B0 14 112->672 k5 s1", 14, 112, 672, 5, 1, kSilu},
      {"EfficientNet-B0 14 112->672 k5 s2", 14, 112, 672, 5, 2, kSilu},
      {"EfficientNet-B0 7 192->1152 k5 s1", 7, 192, 1152, 5, 1, kSilu},
      {"EfficientNet-B0 7 192->1152 k3 s1", 7, 192, 1152, 3, 1, kSilu},
  };
  const int64_t n = 128;
  const DType t = DType::kF16;
  auto lt = CublasLt::create();
  if (!lt.is_ok()) {
    std::printf("expanddw: no cuBLASLt handle: %s\n", lt.status().to_string().c_str());
    return;
  }
  const size_t lt_ws = size_t(32) << 20;
  DeviceBuffer lt_scratch = filled(lt_ws);
  double fused_total = 0, unfused_total = 0;
  for (const Block& b : blocks) {
    const int64_t pad = (b.k - 1) / 2, oh = (b.h + 2 * pad - b.k) / b.s + 1;
    const int64_t xs = n * b.h * b.h * b.c, w1s = b.e * b.c, w2s = b.e * b.k * b.k, es = n * b.h * b.h * b.e;
    const int64_t ys = n * oh * oh * b.e;
    DeviceBuffer x = filled(xs * 2), w1 = filled(w1s * 2), b1 = filled(b.e * 2), w2 = filled(w2s * 2);
    DeviceBuffer b2 = filled(b.e * 2), e = filled(es * 2), y = filled(ys * 2);
    fill_random(x, t, xs);
    fill_random(w1, t, w1s);
    fill_random(b1, t, b.e);
    fill_random(w2, t, w2s);
    fill_random(b2, t, b.e);

    ExpandDepthwiseParams p;
    p.dtype = t;
    p.layer.n = n, p.layer.h = p.layer.w = b.h, p.layer.c = b.c, p.layer.e = b.e, p.layer.k = b.k, p.layer.s = b.s;
    p.layer.pt = p.layer.pl = p.layer.pb = p.layer.pr = pad;
    p.x = x.data(), p.w1 = w1.data(), p.b1 = b1.data(), p.w2 = w2.data(), p.b2 = b2.data(), p.y = y.data();
    p.act1 = p.act2 = b.act, p.lo1 = p.lo2 = 0.f, p.hi1 = p.hi2 = 6.f;
    const double fused_bytes = 2.0 * (xs + w1s + w2s + ys), unfused_bytes = fused_bytes + 2.0 * 2 * es;
    double fused_ms = 0;
    if (expand_depthwise_conv_runs(p)) {
      fused_ms = median_ms([&] { return launch_expand_depthwise_conv(p, s); }, s);
      report_bw(std::string("kiln_expand_dw ") + b.name, fused_ms, fused_bytes);
    } else {
      std::printf("kiln_expand_dw %s: the plan declines the layer\n", b.name);
    }

    MatmulShape shape;
    shape.dtype = t, shape.m = n * b.h * b.h, shape.n = b.e, shape.k = b.c, shape.trans_b = true;
    shape.has_bias = true, shape.activation = MatmulActivation::kRelu;
    auto algos = matmul_algos(*lt, shape, 4, lt_ws);
    if (!algos.is_ok() || algos->empty()) {
      std::printf("cublaslt %s: no algorithm\n", b.name);
      continue;
    }
    MatmulArgs args{x.data(), w1.data(), nullptr, b1.data(), e.data(), 1.f, 0.f, lt_scratch.data(), lt_ws};
    const double expand_ms = fastest_of(algos->size(), [&](size_t i) {
                               return median_ms([&] { return launch_matmul(*lt, shape, args, &(*algos)[i], s); }, s);
                             }).ms;

    DepthwiseConvParams d;
    d.dtype = t;
    d.g.batch = n, d.g.in_channels = d.g.out_channels = d.g.group = b.e;
    d.g.in[1] = d.g.in[2] = b.h, d.g.out[1] = d.g.out[2] = oh, d.g.kernel[1] = d.g.kernel[2] = b.k;
    d.g.stride[1] = d.g.stride[2] = b.s, d.g.pad_begin[1] = d.g.pad_begin[2] = d.g.pad_end[1] = d.g.pad_end[2] = pad;
    d.x = e.data(), d.w = w2.data(), d.bias = b2.data(), d.y = y.data(), d.act = b.act, d.lo = 0.f, d.hi = 6.f;
    DeviceBuffer dw_ws = filled(depthwise_conv_workspace(t, d.g));
    d.workspace = dw_ws.data();
    double dw_ms = 1e30;
    for (bool strip : {false, true}) {
      d.strip = strip;
      dw_ms = std::min(dw_ms, median_ms([&] { return launch_depthwise_conv(d, s); }, s));
    }
    const double pair_ms = expand_ms + dw_ms;
    report_bw(std::string("unfused cublaslt+kiln_dw ") + b.name, pair_ms, unfused_bytes);
    std::printf("  %-42s expand %.3f ms, dw %.3f ms; at 3 TB/s: fused %.3f ms, unfused %.3f ms; gain %.2fx\n", "",
                expand_ms, dw_ms, fused_bytes / 3e9, unfused_bytes / 3e9, fused_ms > 0 ? pair_ms / fused_ms : 0.0);
    if (fused_ms > 0) fused_total += fused_ms, unfused_total += pair_ms;
  }
  std::printf("expanddw: all blocks once each: fused %.3f ms, unfused %.3f ms\n", fused_total, unfused_total);
}

}  // namespace

KILN_BENCH_SECTION("expanddw", bench_expand_dw);

}  // namespace kiln::cuda
