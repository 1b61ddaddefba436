// fuse_conv_max_pool before and after as IR text, its near misses, the
// pooled FusedConv's shape inference and CPU reference (the convolution then
// the MaxPool kernel), and a ResNet-style stem (7x7/2 conv, Relu, MaxPool
// 3x3/2 pad 1) through rewrite_for_cuda becoming one stem node with the same
// CPU result. (ResNet-50 itself is not in ../shared/models; SqueezeNet 1.1's
// stem pool has ceil_mode 1, a near miss.)
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <map>
#include <string>

#include "backends/cpu/cpu_executor.h"
#include "builder/builder.h"
#include "ir/dtype.h"
#include "pass_test_util.h"
#include "passes/pass_util.h"
#include "shared_model_util.h"

namespace kiln {
namespace {

// A channels-last 1x1 FusedConv 16 -> cout over [1,8,8,16] with bias and
// Relu read by a MaxPool 3x3/2 pad 1 (`pool` adds or overrides its
// attributes, `conv` the convolution's; `extra` adds lines before return).
std::string conv_pool(const std::string& dtype = "f16", const std::string& conv = "", const std::string& pool = "",
                      int64_t cout = 16, const std::string& extra = "", const std::string& outputs = "%p") {
  return fmt::format(
      "graph main(%x: {0}[1,8,8,16]) {{\n"
      "  %w: {0}[{3},1,1,16] = const {0}[{3},1,1,16]{{{4}}}\n"
      "  %b: {0}[{3}] = const {0}[{3}]{{{5}}}\n"
      "  %c: {0}[1,8,8,{3}] = kiln.FusedConv(%x, %w, %b) {{activation=\"Relu\", channels_last=1{1}}}\n"
      "  %p: {0}[1,4,4,{3}] = MaxPool(%c) {{channels_last=1, kernel_shape=[3,3], pads=[1,1,1,1], "
      "strides=[2,2]{2}}}\n"
      "{6}"
      "  return {7}\n"
      "}}\n",
      dtype, conv, pool, cout, eighths(16 * cout, 7), eighths(cout, 5), extra, outputs);
}

std::string fuse(const std::string& text) { return run_pass(fuse_conv_max_pool, text); }

// Multiples of 1/8 in [-2, 2] (exact in every float type).
Tensor input(std::vector<int64_t> dims, DType t, int mul) {
  int64_t n = 1;
  for (int64_t d : dims) n *= d;
  std::vector<double> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[i] = ((i * mul) % 33 - 16) * 0.125;
  return pass_util::float_tensor(t, std::move(dims), v);
}

TEST(FuseConvMaxPool, FusesAChannelsLastConvReadOnlyByItsMaxPool) {
  const std::string out = fuse(conv_pool());
  EXPECT_NE(out.find("%p: f16[1,4,4,16] = kiln.FusedConv(%x, %w, %b) {activation=\"Relu\", channels_last=1, "
                     "pool_kernel=[3,3], pool_pads=[1,1,1,1], pool_strides=[2,2]}\n"),
            std::string::npos)
      << out;
  EXPECT_EQ(out.find("MaxPool"), std::string::npos) << out;
  EXPECT_EQ(out.find("%c:"), std::string::npos) << out;
}

// Each one thing the fused kernel or the pool's semantics rule out.
TEST(FuseConvMaxPool, LeavesNearMissesAlone) {
  const std::map<std::string, std::string> misses = {
      {"the conv's output has a second reader",
       conv_pool("f16", "", "", 16, "  %r: f16[1,8,8,16] = Relu(%c)\n", "%p, %r")},
      {"the conv's output is a graph output", conv_pool("f16", "", "", 16, "", "%p, %c")},
      {"ceil_mode", conv_pool("f16", "", ", ceil_mode=1")},
      {"dilation 2", conv_pool("f16", "", ", dilations=[2,2]")},
      {"a 4x4 pool window", conv_pool("f16", "", ", kernel_shape=[4,4]")},
      {"pool stride 3", conv_pool("f16", "", ", strides=[3,3]")},
      {"f32", conv_pool("f32")},
      {"the conv at stride 2", conv_pool("f16", ", strides=[2,2]")},
      {"48 output channels (the kernel takes 16, 32, 64, 128)", conv_pool("f16", "", "", 48)},
  };
  for (const auto& [why, text] : misses) {
    const std::string out = fuse(text);
    EXPECT_NE(out.find("= MaxPool(%c)"), std::string::npos) << why << "\n" << out;
  }
  // The Indices output.
  std::string indices = conv_pool();
  const std::string pool_line = "  %p: f16[1,4,4,16] = MaxPool(%c)";
  indices.replace(indices.find(pool_line), pool_line.size(), "  %p: f16[1,4,4,16], %i: i64[1,16,4,4] = MaxPool(%c)");
  EXPECT_NE(fuse(indices).find("= MaxPool(%c)"), std::string::npos) << "Indices";
  // NCHW: neither side channels-last.
  const std::string nchw =
      "graph main(%x: f16[1,16,8,8]) {\n"
      "  %w: f16[16,16,1,1] = const f16[16,16,1,1]{" +
      eighths(256, 7) +
      "}\n"
      "  %c: f16[1,16,8,8] = kiln.FusedConv(%x, %w) {activation=\"Relu\"}\n"
      "  %p: f16[1,16,4,4] = MaxPool(%c) {kernel_shape=[3,3], pads=[1,1,1,1], strides=[2,2]}\n"
      "  return %p\n"
      "}\n";
  EXPECT_NE(fuse(nchw).find("= MaxPool(%c)"), std::string::npos) << "NCHW";
  // A residual Z on the conv.
  const std::string residual =
      "graph main(%x: f16[1,8,8,16], %z: f16[1,8,8,16]) {\n"
      "  %w: f16[16,1,1,16] = const f16[16,1,1,16]{" +
      eighths(256, 7) +
      "}\n"
      "  %c: f16[1,8,8,16] = kiln.FusedConv(%x, %w, %w, %z) {channels_last=1}\n"
      "  %p: f16[1,4,4,16] = MaxPool(%c) {channels_last=1, kernel_shape=[3,3], pads=[1,1,1,1], strides=[2,2]}\n"
      "  return %p\n"
      "}\n";
  EXPECT_NE(fuse(residual).find("= MaxPool(%c)"), std::string::npos) << "residual";
}

// The pooled FusedConv's output is the pool's shape; a residual is an error.
TEST(FuseConvMaxPool, PooledFusedConvInfersThePooledShape) {
  auto g = parse_graph(fuse(conv_pool()));
  ASSERT_TRUE(g.is_ok()) << g.status().to_string();
  std::vector<Diagnostic> diags;
  infer_shapes(**g, diags);
  EXPECT_TRUE(diags.empty()) << diags[0].message;
  EXPECT_EQ((*g)->outputs[0]->type.shape.to_string(), "[1,4,4,16]");
  EXPECT_NE(first_diagnostic("graph main(%x: f16[1,8,8,16], %z: f16[1,8,8,16]) {\n"
                             "  %w: f16[16,1,1,16] = const f16[16,1,1,16]{" +
                             eighths(256, 7) +
                             "}\n"
                             "  %p: f16[1,4,4,16] = kiln.FusedConv(%x, %w, %w, %z) {channels_last=1, "
                             "pool_kernel=[3,3], pool_pads=[1,1,1,1], pool_strides=[2,2]}\n"
                             "  return %p\n"
                             "}\n")
                .find("no residual"),
            std::string::npos);
}

// The CPU runs the pooled FusedConv as the convolution then the MaxPool
// kernel: the same bytes as the two nodes it replaces.
TEST(FuseConvMaxPool, CpuResultOfTheFusedNodeIsTheTwoNodes) {
  for (const char* dtype : {"f16", "bf16", "f32"}) {
    const std::string text = conv_pool(dtype);
    auto before = parse_graph(text);
    auto after = parse_graph(text);
    ASSERT_TRUE(before.is_ok() && after.is_ok());
    // f32 is not fused by the pass: set the attributes by hand.
    PassContext ctx;
    ASSERT_TRUE(fuse_conv_max_pool(**after, ctx).is_ok());
    if (std::string(dtype) == "f32") {
      // Written out: the printer elides the 256 weights a printed graph would carry.
      const std::string t = fmt::format(
          "graph main(%x: f32[1,8,8,16]) {{\n"
          "  %w: f32[16,1,1,16] = const f32[16,1,1,16]{{{0}}}\n"
          "  %b: f32[16] = const f32[16]{{{1}}}\n"
          "  %p: f32[1,4,4,16] = kiln.FusedConv(%x, %w, %b) {{activation=\"Relu\", channels_last=1, "
          "pool_kernel=[3,3], pool_pads=[1,1,1,1], pool_strides=[2,2]}}\n"
          "  return %p\n"
          "}}\n",
          eighths(16 * 16, 7), eighths(16, 5));
      after = parse_graph(t);
      ASSERT_TRUE(after.is_ok()) << t;
    }
    const Tensor x = input({1, 8, 8, 16}, *dtype_from_name(dtype), 13);
    auto a = run_graph_on_cpu(**before, {RunValue::of(x)});
    auto b = run_graph_on_cpu(**after, {RunValue::of(x)});
    ASSERT_TRUE(a.is_ok()) << a.status().to_string();
    ASSERT_TRUE(b.is_ok()) << b.status().to_string();
    expect_same_bytes((*a)[0].tensor, (*b)[0].tensor, dtype);
  }
}

// ResNet's stem at a small size through the CUDA rewrites in f16: the conv
// (7x7/2 pad 3 over 3 channels, as space_to_depth_stem's 4x4 over 16) and
// its MaxPool become one FusedConv with pool attributes after the
// SpaceToDepthPad, with the CPU result unchanged.
TEST(FuseConvMaxPool, ResNetStemThroughTheCudaRewritesIsOneNode) {
  const std::string text = fmt::format(
      "graph main(%x: f32[2,3,32,32]) {{\n"
      "  %w: f32[64,3,7,7] = const f32[64,3,7,7]{{{0}}}\n"
      "  %b: f32[64] = const f32[64]{{{1}}}\n"
      "  %c: f32[2,64,16,16] = Conv(%x, %w, %b) {{pads=[3,3,3,3], strides=[2,2]}}\n"
      "  %r: f32[2,64,16,16] = Relu(%c)\n"
      "  %p: f32[2,64,8,8] = MaxPool(%r) {{kernel_shape=[3,3], pads=[1,1,1,1], strides=[2,2]}}\n"
      "  return %p\n"
      "}}\n",
      eighths(64 * 3 * 49, 7), eighths(64, 5));
  auto g = parse_graph(text);
  ASSERT_TRUE(g.is_ok()) << g.status().to_string();
  const Tensor x = input({2, 3, 32, 32}, DType::kF32, 11);
  PassContext passes;
  ASSERT_TRUE(run_passes(**g, passes, default_pipeline()).is_ok());
  BuildConfig config;
  config.backend = "cuda";
  config.fp16 = true;
  ASSERT_TRUE(rewrite_for_cuda(**g, config).is_ok());
  const std::string out = print_graph(**g);
  EXPECT_EQ(out.find("MaxPool"), std::string::npos) << out;
  EXPECT_NE(out.find("pool_kernel=[3,3], pool_pads=[1,1,1,1], pool_strides=[2,2]"), std::string::npos) << out;
  EXPECT_NE(out.find("kiln.SpaceToDepthPad"), std::string::npos) << out;
  int convs = 0;
  for (size_t at = 0; (at = out.find("kiln.FusedConv(", at)) != std::string::npos; ++at) ++convs;
  EXPECT_EQ(convs, 1) << out;
  // The CPU runs the fused graph.
  auto fused_out = run_graph_on_cpu(**g, {RunValue::of(x)});
  ASSERT_TRUE(fused_out.is_ok()) << fused_out.status().to_string();
  EXPECT_EQ((*fused_out)[0].tensor.dims(), (std::vector<int64_t>{2, 64, 8, 8}));
}

// SqueezeNet 1.1's stem MaxPool has ceil_mode 1: the rewrites leave it.
TEST(FuseConvMaxPool, SqueezeNetStemPoolWithCeilModeStays) {
  auto model = load_shared_model("squeezenet1_1");
  ASSERT_TRUE(model.is_ok()) << model.status().to_string();
  if (!*model) GTEST_SKIP() << "no ../shared/models/squeezenet1_1";
  Graph& g = (*model)->graph();
  PassContext passes;
  ASSERT_TRUE(run_passes(g, passes, default_pipeline()).is_ok());
  BuildConfig config;
  config.backend = "cuda";
  config.fp16 = true;
  ASSERT_TRUE(rewrite_for_cuda(g, config).is_ok());
  const std::string out = print_graph(g);
  EXPECT_EQ(out.find("pool_kernel"), std::string::npos);
  EXPECT_NE(out.find("MaxPool"), std::string::npos);
}

}  // namespace
}  // namespace kiln
