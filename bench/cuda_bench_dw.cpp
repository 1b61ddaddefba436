// Section "dw" of kiln_cuda_bench: MobileNetV2's and EfficientNet-B0's
// depthwise layers at batch 128 in f16, channels-last, with their bias and
// activation (Clip(0, 6), Silu), on kiln.FusedConv's tactics "kiln_dw",
// "kiln_dw_strip" and "kiln_dw_tile" (launch_depthwise_conv, the weight
// transpose included) and cuDNN's fused graph (the best of its first 4
// engines; its plain convolution where it has no fused one, without the
// epilogue pass). Per layer and per model (each layer times its count in
// the model); GB/s counts x, w and y once.
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "backends/cuda/cudnn_handle.h"
#include "backends/cuda/kernels/depthwise_conv.cuh"
#include "backends/cuda/ops/cudnn_conv.h"
#include "cuda_bench_util.h"

namespace kiln::cuda {
namespace {

struct DwLayer {
  int64_t hw, c, k, stride, count;
};

struct DwModel {
  const char* name;
  EpilogueActivation act;
  std::vector<DwLayer> layers;
};

// The fastest of cuDNN's first 4 engines for the layer, fused where cuDNN
// fuses it (-1 where it has none).
double cudnn_dw_ms(const WindowGeometry& g, EpilogueActivation act, const DeviceBuffer& x, const DeviceBuffer& w,
                   const DeviceBuffer& b, DeviceBuffer& y, DeviceBuffer& ws, size_t ws_bytes, cudaStream_t s) {
  static auto cudnn = Cudnn::create();
  if (!cudnn.is_ok()) return -1;
  CudnnConvSpec spec;
  spec.dtype = DType::kF16, spec.spatial = 2, spec.channels_last = true, spec.workspace_limit = ws_bytes;
  spec.g = g;
  spec.fused = true, spec.fused_bias = true, spec.activation = act, spec.clip_hi = 6.f;
  double best = -1;
  for (bool fused : {true, false}) {
    spec.fused = spec.fused_bias = fused;
    spec.activation = fused ? act : EpilogueActivation::kNone;
    for (int i = 0; i < 4; ++i) {
      spec.engine_index = i;
      const std::shared_ptr<const CudnnConvPlan> plan = cudnn_conv_plan(spec);
      if (!plan) break;
      const double ms = median_ms(
          [&] {
            return execute_cudnn_conv(cudnn->get(), s, *plan, x.data(), w.data(), y.data(), ws.data(),
                                      fused ? b.data() : nullptr);
          },
          s);
      if (best < 0 || ms < best) best = ms;
    }
    if (best >= 0) return best;
  }
  return best;
}

void bench_dw(cudaStream_t s) {
  const std::vector<DwModel> models = {
      {"MobileNetV2",
       EpilogueActivation::kClip,
       {{112, 32, 3, 1, 1},
        {112, 96, 3, 2, 1},
        {56, 144, 3, 1, 1},
        {56, 144, 3, 2, 1},
        {28, 192, 3, 1, 2},
        {28, 192, 3, 2, 1},
        {14, 384, 3, 1, 4},
        {14, 576, 3, 1, 2},
        {14, 576, 3, 2, 1},
        {7, 960, 3, 1, 3}}},
      {"EfficientNet-B0",
       EpilogueActivation::kSilu,
       {{112, 32, 3, 1, 1},
        {112, 96, 3, 2, 1},
        {56, 144, 3, 1, 1},
        {56, 144, 5, 2, 1},
        {28, 240, 5, 1, 1},
        {28, 240, 3, 2, 1},
        {14, 480, 3, 1, 2},
        {14, 480, 5, 1, 1},
        {14, 672, 5, 1, 2},
        {14, 672, 5, 2, 1},
        {7, 1152, 5, 1, 3},
        {7, 1152, 3, 1, 1}}},
  };
  const int64_t n = 128;
  const size_t ws_bytes = size_t(64) << 20;
  DeviceBuffer ws = filled(ws_bytes);
  const char* names[] = {"kiln_dw", "kiln_dw_strip", "kiln_dw_tile", "cudnn (best of 4)"};
  for (const DwModel& m : models) {
    double total[4] = {0, 0, 0, 0};
    for (const DwLayer& l : m.layers) {
      const int64_t pad = l.k / 2, out = (l.hw + 2 * pad - l.k) / l.stride + 1;
      const int64_t xs = n * l.hw * l.hw * l.c, wsz = l.c * l.k * l.k, ys = n * out * out * l.c;
      DeviceBuffer x = filled(xs * 2), w = filled(wsz * 2), b = filled(l.c * 2), y = filled(ys * 2);
      fill_random(x, DType::kF16, xs);
      fill_random(w, DType::kF16, wsz);
      fill_random(b, DType::kF16, l.c);
      DepthwiseConvParams p;
      p.dtype = DType::kF16;
      p.g.batch = n, p.g.in_channels = p.g.out_channels = p.g.group = l.c;
      for (int a = 1; a < 3; ++a) {
        p.g.in[a] = l.hw, p.g.out[a] = out, p.g.kernel[a] = l.k, p.g.stride[a] = l.stride;
        p.g.pad_begin[a] = p.g.pad_end[a] = pad;
      }
      p.x = x.data(), p.w = w.data(), p.bias = b.data(), p.y = y.data(), p.workspace = ws.data();
      p.act = m.act, p.lo = 0.f, p.hi = 6.f;
      const double bytes = 2.0 * (xs + wsz + ys);
      double ms[4];
      for (int v = 0; v < 3; ++v) {
        p.strip = v == 1, p.tile = v == 2;
        ms[v] = median_ms([&] { return launch_depthwise_conv(p, s); }, s);
      }
      ms[3] = cudnn_dw_ms(p.g, m.act, x, w, b, y, ws, ws_bytes, s);
      const DwTilePlan plan = depthwise_conv_tile_plan(p.g);
      std::printf("%s %lldx%lldx%lld k%lld s%lld (x%lld; tile %dx%d, %d channels, %d threads, %zu B)\n", m.name,
                  static_cast<long long>(l.hw), static_cast<long long>(l.hw), static_cast<long long>(l.c),
                  static_cast<long long>(l.k), static_cast<long long>(l.stride), static_cast<long long>(l.count),
                  plan.th, plan.strips * plan.r, plan.g * 8, plan.threads, plan.smem_bytes);
      for (int v = 0; v < 4; ++v) {
        if (ms[v] < 0) {
          std::printf("  %-42s no engine\n", names[v]);
          continue;
        }
        report_bw(std::string("  ") + names[v], ms[v], bytes);
        total[v] += ms[v] * static_cast<double>(l.count);
      }
    }
    for (int v = 0; v < 4; ++v) std::printf("%s b128 depthwise total, %-20s %9.3f ms\n", m.name, names[v], total[v]);
  }
}

}  // namespace

KILN_BENCH_SECTION("dw", bench_dw);

}  // namespace kiln::cuda
