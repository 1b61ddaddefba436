// fuse_matmul_bias_activation before and after as IR text, the near misses it
// must leave alone, kiln.FusedMatMul's definition (inference, CPU kernel), and
// the CPU result of fused graphs against the unfused ones on random inputs.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>

#include "backends/cpu/cpu_executor.h"
#include "ir/parser.h"
#include "ir/printer.h"
#include "ops/shape_inference.h"
#include "pass_test_util.h"
#include "passes/pass.h"

namespace kiln {
namespace {

std::string fused(const std::string& text) { return run_pass(fuse_matmul_bias_activation, text); }

// ---- the rewrite ----

// run_passes skips a pass PassContext::disabled names (`kiln build
// --disablePasses`): the default pipeline then leaves the MatMul, its bias Add
// and its Relu apart, and says which passes changed the graph.
TEST(FuseMatMulBiasActivation, DisabledInThePipelineLeavesTheChain) {
  const std::string text =
      "graph main(%x: f32[2,2]) {\n"
      "  %w: f32[2,3] = const f32[2,3]{1,2,3,4,5,6}\n"
      "  %b: f32[3] = const f32[3]{1,2,3}\n"
      "  %m: f32[2,3] = MatMul(%x, %w)\n"
      "  %s: f32[2,3] = Add(%m, %b)\n"
      "  %y: f32[2,3] = Relu(%s)\n"
      "  return %y\n"
      "}\n";
  for (bool disable : {false, true}) {
    auto g = parse_graph(text);
    ASSERT_TRUE(g.is_ok()) << g.status().to_string();
    PassContext ctx;
    if (disable) ctx.disabled = {"fuse_matmul_bias_activation"};
    ASSERT_TRUE(run_passes(**g, ctx, default_pipeline()).is_ok());
    const std::string out = print_graph(**g);
    EXPECT_EQ(out.find("kiln.FusedMatMul") == std::string::npos, disable) << out;
    EXPECT_EQ(std::count(ctx.changed.begin(), ctx.changed.end(), "fuse_matmul_bias_activation"), disable ? 0 : 1);
  }
}

// The BERT/ViT MLP: a [1, n] bias becomes a 1-D constant; the Gelu's output keeps its name.
TEST(FuseMatMulBiasActivation, MatMulAddGeluBecomesOneFusedMatMul) {
  EXPECT_EQ(fused("graph main(%x: f32[2,5,2]) {\n"
                  "  %w: f32[2,3] = const f32[2,3]{1,2,3,4,5,6}\n"
                  "  %b: f32[1,3] = const f32[1,3]{1,2,3}\n"
                  "  %m: f32[2,5,3] = MatMul(%x, %w)\n"
                  "  %s: f32[2,5,3] = Add(%m, %b)\n"
                  "  %y: f32[2,5,3] = Gelu(%s)\n"
                  "  return %y\n"
                  "}\n"),
            "graph main(%x: f32[2,5,2]) {\n"
            "  %w: f32[2,3] = const f32[2,3]{1,2,3,4,5,6}\n"
            "  %b_1d: f32[3] = const f32[3]{1,2,3}\n"
            "  %y: f32[2,5,3] = kiln.FusedMatMul(%x, %w, %b_1d) {activation=\"Gelu\"}\n"
            "  return %y\n"
            "}\n");
}

// Add takes the bias on either side; with no activation after it the epilogue is the bias alone.
TEST(FuseMatMulBiasActivation, BiasFirstAddWithoutActivationFusesTheBias) {
  EXPECT_EQ(fused("graph main(%x: f16[4,2]) {\n"
                  "  %w: f16[2,3] = const f16[2,3]{1,2,3,4,5,6}\n"
                  "  %b: f16[3] = const f16[3]{1,2,3}\n"
                  "  %m: f16[4,3] = MatMul(%x, %w)\n"
                  "  %y: f16[4,3] = Add(%b, %m)\n"
                  "  return %y\n"
                  "}\n"),
            "graph main(%x: f16[4,2]) {\n"
            "  %w: f16[2,3] = const f16[2,3]{1,2,3,4,5,6}\n"
            "  %b: f16[3] = const f16[3]{1,2,3}\n"
            "  %y: f16[4,3] = kiln.FusedMatMul(%x, %w, %b) {activation=\"\"}\n"
            "  return %y\n"
            "}\n");
}

TEST(FuseMatMulBiasActivation, MatMulReluWithoutBiasFusesTheActivation) {
  EXPECT_EQ(fused("graph main(%x: bf16[4,2], %w: bf16[2,3]) {\n"
                  "  %m: bf16[4,3] = MatMul(%x, %w)\n"
                  "  %y: bf16[4,3] = Relu(%m)\n"
                  "  return %y\n"
                  "}\n"),
            "graph main(%x: bf16[4,2], %w: bf16[2,3]) {\n"
            "  %y: bf16[4,3] = kiln.FusedMatMul(%x, %w) {activation=\"Relu\"}\n"
            "  return %y\n"
            "}\n");
}

TEST(FuseMatMulBiasActivation, TanhGeluBecomesGeluTanh) {
  const std::string out = fused(
      "graph main(%x: f32[4,2]) {\n"
      "  %w: f32[2,3] = const f32[2,3]{1,2,3,4,5,6}\n"
      "  %b: f32[3] = const f32[3]{1,2,3}\n"
      "  %m: f32[4,3] = MatMul(%x, %w)\n"
      "  %s: f32[4,3] = Add(%m, %b)\n"
      "  %y: f32[4,3] = Gelu(%s) {approximate=\"tanh\"}\n"
      "  return %y\n"
      "}\n");
  EXPECT_NE(out.find("%y: f32[4,3] = kiln.FusedMatMul(%x, %w, %b) {activation=\"GeluTanh\"}\n"), std::string::npos)
      << out;
}

// PyTorch's Linear exports as Gemm with transB: the weights are transposed once, here.
TEST(FuseMatMulBiasActivation, GemmTransBWithBiasAndReluBecomesFusedMatMulOverTransposedWeights) {
  EXPECT_EQ(fused("graph main(%x: f32[4,2]) {\n"
                  "  %w: f32[3,2] = const f32[3,2]{1,2,3,4,5,6}\n"
                  "  %c: f32[3] = const f32[3]{1,2,3}\n"
                  "  %g: f32[4,3] = Gemm(%x, %w, %c) {transB=1}\n"
                  "  %y: f32[4,3] = Relu(%g)\n"
                  "  return %y\n"
                  "}\n"),
            "graph main(%x: f32[4,2]) {\n"
            "  %c: f32[3] = const f32[3]{1,2,3}\n"
            "  %w_t: f32[2,3] = const f32[2,3]{1,3,5,2,4,6}\n"
            "  %y: f32[4,3] = kiln.FusedMatMul(%x, %w_t, %c) {activation=\"Relu\"}\n"
            "  return %y\n"
            "}\n");
}

// A Linear without activation (ViT's attention output projection): FusedMatMul's
// algorithms are timed by the builder, Gemm's are not.
TEST(FuseMatMulBiasActivation, GemmWithBiasAloneBecomesFusedMatMulWithoutActivation) {
  EXPECT_EQ(fused("graph main(%x: f32[4,2]) {\n"
                  "  %w: f32[3,2] = const f32[3,2]{1,2,3,4,5,6}\n"
                  "  %c: f32[3] = const f32[3]{1,2,3}\n"
                  "  %y: f32[4,3] = Gemm(%x, %w, %c) {transB=1}\n"
                  "  return %y\n"
                  "}\n"),
            "graph main(%x: f32[4,2]) {\n"
            "  %w: f32[3,2] = const f32[3,2]{1,2,3,4,5,6}\n"  // dead: eliminate_dead_nodes runs next
            "  %c: f32[3] = const f32[3]{1,2,3}\n"
            "  %w_t: f32[2,3] = const f32[2,3]{1,3,5,2,4,6}\n"
            "  %y: f32[4,3] = kiln.FusedMatMul(%x, %w_t, %c) {activation=\"\"}\n"
            "  return %y\n"
            "}\n");
}

// ---- near misses ----

void expect_unchanged(const std::string& text) { EXPECT_EQ(fused(text), text); }

TEST(FuseMatMulBiasActivation, LeavesAProductThatSomethingElseReads) {
  expect_unchanged(
      "graph main(%x: f32[4,2]) {\n"
      "  %w: f32[2,3] = const f32[2,3]{1,2,3,4,5,6}\n"
      "  %b: f32[3] = const f32[3]{1,2,3}\n"
      "  %m: f32[4,3] = MatMul(%x, %w)\n"
      "  %s: f32[4,3] = Add(%m, %b)\n"
      "  %r: f32[4,3] = Relu(%m)\n"
      "  return %s, %r\n"
      "}\n");
}

TEST(FuseMatMulBiasActivation, LeavesAProductThatIsAGraphOutput) {
  expect_unchanged(
      "graph main(%x: f32[4,2]) {\n"
      "  %w: f32[2,3] = const f32[2,3]{1,2,3,4,5,6}\n"
      "  %m: f32[4,3] = MatMul(%x, %w)\n"
      "  %r: f32[4,3] = Relu(%m)\n"
      "  return %m, %r\n"
      "}\n");
}

// A computed bias, a full [m, n] addend, and a bias that would raise the rank are not epilogue biases.
TEST(FuseMatMulBiasActivation, LeavesAddsThatAreNotARowBias) {
  expect_unchanged(
      "graph main(%x: f32[4,2], %b: f32[3]) {\n"
      "  %w: f32[2,3] = const f32[2,3]{1,2,3,4,5,6}\n"
      "  %m: f32[4,3] = MatMul(%x, %w)\n"
      "  %s: f32[4,3] = Add(%m, %b)\n"
      "  return %s\n"
      "}\n");
  expect_unchanged(
      "graph main(%x: f32[2,2]) {\n"
      "  %w: f32[2,3] = const f32[2,3]{1,2,3,4,5,6}\n"
      "  %c: f32[2,3] = const f32[2,3]{1,2,3,4,5,6}\n"
      "  %m: f32[2,3] = MatMul(%x, %w)\n"
      "  %s: f32[2,3] = Add(%m, %c)\n"
      "  return %s\n"
      "}\n");
  expect_unchanged(
      "graph main(%x: f32[4,2]) {\n"
      "  %w: f32[2,3] = const f32[2,3]{1,2,3,4,5,6}\n"
      "  %b: f32[1,1,3] = const f32[1,1,3]{1,2,3}\n"
      "  %m: f32[4,3] = MatMul(%x, %w)\n"
      "  %s: f32[1,4,3] = Add(%m, %b)\n"
      "  return %s\n"
      "}\n");
}

TEST(FuseMatMulBiasActivation, LeavesBatchedWeightsAndF64) {
  expect_unchanged(
      "graph main(%x: f32[2,4,2], %w: f32[2,2,3]) {\n"
      "  %m: f32[2,4,3] = MatMul(%x, %w)\n"
      "  %r: f32[2,4,3] = Relu(%m)\n"
      "  return %r\n"
      "}\n");
  expect_unchanged(
      "graph main(%x: f64[4,2], %w: f64[2,3]) {\n"
      "  %m: f64[4,3] = MatMul(%x, %w)\n"
      "  %r: f64[4,3] = Relu(%m)\n"
      "  return %r\n"
      "}\n");
}

// Only the Add fuses when its output is also a graph output: the Relu stays and reads it.
TEST(FuseMatMulBiasActivation, StopsBeforeAnActivationWhoseInputIsAGraphOutput) {
  EXPECT_EQ(fused("graph main(%x: f32[4,2]) {\n"
                  "  %w: f32[2,3] = const f32[2,3]{1,2,3,4,5,6}\n"
                  "  %b: f32[3] = const f32[3]{1,2,3}\n"
                  "  %m: f32[4,3] = MatMul(%x, %w)\n"
                  "  %s: f32[4,3] = Add(%m, %b)\n"
                  "  %r: f32[4,3] = Relu(%s)\n"
                  "  return %s, %r\n"
                  "}\n"),
            "graph main(%x: f32[4,2]) {\n"
            "  %w: f32[2,3] = const f32[2,3]{1,2,3,4,5,6}\n"
            "  %b: f32[3] = const f32[3]{1,2,3}\n"
            "  %s: f32[4,3] = kiln.FusedMatMul(%x, %w, %b) {activation=\"\"}\n"
            "  %r: f32[4,3] = Relu(%s)\n"
            "  return %s, %r\n"
            "}\n");
}

// Gemm fuses only as a product plus a 1-D bias: alpha = beta = 1 and no transA.
TEST(FuseMatMulBiasActivation, LeavesGemmsThatAreNotAPlainProductPlusBias) {
  const char* body =
      "  %w: f32[2,3] = const f32[2,3]{1,2,3,4,5,6}\n"
      "  %c: f32[3] = const f32[3]{1,2,3}\n";
  for (const char* attrs : {" {alpha=0.5}", " {beta=2.5}", " {transA=1}"}) {
    const std::string x = std::string(attrs) == " {transA=1}" ? "f32[2,4]" : "f32[4,2]";
    expect_unchanged("graph main(%x: " + x + ") {\n" + body + "  %g: f32[4,3] = Gemm(%x, %w, %c)" + attrs +
                     "\n"
                     "  %y: f32[4,3] = Relu(%g)\n"
                     "  return %y\n"
                     "}\n");
  }
  // A matrix C is no bias.
  expect_unchanged(
      "graph main(%x: f32[2,2]) {\n"
      "  %w: f32[2,3] = const f32[2,3]{1,2,3,4,5,6}\n"
      "  %c: f32[2,3] = const f32[2,3]{1,2,3,4,5,6}\n"
      "  %y: f32[2,3] = Gemm(%x, %w, %c)\n"
      "  return %y\n"
      "}\n");
}

// ---- the op ----

std::vector<Diagnostic> diagnostics_of(const std::string& text) {
  std::vector<Diagnostic> diags;
  auto g = parse_graph(text);
  EXPECT_TRUE(g.is_ok()) << g.status().to_string();
  if (g) infer_shapes(**g, diags);
  return diags;
}

TEST(FusedMatMulOp, InfersTheProductShapeAndRejectsBadBiasesAndActivations) {
  auto g = parse_graph(
      "graph main(%x: f16[batch,5,2], %w: f16[2,3], %b: f16[3]) {\n"
      "  %y: undefined[*] = kiln.FusedMatMul(%x, %w, %b) {activation=\"Gelu\"}\n"
      "  return %y\n"
      "}\n");
  ASSERT_TRUE(g.is_ok()) << g.status().to_string();
  std::vector<Diagnostic> diags;
  infer_shapes(**g, diags);
  EXPECT_TRUE(diags.empty());
  EXPECT_EQ((*g)->outputs[0]->type.to_string(), "f16[batch,5,3]");

  auto first = [](const std::vector<Diagnostic>& d) { return d.empty() ? std::string("none") : d[0].message; };
  EXPECT_NE(first(diagnostics_of("graph main(%x: f32[4,2], %w: f32[2,3]) {\n"
                                 "  %y: undefined[*] = kiln.FusedMatMul(%x, %w) {activation=\"Tanh\"}\n"
                                 "  return %y\n"
                                 "}\n"))
                .find("activation \"Tanh\" is not one of"),
            std::string::npos);
  EXPECT_NE(first(diagnostics_of("graph main(%x: f32[4,2], %w: f32[2,3], %b: f32[1,3]) {\n"
                                 "  %y: undefined[*] = kiln.FusedMatMul(%x, %w, %b)\n"
                                 "  return %y\n"
                                 "}\n"))
                .find("bias must be 1-D"),
            std::string::npos);
  EXPECT_NE(first(diagnostics_of("graph main(%x: f32[4,2], %w: f32[2,3], %b: f32[4]) {\n"
                                 "  %y: undefined[*] = kiln.FusedMatMul(%x, %w, %b)\n"
                                 "  return %y\n"
                                 "}\n"))
                .find("does not match N"),
            std::string::npos);
  EXPECT_NE(first(diagnostics_of("graph main(%x: f32[4,2], %w: f32[2,3], %b: f16[3]) {\n"
                                 "  %y: undefined[*] = kiln.FusedMatMul(%x, %w, %b)\n"
                                 "  return %y\n"
                                 "}\n"))
                .find("bias is f16 but A is f32"),
            std::string::npos);
}

Expected<std::vector<RunValue>> run_text(const std::string& text, std::vector<Tensor> inputs, bool fuse) {
  auto g = parse_graph(text);
  if (!g) return g.status();
  if (fuse) {
    PassContext ctx;
    KILN_RETURN_IF_ERROR(fuse_matmul_bias_activation(**g, ctx));
  }
  std::vector<RunValue> values;
  for (Tensor& t : inputs) values.push_back(RunValue::of(std::move(t)));
  return run_graph_on_cpu(**g, std::move(values));
}

// [[1, -2]] @ [[1, 2, 3], [1, 1, 1]] = [-1, 0, 1]; + [0.5, 0.5, -2] = [-0.5, 0.5, -1]; Relu: [0, 0.5, 0].
TEST(FusedMatMulOp, CpuKernelAddsTheBiasThenActivates) {
  auto out = run_text(
      "graph main(%x: f32[1,2]) {\n"
      "  %w: f32[2,3] = const f32[2,3]{1,2,3,1,1,1}\n"
      "  %b: f32[3] = const f32[3]{0.5,0.5,-2}\n"
      "  %y: f32[1,3] = kiln.FusedMatMul(%x, %w, %b) {activation=\"Relu\"}\n"
      "  return %y\n"
      "}\n",
      {Tensor::from_vector<float>(DType::kF32, {1, 2}, {1.f, -2.f})}, false);
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  const Tensor& y = (*out)[0].tensor;
  ASSERT_EQ(y.dims(), (std::vector<int64_t>{1, 3}));
  EXPECT_EQ(y.data<float>()[0], 0.f);
  EXPECT_EQ(y.data<float>()[1], 0.5f);
  EXPECT_EQ(y.data<float>()[2], 0.f);
}

// A literal of `count` random floats in [-1, 1] (4 significant digits, exact in the text).
std::string random_literal(int64_t count, std::mt19937& rng) {
  std::uniform_real_distribution<float> dist(-1.f, 1.f);
  std::string s;
  for (int64_t i = 0; i < count; ++i) s += (i ? "," : "") + std::to_string(std::round(dist(rng) * 1e4f) / 1e4f);
  return s;
}

void expect_fused_matches_unfused(const std::string& text, const std::vector<int64_t>& x_dims) {
  std::mt19937 rng(7);
  Tensor x(DType::kF32, x_dims);
  std::uniform_real_distribution<float> dist(-2.f, 2.f);
  for (int64_t i = 0; i < x.numel(); ++i) x.mutable_data<float>()[i] = dist(rng);
  auto plain = run_text(text, {x}, false);
  auto fusedrun = run_text(text, {x}, true);
  ASSERT_TRUE(plain.is_ok()) << plain.status().to_string();
  ASSERT_TRUE(fusedrun.is_ok()) << fusedrun.status().to_string();
  const Tensor &a = (*plain)[0].tensor, &b = (*fusedrun)[0].tensor;
  ASSERT_EQ(a.dims(), b.dims());
  for (int64_t i = 0; i < a.numel(); ++i)
    EXPECT_NEAR(b.data<float>()[i], a.data<float>()[i], 1e-6 * (1 + std::fabs(a.data<float>()[i]))) << "element " << i;
}

TEST(FusedMatMulOp, FusedGraphsGiveTheUnfusedResultsOnTheCpu) {
  std::mt19937 rng(3);
  for (const char* act : {"Relu(%s)", "Gelu(%s)", "Gelu(%s) {approximate=\"tanh\"}"}) {
    const std::string text = "graph main(%x: f32[2,7,16]) {\n  %w: f32[16,24] = const f32[16,24]{" +
                             random_literal(16 * 24, rng) + "}\n  %b: f32[24] = const f32[24]{" +
                             random_literal(24, rng) +
                             "}\n"
                             "  %m: f32[2,7,24] = MatMul(%x, %w)\n"
                             "  %s: f32[2,7,24] = Add(%m, %b)\n"
                             "  %y: f32[2,7,24] = " +
                             act +
                             "\n"
                             "  return %y\n"
                             "}\n";
    ASSERT_NE(fused(text).find("kiln.FusedMatMul"), std::string::npos) << act;
    expect_fused_matches_unfused(text, {2, 7, 16});
  }
  const std::string gemm = "graph main(%x: f32[9,16]) {\n  %w: f32[24,16] = const f32[24,16]{" +
                           random_literal(24 * 16, rng) + "}\n  %c: f32[24] = const f32[24]{" +
                           random_literal(24, rng) +
                           "}\n"
                           "  %g: f32[9,24] = Gemm(%x, %w, %c) {transB=1}\n"
                           "  %y: f32[9,24] = Relu(%g)\n"
                           "  return %y\n"
                           "}\n";
  ASSERT_NE(fused(gemm).find("kiln.FusedMatMul"), std::string::npos);
  expect_fused_matches_unfused(gemm, {9, 16});
  std::string linear = gemm;
  linear.replace(linear.find("%g: f32[9,24] = Gemm"), 3, "%y:");
  linear.erase(linear.find("  %y: f32[9,24] = Relu(%g)\n"), std::string("  %y: f32[9,24] = Relu(%g)\n").size());
  ASSERT_NE(fused(linear).find("kiln.FusedMatMul"), std::string::npos) << linear;
  expect_fused_matches_unfused(linear, {9, 16});
}

}  // namespace
}  // namespace kiln
