// kiln.FusedConv's "kiln_igemm" tactic (kiln's implicit-GEMM tensor-core
// kernel for small-channel channels-last layers), on the host only: which
// layers are offered it, which are not, and the workspace it asks for (none).
// The kernel's results are tests/gpu/gpu_stem_conv_test.cpp's.
#ifdef KILN_WITH_CUDA
#include <gtest/gtest.h>

#include <algorithm>

#include "backends/cuda/cuda_kernel.h"
#include "backends/cuda/kernels/stem_conv.cuh"
#include "fake_kernel_query.h"

namespace kiln::cuda {
namespace {

using Dims = std::vector<int64_t>;

// kiln.FusedConv {channels_last=1} with x, w and a bias: ResNet-50's stem
// after space_to_depth_stem (4x4, stride 1, pads 0, Relu) unless a test
// changes its attributes.
struct StemNode : ChannelsLastConvNode {
  StemNode() : ChannelsLastConvNode({"x", "w", "b"}, "Relu") { n->attrs["pads"] = Attribute::of_ints({0, 0, 0, 0}); }
};

bool offers_kiln_igemm(const std::vector<std::string>& tactics) { return offers(tactics, "kiln_igemm"); }

// x [N, 115, 115, 16] (3 channels padded to 4, 2x2 space-to-depth), w [64, 4, 4, 16].
const std::vector<Dims> kStemDims = {{2, 115, 115, 16}, {64, 4, 4, 16}, {64}};

TEST(StemConvTactic, OfferedForTheResNetStem) {
  const KernelDef& def = fused_conv_def();
  StemNode d;
  for (DType t : {DType::kF16, DType::kBF16}) {
    for (size_t limit : {size_t(1), size_t(2), size_t(8)}) {
      const std::vector<std::string> tactics = def.tactics(FakeQuery(*d.n, t, kStemDims, ""), limit);
      ASSERT_FALSE(tactics.empty()) << dtype_name(t) << " limit " << limit;
      EXPECT_EQ(tactics[0], "kiln_igemm") << dtype_name(t);  // group 1: no kiln_dw before it
      EXPECT_LE(tactics.size(), limit);
    }
  }
  // MobileNetV2's stem after space_to_depth_stem: 2x2 on 16 channels to 32.
  const std::vector<std::string> tactics =
      def.tactics(FakeQuery(*d.n, DType::kF16, {{2, 113, 113, 16}, {32, 2, 2, 16}, {32}}, ""), 4);
  ASSERT_FALSE(tactics.empty());
  EXPECT_EQ(tactics[0], "kiln_igemm");
  // Pads, Cin 32 (3 * 3 * 32 = 288 <= 1024) and Cout 128 also qualify.
  d.n->attrs["pads"] = Attribute::of_ints({1, 0, 2, 1});
  EXPECT_TRUE(
      offers_kiln_igemm(def.tactics(FakeQuery(*d.n, DType::kBF16, {{1, 7, 9, 32}, {128, 3, 3, 32}, {128}}, ""), 8)));
}

TEST(StemConvTactic, NotOfferedWhereTheKernelDoesNotApply) {
  const KernelDef& def = fused_conv_def();
  {  // f32
    StemNode d;
    EXPECT_FALSE(offers_kiln_igemm(def.tactics(FakeQuery(*d.n, DType::kF32, kStemDims, ""), 8)));
  }
  {  // stride 2
    StemNode d;
    d.n->attrs["strides"] = Attribute::of_ints({2, 2});
    EXPECT_FALSE(offers_kiln_igemm(def.tactics(FakeQuery(*d.n, DType::kF16, kStemDims, ""), 8)));
  }
  {  // group 2: 32 input channels, 16 per group
    StemNode d;
    d.n->attrs["group"] = Attribute::of_int(2);
    EXPECT_FALSE(
        offers_kiln_igemm(def.tactics(FakeQuery(*d.n, DType::kF16, {{2, 115, 115, 32}, {64, 4, 4, 16}, {64}}, ""), 8)));
  }
  {  // Cin 12: not a multiple of 16
    StemNode d;
    EXPECT_FALSE(
        offers_kiln_igemm(def.tactics(FakeQuery(*d.n, DType::kF16, {{2, 115, 115, 12}, {64, 4, 4, 12}, {64}}, ""), 8)));
  }
  {  // Cout 24: not a multiple of 16
    StemNode d;
    EXPECT_FALSE(
        offers_kiln_igemm(def.tactics(FakeQuery(*d.n, DType::kF16, {{2, 115, 115, 16}, {24, 4, 4, 16}, {24}}, ""), 8)));
  }
  {  // dilation 2
    StemNode d;
    d.n->attrs["dilations"] = Attribute::of_ints({2, 2});
    EXPECT_FALSE(offers_kiln_igemm(def.tactics(FakeQuery(*d.n, DType::kF16, kStemDims, ""), 8)));
  }
  {  // NCHW
    StemNode d;
    d.n->attrs.erase("channels_last");
    EXPECT_FALSE(
        offers_kiln_igemm(def.tactics(FakeQuery(*d.n, DType::kF16, {{2, 16, 115, 115}, {64, 16, 4, 4}, {64}}, ""), 8)));
  }
  {  // no candidates asked for
    StemNode d;
    EXPECT_TRUE(def.tactics(FakeQuery(*d.n, DType::kF16, kStemDims, ""), 0).empty());
  }
}

TEST(StemConvTactic, NeedsNoWorkspace) {
  const KernelDef& def = fused_conv_def();
  StemNode d;
  EXPECT_EQ(def.workspace(FakeQuery(*d.n, DType::kF16, kStemDims, "kiln_igemm")), size_t(0));
  EXPECT_EQ(def.workspace(FakeQuery(*d.n, DType::kBF16, kStemDims, "kiln_igemm")), size_t(0));
}

TEST(StemConvTactic, KernelGeometryLimits) {
  WindowGeometry g;  // the ResNet stem at N = 2
  g.batch = 2, g.in_channels = 16, g.out_channels = 64, g.group = 1;
  g.in[1] = g.in[2] = 115, g.out[1] = g.out[2] = 112, g.kernel[1] = g.kernel[2] = 4;
  EXPECT_TRUE(stem_conv_fits(DType::kF16, g));
  EXPECT_TRUE(stem_conv_fits(DType::kBF16, g));
  EXPECT_FALSE(stem_conv_fits(DType::kF32, g));
  WindowGeometry wide = g;  // Cin * KH * KW = 1024 fits, 1280 does not
  wide.in_channels = 64;
  EXPECT_TRUE(stem_conv_fits(DType::kF16, wide));
  wide.kernel[1] = 5, wide.out[1] = 111;
  EXPECT_FALSE(stem_conv_fits(DType::kF16, wide));
  WindowGeometry many = g;  // Cout 128 fits, 144 does not
  many.out_channels = 128;
  EXPECT_TRUE(stem_conv_fits(DType::kF16, many));
  many.out_channels = 144;
  EXPECT_FALSE(stem_conv_fits(DType::kF16, many));
  WindowGeometry big = g;  // y of 2^31 elements: past 32-bit indexing
  big.batch = 2048, big.in[1] = big.in[2] = 131, big.out[1] = big.out[2] = 128;
  EXPECT_FALSE(stem_conv_fits(DType::kF16, big));
  WindowGeometry three_d = g;
  three_d.in[0] = three_d.out[0] = 4;
  EXPECT_FALSE(stem_conv_fits(DType::kF16, three_d));
}

}  // namespace
}  // namespace kiln::cuda
#endif  // KILN_WITH_CUDA
