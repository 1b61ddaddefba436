// patchify_conv_to_matmul: the rewritten layer as IR text, the layers it
// leaves, and the CPU's bytes before and after (alone and through the whole
// pipeline, ViT's token flattening included) on inputs whose sums are exact.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cstring>

#include "backends/cpu/cpu_executor.h"
#include "ir/dtype.h"
#include "pass_test_util.h"

namespace kiln {
namespace {

Tensor eighths_f32(std::vector<int64_t> dims) {
  Tensor t(DType::kF32, std::move(dims));
  auto* p = t.mutable_data<float>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = static_cast<float>(((i * 37) % 33 - 16) * 0.125);
  return t;
}

// Conv(%x: f32[N, c, 8, 12], %w: [k, c, kh, kw], %b?) with `attrs`; `tail`
// is the rest of the graph after %y (it returns what it defines).
std::string conv(int64_t c, int64_t k, int64_t kh, int64_t kw, const std::string& attrs, bool bias = true,
                 const std::string& tail = "  return %y\n") {
  const int64_t sh = kh, sw = kw;  // the output dims of the kernel == stride layer
  return fmt::format(
      "graph main(%x: f32[N,{0},8,12]) {{\n"
      "  %w: f32[{1},{0},{2},{3}] = const f32[{1},{0},{2},{3}]{{{4}}}\n"
      "  %b: f32[{1}] = const f32[{1}]{{{5}}}\n"
      "  %y: f32[N,{1},{6},{7}] = Conv(%x, %w{8}) {{{9}}}\n"
      "{10}"
      "}}\n",
      c, k, kh, kw, eighths(k * c * kh * kw, 7), eighths(k, 5), 8 / sh, 12 / sw, bias ? ", %b" : "", attrs, tail);
}

const char* kPatch4 = "kernel_shape=[4,4], strides=[4,4]";

// The CPU's result of `g` at batch `n`.
Tensor run_cpu(const Graph& g, int64_t c, int64_t n) {
  auto out = run_graph_on_cpu(g, {RunValue::of(eighths_f32({n, c, 8, 12}))});
  EXPECT_TRUE(out.is_ok()) << out.status().to_string();
  return out.is_ok() ? (*out)[0].tensor : Tensor();
}

void expect_same_bytes(const Tensor& a, const Tensor& b, const std::string& graph) {
  ASSERT_EQ(a.dims(), b.dims()) << graph;
  ASSERT_EQ(a.dtype(), b.dtype()) << graph;
  EXPECT_EQ(std::memcmp(a.raw(), b.raw(), a.nbytes()), 0) << graph;
}

TEST(PatchifyConvToMatMul, RunsAKernelEqualsStrideLayerAsAGemmOfItsPatches) {
  const std::string out = run_pass(patchify_conv_to_matmul, conv(3, 16, 4, 4, kPatch4));
  EXPECT_EQ(out,
            "graph main(%x: f32[N,3,8,12]) {\n"
            "  %w: f32[16,3,4,4] = const f32[16,3,4,4]\n"
            "  %b: f32[16] = const f32[16]\n"
            "  %y_patch_shape6: i64[6] = const i64[6]{0,3,2,4,3,4}\n"
            "  %y_patch_shape4: i64[4] = const i64[4]{0,2,3,48}\n"
            "  %w_rows: f32[48,16] = const f32[48,16]\n"
            "  %y_patch_6d: f32[N,3,2,4,3,4] = Reshape(%x, %y_patch_shape6)\n"
            "  %y_patch_6d_t: f32[N,2,3,3,4,4] = Transpose(%y_patch_6d) {perm=[0,2,4,1,3,5]}\n"
            "  %y_patch_rows: f32[N,2,3,48] = Reshape(%y_patch_6d_t, %y_patch_shape4)\n"
            "  %y_patch_mm: f32[N,2,3,16] = MatMul(%y_patch_rows, %w_rows)\n"
            "  %y_patch_nhwc: f32[N,2,3,16] = Add(%y_patch_mm, %b)\n"
            "  %y: f32[N,16,2,3] = Transpose(%y_patch_nhwc) {perm=[0,3,1,2]}\n"
            "  return %y\n"
            "}\n");
}

// W [K, C, kh, kw] as [C*kh*kw, K]: row (c, i, j), column k.
TEST(PatchifyConvToMatMul, TheWeightRowsAreEachPatchElementAndColumnsEachFilter) {
  auto g = parse_graph(conv(3, 16, 4, 4, kPatch4));
  ASSERT_TRUE(g.is_ok()) << g.status().to_string();
  const Tensor w = *(*g)->find_value("w")->constant;
  PassContext ctx;
  ASSERT_TRUE(patchify_conv_to_matmul(**g, ctx).is_ok());
  const Value* rows = (*g)->find_value("w_rows");
  ASSERT_TRUE(rows && rows->constant);
  ASSERT_EQ(rows->constant->dims(), (std::vector<int64_t>{48, 16}));
  for (int64_t k = 0; k < 16; ++k)
    for (int64_t e = 0; e < 48; ++e)  // e = (c * 4 + i) * 4 + j
      ASSERT_EQ(rows->constant->element_as_double(e * 16 + k), w.element_as_double(k * 48 + e)) << k << " " << e;
}

TEST(PatchifyConvToMatMul, WithoutABiasTheMatMulWritesTheChannelsLastResult) {
  const std::string out = run_pass(patchify_conv_to_matmul, conv(3, 16, 4, 4, kPatch4, /*bias=*/false));
  EXPECT_NE(out.find("  %y_patch_nhwc: f32[N,2,3,16] = MatMul(%y_patch_rows, %w_rows)\n"
                     "  %y: f32[N,16,2,3] = Transpose(%y_patch_nhwc) {perm=[0,3,1,2]}\n"),
            std::string::npos)
      << out;
  EXPECT_EQ(out.find("Add("), std::string::npos) << out;
}

// kernel_shape may be left to W's dims, and auto_pad VALID pads nothing.
TEST(PatchifyConvToMatMul, TakesTheKernelFromTheWeightAndAutoPadValid) {
  for (const char* attrs : {"strides=[4,4]", "auto_pad=\"VALID\", strides=[4,4]",
                            "dilations=[1,1], group=1, pads=[0,0,0,0], strides=[4,4]"}) {
    const std::string out = run_pass(patchify_conv_to_matmul, conv(3, 16, 4, 4, attrs));
    EXPECT_NE(out.find("= MatMul(%y_patch_rows, %w_rows)"), std::string::npos) << attrs << "\n" << out;
  }
}

// A non-square patch (2x4 over [8, 12]: 4 x 3 patches of 24 elements).
TEST(PatchifyConvToMatMul, RewritesANonSquarePatch) {
  const std::string out = run_pass(patchify_conv_to_matmul, conv(3, 16, 2, 4, "strides=[2,4]"));
  EXPECT_NE(out.find("%y_patch_shape6: i64[6] = const i64[6]{0,3,4,2,3,4}"), std::string::npos) << out;
  EXPECT_NE(out.find("%y_patch_rows: f32[N,4,3,24] = Reshape("), std::string::npos) << out;
  EXPECT_NE(out.find("%y: f32[N,16,4,3] = Transpose(%y_patch_nhwc) {perm=[0,3,1,2]}"), std::string::npos) << out;
}

// Each near miss differs from a layer the pass rewrites in one thing.
TEST(PatchifyConvToMatMul, LeavesLayersThatAreNotNonOverlappingPatchesOrTooSmall) {
  const std::vector<std::pair<const char*, std::string>> cases = {
      {"pads", conv(3, 16, 4, 4, "pads=[1,1,1,1], strides=[4,4]")},
      {"dilation", conv(3, 16, 4, 4, "dilations=[2,2], strides=[4,4]")},
      {"kernel != stride", conv(3, 16, 4, 4, "strides=[2,2]")},
      {"kernel != stride on one axis", conv(3, 16, 4, 4, "strides=[4,2]")},
      {"auto_pad SAME", conv(3, 16, 4, 4, "auto_pad=\"SAME_UPPER\", strides=[4,4]")},
      {"8 channels (cuDNN's NHWC convolution reads them in place)", conv(8, 16, 4, 4, kPatch4)},
      {"1x1 (already a GEMM over NHWC pixels)", conv(4, 16, 1, 1, "")},
      {"K < 16", conv(3, 8, 4, 4, kPatch4)},
      {"C*kh*kw < 16", conv(3, 16, 2, 2, "strides=[2,2]")},
      {"W not a multiple of kw", conv(3, 16, 4, 5, "strides=[4,5]")},
      {"H not a multiple of kh", conv(3, 16, 3, 4, "strides=[3,4]")},
  };
  for (const auto& [why, text] : cases) {
    auto g = parse_graph(text);
    ASSERT_TRUE(g.is_ok()) << why << ": " << g.status().to_string();
    EXPECT_EQ(run_pass(patchify_conv_to_matmul, text), print_graph(**g)) << why;
  }
}

TEST(PatchifyConvToMatMul, LeavesGroupsAWeightComputedAtRunTimeAndUnknownSpatialDims) {
  const std::vector<std::pair<const char*, std::string>> cases = {
      {"group 2",
       "graph main(%x: f32[N,4,8,8]) {\n"
       "  %w: f32[16,2,4,4] = const f32[16,2,4,4]\n"
       "  %y: f32[N,16,2,2] = Conv(%x, %w) {group=2, strides=[4,4]}\n"
       "  return %y\n"
       "}\n"},
      {"weight an input",
       "graph main(%x: f32[N,3,8,8], %w: f32[16,3,4,4]) {\n"
       "  %y: f32[N,16,2,2] = Conv(%x, %w) {strides=[4,4]}\n"
       "  return %y\n"
       "}\n"},
      {"symbolic height",
       "graph main(%x: f32[N,3,H,8]) {\n"
       "  %w: f32[16,3,4,4] = const f32[16,3,4,4]\n"
       "  %y: f32[N,16,?,2] = Conv(%x, %w) {strides=[4,4]}\n"
       "  return %y\n"
       "}\n"},
      {"1-D",
       "graph main(%x: f32[N,3,16]) {\n"
       "  %w: f32[16,3,8] = const f32[16,3,8]\n"
       "  %y: f32[N,16,2] = Conv(%x, %w) {strides=[8]}\n"
       "  return %y\n"
       "}\n"},
  };
  for (const auto& [why, text] : cases) {
    auto g = parse_graph(text);
    ASSERT_TRUE(g.is_ok()) << why << ": " << g.status().to_string();
    EXPECT_EQ(run_pass(patchify_conv_to_matmul, text), print_graph(**g)) << why;
  }
}

// The pass alone, at batch 1 and 3 of one graph with a dynamic batch.
TEST(PatchifyConvToMatMul, KeepsTheCpuBytesAtEveryBatch) {
  for (const std::string& text :
       {conv(3, 16, 4, 4, kPatch4), conv(3, 16, 2, 4, "strides=[2,4]"), conv(3, 16, 4, 4, kPatch4, /*bias=*/false)}) {
    auto g = parse_graph(text);
    ASSERT_TRUE(g.is_ok()) << g.status().to_string();
    const Tensor before1 = run_cpu(**g, 3, 1), before3 = run_cpu(**g, 3, 3);
    PassContext ctx;
    ASSERT_TRUE(patchify_conv_to_matmul(**g, ctx).is_ok());
    const std::string out = print_graph(**g);
    ASSERT_NE(out.find("MatMul"), std::string::npos) << out;
    expect_same_bytes(run_cpu(**g, 3, 1), before1, out);
    expect_same_bytes(run_cpu(**g, 3, 3), before3, out);
  }
}

// ViT's patch embedding: the layer's output flattened to [N, K, patches]
// and transposed to tokens. Through the whole pipeline the two Transposes
// cancel and the bias joins the GEMM: the tokens are the FusedMatMul's rows.
TEST(PatchifyConvToMatMul, ViTsTokensAreTheGemmOutputAfterThePipeline) {
  const std::string text = conv(3, 16, 4, 4, kPatch4, true,
                                "  %s: i64[3] = const i64[3]{0,16,6}\n"
                                "  %r: f32[N,16,6] = Reshape(%y, %s)\n"
                                "  %t: f32[N,6,16] = Transpose(%r) {perm=[0,2,1]}\n"
                                "  %z: f32[N,6,16] = Relu(%t)\n"
                                "  return %z\n");
  auto g = parse_graph(text);
  ASSERT_TRUE(g.is_ok()) << g.status().to_string();
  const Tensor before1 = run_cpu(**g, 3, 1), before3 = run_cpu(**g, 3, 3);
  PassContext ctx;
  ASSERT_TRUE(run_passes(**g, ctx, default_pipeline()).is_ok());
  const std::string out = print_graph(**g);
  EXPECT_EQ(out,
            "graph main(%x: f32[N,3,8,12]) {\n"
            "  %b: f32[16] = const f32[16]\n"
            "  %y_patch_shape6: i64[6] = const i64[6]{0,3,2,4,3,4}\n"
            "  %y_patch_shape4: i64[4] = const i64[4]{0,2,3,48}\n"
            "  %w_rows: f32[48,16] = const f32[48,16]\n"
            "  %y_patch_nhwc_merged_shape: i64[3] = const i64[3]{0,6,16}\n"
            "  %y_patch_6d: f32[N,3,2,4,3,4] = Reshape(%x, %y_patch_shape6)\n"
            "  %y_patch_6d_t: f32[N,2,3,3,4,4] = Transpose(%y_patch_6d) {perm=[0,2,4,1,3,5]}\n"
            "  %y_patch_rows: f32[N,2,3,48] = Reshape(%y_patch_6d_t, %y_patch_shape4)\n"
            "  %z.unshaped: f32[N,2,3,16] = kiln.FusedMatMul(%y_patch_rows, %w_rows, %b) {activation=\"Relu\"}\n"
            "  %z: f32[N,6,16] = Reshape(%z.unshaped, %y_patch_nhwc_merged_shape)\n"
            "  return %z\n"
            "}\n");
  expect_same_bytes(run_cpu(**g, 3, 1), before1, out);
  expect_same_bytes(run_cpu(**g, 3, 3), before3, out);
}

// A Relu after the layer (a BatchNorm before it is folded into W and B by
// then) joins the GEMM's epilogue once the NCHW Transpose sinks below it.
TEST(PatchifyConvToMatMul, AReluAfterTheLayerFusesIntoTheGemm) {
  const std::string text = conv(3, 16, 4, 4, kPatch4, true,
                                "  %z: f32[N,16,2,3] = Relu(%y)\n"
                                "  return %z\n");
  auto g = parse_graph(text);
  ASSERT_TRUE(g.is_ok()) << g.status().to_string();
  const Tensor before = run_cpu(**g, 3, 2);
  PassContext ctx;
  ASSERT_TRUE(run_passes(**g, ctx, default_pipeline()).is_ok());
  const std::string out = print_graph(**g);
  EXPECT_NE(out.find("= kiln.FusedMatMul(%y_patch_rows, %w_rows, %b) {activation=\"Relu\"}"), std::string::npos) << out;
  EXPECT_EQ(out.find("Conv"), std::string::npos) << out;
  expect_same_bytes(run_cpu(**g, 3, 2), before, out);
}

// A 2x2 stride-2 layer over few channels is both a patch layer and a
// stride-2 stem; space_to_depth_stem takes only 3x3 and larger kernels, and
// this pass runs first (default pipeline, before the CUDA rewrites), so the
// GEMM wins and the stem pass finds no convolution left.
TEST(PatchifyConvToMatMul, WinsOverSpaceToDepthStemOnA2x2Stride2Stem) {
  const std::string text =
      "graph main(%x: f16[N,4,8,12]) {\n"
      "  %w: f16[32,4,2,2] = const f16[32,4,2,2]\n"
      "  %y: f16[N,32,4,6] = Conv(%x, %w) {strides=[2,2]}\n"
      "  return %y\n"
      "}\n";
  auto g = parse_graph(text);
  ASSERT_TRUE(g.is_ok()) << g.status().to_string();
  PassContext ctx;
  ASSERT_TRUE(run_passes(**g, ctx, default_pipeline()).is_ok());
  const std::string patched = print_graph(**g);
  EXPECT_NE(patched.find("= MatMul(%y_patch_rows, %w_rows)"), std::string::npos) << patched;
  ASSERT_TRUE(space_to_depth_stem(**g, ctx).is_ok());
  EXPECT_EQ(print_graph(**g), patched);
}

}  // namespace
}  // namespace kiln
