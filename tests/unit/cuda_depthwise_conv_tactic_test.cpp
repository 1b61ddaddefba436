// kiln.FusedConv's "kiln_dw", "kiln_dw_strip" and "kiln_dw_tile" tactics
// (kiln's own channels-last depthwise kernel and its strip and tile
// variants), on the host only: which layers are offered them ("kiln_dw"
// first in the list, the strip second where more than two candidates are
// asked for and the kernel is 3x3 or 5x5 at W stride 1 or 2, the tile next
// where a candidate is left for cuDNN and the layer is f16/bf16 with C % 8
// == 0 and a 3x3, 5x5 or 7x7 kernel at equal strides 1 or 2), which are not,
// the workspace they ask for and the tile kernel's blocking.
// The kernel's results are tests/gpu/gpu_depthwise_conv_test.cpp's.
#ifdef KILN_WITH_CUDA
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>

#include "backends/cuda/cuda_kernel.h"
#include "backends/cuda/kernels/depthwise_conv.cuh"
#include "fake_kernel_query.h"

namespace kiln::cuda {
namespace {

using Dims = std::vector<int64_t>;

// kiln.FusedConv {channels_last=1} with x, w and a bias, MobileNetV2's
// depthwise layer's attributes unless a test changes them.
struct DepthwiseNode : ChannelsLastConvNode {
  explicit DepthwiseNode(int64_t group) : ChannelsLastConvNode({"x", "w", "b"}, "Clip") {
    n->attrs["group"] = Attribute::of_int(group);
    n->attrs["pads"] = Attribute::of_ints({1, 1, 1, 1});
    n->attrs["activation_params"] = Attribute::of_floats({0.f, 6.f});
  }
};

bool offers_kiln_dw(const std::vector<std::string>& tactics) {
  return offers(tactics, "kiln_dw") || offers(tactics, "kiln_dw_strip");
}

// MobileNetV2's features.3 conv.1: 3x3, 144 channels, 56x56, f16.
const std::vector<Dims> kMobileNetDims = {{2, 56, 56, 144}, {144, 3, 3, 1}, {144}};

TEST(DepthwiseConvTactic, OfferedFirstForAChannelsLastDepthwiseLayer) {
  const KernelDef& def = fused_conv_def();
  DepthwiseNode d(144);
  for (DType t : {DType::kF16, DType::kBF16, DType::kF32}) {
    for (size_t limit : {size_t(1), size_t(2), size_t(8)}) {
      const std::vector<std::string> tactics = def.tactics(FakeQuery(*d.n, t, kMobileNetDims, ""), limit);
      ASSERT_FALSE(tactics.empty()) << dtype_name(t) << " limit " << limit;
      EXPECT_EQ(tactics[0], "kiln_dw") << dtype_name(t);
      EXPECT_LE(tactics.size(), limit);
      // The strip variant second, once cuDNN's best guess has its place.
      if (limit > 2) {
        ASSERT_GE(tactics.size(), size_t(2));
        EXPECT_EQ(tactics[1], "kiln_dw_strip") << dtype_name(t);
      } else {
        EXPECT_FALSE(offers(tactics, "kiln_dw_strip")) << dtype_name(t) << " limit " << limit;
      }
    }
  }
  // Stride 2 with asymmetric pads (which channels-last cuDNN declines) and 5x5.
  d.n->attrs["strides"] = Attribute::of_ints({2, 2});
  d.n->attrs["pads"] = Attribute::of_ints({0, 0, 1, 1});
  std::vector<std::string> tactics = def.tactics(FakeQuery(*d.n, DType::kF16, kMobileNetDims, ""), 4);
  ASSERT_GE(tactics.size(), size_t(2));
  EXPECT_EQ(tactics[0], "kiln_dw");
  EXPECT_EQ(tactics[1], "kiln_dw_strip");
  d.n->attrs["pads"] = Attribute::of_ints({2, 2, 2, 2});
  d.n->attrs["group"] = Attribute::of_int(12);
  tactics = def.tactics(FakeQuery(*d.n, DType::kF16, {{2, 28, 28, 12}, {12, 5, 5, 1}}, ""), 4);
  ASSERT_GE(tactics.size(), size_t(2));
  EXPECT_EQ(tactics[0], "kiln_dw");
  EXPECT_EQ(tactics[1], "kiln_dw_strip");
}

// A kernel the strip variant does not specialise (7x7, or W stride 3) keeps
// "kiln_dw" without the strip, which would only run the same kernel again.
TEST(DepthwiseConvTactic, StripOfferedOnlyWhereItDiffers) {
  const KernelDef& def = fused_conv_def();
  DepthwiseNode d(144);
  d.n->attrs["pads"] = Attribute::of_ints({3, 3, 3, 3});
  std::vector<std::string> tactics =
      def.tactics(FakeQuery(*d.n, DType::kF16, {{2, 56, 56, 144}, {144, 7, 7, 1}, {144}}, ""), 8);
  EXPECT_TRUE(offers(tactics, "kiln_dw"));
  EXPECT_FALSE(offers(tactics, "kiln_dw_strip"));
  d.n->attrs["pads"] = Attribute::of_ints({1, 1, 1, 1});
  d.n->attrs["strides"] = Attribute::of_ints({1, 3});
  tactics = def.tactics(FakeQuery(*d.n, DType::kF16, kMobileNetDims, ""), 8);
  EXPECT_TRUE(offers(tactics, "kiln_dw"));
  EXPECT_FALSE(offers(tactics, "kiln_dw_strip"));
  d.n->attrs["strides"] = Attribute::of_ints({3, 2});  // H stride is free
  EXPECT_TRUE(offers(def.tactics(FakeQuery(*d.n, DType::kF16, kMobileNetDims, ""), 8), "kiln_dw_strip"));
}

TEST(DepthwiseConvTactic, NotOfferedWhereTheKernelDoesNotApply) {
  const KernelDef& def = fused_conv_def();
  {  // dilation 2
    DepthwiseNode d(144);
    d.n->attrs["dilations"] = Attribute::of_ints({2, 2});
    d.n->attrs["pads"] = Attribute::of_ints({2, 2, 2, 2});
    EXPECT_FALSE(offers_kiln_dw(def.tactics(FakeQuery(*d.n, DType::kF16, kMobileNetDims, ""), 8)));
  }
  {  // channel multiplier 2: 288 output channels from 144 groups
    DepthwiseNode d(144);
    EXPECT_FALSE(
        offers_kiln_dw(def.tactics(FakeQuery(*d.n, DType::kF16, {{2, 56, 56, 144}, {288, 3, 3, 1}, {288}}, ""), 8)));
  }
  {  // grouped, not depthwise
    DepthwiseNode d(36);
    EXPECT_FALSE(
        offers_kiln_dw(def.tactics(FakeQuery(*d.n, DType::kF16, {{2, 56, 56, 144}, {144, 3, 3, 4}, {144}}, ""), 8)));
  }
  {  // NCHW
    DepthwiseNode d(144);
    d.n->attrs.erase("channels_last");
    EXPECT_FALSE(
        offers_kiln_dw(def.tactics(FakeQuery(*d.n, DType::kF16, {{2, 144, 56, 56}, {144, 1, 3, 3}, {144}}, ""), 8)));
  }
  {  // f64
    DepthwiseNode d(144);
    EXPECT_FALSE(offers_kiln_dw(def.tactics(FakeQuery(*d.n, DType::kF64, kMobileNetDims, ""), 8)));
  }
  {  // the transposed weights over the workspace limit
    DepthwiseNode d(144);
    EXPECT_FALSE(offers_kiln_dw(def.tactics(FakeQuery(*d.n, DType::kF16, kMobileNetDims, "", 1024), 8)));
  }
  {  // no candidates asked for
    DepthwiseNode d(144);
    EXPECT_TRUE(def.tactics(FakeQuery(*d.n, DType::kF16, kMobileNetDims, ""), 0).empty());
  }
}

// The transposed weights, rounded up to 256 bytes: 3 * 3 * 144 f16 = 2592 bytes.
TEST(DepthwiseConvTactic, WorkspaceHoldsTheTransposedWeights) {
  const KernelDef& def = fused_conv_def();
  DepthwiseNode d(144);
  for (const char* tactic : {"kiln_dw", "kiln_dw_strip", "kiln_dw_tile"}) {
    EXPECT_EQ(def.workspace(FakeQuery(*d.n, DType::kF16, kMobileNetDims, tactic)), size_t(2816)) << tactic;
    EXPECT_EQ(def.workspace(FakeQuery(*d.n, DType::kF32, kMobileNetDims, tactic)), size_t(5376)) << tactic;
  }
}

TEST(DepthwiseConvTactic, KernelGeometryLimits) {
  WindowGeometry g;
  g.batch = 2, g.in_channels = g.out_channels = g.group = 8;
  g.in[1] = g.in[2] = 9, g.out[1] = g.out[2] = 9, g.kernel[1] = g.kernel[2] = 3;
  g.pad_begin[1] = g.pad_begin[2] = g.pad_end[1] = g.pad_end[2] = 1;
  EXPECT_TRUE(depthwise_conv_fits(DType::kF16, g));
  EXPECT_FALSE(depthwise_conv_fits(DType::kF64, g));
  WindowGeometry big = g;  // x of 2^31 elements: past 32-bit indexing
  big.batch = 1, big.in_channels = big.out_channels = big.group = 2;
  big.in[1] = big.in[2] = big.out[1] = big.out[2] = 32768;
  EXPECT_FALSE(depthwise_conv_fits(DType::kF16, big));
  WindowGeometry three_d = g;
  three_d.in[0] = three_d.out[0] = 4;
  EXPECT_FALSE(depthwise_conv_fits(DType::kF16, three_d));
  EXPECT_EQ(depthwise_conv_workspace(DType::kF32, g), size_t(512));  // 3 * 3 * 8 * 4 = 288 bytes
  // The strip kernel: 3x3 or 5x5 (square), W stride 1 or 2, any H stride.
  EXPECT_TRUE(depthwise_conv_strip_applies(g));
  WindowGeometry strip = g;
  strip.kernel[1] = strip.kernel[2] = 5, strip.stride[1] = 3, strip.stride[2] = 2;
  EXPECT_TRUE(depthwise_conv_strip_applies(strip));
  strip.stride[2] = 3;
  EXPECT_FALSE(depthwise_conv_strip_applies(strip));
  strip.stride[2] = 1, strip.kernel[2] = 3;  // 5x3
  EXPECT_FALSE(depthwise_conv_strip_applies(strip));
  strip.kernel[1] = strip.kernel[2] = 7;
  EXPECT_FALSE(depthwise_conv_strip_applies(strip));
}

// The tile variant after kiln_dw and the strip, one place left for cuDNN.
TEST(DepthwiseConvTactic, TileOfferedAfterTheOthersWhereACandidateIsLeft) {
  const KernelDef& def = fused_conv_def();
  DepthwiseNode d(144);
  for (DType t : {DType::kF16, DType::kBF16}) {
    EXPECT_FALSE(offers(def.tactics(FakeQuery(*d.n, t, kMobileNetDims, ""), 3), "kiln_dw_tile")) << dtype_name(t);
    const std::vector<std::string> tactics = def.tactics(FakeQuery(*d.n, t, kMobileNetDims, ""), 4);
    ASSERT_GE(tactics.size(), size_t(3)) << dtype_name(t);
    EXPECT_EQ(tactics[2], "kiln_dw_tile") << dtype_name(t);
  }
  // 7x7 (no strip): second, with room for cuDNN at 3.
  d.n->attrs["pads"] = Attribute::of_ints({3, 3, 3, 3});
  std::vector<std::string> tactics =
      def.tactics(FakeQuery(*d.n, DType::kF16, {{2, 56, 56, 144}, {144, 7, 7, 1}, {144}}, ""), 3);
  ASSERT_GE(tactics.size(), size_t(2));
  EXPECT_EQ(tactics[1], "kiln_dw_tile");
  // Not for f32, C % 8 != 0, unequal strides or stride 3.
  d.n->attrs["pads"] = Attribute::of_ints({1, 1, 1, 1});
  EXPECT_FALSE(offers(def.tactics(FakeQuery(*d.n, DType::kF32, kMobileNetDims, ""), 8), "kiln_dw_tile"));
  DepthwiseNode twelve(12);
  EXPECT_FALSE(offers(def.tactics(FakeQuery(*twelve.n, DType::kF16, {{2, 28, 28, 12}, {12, 3, 3, 1}, {12}}, ""), 8),
                      "kiln_dw_tile"));
  d.n->attrs["strides"] = Attribute::of_ints({1, 2});
  EXPECT_FALSE(offers(def.tactics(FakeQuery(*d.n, DType::kF16, kMobileNetDims, ""), 8), "kiln_dw_tile"));
  d.n->attrs["strides"] = Attribute::of_ints({3, 3});
  EXPECT_FALSE(offers(def.tactics(FakeQuery(*d.n, DType::kF16, kMobileNetDims, ""), 8), "kiln_dw_tile"));
}

WindowGeometry depthwise_geometry(int64_t batch, int64_t hw, int64_t c, int64_t k, int64_t stride) {
  WindowGeometry g;
  g.batch = batch, g.in_channels = g.out_channels = g.group = c;
  g.in[1] = g.in[2] = hw;
  g.out[1] = g.out[2] = (hw + 2 * (k / 2) - k) / stride + 1;
  g.kernel[1] = g.kernel[2] = k, g.stride[1] = g.stride[2] = stride;
  g.pad_begin[1] = g.pad_begin[2] = g.pad_end[1] = g.pad_end[2] = k / 2;
  return g;
}

// Every blocking fits the kernel's limits (256 threads, 48 KB, a warp at
// least unless the tile is the whole image), its halo covers the tile, and
// MobileNetV2's and EfficientNet-B0's layers give at least two blocks per
// SM of an H100 (264) at batch 128, and at batch 1 down to 14x14 images.
TEST(DepthwiseConvTactic, TilePlanFitsAndFillsTheGpu) {
  struct Layer {
    int64_t hw, c, k, stride;
  };
  const Layer layers[] = {{112, 32, 3, 1}, {112, 96, 3, 2}, {56, 144, 3, 1}, {56, 144, 3, 2}, {28, 192, 3, 1},
                          {28, 192, 3, 2}, {14, 384, 3, 1}, {14, 576, 3, 1}, {14, 576, 3, 2}, {7, 960, 3, 1},
                          {56, 144, 5, 2}, {28, 240, 5, 1}, {14, 480, 5, 1}, {14, 672, 5, 2}, {7, 1152, 5, 1},
                          {9, 8, 7, 1},    {9, 8, 7, 2},    {1, 8, 3, 1}};
  for (const Layer& l : layers) {
    for (int64_t batch : {1, 128}) {
      const WindowGeometry g = depthwise_geometry(batch, l.hw, l.c, l.k, l.stride);
      ASSERT_TRUE(depthwise_conv_tile_applies(DType::kF16, g));
      const DwTilePlan p = depthwise_conv_tile_plan(g);
      const std::string what = fmt::format("{}x{}x{} k{} s{} batch {}", l.hw, l.hw, l.c, l.k, l.stride, batch);
      ASSERT_GT(p.threads, 0) << what;
      EXPECT_EQ(p.threads, p.g * p.th * p.strips) << what;
      EXPECT_LE(p.threads, 256) << what;
      EXPECT_EQ((l.c / 8) % p.g, 0) << what;
      EXPECT_LE(p.smem_bytes, size_t(48 * 1024)) << what;
      EXPECT_EQ(p.halo_rows, (p.th - 1) * l.stride + l.k) << what;
      EXPECT_EQ(p.halo_cols, (p.strips * p.r - 1) * l.stride + l.k) << what;
      EXPECT_GE(p.pitch, p.halo_cols * p.g) << what;
      if (p.th < g.out[1] || p.strips * p.r < g.out[2]) EXPECT_GE(p.threads, 32) << what;
      // The real layers at batch 128 fill two blocks an SM; batch 1 and the
      // 8-channel corner cases have too little work to.
      if (batch == 128 && l.c >= 32) EXPECT_GE(p.blocks, 264) << what;
    }
  }
}

}  // namespace
}  // namespace kiln::cuda
#endif  // KILN_WITH_CUDA
