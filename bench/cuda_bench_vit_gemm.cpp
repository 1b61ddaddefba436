// kiln_cuda_bench --only vit_gemm: ViT-B/16's four GEMMs at batch 64 (M =
// 64 x 197 tokens, f16) on cuBLASLt, the best of the heuristic's top 16
// algorithms for each epilogue kiln could use. It answers two questions the
// session-14 profile raised (docs/performance.md):
//   - what the Gelu epilogue costs: the MLP's up-projection ran 0.114 ms
//     with the tanh-Gelu epilogue, where the down-projection, the same flops,
//     ran 0.088 ms with a bias alone;
//   - what reading the residual in the epilogue (beta = 1, C = the residual)
//     costs, against SkipLayerNormalization reading it afterwards (0.028 ms,
//     at memory speed): the output projection and the down-projection are
//     each followed by one.
#include <cstdio>
#include <string>

#include "backends/cuda/cublaslt_matmul.h"
#include "cuda_bench_util.h"

namespace kiln::cuda {
namespace {

struct VitGemm {
  const char* name;
  int64_t k, n;
};

void bench_vit_gemm(cudaStream_t s) {
  auto lt = CublasLt::create();
  if (!lt.is_ok()) {
    std::printf("vit_gemm: %s\n", lt.status().to_string().c_str());
    return;
  }
  const int64_t m = 64 * 197;
  const size_t ws = 32 << 20;
  DeviceBuffer workspace = filled(ws);
  const VitGemm gemms[] = {{"QKV 768->2304", 768, 2304},
                           {"out proj 768->768", 768, 768},
                           {"MLP up 768->3072", 768, 3072},
                           {"MLP down 3072->768", 3072, 768}};
  for (const VitGemm& g : gemms) {
    DeviceBuffer a = filled(m * g.k * 2), b = filled(g.k * g.n * 2), bias = filled(g.n * 2), c = filled(m * g.n * 2),
                 d = filled(m * g.n * 2);
    fill_random(a, DType::kF16, m * g.k);
    fill_random(b, DType::kF16, g.k * g.n);
    fill_random(bias, DType::kF16, g.n);
    fill_random(c, DType::kF16, m * g.n);
    struct Variant {
      const char* what;
      MatmulActivation act;
      bool residual;
    };
    for (const Variant v : {Variant{"bias", MatmulActivation::kNone, false},
                            Variant{"bias + tanh Gelu", MatmulActivation::kGeluTanh, false},
                            Variant{"bias + residual C", MatmulActivation::kNone, true}}) {
      MatmulShape shape;
      shape.dtype = DType::kF16, shape.m = m, shape.n = g.n, shape.k = g.k;
      shape.has_bias = true, shape.activation = v.act, shape.has_c = v.residual;
      auto algos = matmul_algos(*lt, shape, 16, ws);
      const std::string name = std::string("ViT b64 ") + g.name + " " + v.what;
      if (!algos.is_ok() || algos->empty()) {
        std::printf("%-44s no algorithm: %s\n", name.c_str(),
                    algos.is_ok() ? "empty list" : algos.status().to_string().c_str());
        continue;
      }
      MatmulArgs args{a.data(), b.data(), v.residual ? c.data() : nullptr, bias.data(),
                      d.data(), 1.f,      v.residual ? 1.f : 0.f,          workspace.data(),
                      ws};
      const Fastest best = fastest_of(algos->size(), [&](size_t i) {
        return median_ms([&] { return launch_matmul(*lt, shape, args, &(*algos)[i], s); }, s);
      });
      report_flops(name + " (#" + std::to_string(best.index) + " of " + std::to_string(algos->size()) + ")", best.ms,
                   2.0 * m * g.n * g.k);
    }
  }
}

KILN_BENCH_SECTION("vit_gemm", bench_vit_gemm);

}  // namespace
}  // namespace kiln::cuda
