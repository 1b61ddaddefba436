// space_to_depth_stem: the rewritten stem as IR text, the layers it leaves,
// and the CPU's bytes before and after on inputs whose sums are exact.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cstring>

#include "backends/cpu/cpu_executor.h"
#include "ir/dtype.h"
#include "pass_test_util.h"

namespace kiln {
namespace {

Tensor eighths_f16(std::vector<int64_t> dims) {
  Tensor t(DType::kF16, std::move(dims));
  auto* p = t.mutable_data<uint16_t>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = f32_to_f16(static_cast<float>(((i * 37) % 33 - 16) * 0.125));
  return t;
}

// A 7x7 stride-2 stem with pads 3 over [2,3,11,14] (odd height: the pad after
// differs per axis) into 32 channels with a bias and Relu.
std::string stem(const char* dtype, int64_t c, int stride) {
  const int64_t h = 11, w = 14, oh = (h + 6 - 7) / stride + 1, ow = (w + 6 - 7) / stride + 1;
  return fmt::format(
      "graph main(%x: {0}[2,{1},{2},{3}]) {{\n"
      "  %w: {0}[32,{1},7,7] = const {0}[32,{1},7,7]{{{4}}}\n"
      "  %b: {0}[32] = const {0}[32]{{{5}}}\n"
      "  %y: {0}[2,32,{6},{7}] = kiln.FusedConv(%x, %w, %b) {{activation=\"Relu\", pads=[3,3,3,3], "
      "strides=[{8},{8}]}}\n"
      "  return %y\n"
      "}}\n",
      dtype, c, h, w, eighths(32 * c * 49, 7), eighths(32, 5), oh, ow, stride);
}

TEST(SpaceToDepthStem, RunsAStride2StemAsAStride1LayerOverBlocksWithTheSameBytes) {
  const std::string text = stem("f16", 3, 2);
  auto g = parse_graph(text);
  ASSERT_TRUE(g.is_ok()) << g.status().to_string();
  const Tensor x = eighths_f16({2, 3, 11, 14});
  auto before = run_graph_on_cpu(**g, {RunValue::of(x)});
  ASSERT_TRUE(before.is_ok()) << before.status().to_string();
  PassContext ctx;
  ASSERT_TRUE(space_to_depth_stem(**g, ctx).is_ok());
  const std::string out = print_graph(**g);
  // Output 6 x 7: 6 - 1 + 4 = 9 blocks high (11 + 4 before + 3 after), 10 wide (14 + 4 + 2); the 3
  // channels padded to 4 in the same Pad, so the blocks have 16 channels and no second Pad.
  EXPECT_NE(out.find("%x_s2d_padded: f16[2,4,18,20] = Pad(%x, %x_s2d_pads)"), std::string::npos) << out;
  EXPECT_NE(out.find("%x_s2d_pads: i64[8] = const i64[8]{0,0,4,4,0,1,3,2}"), std::string::npos) << out;
  EXPECT_NE(out.find("f16[2,9,10,2,2,4] = Transpose(%x_s2d_6d) {perm=[0,2,4,3,5,1]}"), std::string::npos) << out;
  EXPECT_NE(out.find("%x_s2d_blocks: f16[2,9,10,16] = Reshape("), std::string::npos) << out;
  EXPECT_EQ(out.find("= Pad("), out.rfind("= Pad(")) << "one Pad\n" << out;
  EXPECT_NE(out.find("%w_s2d: f16[32,4,4,16]"), std::string::npos) << out;
  EXPECT_NE(out.find("%y_nhwc: f16[2,6,7,32] = kiln.FusedConv(%x_s2d_blocks, %w_s2d, %b) {activation=\"Relu\", "
                     "channels_last=1, dilations=[1,1], kernel_shape=[4,4], pads=[0,0,0,0], strides=[1,1]}"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("%y: f16[2,32,6,7] = Transpose(%y_nhwc) {perm=[0,3,1,2]}"), std::string::npos) << out;
  auto after = run_graph_on_cpu(**g, {RunValue::of(x)});
  ASSERT_TRUE(after.is_ok()) << after.status().to_string() << "\n" << out;
  const Tensor &b = (*before)[0].tensor, &a = (*after)[0].tensor;
  ASSERT_EQ(a.dims(), b.dims());
  EXPECT_EQ(std::memcmp(a.raw(), b.raw(), a.nbytes()), 0) << out;
}

TEST(SpaceToDepthStem, PadsOddChannelCountsToEvenInTheOnePadWithTheSameBytes) {
  for (const auto& [c, blocks] : {std::pair<int64_t, int64_t>{1, 8}, {2, 8}, {5, 24}, {6, 24}}) {
    auto g = parse_graph(stem("f16", c, 2));
    ASSERT_TRUE(g.is_ok()) << g.status().to_string();
    const Tensor x = eighths_f16({2, c, 11, 14});
    auto before = run_graph_on_cpu(**g, {RunValue::of(x)});
    ASSERT_TRUE(before.is_ok()) << before.status().to_string();
    PassContext ctx;
    ASSERT_TRUE(space_to_depth_stem(**g, ctx).is_ok());
    const std::string out = print_graph(**g);
    EXPECT_NE(out.find(fmt::format("%x_s2d_padded: f16[2,{},18,20] = Pad(", blocks / 4)), std::string::npos) << out;
    EXPECT_EQ(out.find("= Pad("), out.rfind("= Pad(")) << "one Pad\n" << out;
    EXPECT_NE(out.find(fmt::format("%w_s2d: f16[32,4,4,{}]", blocks)), std::string::npos) << out;
    auto after = run_graph_on_cpu(**g, {RunValue::of(x)});
    ASSERT_TRUE(after.is_ok()) << after.status().to_string() << "\n" << out;
    const Tensor &b = (*before)[0].tensor, &a = (*after)[0].tensor;
    ASSERT_EQ(a.dims(), b.dims());
    EXPECT_EQ(std::memcmp(a.raw(), b.raw(), a.nbytes()), 0) << "c " << c << "\n" << out;
  }
}

TEST(SpaceToDepthStem, LeavesStride1WideInputsAndF32) {
  for (const std::string& text : {stem("f16", 3, 1), stem("f16", 8, 2), stem("f32", 3, 2)}) {
    auto g = parse_graph(text);
    ASSERT_TRUE(g.is_ok()) << g.status().to_string();
    EXPECT_EQ(run_pass(space_to_depth_stem, text), print_graph(**g));
  }
}

}  // namespace
}  // namespace kiln
