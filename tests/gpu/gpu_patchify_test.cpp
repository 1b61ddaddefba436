// ViT's patch embedding (a 8x8 stride-8 Conv over 3 channels, flattened to
// tokens) through the default pipeline and the CUDA rewrites, as `kiln build`
// makes it: patchify_conv_to_matmul's patch gather (a 6-D Transpose) and
// FusedMatMul (4-D rows by a shared B) run on the GPU at batch 1 and 3 and
// match the CPU's result of the unoptimized graph: f32 (TF32 off) within
// 1e-4, f16 within 1e-2, of the largest output.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "builder/builder.h"
#include "gpu_test_util.h"
#include "ir/parser.h"
#include "passes/pass.h"

namespace kiln::gpu_test {
namespace {

const char* kPatchEmbedding =
    "graph main(%x: f32[N,3,32,48]) {\n"
    "  %w: f32[64,3,8,8] = const f32[64,3,8,8]\n"
    "  %b: f32[64] = const f32[64]\n"
    "  %s: i64[3] = const i64[3]{0,64,24}\n"
    "  %y: f32[N,64,4,6] = Conv(%x, %w, %b) {kernel_shape=[8,8], strides=[8,8]}\n"
    "  %r: f32[N,64,24] = Reshape(%y, %s)\n"
    "  %t: f32[N,24,64] = Transpose(%r) {perm=[0,2,1]}\n"
    "  return %t\n"
    "}\n";

std::shared_ptr<Graph> patch_embedding() {
  auto g = parse_graph(kPatchEmbedding);
  EXPECT_TRUE(g.is_ok()) << g.status().to_string();
  if (!g.is_ok()) return nullptr;
  Value *w = (*g)->find_value("w"), *b = (*g)->find_value("b");
  w->constant = std::make_shared<const Tensor>(random_tensor(DType::kF32, {64, 3, 8, 8}, -1.f, 1.f, 2));
  b->constant = std::make_shared<const Tensor>(random_tensor(DType::kF32, {64}, -1.f, 1.f, 3));
  for (const auto& n : (*g)->nodes()) n->opset = 21;
  return *g;
}

void expect_within(const Tensor& gpu, const Tensor& cpu, double fraction, const std::string& what) {
  ASSERT_EQ(gpu.dims(), cpu.dims()) << what;
  double largest = 0, worst = 0;
  for (int64_t i = 0; i < cpu.numel(); ++i) {
    largest = std::max(largest, std::fabs(cpu.element_as_double(i)));
    const double d = std::fabs(gpu.element_as_double(i) - cpu.element_as_double(i));
    worst = std::isnan(d) ? INFINITY : std::max(worst, d);
  }
  EXPECT_LE(worst, fraction * largest) << what << ": largest output " << largest;
}

void check(bool fp16) {
  auto reference = patch_embedding(), g = patch_embedding();
  ASSERT_TRUE(reference && g);
  PassContext ctx;
  ASSERT_TRUE(run_passes(*g, ctx, default_pipeline()).is_ok());
  BuildConfig config;
  config.backend = "cuda";
  config.fp16 = fp16;
  ASSERT_TRUE(rewrite_for_cuda(*g, config).is_ok());
  int matmuls = 0, convs = 0;
  for (const auto& n : g->nodes()) {
    matmuls += n->op_type == "FusedMatMul";
    convs += n->op_type == "Conv" || n->op_type == "FusedConv";
  }
  EXPECT_EQ(matmuls, 1);
  EXPECT_EQ(convs, 0);
  cuda::RunOptions options;
  options.allow_tf32 = false;
  for (int64_t batch : {1, 3}) {
    const Tensor x = random_tensor(DType::kF32, {batch, 3, 32, 48}, -1.f, 1.f, 1);
    auto cpu = run_graph_on_cpu(*reference, {RunValue::of(x)});
    ASSERT_TRUE(cpu.is_ok()) << cpu.status().to_string();
    auto gpu = cuda::run_graph_on_cuda(*g, {RunValue::of(x)}, options);
    ASSERT_TRUE(gpu.is_ok()) << gpu.status().to_string();
    expect_within((*gpu)[0].tensor, (*cpu)[0].tensor, fp16 ? 1e-2 : 1e-4,
                  fmt::format("{} batch {}", fp16 ? "f16" : "f32", batch));
  }
}

TEST_F(GpuTest, PatchEmbeddingAsAGemmMatchesCpuInF32) { check(false); }

TEST_F(GpuTest, PatchEmbeddingAsAGemmMatchesCpuInF16) { check(true); }

}  // namespace
}  // namespace kiln::gpu_test
