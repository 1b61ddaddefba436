// fuse_conv_activation, before and after as IR text, its near misses, and
// the CPU result of the fused graph against the unfused one.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <random>

#include "backends/cpu/cpu_executor.h"
#include "ir/parser.h"
#include "ir/printer.h"
#include "ops/shape_inference.h"
#include "pass_test_util.h"
#include "passes/pass.h"

namespace kiln {
namespace {

std::string fuse(const std::string& text) { return run_pass(fuse_conv_activation, text); }

const char* kWeights =
    "  %w: f32[2,2,1,1] = const f32[2,2,1,1]{1,2,3,4}\n"
    "  %b: f32[2] = const f32[2]{1,2}\n";

// ResNet's block end: Relu(Add(Conv(...), identity)) is one node reading the identity as Z.
TEST(FuseConvActivation, FusesResidualAddAndRelu) {
  EXPECT_EQ(fuse(std::string("graph main(%x: f32[1,2,4,4], %id: f32[1,2,4,4]) {\n") + kWeights +
                 "  %c: f32[1,2,4,4] = Conv(%x, %w, %b) {pads=[0,0,0,0]}\n"
                 "  %s: f32[1,2,4,4] = Add(%c, %id)\n"
                 "  %y: f32[1,2,4,4] = Relu(%s)\n"
                 "  return %y\n"
                 "}\n"),
            std::string("graph main(%x: f32[1,2,4,4], %id: f32[1,2,4,4]) {\n") + kWeights +
                "  %y: f32[1,2,4,4] = kiln.FusedConv(%x, %w, %b, %id) {activation=\"Relu\", pads=[0,0,0,0]}\n"
                "  return %y\n"
                "}\n");
}

// MobileNetV2's ReLU6: Clip with constant bounds becomes activation_params.
TEST(FuseConvActivation, FusesClipWithConstantBounds) {
  std::string out = fuse(std::string("graph main(%x: f32[1,2,4,4]) {\n") + kWeights +
                         "  %lo: f32[] = const f32[]{0}\n"
                         "  %hi: f32[] = const f32[]{6}\n"
                         "  %c: f32[1,2,4,4] = Conv(%x, %w, %b)\n"
                         "  %y: f32[1,2,4,4] = Clip(%c, %lo, %hi)\n"
                         "  return %y\n"
                         "}\n");
  EXPECT_NE(out.find("%y: f32[1,2,4,4] = kiln.FusedConv(%x, %w, %b) {activation=\"Clip\", activation_params=[0,6]}"),
            std::string::npos)
      << out;
}

// EfficientNet's SiLU as PyTorch exports it: Mul(x, Sigmoid(x)), either operand order.
TEST(FuseConvActivation, FusesMulOfSigmoidAsSilu) {
  std::string out = fuse(std::string("graph main(%x: f32[1,2,4,4]) {\n") + kWeights +
                         "  %c: f32[1,2,4,4] = Conv(%x, %w)\n"
                         "  %s: f32[1,2,4,4] = Sigmoid(%c)\n"
                         "  %y: f32[1,2,4,4] = Mul(%s, %c)\n"
                         "  return %y\n"
                         "}\n");
  EXPECT_NE(out.find("%y: f32[1,2,4,4] = kiln.FusedConv(%x, %w) {activation=\"Silu\"}"), std::string::npos) << out;
  EXPECT_EQ(out.find("Sigmoid("), std::string::npos) << out;
}

TEST(FuseConvActivation, FusesAPlainSigmoid) {
  std::string out = fuse(std::string("graph main(%x: f32[1,2,4,4]) {\n") + kWeights +
                         "  %c: f32[1,2,4,4] = Conv(%x, %w)\n"
                         "  %y: f32[1,2,4,4] = Sigmoid(%c)\n"
                         "  return %y\n"
                         "}\n");
  EXPECT_NE(out.find("%y: f32[1,2,4,4] = kiln.FusedConv(%x, %w) {activation=\"Sigmoid\"}"), std::string::npos) << out;
}

// ResNet's downsample block: Z (another Conv) comes after the main Conv in the
// order; the fused node takes the Add's place, after Z, and Z's Conv stays.
TEST(FuseConvActivation, PlacesTheFusedNodeAfterAResidualComputedLater) {
  std::string out = fuse(std::string("graph main(%x: f32[1,2,4,4]) {\n") + kWeights +
                         "  %c: f32[1,2,4,4] = Conv(%x, %w, %b)\n"
                         "  %d: f32[1,2,4,4] = Conv(%x, %w)\n"
                         "  %s: f32[1,2,4,4] = Add(%c, %d)\n"
                         "  return %s\n"
                         "}\n");
  EXPECT_EQ(out, std::string("graph main(%x: f32[1,2,4,4]) {\n") + kWeights +
                     "  %d: f32[1,2,4,4] = Conv(%x, %w)\n"
                     "  %s: f32[1,2,4,4] = kiln.FusedConv(%x, %w, %b, %d)\n"
                     "  return %s\n"
                     "}\n");
}

// Near misses: each leaves the graph as it was.
void expect_unchanged(const std::string& text) { EXPECT_EQ(fuse(text), text); }

TEST(FuseConvActivation, LeavesAConvOutputReadTwice) {
  expect_unchanged(std::string("graph main(%x: f32[1,2,4,4]) {\n") + kWeights +
                   "  %c: f32[1,2,4,4] = Conv(%x, %w, %b)\n"
                   "  %y: f32[1,2,4,4] = Relu(%c)\n"
                   "  %z: f32[1,2,4,4] = Neg(%c)\n"
                   "  return %y, %z\n"
                   "}\n");
}

TEST(FuseConvActivation, LeavesAConvOutputThatIsAGraphOutput) {
  expect_unchanged(std::string("graph main(%x: f32[1,2,4,4]) {\n") + kWeights +
                   "  %c: f32[1,2,4,4] = Conv(%x, %w, %b)\n"
                   "  %y: f32[1,2,4,4] = Relu(%c)\n"
                   "  return %y, %c\n"
                   "}\n");
}

// A broadcast operand is no residual: Z must have the Conv output's exact shape.
TEST(FuseConvActivation, LeavesAnAddWhoseOtherOperandBroadcasts) {
  expect_unchanged(std::string("graph main(%x: f32[1,2,4,4], %t: f32[1,2,1,1]) {\n") + kWeights +
                   "  %c: f32[1,2,4,4] = Conv(%x, %w, %b)\n"
                   "  %s: f32[1,2,4,4] = Add(%c, %t)\n"
                   "  %y: f32[1,2,4,4] = Relu(%s)\n"
                   "  return %y\n"
                   "}\n");
}

TEST(FuseConvActivation, LeavesAClipWithARuntimeBound) {
  expect_unchanged(std::string("graph main(%x: f32[1,2,4,4], %hi: f32[]) {\n") + kWeights +
                   "  %lo: f32[] = const f32[]{0}\n"
                   "  %c: f32[1,2,4,4] = Conv(%x, %w, %b)\n"
                   "  %y: f32[1,2,4,4] = Clip(%c, %lo, %hi)\n"
                   "  return %y\n"
                   "}\n");
}

// A Mul(x, Sigmoid(x)) whose Sigmoid output is read elsewhere too is no SiLU.
TEST(FuseConvActivation, LeavesASiluWhoseSigmoidIsReadElsewhere) {
  expect_unchanged(std::string("graph main(%x: f32[1,2,4,4]) {\n") + kWeights +
                   "  %c: f32[1,2,4,4] = Conv(%x, %w)\n"
                   "  %s: f32[1,2,4,4] = Sigmoid(%c)\n"
                   "  %y: f32[1,2,4,4] = Mul(%c, %s)\n"
                   "  return %y, %s\n"
                   "}\n");
}

// ---- the fused graph computes what the unfused one does (CPU) ----

Tensor random_f32(std::vector<int64_t> dims, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  int64_t n = 1;
  for (int64_t d : dims) n *= d;
  std::vector<float> v(static_cast<size_t>(n));
  for (float& e : v) e = u(rng);
  return Tensor::from_vector(DType::kF32, std::move(dims), v);
}

std::vector<float> run_cpu(const Graph& g, const std::vector<Tensor>& inputs) {
  std::vector<RunValue> in;
  for (const Tensor& t : inputs) in.push_back(RunValue::of(t));
  auto out = run_graph_on_cpu(g, std::move(in));
  EXPECT_TRUE(out.is_ok()) << out.status().to_string();
  if (!out.is_ok()) return {};
  const Tensor& y = (*out)[0].tensor;
  return {y.data<float>(), y.data<float>() + y.numel()};
}

void expect_fused_matches_unfused(const std::string& text, const char* act) {
  auto g = parse_graph(text);
  ASSERT_TRUE(g.is_ok()) << g.status().to_string();
  const std::vector<Tensor> in = {random_f32({2, 4, 5, 6}, 1), random_f32({2, 4, 5, 6}, 2)};
  const std::vector<float> before = run_cpu(**g, in);
  PassContext ctx;
  ASSERT_TRUE(fuse_conv_activation(**g, ctx).is_ok());
  const std::string fused = print_graph(**g);
  ASSERT_NE(fused.find(std::string("kiln.FusedConv(%x, %w, %b, %id) {activation=\"") + act), std::string::npos)
      << fused;
  ASSERT_EQ((**g).nodes().size(), 1u) << fused;
  const std::vector<float> after = run_cpu(**g, in);
  ASSERT_EQ(before.size(), after.size());
  ASSERT_EQ(before.size(), 2u * 4 * 5 * 6);
  for (size_t i = 0; i < before.size(); ++i) EXPECT_NEAR(after[i], before[i], 1e-5) << act << " element " << i;
}

// Conv(x, w[4,4,3,3] of varied signs, b) + id, the activation to follow.
std::string residual_graph() {
  std::string w;
  for (int i = 0; i < 4 * 4 * 3 * 3; ++i) w += fmt::format("{}{}", i ? "," : "", ((i * 7) % 11 - 5) * 0.125);
  return "graph main(%x: f32[2,4,5,6], %id: f32[2,4,5,6]) {\n"
         "  %w: f32[4,4,3,3] = const f32[4,4,3,3]{" +
         w +
         "}\n"
         "  %b: f32[4] = const f32[4]{0.5,-1,0.25,2}\n"
         "  %c: f32[2,4,5,6] = Conv(%x, %w, %b) {pads=[1,1,1,1]}\n"
         "  %s: f32[2,4,5,6] = Add(%id, %c)\n";
}

TEST(FuseConvActivation, FusedGraphMatchesTheUnfusedOneOnTheCpu) {
  const std::string tail = "  return %y\n}\n";
  expect_fused_matches_unfused(residual_graph() + "  %y: f32[2,4,5,6] = Relu(%s)\n" + tail, "Relu");
  expect_fused_matches_unfused(residual_graph() +
                                   "  %lo: f32[] = const f32[]{-0.5}\n  %hi: f32[] = const f32[]{0.75}\n"
                                   "  %y: f32[2,4,5,6] = Clip(%s, %lo, %hi)\n" +
                                   tail,
                               "Clip");
  expect_fused_matches_unfused(residual_graph() + "  %y: f32[2,4,5,6] = Sigmoid(%s)\n" + tail, "Sigmoid");
  expect_fused_matches_unfused(
      residual_graph() + "  %t: f32[2,4,5,6] = Sigmoid(%s)\n" + "  %y: f32[2,4,5,6] = Mul(%s, %t)\n" + tail, "Silu");
}

}  // namespace
}  // namespace kiln
