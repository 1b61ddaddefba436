// fuse_matmul_bias_activation and fuse_matmul_residual before and after as IR text, the near misses it
// must leave alone, kiln.FusedMatMul's definition (inference, CPU kernel), and
// the CPU result of fused graphs against the unfused ones on random inputs
// (and on the shared transformers, whose residual Adds it takes).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>

#include "backends/cpu/cpu_executor.h"
#include "builder/builder.h"
#include "ir/parser.h"
#include "ir/printer.h"
#include "ops/shape_inference.h"
#include "pass_test_util.h"
#include "passes/pass.h"
#include "shared_model_util.h"

namespace kiln {
namespace {

// Both passes over the chain, in the pipeline's order.
Status fuse_matmul_chains(Graph& g, PassContext& ctx) {
  KILN_RETURN_IF_ERROR(fuse_matmul_bias_activation(g, ctx));
  return fuse_matmul_residual(g, ctx);
}

std::string fused(const std::string& text) { return run_pass(fuse_matmul_chains, text); }

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

// ViT's MLP down-projection: the residual Add after the bias is cuBLASLt's C;
// the FusedMatMul takes the Add's place and its output's name.
TEST(FuseMatMulBiasActivation, ResidualAddAfterTheBiasBecomesTheFourthInput) {
  EXPECT_EQ(fused("graph main(%x: f32[batch,5,2], %r: f32[batch,5,3]) {\n"
                  "  %w: f32[2,3] = const f32[2,3]{1,2,3,4,5,6}\n"
                  "  %b: f32[3] = const f32[3]{1,2,3}\n"
                  "  %m: f32[batch,5,3] = MatMul(%x, %w)\n"
                  "  %p: f32[batch,5,3] = Add(%m, %b)\n"
                  "  %s: f32[batch,5,3] = Add(%r, %p)\n"
                  "  return %s\n"
                  "}\n"),
            "graph main(%x: f32[batch,5,2], %r: f32[batch,5,3]) {\n"
            "  %w: f32[2,3] = const f32[2,3]{1,2,3,4,5,6}\n"
            "  %b: f32[3] = const f32[3]{1,2,3}\n"
            "  %s: f32[batch,5,3] = kiln.FusedMatMul(%x, %w, %b, %r) {activation=\"\"}\n"
            "  return %s\n"
            "}\n");
}

// An activation after the residual Add is act(A B + bias + residual), one layer.
TEST(FuseMatMulBiasActivation, ActivationAfterTheResidualAddFusesToo) {
  EXPECT_EQ(fused("graph main(%x: f16[4,2], %r: f16[4,3]) {\n"
                  "  %w: f16[2,3] = const f16[2,3]{1,2,3,4,5,6}\n"
                  "  %b: f16[1,3] = const f16[1,3]{1,2,3}\n"
                  "  %m: f16[4,3] = MatMul(%x, %w)\n"
                  "  %p: f16[4,3] = Add(%b, %m)\n"
                  "  %s: f16[4,3] = Add(%p, %r)\n"
                  "  %y: f16[4,3] = Gelu(%s)\n"
                  "  return %y\n"
                  "}\n"),
            "graph main(%x: f16[4,2], %r: f16[4,3]) {\n"
            "  %w: f16[2,3] = const f16[2,3]{1,2,3,4,5,6}\n"
            "  %b_1d: f16[3] = const f16[3]{1,2,3}\n"
            "  %y: f16[4,3] = kiln.FusedMatMul(%x, %w, %b_1d, %r) {activation=\"Gelu\"}\n"
            "  return %y\n"
            "}\n");
}

// Without a bias the residual is the fourth input all the same; a constant of
// the product's very shape is a residual too.
TEST(FuseMatMulBiasActivation, ResidualWithoutBiasLeavesTheBiasSlotEmpty) {
  EXPECT_EQ(fused("graph main(%x: f32[2,2]) {\n"
                  "  %w: f32[2,3] = const f32[2,3]{1,2,3,4,5,6}\n"
                  "  %c: f32[2,3] = const f32[2,3]{1,2,3,4,5,6}\n"
                  "  %m: f32[2,3] = MatMul(%x, %w)\n"
                  "  %s: f32[2,3] = Add(%m, %c)\n"
                  "  %y: f32[2,3] = Relu(%s)\n"
                  "  return %y\n"
                  "}\n"),
            "graph main(%x: f32[2,2]) {\n"
            "  %w: f32[2,3] = const f32[2,3]{1,2,3,4,5,6}\n"
            "  %c: f32[2,3] = const f32[2,3]{1,2,3,4,5,6}\n"
            "  %y: f32[2,3] = kiln.FusedMatMul(%x, %w, _, %c) {activation=\"Relu\"}\n"
            "  return %y\n"
            "}\n");
}

// A Linear exported as Gemm, its bias in C, then the residual Add.
TEST(FuseMatMulBiasActivation, GemmWithBiasThenResidualAddFuses) {
  EXPECT_EQ(fused("graph main(%x: f32[4,2], %r: f32[4,3]) {\n"
                  "  %w: f32[3,2] = const f32[3,2]{1,2,3,4,5,6}\n"
                  "  %c: f32[3] = const f32[3]{1,2,3}\n"
                  "  %g: f32[4,3] = Gemm(%x, %w, %c) {transB=1}\n"
                  "  %s: f32[4,3] = Add(%g, %r)\n"
                  "  return %s\n"
                  "}\n"),
            "graph main(%x: f32[4,2], %r: f32[4,3]) {\n"
            "  %c: f32[3] = const f32[3]{1,2,3}\n"
            "  %w_t: f32[2,3] = const f32[2,3]{1,3,5,2,4,6}\n"
            "  %s: f32[4,3] = kiln.FusedMatMul(%x, %w_t, %c, %r) {activation=\"\"}\n"
            "  return %s\n"
            "}\n");
}

// A residual computed after the product: the FusedMatMul runs where the Add did.
TEST(FuseMatMulBiasActivation, ResidualComputedAfterTheProductKeepsTheOrderTopological) {
  EXPECT_EQ(fused("graph main(%x: f32[4,2], %z: f32[4,3]) {\n"
                  "  %w: f32[2,3] = const f32[2,3]{1,2,3,4,5,6}\n"
                  "  %m: f32[4,3] = MatMul(%x, %w)\n"
                  "  %r: f32[4,3] = Relu(%z)\n"
                  "  %s: f32[4,3] = Add(%m, %r)\n"
                  "  return %s\n"
                  "}\n"),
            "graph main(%x: f32[4,2], %z: f32[4,3]) {\n"
            "  %w: f32[2,3] = const f32[2,3]{1,2,3,4,5,6}\n"
            "  %r: f32[4,3] = Relu(%z)\n"
            "  %s: f32[4,3] = kiln.FusedMatMul(%x, %w, _, %r) {activation=\"\"}\n"
            "  return %s\n"
            "}\n");
}

// GPT-2's projections run on [B*S, E] rows and are read back as [B, S, E]:
// the residual is viewed as rows, the sum is the same Reshape of the layer's output.
TEST(FuseMatMulBiasActivation, ReshapeBeforeTheResidualAddMovesAfterTheFusedMatMul) {
  EXPECT_EQ(fused("graph main(%x: f32[6,2], %r: f32[2,3,3], %shape: i64[3]) {\n"
                  "  %w: f32[2,3] = const f32[2,3]{1,2,3,4,5,6}\n"
                  "  %b: f32[3] = const f32[3]{1,2,3}\n"
                  "  %m: f32[6,3] = MatMul(%x, %w)\n"
                  "  %p: f32[6,3] = Add(%m, %b)\n"
                  "  %v: f32[2,3,3] = Reshape(%p, %shape) {allowzero=1}\n"
                  "  %s: f32[2,3,3] = Add(%v, %r)\n"
                  "  %y: f32[2,3,3] = Relu(%s)\n"
                  "  return %y\n"
                  "}\n"),
            "graph main(%x: f32[6,2], %r: f32[2,3,3], %shape: i64[3]) {\n"
            "  %w: f32[2,3] = const f32[2,3]{1,2,3,4,5,6}\n"
            "  %b: f32[3] = const f32[3]{1,2,3}\n"
            "  %r_shape: i64[2] = const i64[2]{6,3}\n"
            "  %r_rows: f32[6,3] = Reshape(%r, %r_shape)\n"
            "  %p: f32[6,3] = kiln.FusedMatMul(%x, %w, %b, %r_rows) {activation=\"Relu\"}\n"
            "  %y: f32[2,3,3] = Reshape(%p, %shape) {allowzero=1}\n"
            "  return %y\n"
            "}\n");
}

// The pass's own FusedMatMul without activation takes a residual on a later
// run (after fuse_multihead_attention); the symbolic rows are inferred (-1).
TEST(FuseMatMulBiasActivation, FusedMatMulWithoutActivationTakesAResidualLater) {
  EXPECT_EQ(fused("graph main(%x: f32[3*n,2], %r: f32[n,3,3]) {\n"
                  "  %w: f32[2,3] = const f32[2,3]{1,2,3,4,5,6}\n"
                  "  %b: f32[3] = const f32[3]{1,2,3}\n"
                  "  %shape: i64[3] = const i64[3]{-1,3,3}\n"
                  "  %p: f32[3*n,3] = kiln.FusedMatMul(%x, %w, %b) {activation=\"\"}\n"
                  "  %v: f32[n,3,3] = Reshape(%p, %shape)\n"
                  "  %s: f32[n,3,3] = Add(%r, %v)\n"
                  "  return %s\n"
                  "}\n"),
            "graph main(%x: f32[3*n,2], %r: f32[n,3,3]) {\n"
            "  %w: f32[2,3] = const f32[2,3]{1,2,3,4,5,6}\n"
            "  %b: f32[3] = const f32[3]{1,2,3}\n"
            "  %shape: i64[3] = const i64[3]{-1,3,3}\n"
            "  %r_shape: i64[2] = const i64[2]{-1,3}\n"
            "  %r_rows: f32[3*n,3] = Reshape(%r, %r_shape)\n"
            "  %p: f32[3*n,3] = kiln.FusedMatMul(%x, %w, %b, %r_rows) {activation=\"\"}\n"
            "  %s: f32[n,3,3] = Reshape(%p, %shape)\n"
            "  return %s\n"
            "}\n");
}

// Two products summed: the first takes the other's output as its residual.
TEST(FuseMatMulBiasActivation, SumOfTwoProductsFusesOneAsTheOthersResidual) {
  EXPECT_EQ(fused("graph main(%x: f32[4,2], %z: f32[4,2]) {\n"
                  "  %w: f32[2,3] = const f32[2,3]{1,2,3,4,5,6}\n"
                  "  %m: f32[4,3] = MatMul(%x, %w)\n"
                  "  %n: f32[4,3] = MatMul(%z, %w)\n"
                  "  %s: f32[4,3] = Add(%m, %n)\n"
                  "  return %s\n"
                  "}\n"),
            "graph main(%x: f32[4,2], %z: f32[4,2]) {\n"
            "  %w: f32[2,3] = const f32[2,3]{1,2,3,4,5,6}\n"
            "  %n: f32[4,3] = MatMul(%z, %w)\n"
            "  %s: f32[4,3] = kiln.FusedMatMul(%x, %w, _, %n) {activation=\"\"}\n"
            "  return %s\n"
            "}\n");
}

// ---- near misses ----

void expect_unchanged(const std::string& text) { EXPECT_EQ(fused(text), text); }

// Post-LN (BERT): the sum only a LayerNorm reads stays an Add, for
// SkipLayerNormalization; when the sum is also read (here returned: the
// pre-LN residual stream), the Add becomes the residual.
TEST(FuseMatMulBiasActivation, LeavesASumOnlyALayerNormReads) {
  const std::string post_ln =
      "graph main(%x: f32[4,2], %r: f32[4,3]) {\n"
      "  %w: f32[2,3] = const f32[2,3]{1,2,3,4,5,6}\n"
      "  %g: f32[3] = const f32[3]{1,1,1}\n"
      "  %m: f32[4,3] = MatMul(%x, %w)\n"
      "  %s: f32[4,3] = Add(%m, %r)\n"
      "  %y: f32[4,3] = LayerNormalization(%s, %g) {axis=-1}\n"
      "  return %y\n"
      "}\n";
  expect_unchanged(post_ln);
  std::string pre_ln = post_ln;
  pre_ln.replace(pre_ln.find("return %y"), 9, "return %y, %s");
  EXPECT_EQ(fused(pre_ln),
            "graph main(%x: f32[4,2], %r: f32[4,3]) {\n"
            "  %w: f32[2,3] = const f32[2,3]{1,2,3,4,5,6}\n"
            "  %g: f32[3] = const f32[3]{1,1,1}\n"
            "  %s: f32[4,3] = kiln.FusedMatMul(%x, %w, _, %r) {activation=\"\"}\n"
            "  %y: f32[4,3] = LayerNormalization(%s, %g) {axis=-1}\n"
            "  return %y, %s\n"
            "}\n");
}

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

// A computed bias (broadcast over the rows: no residual either) and a bias
// that would raise the rank are not epilogue biases.
TEST(FuseMatMulBiasActivation, LeavesAddsThatAreNotARowBias) {
  expect_unchanged(
      "graph main(%x: f32[4,2], %b: f32[3]) {\n"
      "  %w: f32[2,3] = const f32[2,3]{1,2,3,4,5,6}\n"
      "  %m: f32[4,3] = MatMul(%x, %w)\n"
      "  %s: f32[4,3] = Add(%m, %b)\n"
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

// Relu(A B + bias) + r is not act(A B + bias + r): the activation fuses, the Add stays.
TEST(FuseMatMulBiasActivation, AddAfterTheActivationStaysAnAdd) {
  for (const char* act : {"Relu(%p)", "Gelu(%p)"}) {
    const std::string out = fused(std::string("graph main(%x: f32[4,2], %r: f32[4,3]) {\n"
                                              "  %w: f32[2,3] = const f32[2,3]{1,2,3,4,5,6}\n"
                                              "  %b: f32[3] = const f32[3]{1,2,3}\n"
                                              "  %m: f32[4,3] = MatMul(%x, %w)\n"
                                              "  %p: f32[4,3] = Add(%m, %b)\n"
                                              "  %a: f32[4,3] = ") +
                                  act +
                                  "\n"
                                  "  %s: f32[4,3] = Add(%a, %r)\n"
                                  "  return %s\n"
                                  "}\n");
    EXPECT_NE(out.find("%a: f32[4,3] = kiln.FusedMatMul(%x, %w, %b) {activation="), std::string::npos) << out;
    EXPECT_NE(out.find("%s: f32[4,3] = Add(%a, %r)\n"), std::string::npos) << out;
  }
  // Nor does a FusedMatMul with an activation take one on a later run.
  expect_unchanged(
      "graph main(%x: f32[4,2], %r: f32[4,3]) {\n"
      "  %w: f32[2,3] = const f32[2,3]{1,2,3,4,5,6}\n"
      "  %a: f32[4,3] = kiln.FusedMatMul(%x, %w) {activation=\"Relu\"}\n"
      "  %s: f32[4,3] = Add(%a, %r)\n"
      "  return %s\n"
      "}\n");
}

// The residual has the product's shape exactly: no broadcasting, whether the
// other operand is computed, a graph input or a constant; one symbol is not another.
TEST(FuseMatMulBiasActivation, LeavesBroadcastingAdds) {
  expect_unchanged(
      "graph main(%x: f32[2,4,2], %r: f32[1,4,3]) {\n"
      "  %w: f32[2,3] = const f32[2,3]{1,2,3,4,5,6}\n"
      "  %m: f32[2,4,3] = MatMul(%x, %w)\n"
      "  %s: f32[2,4,3] = Add(%m, %r)\n"
      "  return %s\n"
      "}\n");
  expect_unchanged(
      "graph main(%x: f32[4,2]) {\n"
      "  %w: f32[2,3] = const f32[2,3]{1,2,3,4,5,6}\n"
      "  %c: f32[4,1] = const f32[4,1]{1,2,3,4}\n"
      "  %m: f32[4,3] = MatMul(%x, %w)\n"
      "  %s: f32[4,3] = Add(%m, %c)\n"
      "  return %s\n"
      "}\n");
  expect_unchanged(
      "graph main(%x: f32[2,2,2]) {\n"
      "  %w: f32[2,3] = const f32[2,3]{1,2,3,4,5,6}\n"
      "  %c: f32[1,2,3] = const f32[1,2,3]{1,2,3,4,5,6}\n"
      "  %m: f32[2,2,3] = MatMul(%x, %w)\n"
      "  %s: f32[2,2,3] = Add(%m, %c)\n"
      "  return %s\n"
      "}\n");
  expect_unchanged(
      "graph main(%x: f32[n,2], %r: f32[m,3]) {\n"
      "  %w: f32[2,3] = const f32[2,3]{1,2,3,4,5,6}\n"
      "  %m: f32[n,3] = MatMul(%x, %w)\n"
      "  %s: f32[n,3] = Add(%m, %r)\n"
      "  return %s\n"
      "}\n");
  // An unknown dim proves nothing either.
  expect_unchanged(
      "graph main(%x: f32[?,2], %r: f32[?,3]) {\n"
      "  %w: f32[2,3] = const f32[2,3]{1,2,3,4,5,6}\n"
      "  %m: f32[?,3] = MatMul(%x, %w)\n"
      "  %s: f32[?,3] = Add(%m, %r)\n"
      "  return %s\n"
      "}\n");
}

// A bias sum others see stays: the bias fuses, the residual Add stays; a
// residual that is the product itself (Add(m, m)) is no residual.
TEST(FuseMatMulBiasActivation, LeavesAResidualAddWhoseInputIsAGraphOutputOrTheProduct) {
  EXPECT_EQ(fused("graph main(%x: f32[4,2], %r: f32[4,3]) {\n"
                  "  %w: f32[2,3] = const f32[2,3]{1,2,3,4,5,6}\n"
                  "  %b: f32[3] = const f32[3]{1,2,3}\n"
                  "  %m: f32[4,3] = MatMul(%x, %w)\n"
                  "  %p: f32[4,3] = Add(%m, %b)\n"
                  "  %s: f32[4,3] = Add(%p, %r)\n"
                  "  return %p, %s\n"
                  "}\n"),
            "graph main(%x: f32[4,2], %r: f32[4,3]) {\n"
            "  %w: f32[2,3] = const f32[2,3]{1,2,3,4,5,6}\n"
            "  %b: f32[3] = const f32[3]{1,2,3}\n"
            "  %p: f32[4,3] = kiln.FusedMatMul(%x, %w, %b) {activation=\"\"}\n"
            "  %s: f32[4,3] = Add(%p, %r)\n"
            "  return %p, %s\n"
            "}\n");
  expect_unchanged(
      "graph main(%x: f32[4,2], %shape: i64[2]) {\n"
      "  %w: f32[2,3] = const f32[2,3]{1,2,3,4,5,6}\n"
      "  %m: f32[4,3] = MatMul(%x, %w)\n"
      "  %v: f32[4,3] = Reshape(%m, %shape)\n"
      "  %s: f32[4,3] = Add(%v, %v)\n"
      "  return %s\n"
      "}\n");
  expect_unchanged(
      "graph main(%x: f32[4,2]) {\n"
      "  %w: f32[2,3] = const f32[2,3]{1,2,3,4,5,6}\n"
      "  %m: f32[4,3] = MatMul(%x, %w)\n"
      "  %s: f32[4,3] = Add(%m, %m)\n"
      "  return %s\n"
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

// The residual has exactly the product's rank, dims and dtype; symbols stand for any size.
TEST(FusedMatMulOp, InfersWithAResidualAndRejectsOneOfAnotherShapeOrDtype) {
  EXPECT_EQ(first_diagnostic("graph main(%x: f32[batch,5,2], %w: f32[2,3], %r: f32[n,5,3]) {\n"
                             "  %y: undefined[*] = kiln.FusedMatMul(%x, %w, _, %r) {activation=\"Relu\"}\n"
                             "  return %y\n"
                             "}\n"),
            "none");
  EXPECT_EQ(first_diagnostic("graph main(%x: f32[4,2], %w: f32[2,3], %r: f32[1,4,3]) {\n"
                             "  %y: undefined[*] = kiln.FusedMatMul(%x, %w, _, %r)\n"
                             "  return %y\n"
                             "}\n"),
            "FusedMatMul: residual has rank 3 ([1,4,3]), the product 2 ([4,3])");
  EXPECT_EQ(first_diagnostic("graph main(%x: f32[4,2], %w: f32[2,3], %b: f32[3], %r: f32[4,1]) {\n"
                             "  %y: undefined[*] = kiln.FusedMatMul(%x, %w, %b, %r)\n"
                             "  return %y\n"
                             "}\n"),
            "FusedMatMul: residual [4,1] differs from the product [4,3] in dim 1");
  EXPECT_EQ(first_diagnostic("graph main(%x: f32[4,2], %w: f32[2,3], %r: f16[4,3]) {\n"
                             "  %y: undefined[*] = kiln.FusedMatMul(%x, %w, _, %r)\n"
                             "  return %y\n"
                             "}\n"),
            "FusedMatMul: residual is f16 but A is f32");
}

Expected<std::vector<RunValue>> run_text(const std::string& text, std::vector<Tensor> inputs, bool fuse) {
  auto g = parse_graph(text);
  if (!g) return g.status();
  if (fuse) {
    PassContext ctx;
    KILN_RETURN_IF_ERROR(fuse_matmul_chains(**g, ctx));
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

// [[1, -2]] @ [[1, 2, 3], [1, 1, 1]] + [0.5, 0.5, -2] = [-0.5, 0.5, -1]; + the
// residual [1, -1, 0.5] = [0.5, -0.5, -0.5]; Relu: [0.5, 0, 0] (the residual
// added after the Relu would give [1, -0.5, 0.5]).
TEST(FusedMatMulOp, CpuKernelAddsTheResidualBeforeTheActivation) {
  auto out = run_text(
      "graph main(%x: f32[1,2], %r: f32[1,3]) {\n"
      "  %w: f32[2,3] = const f32[2,3]{1,2,3,1,1,1}\n"
      "  %b: f32[3] = const f32[3]{0.5,0.5,-2}\n"
      "  %y: f32[1,3] = kiln.FusedMatMul(%x, %w, %b, %r) {activation=\"Relu\"}\n"
      "  return %y\n"
      "}\n",
      {Tensor::from_vector<float>(DType::kF32, {1, 2}, {1.f, -2.f}),
       Tensor::from_vector<float>(DType::kF32, {1, 3}, {1.f, -1.f, 0.5f})},
      false);
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  const Tensor& y = (*out)[0].tensor;
  ASSERT_EQ(y.dims(), (std::vector<int64_t>{1, 3}));
  EXPECT_EQ(y.data<float>()[0], 0.5f);
  EXPECT_EQ(y.data<float>()[1], 0.f);
  EXPECT_EQ(y.data<float>()[2], 0.f);
}

// Symbols bound apart at run time: the residual's dims are checked against the product's.
TEST(FusedMatMulOp, ARunTimeResidualOfOtherDimsIsRejected) {
  auto out = run_text(
      "graph main(%x: f32[n,2], %r: f32[m,3]) {\n"
      "  %w: f32[2,3] = const f32[2,3]{1,2,3,1,1,1}\n"
      "  %y: f32[n,3] = kiln.FusedMatMul(%x, %w, _, %r)\n"
      "  return %y\n"
      "}\n",
      {Tensor(DType::kF32, {2, 2}), Tensor(DType::kF32, {3, 3})}, false);
  ASSERT_FALSE(out.is_ok());
  EXPECT_NE(out.status().message().find("FusedMatMul: residual [3,3] differs from the product [2,3] in dim 0"),
            std::string::npos)
      << out.status().to_string();
}

// A literal of `count` random floats in [-1, 1] (4 significant digits, exact in the text).
std::string random_literal(int64_t count, std::mt19937& rng) {
  std::uniform_real_distribution<float> dist(-1.f, 1.f);
  std::string s;
  for (int64_t i = 0; i < count; ++i) s += (i ? "," : "") + std::to_string(std::round(dist(rng) * 1e4f) / 1e4f);
  return s;
}

// Runs `text` with random inputs of `dims`, unfused and fused, on the CPU.
void expect_fused_matches_unfused(const std::string& text, const std::vector<std::vector<int64_t>>& dims) {
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> dist(-2.f, 2.f);
  std::vector<Tensor> inputs;
  for (const std::vector<int64_t>& d : dims) {
    Tensor x(DType::kF32, d);
    for (int64_t i = 0; i < x.numel(); ++i) x.mutable_data<float>()[i] = dist(rng);
    inputs.push_back(std::move(x));
  }
  auto plain = run_text(text, inputs, false);
  auto fusedrun = run_text(text, inputs, true);
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
    expect_fused_matches_unfused(text, {{2, 7, 16}});
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
  expect_fused_matches_unfused(gemm, {{9, 16}});
  std::string linear = gemm;
  linear.replace(linear.find("%g: f32[9,24] = Gemm"), 3, "%y:");
  linear.erase(linear.find("  %y: f32[9,24] = Relu(%g)\n"), std::string("  %y: f32[9,24] = Relu(%g)\n").size());
  ASSERT_NE(fused(linear).find("kiln.FusedMatMul"), std::string::npos) << linear;
  expect_fused_matches_unfused(linear, {{9, 16}});
}

// The residual chains: MatMul + bias + residual + each activation, Gemm + bias
// + residual, and GPT-2's Reshape between the product and the residual Add.
TEST(FusedMatMulOp, FusedResidualGraphsGiveTheUnfusedResultsOnTheCpu) {
  std::mt19937 rng(5);
  const std::string weights = "  %w: f32[16,24] = const f32[16,24]{" + random_literal(16 * 24, rng) +
                              "}\n  %b: f32[24] = const f32[24]{" + random_literal(24, rng) + "}\n";
  for (const char* act : {"", "Relu(%s)", "Gelu(%s)", "Gelu(%s) {approximate=\"tanh\"}"}) {
    const std::string text =
        "graph main(%x: f32[2,7,16], %r: f32[2,7,24]) {\n" + weights +
        "  %m: f32[2,7,24] = MatMul(%x, %w)\n"
        "  %p: f32[2,7,24] = Add(%m, %b)\n"
        "  %s: f32[2,7,24] = Add(%r, %p)\n" +
        (*act ? std::string("  %y: f32[2,7,24] = ") + act + "\n  return %y\n}\n" : std::string("  return %s\n}\n"));
    ASSERT_NE(fused(text).find("kiln.FusedMatMul(%x, %w, %b, %r)"), std::string::npos) << act << fused(text);
    expect_fused_matches_unfused(text, {{2, 7, 16}, {2, 7, 24}});
  }
  const std::string gemm = "graph main(%x: f32[9,16], %r: f32[9,24]) {\n  %w: f32[24,16] = const f32[24,16]{" +
                           random_literal(24 * 16, rng) + "}\n  %c: f32[24] = const f32[24]{" +
                           random_literal(24, rng) +
                           "}\n"
                           "  %g: f32[9,24] = Gemm(%x, %w, %c) {transB=1}\n"
                           "  %s: f32[9,24] = Add(%g, %r)\n"
                           "  %y: f32[9,24] = Relu(%s)\n"
                           "  return %y\n"
                           "}\n";
  ASSERT_NE(fused(gemm).find("kiln.FusedMatMul(%x, %w_t, %c, %r) {activation=\"Relu\"}"), std::string::npos)
      << fused(gemm);
  expect_fused_matches_unfused(gemm, {{9, 16}, {9, 24}});
  const std::string rows = "graph main(%x: f32[14,16], %r: f32[2,7,24]) {\n" + weights +
                           "  %shape: i64[3] = const i64[3]{2,7,24}\n"
                           "  %m: f32[14,24] = MatMul(%x, %w)\n"
                           "  %p: f32[14,24] = Add(%m, %b)\n"
                           "  %v: f32[2,7,24] = Reshape(%p, %shape)\n"
                           "  %y: f32[2,7,24] = Add(%v, %r)\n"
                           "  return %y\n"
                           "}\n";
  ASSERT_NE(fused(rows).find("kiln.FusedMatMul(%x, %w, %b, %r_rows)"), std::string::npos) << fused(rows);
  expect_fused_matches_unfused(rows, {{14, 16}, {2, 7, 24}});
}

// The shared transformers: each residual Add of a projection whose sum
// something besides a LayerNorm reads (ViT's and GPT-2's pre-LN residual
// stream; GPT-2's and ViT's attention outputs through a Reshape, ViT's after
// fuse_multihead_attention) becomes a FusedMatMul residual, and the cuda
// rewrites leave the LayerNorm after it plain. A sum only a LayerNorm reads
// (BERT's four post-LN ones, the pre-LN models' last, before the final norm)
// stays an Add and becomes a SkipLayerNormalization. The CPU output stays that
// of the unoptimized graph.
TEST(FusedMatMulOp, SharedTransformersAddTheirResidualsInTheProjections) {
  struct Want {
    const char* name;
    int residuals, adds, skip, plain;  // adds: the embeddings' sums and the residual Adds left
  };
  for (const Want& want_of :
       {Want{"tiny_bert", 0, 6, 4, 1}, Want{"tiny_gpt2", 3, 2, 1, 4}, Want{"tiny_vit", 3, 2, 1, 4}}) {
    const char* name = want_of.name;
    auto model = load_shared_model(name);
    ASSERT_TRUE(model.is_ok()) << model.status().to_string();
    if (!*model) GTEST_SKIP() << "no " << name;
    Graph& g = (*model)->graph();
    const std::vector<RunValue>& x = (*model)->inputs;
    auto unoptimized = run_graph_on_cpu(g, x);
    PassContext ctx;
    ASSERT_TRUE(run_passes(g, ctx, default_pipeline()).is_ok());
    int residuals = 0, adds = 0;
    for (const auto& n : g.nodes()) {
      residuals += n->op_type == "FusedMatMul" && n->input(3);
      adds += n->op_type == "Add" && n->outputs[0]->type.dtype == DType::kF32;
    }
    BuildConfig config;
    config.backend = "cuda";
    ASSERT_TRUE(rewrite_for_cuda(g, config).is_ok());
    auto optimized = run_graph_on_cpu(g, x);
    ASSERT_TRUE(unoptimized.is_ok() && optimized.is_ok()) << name;
    int skip = 0, plain = 0;
    for (const auto& n : g.nodes()) {
      skip += n->op_type == "SkipLayerNormalization";
      plain += n->op_type == "LayerNormalization";
    }
    EXPECT_EQ(residuals, want_of.residuals) << name;
    EXPECT_EQ(adds, want_of.adds) << name;
    EXPECT_EQ(skip, want_of.skip) << name;
    EXPECT_EQ(plain, want_of.plain) << name;
    const Tensor &want = (*unoptimized)[0].tensor, &got = (*optimized)[0].tensor;
    ASSERT_EQ(want.dims(), got.dims()) << name;
    for (int64_t i = 0; i < want.numel(); ++i)
      ASSERT_NEAR(got.element_as_double(i), want.element_as_double(i),
                  1e-4 * (1 + std::fabs(want.element_as_double(i))))
          << name << " element " << i;
  }
}

// With fuse_matmul_residual disabled (`--disablePasses fuse_matmul_residual`)
// the pipeline leaves tiny_vit's four residual Adds as Adds.
TEST(FusedMatMulOp, DisabledResidualPassLeavesTheAdds) {
  auto model = load_shared_model("tiny_vit");
  ASSERT_TRUE(model.is_ok()) << model.status().to_string();
  if (!*model) GTEST_SKIP() << "no tiny_vit";
  Graph& g = (*model)->graph();
  PassContext ctx;
  ctx.disabled = {"fuse_matmul_residual"};
  ASSERT_TRUE(run_passes(g, ctx, default_pipeline()).is_ok());
  int residuals = 0, adds = 0;
  for (const auto& n : g.nodes()) {
    residuals += n->op_type == "FusedMatMul" && n->input(3);
    adds += n->op_type == "Add";
  }
  EXPECT_EQ(residuals, 0);
  EXPECT_EQ(adds, 5);  // the embeddings' sum and the four residuals
}

}  // namespace
}  // namespace kiln
