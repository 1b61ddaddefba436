// sink_transposes and assign_conv_layout, before and after, as IR text; the
// channels-last graph against the NCHW one on the CPU.
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
#include "passes/pass.h"

namespace kiln {
namespace {

std::string sink(const std::string& text) {
  auto g = parse_graph(text);
  if (!g) return g.status().to_string();
  PassContext ctx;
  Status st = sink_transposes(**g, ctx);
  if (!st.is_ok()) return st.to_string();
  return print_graph(**g);
}

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

std::string assign(const std::string& text) {
  auto g = parse_graph(text);
  if (!g) return g.status().to_string();
  PassContext ctx;
  Status st = assign_conv_layout(**g, ctx);
  if (!st.is_ok()) return st.to_string();
  return print_graph(**g);
}

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

TEST(AssignConvLayout, LeavesF32AndGroupedLayers) {
  const char* f32 =
      "graph main(%x: f32[1,2,3,3]) {\n"
      "  %w: f32[2,2,1,1] = const f32[2,2,1,1]{1,2,3,4}\n"
      "  %y: f32[1,2,3,3] = kiln.FusedConv(%x, %w) {activation=\"Relu\"}\n"
      "  return %y\n"
      "}\n";
  EXPECT_EQ(assign(f32), f32);
  const char* grouped =
      "graph main(%x: f16[1,2,3,3]) {\n"
      "  %w: f16[2,1,1,1] = const f16[2,1,1,1]{1,2}\n"
      "  %y: f16[1,2,3,3] = kiln.FusedConv(%x, %w) {group=2}\n"
      "  return %y\n"
      "}\n";
  EXPECT_EQ(assign(grouped), grouped);
}

Tensor random_f16(std::vector<int64_t> dims, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  Tensor t(DType::kF16, std::move(dims));
  auto* p = t.mutable_data<uint16_t>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = f32_to_f16(u(rng));
  return t;
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
  auto g = parse_graph(text);
  ASSERT_TRUE(g.is_ok()) << g.status().to_string();
  const Tensor x = random_f16({2, 3, 7, 6}, 3);
  auto before = run_graph_on_cpu(**g, {RunValue::of(x)});
  ASSERT_TRUE(before.is_ok()) << before.status().to_string();
  PassContext ctx;
  ASSERT_TRUE(assign_conv_layout(**g, ctx).is_ok());
  const std::string nhwc = print_graph(**g);
  ASSERT_NE(nhwc.find("channels_last=1"), std::string::npos) << nhwc;
  auto after = run_graph_on_cpu(**g, {RunValue::of(x)});
  ASSERT_TRUE(after.is_ok()) << after.status().to_string();
  const Tensor &b = (*before)[0].tensor, &a = (*after)[0].tensor;
  ASSERT_EQ(a.dims(), b.dims());
  EXPECT_EQ(std::memcmp(a.raw(), b.raw(), a.nbytes()), 0) << nhwc;
}

// A real CNN in f16 (the --fp16 CUDA build's graph): every layer goes
// channels-last, the Transposes left are the three MaxPools' pairs and the
// graph's ends (Concat and Relu no longer hold any), and the CPU gives the
// same bytes as the NCHW graph.
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
  ASSERT_TRUE(assign_conv_layout(g, ctx).is_ok());
  int transposes = 0, channels_last = 0;
  for (const auto& n : g.nodes()) {
    transposes += n->op_type == "Transpose";
    channels_last += static_cast<int>(n->attr_int("channels_last", 0));
  }
  EXPECT_EQ(channels_last, 26);
  EXPECT_EQ(transposes, 8);
  auto nhwc = run_graph_on_cpu(g, {*x});
  ASSERT_TRUE(nhwc.is_ok()) << nhwc.status().to_string();
  const Tensor &a = (*nhwc)[0].tensor, &b = (*nchw)[0].tensor;
  ASSERT_EQ(a.dims(), b.dims());
  EXPECT_EQ(std::memcmp(a.raw(), b.raw(), a.nbytes()), 0);
}

}  // namespace layout
}  // namespace
}  // namespace kiln
