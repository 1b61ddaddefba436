// kiln.ExpandDepthwiseConv's CUDA tactics on the host only: the fused
// kernel "kiln_expand_dw" first where its plan takes the layer, then the
// unfused pair ("unfused", "unfused:<te>/<td>" over FusedConv's own
// tactics), and the workspace each asks for (the expanded tensor ahead of
// the parts' own; the fused kernel alone where that is over the limit).
// The kernel's results are tests/gpu/gpu_expand_depthwise_conv_test.cpp's.
#ifdef KILN_WITH_CUDA
#include <gtest/gtest.h>

#include "backends/cuda/cuda_kernel.h"
#include "fake_kernel_query.h"

namespace kiln::cuda {
namespace {

using Dims = std::vector<int64_t>;

// MobileNetV2's features.3 (24 -> 144, 3x3 stride 1, 56 x 56) at batch 2.
struct FusedNode {
  Graph g;
  Node* n = nullptr;
  FusedNode() {
    n = g.add_node("ExpandDepthwiseConv", "kiln");
    for (const char* name : {"x", "w1", "b1", "w2", "b2"}) n->inputs.push_back(g.add_value(name));
    n->outputs.push_back(g.add_value("y"));
    n->attrs["pads"] = Attribute::of_ints({1, 1, 1, 1});
    for (const char* prefix : {"", "expand_"}) {
      n->attrs[std::string(prefix) + "activation"] = Attribute::of_string("Clip");
      n->attrs[std::string(prefix) + "activation_params"] = Attribute::of_floats({0.f, 6.f});
    }
  }
};
const std::vector<Dims> kDims = {{2, 56, 56, 24}, {144, 1, 1, 24}, {144}, {144, 3, 3, 1}, {144}};
constexpr size_t kExpandedBytes = size_t(2) * 56 * 56 * 144 * 2;  // a multiple of 256

const KernelDef& def() {
  const KernelDef* d = KernelRegistry::instance().find("kiln", "ExpandDepthwiseConv");
  EXPECT_NE(d, nullptr);
  return *d;
}

TEST(ExpandDepthwiseTactic, FusedKernelFirstThenTheUnfusedPair) {
  FusedNode f;
  for (DType t : {DType::kF16, DType::kBF16}) {
    const std::vector<std::string> tactics = def().tactics(FakeQuery(*f.n, t, kDims, ""), 8);
    ASSERT_GE(tactics.size(), size_t(2)) << dtype_name(t);
    EXPECT_LE(tactics.size(), size_t(8));
    EXPECT_EQ(tactics[0], "kiln_expand_dw");
    EXPECT_EQ(tactics[1], "unfused");
    for (size_t i = 2; i < tactics.size(); ++i) EXPECT_EQ(tactics[i].rfind("unfused:", 0), 0u) << tactics[i];
  }
  EXPECT_EQ(def().tactics(FakeQuery(*f.n, DType::kF16, kDims, ""), 1), std::vector<std::string>{"kiln_expand_dw"});
  EXPECT_TRUE(def().tactics(FakeQuery(*f.n, DType::kF16, kDims, ""), 0).empty());
}

// f32 (and a kernel the plan declines): the unfused pair only.
TEST(ExpandDepthwiseTactic, UnfusedOnlyWhereThePlanDeclines) {
  FusedNode f;
  std::vector<std::string> tactics = def().tactics(FakeQuery(*f.n, DType::kF32, kDims, ""), 8);
  ASSERT_FALSE(tactics.empty());
  EXPECT_EQ(tactics[0], "unfused");
  EXPECT_FALSE(offers(tactics, "kiln_expand_dw"));
  f.n->attrs["strides"] = Attribute::of_ints({1, 2});
  tactics = def().tactics(FakeQuery(*f.n, DType::kF16, kDims, ""), 8);
  EXPECT_FALSE(offers(tactics, "kiln_expand_dw"));
}

// Every route asks for the expanded tensor's bytes and the parts' own
// beyond them (the fused kernel too, so misaligned pointers can run
// unfused); under a limit below the expanded tensor only the fused kernel
// is left, needing nothing.
TEST(ExpandDepthwiseTactic, WorkspaceHoldsTheExpandedTensorWithinTheLimit) {
  FusedNode f;
  for (const char* tactic : {"", "kiln_expand_dw", "unfused", "unfused:/kiln_dw"})
    EXPECT_GE(def().workspace(FakeQuery(*f.n, DType::kF16, kDims, tactic)), kExpandedBytes) << tactic;
  const size_t small = kExpandedBytes - 256;
  for (const char* tactic : {"", "kiln_expand_dw", "unfused"})
    EXPECT_EQ(def().workspace(FakeQuery(*f.n, DType::kF16, kDims, tactic, small)), size_t(0)) << tactic;
  EXPECT_EQ(def().tactics(FakeQuery(*f.n, DType::kF16, kDims, "", small), 8),
            std::vector<std::string>{"kiln_expand_dw"});
}

}  // namespace
}  // namespace kiln::cuda
#endif  // KILN_WITH_CUDA
