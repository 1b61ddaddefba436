// space_to_depth_stem: the rewritten stem as IR text, the layers it leaves,
// and the CPU's bytes before and after on inputs whose sums are exact.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "backends/cpu/cpu_executor.h"
#include "builder/builder.h"
#include "ir/dtype.h"
#include "pass_test_util.h"
#include "shared_model_util.h"

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
  // channels padded to 4, so the blocks have 16 channels. One node: no Pad, Reshape or Transpose before the layer.
  EXPECT_NE(out.find("%x_s2d: f16[2,9,10,16] = kiln.SpaceToDepthPad(%x) {channels=4, pads=[4,4,3,2]}\n"),
            std::string::npos)
      << out;
  EXPECT_EQ(out.find("= Pad("), std::string::npos) << out;
  EXPECT_EQ(out.find("= Reshape("), std::string::npos) << out;
  EXPECT_EQ(out.find("= Transpose("), out.rfind("= Transpose(")) << "one Transpose\n" << out;
  EXPECT_NE(out.find("%w_s2d: f16[32,4,4,16]"), std::string::npos) << out;
  EXPECT_NE(out.find("%y_nhwc: f16[2,6,7,32] = kiln.FusedConv(%x_s2d, %w_s2d, %b) {activation=\"Relu\", "
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

TEST(SpaceToDepthStem, PadsOddChannelCountsToEvenWithTheSameBytes) {
  for (const auto& [c, blocks] : {std::pair<int64_t, int64_t>{1, 8}, {2, 8}, {5, 24}, {6, 24}}) {
    auto g = parse_graph(stem("f16", c, 2));
    ASSERT_TRUE(g.is_ok()) << g.status().to_string();
    const Tensor x = eighths_f16({2, c, 11, 14});
    auto before = run_graph_on_cpu(**g, {RunValue::of(x)});
    ASSERT_TRUE(before.is_ok()) << before.status().to_string();
    PassContext ctx;
    ASSERT_TRUE(space_to_depth_stem(**g, ctx).is_ok());
    const std::string out = print_graph(**g);
    EXPECT_NE(out.find(fmt::format("%x_s2d: f16[2,9,10,{}] = kiln.SpaceToDepthPad(%x) {{channels={}, pads=[4,4,3,2]}}",
                                   blocks, blocks / 4)),
              std::string::npos)
        << out;
    EXPECT_NE(out.find(fmt::format("%w_s2d: f16[32,4,4,{}]", blocks)), std::string::npos) << out;
    auto after = run_graph_on_cpu(**g, {RunValue::of(x)});
    ASSERT_TRUE(after.is_ok()) << after.status().to_string() << "\n" << out;
    const Tensor &b = (*before)[0].tensor, &a = (*after)[0].tensor;
    ASSERT_EQ(a.dims(), b.dims());
    EXPECT_EQ(std::memcmp(a.raw(), b.raw(), a.nbytes()), 0) << "c " << c << "\n" << out;
  }
}

// assign_precision's input Cast in front of the stem (to `dtype`), read by
// the stem alone or, with `also_output`, returned too.
std::string cast_stem(const char* dtype, bool also_output) {
  std::string text = stem(dtype, 3, 2);
  const std::string x = fmt::format("%x: {}[2,3,11,14]", dtype);
  text.replace(text.find(x), x.size(), "%in: f32[2,3,11,14]");
  text.insert(text.find("  %y: "),
              fmt::format("  {} = Cast(%in) {{to={}}}\n", x,
                          static_cast<int>(dtype == std::string("f16") ? DType::kF16 : DType::kBF16)));
  if (also_output) text.replace(text.find("return %y"), 9, "return %y, %x");
  return text;
}

Tensor eighths_f32(std::vector<int64_t> dims) {
  Tensor t(DType::kF32, std::move(dims));
  auto* p = t.mutable_data<float>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = static_cast<float>(((i * 37) % 33 - 16) * 0.125);
  return t;
}

// The Cast folds into the one node, which reads the f32 input and casts to
// the stem's dtype; the Cast is left dead, and eliminate_dead_nodes (which
// rewrite_for_cuda runs next) drops it.
TEST(SpaceToDepthStem, ReadsTheInputCastsF32InputAndErasesTheCast) {
  for (const auto& [dtype, code] : {std::pair<const char*, int>{"f16", 10}, {"bf16", 16}}) {
    const std::string text = cast_stem(dtype, false);
    auto g = parse_graph(text);
    ASSERT_TRUE(g.is_ok()) << g.status().to_string() << "\n" << text;
    const Tensor x = eighths_f32({2, 3, 11, 14});
    auto before = run_graph_on_cpu(**g, {RunValue::of(x)});
    ASSERT_TRUE(before.is_ok()) << before.status().to_string();
    PassContext ctx;
    ASSERT_TRUE(space_to_depth_stem(**g, ctx).is_ok());
    ASSERT_TRUE(eliminate_dead_nodes(**g, ctx).is_ok());
    const std::string out = print_graph(**g);
    EXPECT_NE(out.find(fmt::format("%x_s2d: {}[2,9,10,16] = kiln.SpaceToDepthPad(%in) {{channels=4, "
                                   "pads=[4,4,3,2], to={}}}\n",
                                   dtype, code)),
              std::string::npos)
        << out;
    EXPECT_EQ(out.find("Cast("), std::string::npos) << out;
    EXPECT_EQ(out.find("%x:"), std::string::npos) << out;
    auto after = run_graph_on_cpu(**g, {RunValue::of(x)});
    ASSERT_TRUE(after.is_ok()) << after.status().to_string() << "\n" << out;
    const Tensor &b = (*before)[0].tensor, &a = (*after)[0].tensor;
    ASSERT_EQ(a.dims(), b.dims());
    EXPECT_EQ(std::memcmp(a.raw(), b.raw(), a.nbytes()), 0) << out;
  }
}

// A Cast the graph also returns stays; the node reads its output.
TEST(SpaceToDepthStem, KeepsACastWithOtherReaders) {
  auto g = parse_graph(cast_stem("f16", true));
  ASSERT_TRUE(g.is_ok()) << g.status().to_string();
  PassContext ctx;
  ASSERT_TRUE(space_to_depth_stem(**g, ctx).is_ok());
  const std::string out = print_graph(**g);
  EXPECT_NE(out.find("%x: f16[2,3,11,14] = Cast(%in) {to=10}"), std::string::npos) << out;
  EXPECT_NE(out.find("%x_s2d: f16[2,9,10,16] = kiln.SpaceToDepthPad(%x) {channels=4, pads=[4,4,3,2]}\n"),
            std::string::npos)
      << out;
}

// SqueezeNet 1.1 (a 3x3 stride-2 stem over RGB, pads 0) through the builder's
// CUDA rewrites in f16, run on the CPU: the stem reads the f32 input through
// one SpaceToDepthPad (the input Cast folded in: nothing else reads the
// input, and no Pad is left), and the logits match those of the f16 graph before
// the layout rewrites within f16 rounding (the stem sums in another order).
TEST(SpaceToDepthStem, SqueezenetThroughTheCudaRewritesReadsTheF32InputOnce) {
  auto model = load_shared_model("squeezenet1_1");
  ASSERT_TRUE(model.is_ok()) << model.status().to_string();
  if (!*model) GTEST_SKIP() << "no squeezenet1_1";
  Graph& g = (*model)->graph();
  const std::vector<RunValue>& feeds = (*model)->inputs;
  PassContext ctx;
  ASSERT_TRUE(run_passes(g, ctx, default_pipeline()).is_ok());
  auto f16_graph = [&]() -> Expected<std::vector<RunValue>> {  // the f16 graph before the layout rewrites
    auto copy = load_shared_model("squeezenet1_1");
    KILN_RETURN_IF_ERROR(copy.status());
    Graph& c = (**copy).graph();
    PassContext cc;
    KILN_RETURN_IF_ERROR(run_passes(c, cc, default_pipeline()));
    KILN_RETURN_IF_ERROR(assign_precision(c, DType::kF16));
    return run_graph_on_cpu(c, feeds);
  };
  auto before = f16_graph();
  ASSERT_TRUE(before.is_ok()) << before.status().to_string();
  BuildConfig config;
  config.backend = "cuda";
  config.fp16 = true;
  ASSERT_TRUE(rewrite_for_cuda(g, config).is_ok());
  int blocks = 0;
  for (const auto& n : g.nodes()) {
    if (n->op_type == "SpaceToDepthPad") {
      ++blocks;
      EXPECT_EQ(n->inputs[0], g.inputs[0]);
      EXPECT_EQ(n->attr_ints("pads"), (std::vector<int64_t>{0, 0, 0, 0}));
      EXPECT_EQ(n->attr_int("to", 0), static_cast<int64_t>(DType::kF16));
    }
    for (const Value* in : n->inputs)
      if (in == g.inputs[0]) EXPECT_EQ(n->op_type, "SpaceToDepthPad") << "the input is read once";
    EXPECT_NE(n->op_type, "Pad");
  }
  EXPECT_EQ(blocks, 1);
  auto after = run_graph_on_cpu(g, feeds);
  ASSERT_TRUE(after.is_ok()) << after.status().to_string();
  const Tensor &b = (*before)[0].tensor, &a = (*after)[0].tensor;
  ASSERT_EQ(a.dims(), b.dims());
  double largest = 0, worst = 0;
  for (int64_t i = 0; i < b.numel(); ++i) {
    largest = std::max(largest, std::fabs(b.element_as_double(i)));
    worst = std::max(worst, std::fabs(a.element_as_double(i) - b.element_as_double(i)));
  }
  EXPECT_LE(worst, 1e-2 * largest) << "largest logit " << largest;
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
