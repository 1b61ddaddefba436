// sink_transposes, assign_conv_layout and assign_pool_layout, before and
// after, as IR text; the channels-last graph against the NCHW one on the CPU.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <random>

#include "backends/cpu/cpu_executor.h"
#include "ir/parser.h"
#include "ir/printer.h"
#include "onnx/importer.h"
#include "onnx/value_file.h"
#include "pass_test_util.h"
#include "passes/pass.h"

namespace kiln {
namespace {

std::string sink(const std::string& text) { return run_pass(sink_transposes, text); }

TEST(SinkTransposes, MovesBelowAReluAndAnAddOfTwoTransposes) {
  EXPECT_EQ(sink("graph main(%x: f32[1,2,4,4], %y: f32[1,2,4,4]) {\n"
                 "  %t: f32[1,4,4,2] = Transpose(%x) {perm=[0,2,3,1]}\n"
                 "  %u: f32[1,4,4,2] = Transpose(%y) {perm=[0,2,3,1]}\n"
                 "  %r: f32[1,4,4,2] = Relu(%t)\n"
                 "  %s: f32[1,4,4,2] = Add(%r, %u)\n"
                 "  return %s\n"
                 "}\n"),
            "graph main(%x: f32[1,2,4,4], %y: f32[1,2,4,4]) {\n"
            "  %r_inner: f32[1,2,4,4] = Relu(%x)\n"
            "  %s_inner: f32[1,2,4,4] = Add(%r_inner, %y)\n"
            "  %s: f32[1,4,4,2] = Transpose(%s_inner) {perm=[0,2,3,1]}\n"
            "  return %s\n"
            "}\n");
}

// The NHWC pair around a Relu between two layers cancels outright.
TEST(SinkTransposes, CancelsAgainstTheInverseBelow) {
  EXPECT_EQ(sink("graph main(%x: f32[1,2,3,4]) {\n"
                 "  %t: f32[1,3,4,2] = Transpose(%x) {perm=[0,2,3,1]}\n"
                 "  %r: f32[1,3,4,2] = Relu(%t)\n"
                 "  %b: f32[1,2,3,4] = Transpose(%r) {perm=[0,3,1,2]}\n"
                 "  %c: f32[1,2,3,4] = Sigmoid(%b)\n"
                 "  return %c\n"
                 "}\n"),
            "graph main(%x: f32[1,2,3,4]) {\n"
            "  %r_inner: f32[1,2,3,4] = Relu(%x)\n"
            "  %c: f32[1,2,3,4] = Sigmoid(%r_inner)\n"
            "  return %c\n"
            "}\n");
}

// A constant operand is permuted by the inverse: the NHWC constant
// [n,h,w,c] = [1,2,1,2] {1,2,3,4} becomes NCHW [1,2,2,1].
TEST(SinkTransposes, PermutesAConstantOperand) {
  std::string out = sink(
      "graph main(%x: f32[1,2,2,1]) {\n"
      "  %k: f32[1,2,1,2] = const f32[1,2,1,2]{1,2,3,4}\n"
      "  %t: f32[1,2,1,2] = Transpose(%x) {perm=[0,2,3,1]}\n"
      "  %m: f32[1,2,1,2] = Mul(%t, %k)\n"
      "  return %m\n"
      "}\n");
  // NCHW[0,c,h,0] = NHWC[0,h,0,c]: c=0: {1,3}, c=1: {2,4}.
  EXPECT_NE(out.find("const f32[1,2,2,1]{1,3,2,4}"), std::string::npos) << out;
  EXPECT_NE(out.find("%m: f32[1,2,1,2] = Transpose(%m_inner) {perm=[0,2,3,1]}"), std::string::npos) << out;
}

// A squeeze-excitation scale [N,C,1,1] is small: it gets its own Transpose.
TEST(SinkTransposes, TransposesASmallOperand) {
  std::string out = sink(
      "graph main(%x: f32[1,16,4,4], %s: f32[1,1,1,16]) {\n"
      "  %t: f32[1,4,4,16] = Transpose(%x) {perm=[0,2,3,1]}\n"
      "  %m: f32[1,4,4,16] = Mul(%t, %s)\n"
      "  return %m\n"
      "}\n");
  EXPECT_NE(out.find("%s_permuted: f32[1,16,1,1] = Transpose(%s) {perm=[0,3,1,2]}"), std::string::npos) << out;
  EXPECT_NE(out.find("%m_inner: f32[1,16,4,4] = Mul(%x, %s_permuted)"), std::string::npos) << out;
}

// SqueezeNet's fire module: the two expand layers' NHWC outputs are joined
// along C, which is axis 3 under the Transpose.
TEST(SinkTransposes, MovesBelowAConcatAlongThePermutedAxis) {
  EXPECT_EQ(sink("graph main(%a: f32[1,2,4,3], %b: f32[1,2,4,5]) {\n"
                 "  %ta: f32[1,3,2,4] = Transpose(%a) {perm=[0,3,1,2]}\n"
                 "  %tb: f32[1,5,2,4] = Transpose(%b) {perm=[0,3,1,2]}\n"
                 "  %c: f32[1,8,2,4] = Concat(%ta, %tb) {axis=1}\n"
                 "  return %c\n"
                 "}\n"),
            "graph main(%a: f32[1,2,4,3], %b: f32[1,2,4,5]) {\n"
            "  %c_inner: f32[1,2,4,8] = Concat(%a, %b) {axis=3}\n"
            "  %c: f32[1,8,2,4] = Transpose(%c_inner) {perm=[0,3,1,2]}\n"
            "  return %c\n"
            "}\n");
}

// A ReduceMean head over an NHWC tensor's H and W reduces the NCHW one's
// (axes 1, 2 through perm [0,2,3,1] are 2, 3); the Transpose left is of the
// reduced tensor.
TEST(SinkTransposes, MovesBelowAReductionThatKeepsItsRank) {
  EXPECT_EQ(sink("graph main(%x: f32[1,2,3,4]) {\n"
                 "  %k: i64[2] = const i64[2]{1,2}\n"
                 "  %t: f32[1,3,4,2] = Transpose(%x) {perm=[0,2,3,1]}\n"
                 "  %m: f32[1,1,1,2] = ReduceMean(%t, %k)\n"
                 "  return %m\n"
                 "}\n"),
            "graph main(%x: f32[1,2,3,4]) {\n"
            "  %k_1: i64[2] = const i64[2]{2,3}\n"
            "  %m_inner: f32[1,2,1,1] = ReduceMean(%x, %k_1)\n"
            "  %m: f32[1,1,1,2] = Transpose(%m_inner) {perm=[0,2,3,1]}\n"
            "  return %m\n"
            "}\n");
}

// Without keepdims the rank drops and the perm has no meaning below.
TEST(SinkTransposes, StaysAboveAReductionThatDropsDims) {
  const char* text =
      "graph main(%x: f32[1,2,3,4]) {\n"
      "  %k: i64[2] = const i64[2]{1,2}\n"
      "  %t: f32[1,3,4,2] = Transpose(%x) {perm=[0,2,3,1]}\n"
      "  %m: f32[1,2] = ReduceMean(%t, %k) {keepdims=0}\n"
      "  return %m\n"
      "}\n";
  EXPECT_EQ(sink(text), text);
}

const char* kStays =
    "graph main(%x: f32[1,2,4,4], %w: f32[2,4]) {\n"
    "  %t: f32[1,4,4,2] = Transpose(%x) {perm=[0,2,3,1]}\n"
    "  %r: f32[1,4,4,2] = Relu(%t)\n"
    "  %mm: f32[1,4,4,4] = MatMul(%t, %w)\n"
    "  return %r, %mm\n"
    "}\n";

// The Transpose is also read by a MatMul: moving it would add a second one.
TEST(SinkTransposes, StaysWhenAnotherReaderNeedsIt) { EXPECT_EQ(sink(kStays), kStays); }

// A large operand in the other layout would need a Transpose as big as the output.
TEST(SinkTransposes, StaysBesideALargeOperand) {
  const char* text =
      "graph main(%x: f32[1,2,4,4], %y: f32[1,4,4,2]) {\n"
      "  %t: f32[1,4,4,2] = Transpose(%x) {perm=[0,2,3,1]}\n"
      "  %a: f32[1,4,4,2] = Add(%t, %y)\n"
      "  return %a\n"
      "}\n";
  EXPECT_EQ(sink(text), text);
}

// ---- assign_conv_layout ----

namespace layout {

std::string assign(const std::string& text) { return run_pass(assign_conv_layout, text); }

// Both layout passes, as the CUDA builder runs them.
Status assign_layouts(Graph& g, PassContext& ctx) {
  KILN_RETURN_IF_ERROR(assign_conv_layout(g, ctx));
  return assign_pool_layout(g, ctx);
}

std::string assign_both(const std::string& text) { return run_pass(assign_layouts, text); }

// Two f16 layers and a residual: one Transpose in (x), one out (y), none between.
const char* kTwoLayers =
    "graph main(%x: f16[1,2,3,3]) {\n"
    "  %w: f16[2,2,1,1] = const f16[2,2,1,1]{1,2,3,4}\n"
    "  %a: f16[1,2,3,3] = kiln.FusedConv(%x, %w) {activation=\"Relu\"}\n"
    "  %y: f16[1,2,3,3] = kiln.FusedConv(%a, %w, _, %a) {activation=\"Relu\"}\n"
    "  return %y\n"
    "}\n";

TEST(AssignConvLayout, RunsConsecutiveLayersChannelsLast) {
  const std::string out = assign(kTwoLayers);
  EXPECT_EQ(out,
            "graph main(%x: f16[1,2,3,3]) {\n"
            "  %w_nhwc: f16[2,1,1,2] = const f16[2,1,1,2]{1,2,3,4}\n"
            "  %x_nhwc: f16[1,3,3,2] = Transpose(%x) {perm=[0,2,3,1]}\n"
            "  %a_nhwc: f16[1,3,3,2] = kiln.FusedConv(%x_nhwc, %w_nhwc) {activation=\"Relu\", channels_last=1}\n"
            "  %y_nhwc: f16[1,3,3,2] = kiln.FusedConv(%a_nhwc, %w_nhwc, _, %a_nhwc) {activation=\"Relu\", "
            "channels_last=1}\n"
            "  %y: f16[1,2,3,3] = Transpose(%y_nhwc) {perm=[0,3,1,2]}\n"
            "  return %y\n"
            "}\n");
}

// ResNet's downsample branch: a Conv with nothing to fuse after it.
TEST(AssignConvLayout, RunsAPlainConvChannelsLastAsAFusedConv) {
  EXPECT_EQ(assign("graph main(%x: f16[1,2,3,3]) {\n"
                   "  %w: f16[2,2,1,1] = const f16[2,2,1,1]{1,2,3,4}\n"
                   "  %y: f16[1,2,2,2] = Conv(%x, %w) {strides=[2,2]}\n"
                   "  return %y\n"
                   "}\n"),
            "graph main(%x: f16[1,2,3,3]) {\n"
            "  %w: f16[2,2,1,1] = const f16[2,2,1,1]{1,2,3,4}\n"
            "  %w_nhwc: f16[2,1,1,2] = const f16[2,1,1,2]{1,2,3,4}\n"
            "  %x_nhwc: f16[1,3,3,2] = Transpose(%x) {perm=[0,2,3,1]}\n"
            "  %y_nhwc: f16[1,2,2,2] = kiln.FusedConv(%x_nhwc, %w_nhwc) {channels_last=1, strides=[2,2]}\n"
            "  %y: f16[1,2,2,2] = Transpose(%y_nhwc) {perm=[0,3,1,2]}\n"
            "  return %y\n"
            "}\n");
}

TEST(AssignConvLayout, LeavesF32Layers) {
  const char* f32 =
      "graph main(%x: f32[1,2,3,3]) {\n"
      "  %w: f32[2,2,1,1] = const f32[2,2,1,1]{1,2,3,4}\n"
      "  %y: f32[1,2,3,3] = kiln.FusedConv(%x, %w) {activation=\"Relu\"}\n"
      "  return %y\n"
      "}\n";
  EXPECT_EQ(assign(f32), f32);
}

// A depthwise layer's weight [C, 1, R, S] becomes [C, R, S, 1]: here
// [2,1,1,2]{1,2,3,4} -> [2,1,2,1], the same bytes. (The NCHW weight, now
// unread, goes with the builder's next erase.)
TEST(AssignConvLayout, RunsDepthwiseLayersChannelsLast) {
  EXPECT_EQ(assign("graph main(%x: f16[1,2,3,3]) {\n"
                   "  %w: f16[2,1,1,2] = const f16[2,1,1,2]{1,2,3,4}\n"
                   "  %y: f16[1,2,3,2] = kiln.FusedConv(%x, %w) {group=2}\n"
                   "  return %y\n"
                   "}\n"),
            "graph main(%x: f16[1,2,3,3]) {\n"
            "  %w: f16[2,1,1,2] = const f16[2,1,1,2]{1,2,3,4}\n"
            "  %w_nhwc: f16[2,1,2,1] = const f16[2,1,2,1]{1,2,3,4}\n"
            "  %x_nhwc: f16[1,3,3,2] = Transpose(%x) {perm=[0,2,3,1]}\n"
            "  %y_nhwc: f16[1,3,2,2] = kiln.FusedConv(%x_nhwc, %w_nhwc) {channels_last=1, group=2}\n"
            "  %y: f16[1,2,3,2] = Transpose(%y_nhwc) {perm=[0,3,1,2]}\n"
            "  return %y\n"
            "}\n");
}

// A grouped layer's weight [K, C/group, R, S] becomes [K, R, S, C/group]:
// [2,2,1,2] {k0: c0 {1,2}, c1 {3,4}; k1: c0 {5,6}, c1 {7,8}} -> [2,1,2,2]
// {k0: s0 {1,3}, s1 {2,4}; k1: s0 {5,7}, s1 {6,8}}.
TEST(AssignConvLayout, PermutesAGroupedWeightPerGroup) {
  const std::string out = assign(
      "graph main(%x: f16[1,4,3,3]) {\n"
      "  %w: f16[2,2,1,2] = const f16[2,2,1,2]{1,2,3,4,5,6,7,8}\n"
      "  %y: f16[1,2,3,2] = kiln.FusedConv(%x, %w) {group=2}\n"
      "  return %y\n"
      "}\n");
  EXPECT_NE(out.find("%w_nhwc: f16[2,1,2,2] = const f16[2,1,2,2]{1,3,2,4,5,7,6,8}"), std::string::npos) << out;
  EXPECT_NE(out.find("kiln.FusedConv(%x_nhwc, %w_nhwc) {channels_last=1, group=2}"), std::string::npos) << out;
}

Tensor random_f16(std::vector<int64_t> dims, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  Tensor t(DType::kF16, std::move(dims));
  auto* p = t.mutable_data<uint16_t>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = f32_to_f16(u(rng));
  return t;
}

// `pass` on the graph `text`: the CPU must give the same bytes for `x`
// before and after; returns the graph after, as text.
std::string run_keeping_bytes(PassFn pass, const std::string& text, const Tensor& x) {
  auto g = parse_graph(text);
  EXPECT_TRUE(g.is_ok()) << g.status().to_string();
  if (!g.is_ok()) return "";
  auto before = run_graph_on_cpu(**g, {RunValue::of(x)});
  PassContext ctx;
  EXPECT_TRUE(pass(**g, ctx).is_ok());
  const std::string after_text = print_graph(**g);
  auto after = run_graph_on_cpu(**g, {RunValue::of(x)});
  EXPECT_TRUE(before.is_ok() && after.is_ok()) << after_text;
  if (!before.is_ok() || !after.is_ok()) return after_text;
  const Tensor &b = (*before)[0].tensor, &a = (*after)[0].tensor;
  EXPECT_EQ(a.dims(), b.dims());
  if (a.dims() == b.dims()) EXPECT_EQ(std::memcmp(a.raw(), b.raw(), a.nbytes()), 0) << after_text;
  return after_text;
}

// The channels-last graph computes exactly what the NCHW one does on the CPU
// (a 3x3 layer with pads and stride, then a residual layer).
TEST(AssignConvLayout, ChannelsLastGraphMatchesNchwOnTheCpu) {
  std::string w1, w2;
  for (int i = 0; i < 4 * 3 * 3 * 3; ++i) w1 += fmt::format("{}{}", i ? "," : "", ((i * 7) % 11 - 5) * 0.125);
  for (int i = 0; i < 4 * 4; ++i) w2 += fmt::format("{}{}", i ? "," : "", ((i * 5) % 7 - 3) * 0.25);
  const std::string text =
      "graph main(%x: f16[2,3,7,6]) {\n"
      "  %w1: f16[4,3,3,3] = const f16[4,3,3,3]{" +
      w1 +
      "}\n"
      "  %b1: f16[4] = const f16[4]{0.5,-1,0.25,2}\n"
      "  %w2: f16[4,4,1,1] = const f16[4,4,1,1]{" +
      w2 +
      "}\n"
      "  %a: f16[2,4,4,3] = kiln.FusedConv(%x, %w1, %b1) {activation=\"Relu\", pads=[1,1,1,1], strides=[2,2]}\n"
      "  %y: f16[2,4,4,3] = kiln.FusedConv(%a, %w2, %b1, %a) {activation=\"Silu\"}\n"
      "  return %y\n"
      "}\n";
  const std::string nhwc = run_keeping_bytes(assign_conv_layout, text, random_f16({2, 3, 7, 6}, 3));
  EXPECT_NE(nhwc.find("channels_last=1"), std::string::npos) << nhwc;
}

// A stem (3 input channels, 32 output): the channels are zero-padded to 8,
// in the weight and by a Pad after the input's Transpose, and the CPU gives
// the same bytes as the NCHW layer.
TEST(AssignConvLayout, PadsAStemsThreeChannelsToEight) {
  std::string w;
  for (int i = 0; i < 32 * 3 * 3 * 3; ++i) w += fmt::format("{}{}", i ? "," : "", ((i * 7) % 11 - 5) * 0.125);
  const std::string text =
      "graph main(%x: f16[2,3,9,8]) {\n"
      "  %w: f16[32,3,3,3] = const f16[32,3,3,3]{" +
      w +
      "}\n"
      "  %y: f16[2,32,5,4] = kiln.FusedConv(%x, %w) {activation=\"Relu\", pads=[1,1,1,1], strides=[2,2]}\n"
      "  return %y\n"
      "}\n";
  const std::string nhwc = run_keeping_bytes(assign_conv_layout, text, random_f16({2, 3, 9, 8}, 5));
  EXPECT_NE(nhwc.find("%w_nhwc_c8: f16[32,3,3,8]"), std::string::npos) << nhwc;
  EXPECT_NE(nhwc.find("%x_nhwc_c8: f16[2,9,8,8] = Pad(%x_nhwc, %x_nhwc_pads)"), std::string::npos) << nhwc;
  EXPECT_NE(nhwc.find("kiln.FusedConv(%x_nhwc_c8, %w_nhwc_c8)"), std::string::npos) << nhwc;
}

// A real CNN in f16 (the --fp16 CUDA build's graph): every layer (26) and
// MaxPool (3) goes channels-last, the Transposes left are the graph's ends
// (the input's and the [N,1,1,1000] one below the ReduceMean head; Concat,
// Relu and the MaxPools no longer hold any), and the CPU gives the same
// bytes as the NCHW graph.
TEST(AssignConvLayout, SqueezenetRunsChannelsLastBitIdentically) {
  const std::string dir = std::string(KILN_SHARED_MODELS) + "/squeezenet1_1/";
  if (!std::filesystem::exists(dir + "model.onnx")) GTEST_SKIP() << "no " << dir;
  auto imported = import_onnx_file(dir + "model.onnx");
  ASSERT_TRUE(imported.is_ok()) << imported.status().to_string();
  Graph& g = *imported->model.graph;
  PassContext ctx;
  ASSERT_TRUE(run_passes(g, ctx, default_pipeline()).is_ok());
  ASSERT_TRUE(assign_precision(g, DType::kF16).is_ok());
  auto x = read_value_file(dir + "test_data_set_0/input_0.pb", g.inputs[0]->type);
  ASSERT_TRUE(x.is_ok()) << x.status().to_string();
  auto nchw = run_graph_on_cpu(g, {*x});
  ASSERT_TRUE(nchw.is_ok()) << nchw.status().to_string();
  ASSERT_TRUE(assign_layouts(g, ctx).is_ok());
  int transposes = 0, channels_last = 0;
  for (const auto& n : g.nodes()) {
    transposes += n->op_type == "Transpose";
    channels_last += static_cast<int>(n->attr_int("channels_last", 0));
  }
  EXPECT_EQ(channels_last, 29);
  EXPECT_EQ(transposes, 2);
  auto nhwc = run_graph_on_cpu(g, {*x});
  ASSERT_TRUE(nhwc.is_ok()) << nhwc.status().to_string();
  const Tensor &a = (*nhwc)[0].tensor, &b = (*nchw)[0].tensor;
  ASSERT_EQ(a.dims(), b.dims());
  EXPECT_EQ(std::memcmp(a.raw(), b.raw(), a.nbytes()), 0);
}

// ---- assign_pool_layout ----

// conv -> MaxPool -> conv: the pool pools channels-last, so the graph
// transposes only at its ends.
TEST(AssignPoolLayout, PoolsBetweenChannelsLastLayers) {
  EXPECT_EQ(assign_both("graph main(%x: f16[1,2,4,4]) {\n"
                        "  %w: f16[2,2,1,1] = const f16[2,2,1,1]{1,2,3,4}\n"
                        "  %a: f16[1,2,4,4] = kiln.FusedConv(%x, %w) {activation=\"Relu\"}\n"
                        "  %p: f16[1,2,2,2] = MaxPool(%a) {kernel_shape=[2,2], strides=[2,2]}\n"
                        "  %y: f16[1,2,2,2] = kiln.FusedConv(%p, %w)\n"
                        "  return %y\n"
                        "}\n"),
            "graph main(%x: f16[1,2,4,4]) {\n"
            "  %w_nhwc: f16[2,1,1,2] = const f16[2,1,1,2]{1,2,3,4}\n"
            "  %x_nhwc: f16[1,4,4,2] = Transpose(%x) {perm=[0,2,3,1]}\n"
            "  %a_nhwc: f16[1,4,4,2] = kiln.FusedConv(%x_nhwc, %w_nhwc) {activation=\"Relu\", channels_last=1}\n"
            "  %p_nhwc_1: f16[1,2,2,2] = MaxPool(%a_nhwc) {channels_last=1, kernel_shape=[2,2], strides=[2,2]}\n"
            "  %y_nhwc: f16[1,2,2,2] = kiln.FusedConv(%p_nhwc_1, %w_nhwc) {channels_last=1}\n"
            "  %y: f16[1,2,2,2] = Transpose(%y_nhwc) {perm=[0,3,1,2]}\n"
            "  return %y\n"
            "}\n");
}

// A GlobalAveragePool head: the Transpose left is of [N, 1, 1, C].
TEST(AssignPoolLayout, GlobalAveragePoolHeadKeepsOnlyAPooledTranspose) {
  EXPECT_EQ(assign_both("graph main(%x: f16[2,2,4,4]) {\n"
                        "  %w: f16[3,2,1,1] = const f16[3,2,1,1]{1,2,3,4,5,6}\n"
                        "  %a: f16[2,3,4,4] = kiln.FusedConv(%x, %w) {activation=\"Relu\"}\n"
                        "  %g: f16[2,3,1,1] = GlobalAveragePool(%a)\n"
                        "  %f: f16[2,3] = Flatten(%g)\n"
                        "  return %f\n"
                        "}\n"),
            "graph main(%x: f16[2,2,4,4]) {\n"
            "  %w_nhwc: f16[3,1,1,2] = const f16[3,1,1,2]{1,2,3,4,5,6}\n"
            "  %x_nhwc: f16[2,4,4,2] = Transpose(%x) {perm=[0,2,3,1]}\n"
            "  %a_nhwc: f16[2,4,4,3] = kiln.FusedConv(%x_nhwc, %w_nhwc) {activation=\"Relu\", channels_last=1}\n"
            "  %g_nhwc: f16[2,1,1,3] = GlobalAveragePool(%a_nhwc) {channels_last=1}\n"
            "  %g: f16[2,3,1,1] = Transpose(%g_nhwc) {perm=[0,3,1,2]}\n"
            "  %f: f16[2,3] = Flatten(%g)\n"
            "  return %f\n"
            "}\n");
}

// MaxPool with its Indices output has no channels-last form.
TEST(AssignPoolLayout, LeavesMaxPoolWithIndices) {
  const char* text =
      "graph main(%x: f16[1,2,4,4]) {\n"
      "  %w: f16[2,2,1,1] = const f16[2,2,1,1]{1,2,3,4}\n"
      "  %a: f16[1,2,4,4] = kiln.FusedConv(%x, %w)\n"
      "  %p: f16[1,2,2,2], %i: i64[1,2,2,2] = MaxPool(%a) {kernel_shape=[2,2], strides=[2,2]}\n"
      "  return %p, %i\n"
      "}\n";
  EXPECT_EQ(assign_both(text), assign(text));
}

// The Transpose back to NCHW also feeds a Softmax: it stays, so the
// MaxPool stays NCHW rather than add a Transpose of its own size.
TEST(AssignPoolLayout, LeavesAWindowedPoolWhoseTransposeAnotherNodeReads) {
  const char* text =
      "graph main(%x: f16[1,2,4,4]) {\n"
      "  %w: f16[2,2,1,1] = const f16[2,2,1,1]{1,2,3,4}\n"
      "  %a: f16[1,2,4,4] = kiln.FusedConv(%x, %w)\n"
      "  %p: f16[1,2,2,2] = MaxPool(%a) {kernel_shape=[2,2], strides=[2,2]}\n"
      "  %s: f16[1,2,4,4] = Softmax(%a) {axis=1}\n"
      "  return %p, %s\n"
      "}\n";
  EXPECT_EQ(assign_both(text), assign(text));
}

// A squeeze-excitation block: the global pool goes channels-last although
// the Mul also reads its input, and then the Mul's Transpose sinks and
// cancels against the next layer's: only the graph's ends transpose.
TEST(AssignPoolLayout, SqueezeExcitationRunsChannelsLast) {
  EXPECT_EQ(assign_both("graph main(%x: f16[1,2,4,4]) {\n"
                        "  %w: f16[2,2,1,1] = const f16[2,2,1,1]{1,2,3,4}\n"
                        "  %a: f16[1,2,4,4] = kiln.FusedConv(%x, %w) {activation=\"Silu\"}\n"
                        "  %g: f16[1,2,1,1] = GlobalAveragePool(%a)\n"
                        "  %e: f16[1,2,1,1] = kiln.FusedConv(%g, %w) {activation=\"Sigmoid\"}\n"
                        "  %m: f16[1,2,4,4] = Mul(%a, %e)\n"
                        "  %y: f16[1,2,4,4] = kiln.FusedConv(%m, %w)\n"
                        "  return %y\n"
                        "}\n"),
            "graph main(%x: f16[1,2,4,4]) {\n"
            "  %w_nhwc: f16[2,1,1,2] = const f16[2,1,1,2]{1,2,3,4}\n"
            "  %x_nhwc: f16[1,4,4,2] = Transpose(%x) {perm=[0,2,3,1]}\n"
            "  %a_nhwc: f16[1,4,4,2] = kiln.FusedConv(%x_nhwc, %w_nhwc) {activation=\"Silu\", channels_last=1}\n"
            "  %g_nhwc_1: f16[1,1,1,2] = GlobalAveragePool(%a_nhwc) {channels_last=1}\n"
            "  %e_nhwc: f16[1,1,1,2] = kiln.FusedConv(%g_nhwc_1, %w_nhwc) {activation=\"Sigmoid\", channels_last=1}\n"
            "  %m_inner: f16[1,4,4,2] = Mul(%a_nhwc, %e_nhwc)\n"
            "  %y_nhwc: f16[1,4,4,2] = kiln.FusedConv(%m_inner, %w_nhwc) {channels_last=1}\n"
            "  %y: f16[1,2,4,4] = Transpose(%y_nhwc) {perm=[0,3,1,2]}\n"
            "  return %y\n"
            "}\n");
}

std::string f16_list(int n, int mul, int mod, double scale) {
  std::string out;
  for (int i = 0; i < n; ++i) out += fmt::format("{}{}", i ? "," : "", ((i * mul) % mod - mod / 2) * scale);
  return out;
}

// A MobileNet-style block (expand 1x1, depthwise 3x3 stride 2, grouped 1x1)
// and the pools after it: everything runs channels-last, two Transposes
// remain (the input's and the pooled head's), and the CPU gives the NCHW
// graph's bytes.
TEST(AssignPoolLayout, DepthwiseBlockAndPoolsMatchNchwOnTheCpu) {
  const std::string text =
      "graph main(%x: f16[2,8,9,9]) {\n"
      "  %we: f16[16,8,1,1] = const f16[16,8,1,1]{" +
      f16_list(16 * 8, 7, 11, 0.125) +
      "}\n"
      "  %be: f16[16] = const f16[16]{" +
      f16_list(16, 5, 9, 0.25) +
      "}\n"
      "  %wd: f16[16,1,3,3] = const f16[16,1,3,3]{" +
      f16_list(16 * 9, 5, 13, 0.125) +
      "}\n"
      "  %wg: f16[8,4,1,1] = const f16[8,4,1,1]{" +
      f16_list(8 * 4, 3, 7, 0.25) +
      "}\n"
      "  %e: f16[2,16,9,9] = kiln.FusedConv(%x, %we, %be) {activation=\"Relu\"}\n"
      "  %d: f16[2,16,5,5] = kiln.FusedConv(%e, %wd) {activation=\"Clip\", activation_params=[0.0,6.0], group=16, "
      "pads=[1,1,1,1], strides=[2,2]}\n"
      "  %g: f16[2,8,5,5] = kiln.FusedConv(%d, %wg) {group=4}\n"
      "  %m: f16[2,8,3,3] = MaxPool(%g) {ceil_mode=1, kernel_shape=[2,2], strides=[2,2]}\n"
      "  %a: f16[2,8,3,3] = AveragePool(%m) {count_include_pad=1, kernel_shape=[3,3], pads=[1,1,1,1]}\n"
      "  %h: f16[2,8,1,1] = GlobalAveragePool(%a)\n"
      "  return %h\n"
      "}\n";
  const std::string nhwc = run_keeping_bytes(assign_layouts, text, random_f16({2, 8, 9, 9}, 5));
  auto g = parse_graph(nhwc);
  ASSERT_TRUE(g.is_ok()) << g.status().to_string();
  int transposes = 0, channels_last = 0;
  for (const auto& n : (*g)->nodes()) {
    transposes += n->op_type == "Transpose";
    channels_last += static_cast<int>(n->attr_int("channels_last", 0));
  }
  EXPECT_EQ(channels_last, 6) << nhwc;
  EXPECT_EQ(transposes, 2) << nhwc;
}

}  // namespace layout
}  // namespace
}  // namespace kiln
