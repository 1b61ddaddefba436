// kiln.FusedConv's "cublaslt:<i>" tactics (a 1x1 channels-last layer as one
// cuBLASLt GEMM with the epilogue), on the host only: the workspace they ask
// for where the layer qualifies (cuBLASLt's scratch within the limit) and
// where it does not (what "" asks for), and layers that are never offered
// them. Which qualifying layers are offered them needs cuBLASLt's heuristic,
// hence a GPU: tests/gpu/gpu_conv_gemm_test.cpp checks that and the results.
#ifdef KILN_WITH_CUDA
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "backends/cuda/cuda_kernel.h"
#include "backends/cuda/ops/matmul_plan.h"
#include "fake_kernel_query.h"

namespace kiln::cuda {
namespace {

using Dims = std::vector<int64_t>;

// kiln.FusedConv {channels_last=1} with x, w, a bias and a residual z:
// ResNet-50's layer1 conv3 (1x1, 64 -> 256, Relu) unless a test changes it.
struct GemmNode : ChannelsLastConvNode {
  GemmNode() : ChannelsLastConvNode({"x", "w", "b", "z"}, "Relu") {}
};

bool offers_cublaslt(const std::vector<std::string>& tactics) {
  return std::any_of(tactics.begin(), tactics.end(), [](const std::string& t) { return t.rfind("cublaslt:", 0) == 0; });
}

const std::vector<Dims> kLayer1Dims = {{2, 56, 56, 64}, {256, 1, 1, 64}, {256}, {2, 56, 56, 256}};

TEST(ConvGemmTactic, WorkspaceIsCuBlasLtsScratchWithinTheLimit) {
  const KernelDef& def = fused_conv_def();
  GemmNode d;
  for (DType t : {DType::kF16, DType::kBF16, DType::kF32}) {
    for (const char* tactic : {"cublaslt:0", "cublaslt:3"}) {
      EXPECT_GE(def.workspace(FakeQuery(*d.n, t, kLayer1Dims, tactic)), kCublasLtWorkspace) << tactic;
      // A limit under cuBLASLt's usual scratch: cuBLASLt gets the whole limit.
      EXPECT_EQ(def.workspace(FakeQuery(*d.n, t, kLayer1Dims, tactic, size_t(1) << 20)), size_t(1) << 20) << tactic;
    }
  }
}

// A 3x3 layer under "cublaslt:0" runs as under "": it asks for what "" does.
TEST(ConvGemmTactic, WorkspaceOfALayerThatIsNoGemmIsTheDefaults) {
  const KernelDef& def = fused_conv_def();
  GemmNode d;
  d.n->attrs["pads"] = Attribute::of_ints({1, 1, 1, 1});
  const std::vector<Dims> dims = {{2, 14, 14, 64}, {64, 3, 3, 64}, {64}, {2, 14, 14, 64}};
  EXPECT_EQ(def.workspace(FakeQuery(*d.n, DType::kF16, dims, "cublaslt:0", size_t(1) << 20)),
            def.workspace(FakeQuery(*d.n, DType::kF16, dims, "", size_t(1) << 20)));
}

// Whether the layer runs as one GEMM under "cublaslt:0", seen from the host:
// then it asks for cuBLASLt's scratch (here all of a 1 MiB limit, an amount
// no other route of these small layers asks for) where "" asks for less.
// This needs no GPU, unlike which tactics are offered (cuBLASLt's heuristic
// offers none without one).
bool runs_as_gemm(const Node& n, DType t, const std::vector<Dims>& dims) {
  const KernelDef& def = fused_conv_def();
  const size_t limit = size_t(1) << 20;
  return def.workspace(FakeQuery(n, t, dims, "cublaslt:0", limit)) == limit &&
         def.workspace(FakeQuery(n, t, dims, "", limit)) < limit;
}

// A layer that is no GEMM: neither run as one nor offered the tactic.
void expect_no_gemm(const Node& n, DType t, const std::vector<Dims>& dims, const std::string& what) {
  EXPECT_FALSE(runs_as_gemm(n, t, dims)) << what;
  EXPECT_FALSE(offers_cublaslt(fused_conv_def().tactics(FakeQuery(n, t, dims, ""), 16))) << what;
}

TEST(ConvGemmTactic, NotOfferedWhereTheLayerIsNoGemm) {
  {  // the control: ResNet-50's layer1 conv3 is one
    GemmNode d;
    EXPECT_TRUE(runs_as_gemm(*d.n, DType::kF16, kLayer1Dims));
  }
  {
    GemmNode d;
    d.n->attrs["pads"] = Attribute::of_ints({1, 1, 1, 1});
    expect_no_gemm(*d.n, DType::kF16, {{2, 14, 14, 64}, {64, 3, 3, 64}, {64}, {2, 14, 14, 64}}, "3x3");
  }
  {
    GemmNode d;
    d.n->attrs["strides"] = Attribute::of_ints({2, 2});
    expect_no_gemm(*d.n, DType::kF16, {{2, 56, 56, 64}, {256, 1, 1, 64}, {256}, {2, 28, 28, 256}},
                   "1x1 at stride 2 (ResNet's downsample)");
  }
  {
    GemmNode d;
    d.n->attrs["pads"] = Attribute::of_ints({1, 1, 1, 1});
    expect_no_gemm(*d.n, DType::kF16, {{2, 56, 56, 64}, {256, 1, 1, 64}, {256}, {2, 58, 58, 256}}, "1x1 with pads");
  }
  for (const char* act : {"Clip", "Sigmoid", "Silu"}) {  // Relu6, Sigmoid and Silu: no such epilogue
    GemmNode d;
    d.n->attrs["activation"] = Attribute::of_string(act);
    if (std::string(act) == "Clip") d.n->attrs["activation_params"] = Attribute::of_floats({0.f, 6.f});
    expect_no_gemm(*d.n, DType::kF16, kLayer1Dims, act);
  }
  {
    GemmNode d;
    d.n->attrs["group"] = Attribute::of_int(2);
    expect_no_gemm(*d.n, DType::kF16, {{2, 56, 56, 64}, {256, 1, 1, 32}, {256}, {2, 56, 56, 256}}, "group 2");
  }
  {
    GemmNode d;
    d.n->attrs.erase("channels_last");
    expect_no_gemm(*d.n, DType::kF16, {{2, 64, 56, 56}, {256, 64, 1, 1}, {256}, {2, 256, 56, 56}}, "NCHW");
  }
  {
    GemmNode d;
    expect_no_gemm(*d.n, DType::kF64, kLayer1Dims, "f64");
  }
  {  // one candidate asked for: cuDNN's guess stays the only one (can only
     // fail where cuBLASLt's heuristic offers algorithms: with a GPU)
    GemmNode d;
    EXPECT_FALSE(offers_cublaslt(fused_conv_def().tactics(FakeQuery(*d.n, DType::kF16, kLayer1Dims, ""), 1)));
  }
}

}  // namespace
}  // namespace kiln::cuda
#endif  // KILN_WITH_CUDA
