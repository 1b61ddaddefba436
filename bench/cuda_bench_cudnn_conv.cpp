// kiln_cuda_bench --only cudnn_conv: every usable cuDNN engine config of
// ResNet-50 batch 128's channels-last f16 convolutions (bias + Relu, the
// residual where the model has one), as --builderOptimizationLevel 5 lists
// them: the heuristic list ("cudnn_fused:<i>", "cudnn:<i>", what levels 1..4
// time) and the exhaustive search's extras ("cudnn_fused_all:<id>",
// "cudnn_all:<id>": the rest of mode A's and the fallback's lists, mode B's,
// every engine by global index with its default knobs). A plain
// convolution's time includes kiln's epilogue kernel after it, as the
// "cudnn:" tactics run in kiln.FusedConv. One line per config (source, id,
// workspace, ms, TFLOP/s), then per layer the best of the default list
// against the best overall. An engine that fails to run is reported and
// skipped, as the builder drops it.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "backends/cuda/cudnn_handle.h"
#include "backends/cuda/kernels/conv.cuh"
#include "backends/cuda/ops/cudnn_conv.h"
#include "cuda_bench_util.h"

namespace kiln::cuda {
namespace {

struct ConvLayer {
  const char* name;
  int64_t hw, cin, cout, kernel, stride;
  bool residual;
};

// The 3x3s at stride 1 (each stage's), the stride-2 3x3s (each downsampling
// block's conv2, torchvision's ResNet-50 v1.5), and two 1x1s.
const ConvLayer kLayers[] = {
    {"layer1 3x3 56x56 64->64", 56, 64, 64, 3, 1, false},
    {"layer2 3x3 28x28 128->128", 28, 128, 128, 3, 1, false},
    {"layer3 3x3 14x14 256->256", 14, 256, 256, 3, 1, false},
    {"layer4 3x3 7x7 512->512", 7, 512, 512, 3, 1, false},
    {"layer2.0 3x3 s2 56x56 128->128", 56, 128, 128, 3, 2, false},
    {"layer3.0 3x3 s2 28x28 256->256", 28, 256, 256, 3, 2, false},
    {"layer4.0 3x3 s2 14x14 512->512", 14, 512, 512, 3, 2, false},
    {"layer1 conv1 1x1 56x56 256->64", 56, 256, 64, 1, 1, false},
    {"layer3 conv3 1x1 14x14 256->1024 +z", 14, 256, 1024, 1, 1, true},
};

CudnnConvSpec layer_spec(const ConvLayer& l, int64_t n, size_t workspace) {
  CudnnConvSpec spec;
  spec.dtype = DType::kF16;
  spec.channels_last = true;
  spec.workspace_limit = workspace;
  spec.g.batch = n, spec.g.in_channels = l.cin, spec.g.out_channels = l.cout, spec.g.group = 1;
  const int64_t pad = l.kernel / 2, out = (l.hw + 2 * pad - l.kernel) / l.stride + 1;
  for (int a = 1; a < 3; ++a) {
    spec.g.in[a] = l.hw, spec.g.out[a] = out;
    spec.g.kernel[a] = l.kernel, spec.g.stride[a] = l.stride;
    spec.g.pad_begin[a] = spec.g.pad_end[a] = pad;
  }
  return spec;
}

struct Best {
  double ms = 1e30;
  std::string tactic;
};

void note(Best& best, double ms, const std::string& tactic) {
  if (ms < best.ms) best = {ms, tactic};
}

void bench_cudnn_conv(cudaStream_t s) {
  const int64_t n = 128;
  const size_t ws_bytes = size_t(256) << 20;
  auto cudnn = Cudnn::create();
  if (!cudnn.is_ok()) {
    std::printf("cudnn_conv: no cuDNN handle: %s\n", cudnn.status().to_string().c_str());
    return;
  }
  DeviceBuffer ws = filled(ws_bytes);
  for (const ConvLayer& l : kLayers) {
    const CudnnConvSpec base = layer_spec(l, n, ws_bytes);
    const int64_t xs = n * l.hw * l.hw * l.cin, wsz = l.cout * l.kernel * l.kernel * l.cin;
    const int64_t ys = n * base.g.out[1] * base.g.out[2] * l.cout;
    DeviceBuffer x = filled(xs * 2), w = filled(wsz * 2), b = filled(l.cout * 2), y = filled(ys * 2);
    DeviceBuffer z = filled(l.residual ? ys * 2 : 2);
    fill_random(x, DType::kF16, xs);
    fill_random(w, DType::kF16, wsz);
    fill_random(b, DType::kF16, l.cout);
    if (l.residual) fill_random(z, DType::kF16, ys);
    const void* zp = l.residual ? z.data() : nullptr;
    const double flops = 2.0 * static_cast<double>(ys) * static_cast<double>(l.cin * l.kernel * l.kernel);
    ConvEpilogueParams e;
    e.dtype = DType::kF16;
    e.y = y.data(), e.bias = b.data(), e.z = zp;
    e.batch = ys / l.cout, e.channels = l.cout, e.inner = 1;
    e.act = EpilogueActivation::kRelu;
    std::printf("cudnn_conv %s, batch %lld f16 NHWC + bias%s + Relu:\n", l.name, static_cast<long long>(n),
                l.residual ? " + z" : "");
    Best listed, overall;
    for (const bool fused : {true, false}) {
      CudnnConvSpec spec = base;
      spec.fused = spec.fused_bias = fused;
      spec.fused_residual = fused && l.residual;
      spec.activation = fused ? EpilogueActivation::kRelu : EpilogueActivation::kNone;
      const std::string family = fused ? "cudnn_fused" : "cudnn";
      // Level 5's default part: half the 64 candidates for the fused graph, the rest for the plain one.
      for (const CudnnEngineCandidate& c : cudnn_conv_engine_candidates(spec, fused ? 32 : 64, true)) {
        // The plan the tactic's name selects, as FusedConv resolves it.
        const std::string tactic = cudnn_candidate_tactic(family, c);
        select_cudnn_engine(tactic, family, spec);
        const std::shared_ptr<const CudnnConvPlan> plan = cudnn_conv_plan(spec);
        if (!plan) continue;
        auto run = [&]() -> Status {
          if (fused)
            return execute_cudnn_conv(cudnn->get(), s, *plan, x.data(), w.data(), y.data(), ws.data(), b.data(), zp);
          KILN_RETURN_IF_ERROR(execute_cudnn_conv(cudnn->get(), s, *plan, x.data(), w.data(), y.data(), ws.data()));
          return launch_conv_epilogue(e, s);
        };
        // median_ms exits on an error: one checked run first.
        Status st = run();
        if (st.is_ok()) st = to_status(cudaStreamSynchronize(s), "cudaStreamSynchronize");
        if (!st.is_ok()) {
          (void)cudaGetLastError();
          std::printf("  %-44s %-8s failed: %s\n", tactic.c_str(), cudnn_engine_source_name(c.source),
                      st.to_string().c_str());
          continue;
        }
        const double ms = median_ms(run, s);
        std::printf("  %-44s %-8s ws %7.1f MiB %9.3f ms %7.1f TFLOP/s\n", tactic.c_str(),
                    cudnn_engine_source_name(c.source), static_cast<double>(c.workspace) / (1 << 20), ms,
                    flops / (ms * 1e-3) / 1e12);
        if (c.heuristic_index >= 0) note(listed, ms, tactic);
        note(overall, ms, tactic);
      }
    }
    if (overall.tactic.empty()) {
      std::printf("  no usable engine config\n");
      continue;
    }
    if (listed.tactic.empty()) {
      std::printf("  the default list has no usable config; the exhaustive search's best: %s\n",
                  overall.tactic.c_str());
      continue;
    }
    report_flops("default list best " + listed.tactic + " " + l.name, listed.ms, flops);
    report_flops("overall best " + overall.tactic + " " + l.name, overall.ms, flops);
    std::printf("  level 5 gain on %s: %.3f -> %.3f ms (%.2fx)\n", l.name, listed.ms, overall.ms,
                listed.ms / overall.ms);
  }
}

KILN_BENCH_SECTION("cudnn_conv", bench_cudnn_conv);

}  // namespace
}  // namespace kiln::cuda
