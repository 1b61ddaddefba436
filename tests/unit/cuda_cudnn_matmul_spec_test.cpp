// kiln.FusedMatMul's cuDNN tactics, on the host only: the product cuDNN is
// asked for (backends/cuda/ops/cudnn_matmul.h), which operands it declines,
// the tactic names, and the kernel's callbacks where no plan can exist. The
// GPU side is tests/gpu/gpu_matmul_ops_test.cpp (FusedMatMulCudnn*).
#ifdef KILN_WITH_CUDA
#include <gtest/gtest.h>

#include "backends/cuda/cuda_kernel.h"
#include "backends/cuda/device.h"
#include "backends/cuda/ops/cudnn_matmul.h"
#include "backends/cuda/ops/matmul_plan.h"
#include "fake_kernel_query.h"

namespace kiln::cuda {
namespace {

using Dims = std::vector<int64_t>;

std::optional<CudnnMatmulSpec> spec(const Dims& a, const Dims& b, DType t = DType::kF16, bool bias = true,
                                    BiasActivation act = BiasActivation::kGelu) {
  return cudnn_matmul_spec(t, a, b, bias, act, size_t(1) << 30);
}

TEST(CudnnMatmulSpec, SharedWeightFoldsTheBatchIntoRows) {
  const auto s = spec({3, 197, 768}, {768, 3072});  // ViT-B/16's first MLP product
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(s->batch, 1);
  EXPECT_EQ(s->m, 3 * 197);
  EXPECT_EQ(s->k, 768);
  EXPECT_EQ(s->n, 3072);
  EXPECT_FALSE(s->b_batched);
  EXPECT_TRUE(s->has_bias);
  EXPECT_EQ(s->activation, BiasActivation::kGelu);
  // Batch dims of 1 and a B with leading 1s fold the same way.
  const auto ones = spec({2, 1, 5, 64}, {1, 64, 32}, DType::kBF16);
  ASSERT_TRUE(ones.has_value());
  EXPECT_EQ(ones->m, 10);
  EXPECT_EQ(ones->batch, 1);
  EXPECT_EQ(ones->dtype, DType::kBF16);
}

TEST(CudnnMatmulSpec, TwoAndOneDimensionalAAreRows) {
  const auto two = spec({33, 64}, {64, 16});
  ASSERT_TRUE(two.has_value());
  EXPECT_EQ(two->m, 33);
  EXPECT_EQ(two->batch, 1);
  const auto one = spec({40}, {40, 24});
  ASSERT_TRUE(one.has_value());
  EXPECT_EQ(one->m, 1);
  EXPECT_EQ(one->n, 24);
}

TEST(CudnnMatmulSpec, BatchedWeightKeepsTheBatch) {
  const auto s = spec({3, 16, 40}, {3, 40, 24});
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(s->batch, 3);
  EXPECT_EQ(s->m, 16);
  EXPECT_TRUE(s->b_batched);
}

TEST(CudnnMatmulSpec, DeclinesWhatItDoesNotTake) {
  EXPECT_TRUE(spec({8, 16}, {16, 8}).has_value());
  EXPECT_FALSE(spec({8, 16}, {16, 8}, DType::kF32).has_value());  // f16/bf16 only
  EXPECT_FALSE(spec({8, 16}, {16, 8}, DType::kF64).has_value());
  EXPECT_FALSE(spec({8, 16}, {16, 8}, DType::kI32).has_value());
  EXPECT_FALSE(spec({3, 0}, {0, 4}).has_value());              // K = 0: the activation of the bias
  EXPECT_FALSE(spec({0, 16}, {16, 8}).has_value());            // no rows
  EXPECT_FALSE(spec({2, 0, 8, 16}, {16, 8}).has_value());      // an empty batch
  EXPECT_FALSE(spec({8, 16}, {17, 8}).has_value());            // K mismatch
  EXPECT_FALSE(spec({16, 40}, {3, 40, 24}).has_value());       // one A for every B
  EXPECT_FALSE(spec({2, 1, 5, 8}, {1, 3, 8, 6}).has_value());  // broadcast both ways
  EXPECT_FALSE(spec({}, {8, 8}).has_value());                  // a scalar
}

TEST(CudnnMatmulSpec, KeyNamesEverythingThePlanDependsOn) {
  const CudnnMatmulSpec base = *spec({4, 32}, {32, 16});
  std::vector<CudnnMatmulSpec> variants(7, base);
  variants[0].dtype = DType::kBF16;
  variants[1].has_bias = false;
  variants[2].activation = BiasActivation::kGeluTanh;
  variants[3].workspace_limit = 0;
  variants[4].engine_index = 1;
  variants[5].b_batched = true;
  variants[6].m = 8;
  for (size_t i = 0; i < variants.size(); ++i) EXPECT_NE(variants[i].key(), base.key()) << "variant " << i;
  EXPECT_EQ(spec({4, 32}, {32, 16})->key(), base.key());
}

TEST(CudnnMatmulSpec, TacticNamesParseStrictly) {
  EXPECT_EQ(cudnn_matmul_tactic_index("cudnn:0"), 0);
  EXPECT_EQ(cudnn_matmul_tactic_index("cudnn:12"), 12);
  EXPECT_EQ(cudnn_matmul_tactic_index(cudnn_matmul_tactic(7)), 7);
  EXPECT_EQ(cudnn_matmul_tactic(3), "cudnn:3");
  for (const char* other : {"", "cublaslt:0", "cudnn", "cudnn:", "cudnn:-1", "cudnn:1x", "cudnn: 1", "xcudnn:1",
                            "cudnn_fused:0", "cudnn:99999999999"})
    EXPECT_FALSE(cudnn_matmul_tactic_index(other).has_value()) << other;
}

struct FusedMatMulNode {
  Graph g;
  Node* n = nullptr;
  FusedMatMulNode() {
    n = g.add_node("FusedMatMul", "kiln");
    for (const char* name : {"a", "b", "bias"}) n->inputs.push_back(g.add_value(name));
    n->outputs.push_back(g.add_value("y"));
    n->attrs["activation"] = Attribute::of_string("Gelu");
  }
};

bool has_cudnn_tactic(const std::vector<std::string>& tactics) {
  for (const std::string& t : tactics)
    if (cudnn_matmul_tactic_index(t)) return true;
  return false;
}

// f32 never gets a cudnn tactic, and its workspace is cuBLASLt's alone even
// when asked for one (the run then takes cuBLASLt's path).
TEST(CudnnMatmulSpec, FusedMatMulOffersNoCudnnTacticForF32) {
  const KernelDef* def = KernelRegistry::instance().find("kiln", "FusedMatMul");
  ASSERT_NE(def, nullptr);
  ASSERT_TRUE(def->tactics && def->workspace);
  FusedMatMulNode f;
  const std::vector<Dims> dims = {{64, 128}, {128, 256}, {256}};
  EXPECT_FALSE(has_cudnn_tactic(def->tactics(FakeQuery(*f.n, DType::kF32, dims, ""), 8)));
  EXPECT_EQ(def->workspace(FakeQuery(*f.n, DType::kF32, dims, "cudnn:0")), kCublasLtWorkspace);
}

// Where no GPU is usable no plan is built: no cudnn tactic, no cuDNN
// workspace, and no crash.
TEST(CudnnMatmulSpec, NoPlanWithoutADevice) {
  if (device_count() > 0) GTEST_SKIP() << "a GPU is present (tests/gpu covers the plans)";
  const auto s = spec({64, 128}, {128, 256});
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(cudnn_matmul_plan(*s), nullptr);
  EXPECT_EQ(cudnn_matmul_engine_count(*s, 4), 0);
  const KernelDef* def = KernelRegistry::instance().find("kiln", "FusedMatMul");
  ASSERT_NE(def, nullptr);
  FusedMatMulNode f;
  const std::vector<Dims> dims = {{64, 128}, {128, 256}, {256}};
  EXPECT_FALSE(has_cudnn_tactic(def->tactics(FakeQuery(*f.n, DType::kF16, dims, ""), 8)));
  EXPECT_EQ(def->workspace(FakeQuery(*f.n, DType::kF16, dims, "cudnn:0")), kCublasLtWorkspace);
}

// A plan is cached by its key: ViT's MLP product at another batch, engine,
// N, K, type or epilogue has another one.
TEST(CudnnMatmulSpec, KeyKeepsBatchEngineAndTheProduct) {
  const auto a = spec({3, 197, 768}, {768, 3072}), b = spec({7, 197, 768}, {768, 3072});
  ASSERT_TRUE(a.has_value() && b.has_value());
  EXPECT_NE(a->key(), b->key());
  CudnnMatmulSpec c = *a;
  c.engine_index = 3;
  EXPECT_NE(a->key(), c.key());
  for (const auto& other :
       {spec({3, 197, 768}, {768, 768}), spec({3, 197, 384}, {384, 3072}),
        spec({3, 197, 768}, {768, 3072}, DType::kBF16), spec({3, 197, 768}, {768, 3072}, DType::kF16, false),
        spec({3, 197, 768}, {768, 3072}, DType::kF16, true, BiasActivation::kRelu),
        spec({3, 197, 768}, {3, 768, 3072})}) {
    ASSERT_TRUE(other.has_value());
    EXPECT_NE(other->key(), a->key()) << other->key();
  }
}

}  // namespace
}  // namespace kiln::cuda
#endif  // KILN_WITH_CUDA
