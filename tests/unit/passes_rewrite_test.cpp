// The rewriting passes (batch-norm folding, transposes, reshapes, no-op
// elimination), before and after, as IR text.
#include <gtest/gtest.h>

#include <algorithm>
#include <random>

#include "backends/cpu/cpu_executor.h"
#include "ir/parser.h"
#include "ir/printer.h"
#include "ops/shape_inference.h"
#include "pass_test_util.h"
#include "passes/pass.h"

namespace kiln {
namespace {

// ---- fold_batch_norm_into_conv ----

const char* kBnParams =
    "  %scale: f32[2] = const f32[2]{1,2}\n"
    "  %beta: f32[2] = const f32[2]{0.5,1}\n"
    "  %mean: f32[2] = const f32[2]{1,0}\n"
    "  %var: f32[2] = const f32[2]{3,0}\n";

// s = scale / sqrt(var + 1) = {0.5, 2}; shift = beta - mean * s = {0, 1}.
TEST(FoldBatchNormIntoConv, ScalesWeightsAndAddsABias) {
  EXPECT_EQ(run_pass(fold_batch_norm_into_conv, std::string("graph main(%x: f32[1,2,4,4]) {\n") +
                                                    "  %w: f32[2,1,1,1] = const f32[2,1,1,1]{1,2}\n" + kBnParams +
                                                    "  %c: f32[1,2,4,4] = Conv(%x, %w) {group=2}\n"
                                                    "  %y: f32[1,2,4,4] = BatchNormalization(%c, %scale, %beta, %mean, "
                                                    "%var) {epsilon=1}\n"
                                                    "  return %y\n"
                                                    "}\n"),
            "graph main(%x: f32[1,2,4,4]) {\n"
            "  %w_bn: f32[2,1,1,1] = const f32[2,1,1,1]{0.5,4}\n"
            "  %w_bn_bias: f32[2] = const f32[2]{0,1}\n"
            "  %y: f32[1,2,4,4] = Conv(%x, %w_bn, %w_bn_bias) {group=2}\n"
            "  return %y\n"
            "}\n");
}

// An existing bias b becomes b * s + shift: {2*0.5+0, 3*2+1}.
TEST(FoldBatchNormIntoConv, FoldsAnExistingBias) {
  std::string out = run_pass(fold_batch_norm_into_conv,
                             std::string("graph main(%x: f32[1,1,4,4]) {\n") +
                                 "  %w: f32[2,1,1,1] = const f32[2,1,1,1]{1,2}\n"
                                 "  %b: f32[2] = const f32[2]{2,3}\n" +
                                 kBnParams +
                                 "  %c: f32[1,2,4,4] = Conv(%x, %w, %b)\n"
                                 "  %y: f32[1,2,4,4] = BatchNormalization(%c, %scale, %beta, %mean, %var) {epsilon=1}\n"
                                 "  return %y\n"
                                 "}\n");
  EXPECT_NE(out.find("const f32[2]{1,7}"), std::string::npos) << out;
  EXPECT_NE(out.find("%y: f32[1,2,4,4] = Conv(%x, %w_bn, %w_bn_bias)"), std::string::npos) << out;
}

// ConvTranspose W[C=1, M/g=2, 1, 1]: output channels are W's second index.
TEST(FoldBatchNormIntoConv, FoldsIntoConvTransposeAlongTheSecondWeightDim) {
  std::string out = run_pass(fold_batch_norm_into_conv,
                             std::string("graph main(%x: f32[1,1,4,4]) {\n") +
                                 "  %w: f32[1,2,1,1] = const f32[1,2,1,1]{1,2}\n" + kBnParams +
                                 "  %c: f32[1,2,4,4] = ConvTranspose(%x, %w)\n"
                                 "  %y: f32[1,2,4,4] = BatchNormalization(%c, %scale, %beta, %mean, %var) {epsilon=1}\n"
                                 "  return %y\n"
                                 "}\n");
  EXPECT_NE(out.find("const f32[1,2,1,1]{0.5,4}"), std::string::npos) << out;
  EXPECT_NE(out.find("%y: f32[1,2,4,4] = ConvTranspose(%x, %w_bn, %w_bn_bias)"), std::string::npos) << out;
}

// Gemm with transB: channel n is W's row; beta scales C before the fold and becomes 1.
TEST(FoldBatchNormIntoConv, FoldsIntoGemmWithTransposedWeightsAndBeta) {
  std::string out = run_pass(fold_batch_norm_into_conv,
                             std::string("graph main(%x: f32[3,1]) {\n") +
                                 "  %w: f32[2,1] = const f32[2,1]{1,2}\n"
                                 "  %b: f32[2] = const f32[2]{1,1}\n" +
                                 kBnParams +
                                 "  %c: f32[3,2] = Gemm(%x, %w, %b) {beta=2, transB=1}\n"
                                 "  %y: f32[3,2] = BatchNormalization(%c, %scale, %beta, %mean, %var) {epsilon=1}\n"
                                 "  return %y\n"
                                 "}\n");
  EXPECT_NE(out.find("const f32[2,1]{0.5,4}"), std::string::npos) << out;
  EXPECT_NE(out.find("const f32[2]{1,5}"), std::string::npos) << out;  // {2*0.5+0, 2*2+1}
  EXPECT_NE(out.find("%y: f32[3,2] = Gemm(%x, %w_bn, %w_bn_bias) {beta=1, transB=1}"), std::string::npos) << out;
}

// MatMul + Add of a constant bias becomes one Gemm.
TEST(FoldBatchNormIntoConv, TurnsMatMulAddBatchNormIntoOneGemm) {
  std::string out = run_pass(fold_batch_norm_into_conv,
                             std::string("graph main(%x: f32[3,1]) {\n") +
                                 "  %w: f32[1,2] = const f32[1,2]{1,2}\n"
                                 "  %b: f32[2] = const f32[2]{2,3}\n" +
                                 kBnParams +
                                 "  %m: f32[3,2] = MatMul(%x, %w)\n"
                                 "  %c: f32[3,2] = Add(%m, %b)\n"
                                 "  %y: f32[3,2] = BatchNormalization(%c, %scale, %beta, %mean, %var) {epsilon=1}\n"
                                 "  return %y\n"
                                 "}\n");
  EXPECT_NE(out.find("const f32[1,2]{0.5,4}"), std::string::npos) << out;
  EXPECT_NE(out.find("const f32[2]{1,7}"), std::string::npos) << out;
  EXPECT_NE(out.find("%y: f32[3,2] = Gemm(%x, %w_bn, %w_bn_bias)\n"), std::string::npos) << out;
  EXPECT_EQ(out.find("MatMul"), std::string::npos) << out;
}

// Grouped ConvTranspose W[C=2, M/g=2]: channel = (c / (C/g)) * (M/g) + j, here the flat index.
TEST(FoldBatchNormIntoConv, MapsGroupedConvTransposeChannelsPerGroup) {
  std::string out = run_pass(fold_batch_norm_into_conv,
                             "graph main(%x: f32[1,2,4,4]) {\n"
                             "  %w: f32[2,2,1,1] = const f32[2,2,1,1]{1,1,1,1}\n"
                             "  %scale: f32[4] = const f32[4]{1,2,3,4}\n"
                             "  %zero: f32[4] = const f32[4]{0,0,0,0}\n"
                             "  %c: f32[1,4,4,4] = ConvTranspose(%x, %w) {group=2}\n"
                             "  %y: f32[1,4,4,4] = BatchNormalization(%c, %scale, %zero, %zero, %zero) {epsilon=1}\n"
                             "  return %y\n"
                             "}\n");
  EXPECT_NE(out.find("const f32[2,2,1,1]{1,2,3,4}"), std::string::npos) << out;
  EXPECT_NE(out.find("const f32[4]{0,0,0,0}"), std::string::npos) << out;
}

// The fused weights and bias keep the weight dtype, whatever the BN parameters' dtype.
TEST(FoldBatchNormIntoConv, StoresResultsInTheWeightDtype) {
  std::string out = run_pass(fold_batch_norm_into_conv,
                             std::string("graph main(%x: f16[1,2,4,4]) {\n") +
                                 "  %w: f16[2,1,1,1] = const f16[2,1,1,1]{1,2}\n" + kBnParams +
                                 "  %c: f16[1,2,4,4] = Conv(%x, %w) {group=2}\n"
                                 "  %y: f16[1,2,4,4] = BatchNormalization(%c, %scale, %beta, %mean, %var) {epsilon=1}\n"
                                 "  return %y\n"
                                 "}\n");
  EXPECT_NE(out.find("%w_bn: f16[2,1,1,1] = const f16[2,1,1,1]{0.5,4}"), std::string::npos) << out;
  EXPECT_NE(out.find("%w_bn_bias: f16[2] = const f16[2]{0,1}"), std::string::npos) << out;
}

// Another reader of the Conv output needs the unnormalized values.
TEST(FoldBatchNormIntoConv, LeavesAConvOutputThatSomethingElseReads) {
  std::string text = std::string("graph main(%x: f32[1,2,4,4]) {\n") +
                     "  %w: f32[2,1,1,1] = const f32[2,1,1,1]{1,2}\n" + kBnParams +
                     "  %c: f32[1,2,4,4] = Conv(%x, %w) {group=2}\n"
                     "  %y: f32[1,2,4,4] = BatchNormalization(%c, %scale, %beta, %mean, %var) {epsilon=1}\n"
                     "  %z: f32[1,2,4,4] = Add(%y, %c)\n"
                     "  return %z\n"
                     "}\n";
  std::string out = run_pass(fold_batch_norm_into_conv, text);
  EXPECT_NE(out.find("BatchNormalization"), std::string::npos) << out;
}

// Weights that are graph inputs are not known at build time.
TEST(FoldBatchNormIntoConv, LeavesNonConstantWeights) {
  std::string text = std::string("graph main(%x: f32[1,2,4,4], %w: f32[2,1,1,1]) {\n") + kBnParams +
                     "  %c: f32[1,2,4,4] = Conv(%x, %w) {group=2}\n"
                     "  %y: f32[1,2,4,4] = BatchNormalization(%c, %scale, %beta, %mean, %var) {epsilon=1}\n"
                     "  return %y\n"
                     "}\n";
  EXPECT_NE(run_pass(fold_batch_norm_into_conv, text).find("BatchNormalization"), std::string::npos);
}

// Training mode normalizes with batch statistics, not the constants.
TEST(FoldBatchNormIntoConv, LeavesTrainingModeBatchNorm) {
  std::string text = std::string("graph main(%x: f32[1,2,4,4]) {\n") +
                     "  %w: f32[2,1,1,1] = const f32[2,1,1,1]{1,2}\n" + kBnParams +
                     "  %c: f32[1,2,4,4] = Conv(%x, %w) {group=2}\n"
                     "  %y: f32[1,2,4,4] = BatchNormalization(%c, %scale, %beta, %mean, %var) {training_mode=1}\n"
                     "  return %y\n"
                     "}\n";
  EXPECT_NE(run_pass(fold_batch_norm_into_conv, text).find("BatchNormalization"), std::string::npos);
}

// ---- eliminate_transposes ----

TEST(EliminateTransposes, InverseTransposesDisappear) {
  EXPECT_EQ(run_pass(eliminate_transposes,
                     "graph main(%x: f32[2,3]) {\n"
                     "  %a: f32[3,2] = Transpose(%x) {perm=[1,0]}\n"
                     "  %b: f32[2,3] = Transpose(%a)\n"
                     "  %c: f32[2,3] = Relu(%b)\n"
                     "  return %c\n"
                     "}\n"),
            "graph main(%x: f32[2,3]) {\n"
            "  %a: f32[3,2] = Transpose(%x) {perm=[1,0]}\n"
            "  %c: f32[2,3] = Relu(%x)\n"
            "  return %c\n"
            "}\n");
}

// y[j] = x[p1[p2[j]]]: [1,2,0] then [1,2,0] is [2,0,1].
TEST(EliminateTransposes, ComposesTwoPermutations) {
  EXPECT_EQ(run_pass(eliminate_transposes,
                     "graph main(%x: f32[2,3,4]) {\n"
                     "  %a: f32[3,4,2] = Transpose(%x) {perm=[1,2,0]}\n"
                     "  %b: f32[4,2,3] = Transpose(%a) {perm=[1,2,0]}\n"
                     "  return %b\n"
                     "}\n"),
            "graph main(%x: f32[2,3,4]) {\n"
            "  %a: f32[3,4,2] = Transpose(%x) {perm=[1,2,0]}\n"
            "  %b: f32[4,2,3] = Transpose(%x) {perm=[2,0,1]}\n"
            "  return %b\n"
            "}\n");
}

TEST(EliminateTransposes, DropsAnIdentityPermutation) {
  EXPECT_EQ(run_pass(eliminate_transposes,
                     "graph main(%x: f32[2,3]) {\n"
                     "  %a: f32[2,3] = Transpose(%x) {perm=[0,1]}\n"
                     "  %b: f32[2,3] = Relu(%a)\n"
                     "  return %b\n"
                     "}\n"),
            "graph main(%x: f32[2,3]) {\n"
            "  %b: f32[2,3] = Relu(%x)\n"
            "  return %b\n"
            "}\n");
}

// The graph output's name must keep being produced.
TEST(EliminateTransposes, AnIdentityTransposeNamingAGraphOutputBecomesIdentity) {
  EXPECT_EQ(run_pass(eliminate_transposes,
                     "graph main(%x: f32[2,3]) {\n"
                     "  %a: f32[2,3] = Transpose(%x) {perm=[0,1]}\n"
                     "  return %a\n"
                     "}\n"),
            "graph main(%x: f32[2,3]) {\n"
            "  %a: f32[2,3] = Identity(%x)\n"
            "  return %a\n"
            "}\n");
}

// ViT's patch embedding: NHWC -> NCHW, [N,8,2,3] -> [N,8,6] (2 and 3 were
// adjacent in %x), then tokens [N,6,8]: one Reshape of %x, no Transpose.
TEST(EliminateTransposes, CancelsAPairAcrossAReshapeThatMergesAdjacentAxes) {
  EXPECT_EQ(run_pass(eliminate_transposes,
                     "graph main(%x: f32[N,2,3,8]) {\n"
                     "  %s: i64[3] = const i64[3]{0,8,6}\n"
                     "  %a: f32[N,8,2,3] = Transpose(%x) {perm=[0,3,1,2]}\n"
                     "  %r: f32[N,8,6] = Reshape(%a, %s)\n"
                     "  %b: f32[N,6,8] = Transpose(%r) {perm=[0,2,1]}\n"
                     "  %c: f32[N,6,8] = Relu(%b)\n"
                     "  return %c\n"
                     "}\n"),
            "graph main(%x: f32[N,2,3,8]) {\n"
            "  %s: i64[3] = const i64[3]{0,8,6}\n"
            "  %x_merged_shape: i64[3] = const i64[3]{0,6,8}\n"
            "  %a: f32[N,8,2,3] = Transpose(%x) {perm=[0,3,1,2]}\n"
            "  %r: f32[N,8,6] = Reshape(%a, %s)\n"
            "  %x_merged: f32[N,6,8] = Reshape(%x, %x_merged_shape)\n"
            "  %c: f32[N,6,8] = Relu(%x_merged)\n"
            "  return %c\n"
            "}\n");
}

// x [2,3,4,5] -> [2,4,5,3] -> [2,20,3] -> [20,2,3]: the Reshape of x merges
// its axes 2 and 3 into [2,3,20], and [0,2,1] then [1,0,2] is [2,0,1].
const char* kThroughReshape =
    "graph main(%x: f32[2,3,4,5]) {\n"
    "  %s: i64[3] = const i64[3]{2,20,3}\n"
    "  %a: f32[2,4,5,3] = Transpose(%x) {perm=[0,2,3,1]}\n"
    "  %r: f32[2,20,3] = Reshape(%a, %s)\n"
    "  %b: f32[20,2,3] = Transpose(%r) {perm=[1,0,2]}\n"
    "  return %b\n"
    "}\n";

TEST(EliminateTransposes, ComposesPermutationsAcrossAMergingReshape) {
  EXPECT_EQ(run_pass(eliminate_transposes, kThroughReshape),
            "graph main(%x: f32[2,3,4,5]) {\n"
            "  %s: i64[3] = const i64[3]{2,20,3}\n"
            "  %x_merged_shape: i64[3] = const i64[3]{2,3,20}\n"
            "  %a: f32[2,4,5,3] = Transpose(%x) {perm=[0,2,3,1]}\n"
            "  %r: f32[2,20,3] = Reshape(%a, %s)\n"
            "  %x_merged: f32[2,3,20] = Reshape(%x, %x_merged_shape)\n"
            "  %b: f32[20,2,3] = Transpose(%x_merged) {perm=[2,0,1]}\n"
            "  return %b\n"
            "}\n");
}

TEST(EliminateTransposes, ComposingAcrossAReshapeKeepsTheCpuResult) {
  auto g = parse_graph(kThroughReshape);
  ASSERT_TRUE(g.is_ok()) << g.status().to_string();
  Tensor x(DType::kF32, {2, 3, 4, 5});
  for (int64_t i = 0; i < x.numel(); ++i) x.mutable_data<float>()[i] = static_cast<float>(i);
  auto before = run_graph_on_cpu(**g, {RunValue::of(x)});
  ASSERT_TRUE(before.is_ok()) << before.status().to_string();
  PassContext ctx;
  ASSERT_TRUE(eliminate_transposes(**g, ctx).is_ok());
  auto after = run_graph_on_cpu(**g, {RunValue::of(x)});
  ASSERT_TRUE(after.is_ok()) << after.status().to_string();
  const Tensor &a = (*after)[0].tensor, &b = (*before)[0].tensor;
  ASSERT_EQ(a.dims(), b.dims());
  for (int64_t i = 0; i < a.numel(); ++i) ASSERT_EQ(a.data<float>()[i], b.data<float>()[i]) << i;
}

// Merged axes that were not adjacent, or not in order, in the first
// Transpose's input: no Reshape of that input gives the same elements.
TEST(EliminateTransposes, LeavesAReshapeThatMergesAxesApartInTheInput) {
  for (const char* text : {"graph main(%x: f32[2,3,4]) {\n"  // merges x's axes 1 and 0: out of order
                           "  %s: i64[2] = const i64[2]{6,4}\n"
                           "  %a: f32[3,2,4] = Transpose(%x) {perm=[1,0,2]}\n"
                           "  %r: f32[6,4] = Reshape(%a, %s)\n"
                           "  %b: f32[4,6] = Transpose(%r) {perm=[1,0]}\n"
                           "  return %b\n"
                           "}\n",
                           "graph main(%x: f32[2,3,4]) {\n"  // merges x's axes 0 and 2: not adjacent
                           "  %s: i64[2] = const i64[2]{8,3}\n"
                           "  %a: f32[2,4,3] = Transpose(%x) {perm=[0,2,1]}\n"
                           "  %r: f32[8,3] = Reshape(%a, %s)\n"
                           "  %b: f32[3,8] = Transpose(%r) {perm=[1,0]}\n"
                           "  return %b\n"
                           "}\n",
                           "graph main(%x: f32[2,12]) {\n"  // splits an axis
                           "  %s: i64[3] = const i64[3]{3,4,2}\n"
                           "  %a: f32[12,2] = Transpose(%x) {perm=[1,0]}\n"
                           "  %r: f32[3,4,2] = Reshape(%a, %s)\n"
                           "  %b: f32[2,3,4] = Transpose(%r) {perm=[2,0,1]}\n"
                           "  return %b\n"
                           "}\n"}) {
    auto g = parse_graph(text);
    ASSERT_TRUE(g.is_ok()) << g.status().to_string();
    EXPECT_EQ(run_pass(eliminate_transposes, text), print_graph(**g)) << text;
  }
}

// ---- eliminate_reshapes ----

TEST(EliminateReshapes, CollapsesAStaticChainIntoOneReshape) {
  EXPECT_EQ(run_pass(eliminate_reshapes,
                     "graph main(%x: f32[2,3]) {\n"
                     "  %ax: i64[1] = const i64[1]{0}\n"
                     "  %a: f32[1,6] = Flatten(%x) {axis=0}\n"
                     "  %b: f32[1,1,6] = Unsqueeze(%a, %ax)\n"
                     "  %c: f32[3,2] = Squeeze(%b)\n"
                     "  return %c\n"
                     "}\n"),
            "graph main(%x: f32[2,3]) {\n"
            "  %ax: i64[1] = const i64[1]{0}\n"
            "  %b_shape: i64[3] = const i64[3]{1,1,6}\n"
            "  %c_shape: i64[2] = const i64[2]{3,2}\n"
            "  %a: f32[1,6] = Flatten(%x) {axis=0}\n"
            "  %b: f32[1,1,6] = Reshape(%x, %b_shape)\n"
            "  %c: f32[3,2] = Reshape(%x, %c_shape)\n"
            "  return %c\n"
            "}\n");
}

// A dim that is the input's symbol at the same index is written 0 (copied).
TEST(EliminateReshapes, KeepsSymbolsAsCopiedDims) {
  std::string out = run_pass(eliminate_reshapes,
                             "graph main(%x: f32[batch,2,3]) {\n"
                             "  %s: i64[2] = const i64[2]{0,6}\n"
                             "  %ax: i64[1] = const i64[1]{2}\n"
                             "  %a: f32[batch,6] = Reshape(%x, %s)\n"
                             "  %b: f32[batch,6,1] = Unsqueeze(%a, %ax)\n"
                             "  return %b\n"
                             "}\n");
  EXPECT_NE(out.find("%b_shape: i64[3] = const i64[3]{0,6,1}"), std::string::npos) << out;
  EXPECT_NE(out.find("%b: f32[batch,6,1] = Reshape(%x, %b_shape)"), std::string::npos) << out;
}

// A new symbol (batch*6) cannot be copied but is left to -1.
TEST(EliminateReshapes, InfersOneUnnamedDim) {
  std::string out = run_pass(eliminate_reshapes,
                             "graph main(%x: f32[batch,2,3]) {\n"
                             "  %a: f32[batch,6] = Flatten(%x)\n"
                             "  %b: f32[6*batch] = Flatten(%a) {axis=0}\n"
                             "  return %b\n"
                             "}\n");
  EXPECT_NE(out.find("%b: f32[6*batch] = Reshape(%x, %b_shape)"), std::string::npos) << out;
  EXPECT_NE(out.find("const i64[1]{-1}"), std::string::npos) << out;
}

// Two dims unknown to each other can't be one constant shape.
TEST(EliminateReshapes, LeavesChainsWithTwoUnnamedDims) {
  const char* text =
      "graph main(%x: f32[a,b,c]) {\n"
      "  %ax: i64[1] = const i64[1]{2}\n"
      "  %a: f32[a*b,c] = Flatten(%x) {axis=2}\n"
      "  %b: f32[a*b,c,1] = Unsqueeze(%a, %ax)\n"
      "  return %b\n"
      "}\n";
  EXPECT_EQ(run_pass(eliminate_reshapes, text), text);
}

TEST(EliminateReshapes, DropsAReshapeToTheInputsOwnShape) {
  EXPECT_EQ(run_pass(eliminate_reshapes,
                     "graph main(%x: f32[batch,6]) {\n"
                     "  %s: i64[2] = const i64[2]{0,6}\n"
                     "  %a: f32[batch,6] = Reshape(%x, %s)\n"
                     "  %b: f32[batch,6] = Relu(%a)\n"
                     "  return %b\n"
                     "}\n"),
            "graph main(%x: f32[batch,6]) {\n"
            "  %b: f32[batch,6] = Relu(%x)\n"
            "  return %b\n"
            "}\n");
}

// ---- simplify_shape_arithmetic ----

TEST(SimplifyShapeArithmetic, DropsCastToTheSameDtype) {
  EXPECT_EQ(run_pass(simplify_shape_arithmetic,
                     "graph main(%x: f32[batch,3]) {\n"
                     "  %a: f32[batch,3] = Cast(%x) {to=1}\n"
                     "  %b: f32[batch,3] = Relu(%a)\n"
                     "  return %b\n"
                     "}\n"),
            "graph main(%x: f32[batch,3]) {\n"
            "  %b: f32[batch,3] = Relu(%x)\n"
            "  return %b\n"
            "}\n");
}

TEST(SimplifyShapeArithmetic, KeepsANoOpThatNamesAGraphOutput) {
  const char* text =
      "graph main(%x: f32[batch,3]) {\n"
      "  %a: f32[batch,3] = Cast(%x) {to=1}\n"
      "  return %a\n"
      "}\n";
  EXPECT_EQ(run_pass(simplify_shape_arithmetic, text), text);
}

TEST(SimplifyShapeArithmetic, DropsExpandConcatPadAndDropoutThatDoNothing) {
  EXPECT_EQ(run_pass(simplify_shape_arithmetic,
                     "graph main(%x: f32[2,3]) {\n"
                     "  %s: i64[2] = const i64[2]{2,3}\n"
                     "  %p: i64[4] = const i64[4]{0,0,0,0}\n"
                     "  %a: f32[2,3] = Expand(%x, %s)\n"
                     "  %b: f32[2,3] = Concat(%a) {axis=0}\n"
                     "  %c: f32[2,3] = Pad(%b, %p)\n"
                     "  %d: f32[2,3], _ = Dropout(%c)\n"
                     "  %e: f32[2,3] = Relu(%d)\n"
                     "  return %e\n"
                     "}\n"),
            "graph main(%x: f32[2,3]) {\n"
            "  %e: f32[2,3] = Relu(%x)\n"
            "  return %e\n"
            "}\n");
}

// A Dropout mask that is read must keep being computed.
TEST(SimplifyShapeArithmetic, KeepsDropoutWhoseMaskIsRead) {
  const char* text =
      "graph main(%x: f32[2,3]) {\n"
      "  %d: f32[2,3], %m: bool[2,3] = Dropout(%x)\n"
      "  %e: f32[2,3] = Relu(%d)\n"
      "  return %e, %m\n"
      "}\n";
  EXPECT_EQ(run_pass(simplify_shape_arithmetic, text), text);
}

TEST(SimplifyShapeArithmetic, DropsASliceCoveringTheWholeInput) {
  EXPECT_EQ(run_pass(simplify_shape_arithmetic,
                     "graph main(%x: f32[batch,3]) {\n"
                     "  %st: i64[2] = const i64[2]{0,-3}\n"
                     "  %en: i64[2] = const i64[2]{2147483647,3}\n"
                     "  %a: f32[batch,3] = Slice(%x, %st, %en)\n"
                     "  %b: f32[batch,3] = Relu(%a)\n"
                     "  return %b\n"
                     "}\n"),
            "graph main(%x: f32[batch,3]) {\n"
            "  %b: f32[batch,3] = Relu(%x)\n"
            "  return %b\n"
            "}\n");
}

// An Expand that broadcasts does work.
TEST(SimplifyShapeArithmetic, KeepsAnExpandThatBroadcasts) {
  const char* text =
      "graph main(%x: f32[1,3]) {\n"
      "  %s: i64[2] = const i64[2]{2,3}\n"
      "  %a: f32[2,3] = Expand(%x, %s)\n"
      "  %b: f32[2,3] = Relu(%a)\n"
      "  return %b\n"
      "}\n";
  EXPECT_EQ(run_pass(simplify_shape_arithmetic, text), text);
}

// Step -1 keeps the shape but reverses the elements.
TEST(SimplifyShapeArithmetic, KeepsAReversingSlice) {
  const char* text =
      "graph main(%x: f32[3]) {\n"
      "  %st: i64[1] = const i64[1]{-1}\n"
      "  %en: i64[1] = const i64[1]{-4}\n"
      "  %ax: i64[1] = const i64[1]{0}\n"
      "  %sp: i64[1] = const i64[1]{-1}\n"
      "  %a: f32[3] = Slice(%x, %st, %en, %ax, %sp)\n"
      "  %b: f32[3] = Relu(%a)\n"
      "  return %b\n"
      "}\n";
  EXPECT_EQ(run_pass(simplify_shape_arithmetic, text), text);
}

// fold_constants already turns fixed shape arithmetic into constants: i32 casts, scalars, Size.
TEST(SimplifyShapeArithmetic, FoldConstantsMaterializesFixedShapeValuesOfEveryKind) {
  std::string out = run_pass(fold_constants,
                             "graph main(%x: f32[2,3]) {\n"
                             "  %i: i64[] = const i64[]{1}\n"
                             "  %s: i64[2] = Shape(%x)\n"
                             "  %g: i64[] = Gather(%s, %i) {axis=0}\n"
                             "  %c: i32[2] = Cast(%s) {to=6}\n"
                             "  %n: i64[] = Size(%x)\n"
                             "  %f: f32[2] = Cast(%s) {to=1}\n"
                             "  return %g, %c, %n, %f\n"
                             "}\n",
                             /*infer=*/true);
  EXPECT_NE(out.find("%g: i64[] = const i64[]{3}"), std::string::npos) << out;
  EXPECT_NE(out.find("%c: i32[2] = const i32[2]{2,3}"), std::string::npos) << out;
  EXPECT_NE(out.find("%n: i64[] = const i64[]{6}"), std::string::npos) << out;
  EXPECT_NE(out.find("%f: f32[2] = const f32[2]{2,3}"), std::string::npos) << out;
  EXPECT_EQ(out.find(" = Shape("), std::string::npos) << out;
}

// A dim only known as a symbol stays computed at run time.
TEST(SimplifyShapeArithmetic, LeavesSymbolicShapeArithmetic) {
  std::string out = run_pass(fold_constants,
                             "graph main(%x: f32[batch,3]) {\n"
                             "  %s: i64[2] = Shape(%x)\n"
                             "  return %s\n"
                             "}\n",
                             /*infer=*/true);
  EXPECT_NE(out.find("= Shape(%x)"), std::string::npos) << out;
}

// ---- fold_shape_where ----

// PyTorch's Expand export: S = [batch, -1, seq, seq] with -1 meaning "keep".
const char* kShapeWhere =
    "graph main(%x: i64[batch,seq], %m: bool[1,1,seq,1]) {\n"
    "  %sh: i64[2] = Shape(%x)\n"
    "  %i0: i64[1] = const i64[1]{0}\n"
    "  %i1: i64[1] = const i64[1]{1}\n"
    "  %b: i64[1] = Gather(%sh, %i0) {axis=0}\n"
    "  %t: i64[1] = Gather(%sh, %i1) {axis=0}\n"
    "  %m1: i64[1] = const i64[1]{-1}\n"
    "  %s: i64[4] = Concat(%b, %m1, %t, %t) {axis=0}\n"
    "  %c: i64[4] = const i64[4]{-1,-1,-1,C}\n"
    "  %ones: i64[4] = const i64[4]{1,1,1,1}\n"
    "  %e: bool[4] = Equal(%s, %c)\n"
    "  %w: i64[4] = Where(%e, %ones, %s)\n"
    "  %y: bool[?,?,?,?] = Expand(%m, %w)\n"
    "  return %y\n"
    "}\n";

std::string shape_where_graph(const char* last_c) {
  std::string text = kShapeWhere;
  text.replace(text.find("C}"), 1, last_c);
  return text;
}

TEST(FoldShapeWhere, DecidesTheExportersMinusOneAndGivesExpandItsShape) {
  EXPECT_EQ(run_pass(fold_shape_where, shape_where_graph("-1"), /*infer=*/true),
            "graph main(%x: i64[batch,seq], %m: bool[1,1,seq,1]) {\n"
            "  %i0: i64[1] = const i64[1]{0}\n"
            "  %i1: i64[1] = const i64[1]{1}\n"
            "  %m1: i64[1] = const i64[1]{-1}\n"
            "  %c: i64[4] = const i64[4]{-1,-1,-1,-1}\n"
            "  %ones: i64[4] = const i64[4]{1,1,1,1}\n"
            "  %w.piece: i64[1] = const i64[1]{1}\n"
            "  %sh: i64[2] = Shape(%x)\n"
            "  %b: i64[1] = Gather(%sh, %i0) {axis=0}\n"
            "  %t: i64[1] = Gather(%sh, %i1) {axis=0}\n"
            "  %s: i64[4] = Concat(%b, %m1, %t, %t) {axis=0}\n"
            "  %e: bool[4] = Equal(%s, %c)\n"
            "  %w: i64[4] = Concat(%b, %w.piece, %t, %t) {axis=0}\n"
            "  %y: bool[batch,1,seq,seq] = Expand(%m, %w)\n"
            "  return %y\n"
            "}\n");
}

// A runtime dim might equal a non-negative constant: nothing is decided.
TEST(FoldShapeWhere, LeavesAComparisonWithANonNegativeConstant) {
  const std::string text = shape_where_graph("0");
  EXPECT_EQ(run_pass(fold_shape_where, text, /*infer=*/true),
            run_pass([](Graph&, PassContext&) { return Status::ok(); }, text, true));
}

// ---- fuse_attention_heads ----

// Q, K, V [2,3,8] split into 2 heads of 4, attention, merged back; the merge
// Reshape's target is given.
std::string heads_graph(const std::string& merged_type, const std::string& merged_shape) {
  return "graph main(%q: f32[2,3,8], %k: f32[2,3,8], %v: f32[2,3,8]) {\n"
         "  %s4: i64[4] = const i64[4]{2,3,2,4}\n"
         "  %so: i64[" +
         std::to_string(std::count(merged_shape.begin(), merged_shape.end(), ',') + 1) + "] = const i64[" +
         std::to_string(std::count(merged_shape.begin(), merged_shape.end(), ',') + 1) + "]{" + merged_shape +
         "}\n"
         "  %q4: f32[2,3,2,4] = Reshape(%q, %s4)\n"
         "  %qt: f32[2,2,3,4] = Transpose(%q4) {perm=[0,2,1,3]}\n"
         "  %k4: f32[2,3,2,4] = Reshape(%k, %s4)\n"
         "  %kt: f32[2,2,3,4] = Transpose(%k4) {perm=[0,2,1,3]}\n"
         "  %v4: f32[2,3,2,4] = Reshape(%v, %s4)\n"
         "  %vt: f32[2,2,3,4] = Transpose(%v4) {perm=[0,2,1,3]}\n"
         "  %y: f32[2,2,3,4] = Attention(%qt, %kt, %vt) {scale=0.5}\n"
         "  %yt: f32[2,3,2,4] = Transpose(%y) {perm=[0,2,1,3]}\n"
         "  %o: " +
         merged_type +
         " = Reshape(%yt, %so)\n"
         "  return %o\n"
         "}\n";
}

TEST(FuseAttentionHeads, AttentionReadsAndWritesTheHeadsPacked) {
  EXPECT_EQ(run_pass(fuse_attention_heads, heads_graph("f32[2,3,8]", "2,3,8")),
            "graph main(%q: f32[2,3,8], %k: f32[2,3,8], %v: f32[2,3,8]) {\n"
            "  %o: f32[2,3,8] = Attention(%q, %k, %v) {kv_num_heads=2, q_num_heads=2, scale=0.5}\n"
            "  return %o\n"
            "}\n");
}

// GPT-2 flattens the merged heads for its Gemm: that Reshape stays.
TEST(FuseAttentionHeads, KeepsAFlatteningReshapeAfterTheMerge) {
  EXPECT_EQ(run_pass(fuse_attention_heads, heads_graph("f32[6,8]", "-1,8")),
            "graph main(%q: f32[2,3,8], %k: f32[2,3,8], %v: f32[2,3,8]) {\n"
            "  %so: i64[2] = const i64[2]{-1,8}\n"
            "  %y.merged: f32[2,3,8] = Attention(%q, %k, %v) {kv_num_heads=2, q_num_heads=2, scale=0.5}\n"
            "  %o: f32[6,8] = Reshape(%y.merged, %so)\n"
            "  return %o\n"
            "}\n");
}

// A 0 in the kept Reshape's shape would copy another input dim ([2,12] from
// [2,3,2,4], [2,24] from [2,3,8]): no rewrite.
TEST(FuseAttentionHeads, LeavesAReshapeThatCopiesInputDims) {
  const std::string text = heads_graph("f32[2,12]", "0,-1");
  EXPECT_EQ(run_pass(fuse_attention_heads, text), run_pass([](Graph&, PassContext&) { return Status::ok(); }, text));
}

// The packed form computes what the head-split form does.
TEST(FuseAttentionHeads, SameResultsOnTheCpu) {
  auto g = parse_graph(heads_graph("f32[6,8]", "-1,8"));
  ASSERT_TRUE(g.is_ok()) << g.status().to_string();
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> u(-1, 1);
  std::vector<RunValue> in;
  for (int i = 0; i < 3; ++i) {
    std::vector<float> x(48);
    for (float& e : x) e = u(rng);
    in.push_back(RunValue::of(Tensor::from_vector(DType::kF32, {2, 3, 8}, x)));
  }
  auto before = run_graph_on_cpu(**g, in);
  ASSERT_TRUE(before.is_ok()) << before.status().to_string();
  PassContext ctx;
  ASSERT_TRUE(fuse_attention_heads(**g, ctx).is_ok());
  ASSERT_EQ(print_graph(**g).find("Transpose"), std::string::npos);
  auto after = run_graph_on_cpu(**g, in);
  ASSERT_TRUE(after.is_ok()) << after.status().to_string();
  const Tensor &a = (*after)[0].tensor, &b = (*before)[0].tensor;
  ASSERT_EQ(a.dims(), b.dims());
  for (int64_t i = 0; i < a.numel(); ++i) EXPECT_NEAR(a.element_as_double(i), b.element_as_double(i), 1e-6) << i;
}

// ---- sink_reshapes ----

TEST(SinkReshapes, MovesAReshapeBelowAUnaryOp) {
  EXPECT_EQ(run_pass(sink_reshapes,
                     "graph main(%x: f32[6,4]) {\n"
                     "  %s: i64[3] = const i64[3]{2,3,4}\n"
                     "  %r: f32[2,3,4] = Reshape(%x, %s)\n"
                     "  %g: f32[2,3,4] = Gelu(%r) {approximate=\"tanh\"}\n"
                     "  return %g\n"
                     "}\n"),
            "graph main(%x: f32[6,4]) {\n"
            "  %s: i64[3] = const i64[3]{2,3,4}\n"
            "  %g.unshaped: f32[6,4] = Gelu(%x) {approximate=\"tanh\"}\n"
            "  %g: f32[2,3,4] = Reshape(%g.unshaped, %s)\n"
            "  return %g\n"
            "}\n");
}

// A Reshape with another reader, or before a binary op, stays.
TEST(SinkReshapes, LeavesAReshapeReadElsewhereOrBeforeABinaryOp) {
  const char* text =
      "graph main(%x: f32[6,4], %y: f32[2,3,4]) {\n"
      "  %s: i64[3] = const i64[3]{2,3,4}\n"
      "  %r: f32[2,3,4] = Reshape(%x, %s)\n"
      "  %a: f32[2,3,4] = Relu(%r)\n"
      "  %q: f32[2,3,4] = Reshape(%x, %s)\n"
      "  %b: f32[2,3,4] = Add(%q, %y)\n"
      "  return %a, %b, %r\n"
      "}\n";
  EXPECT_EQ(run_pass(sink_reshapes, text), text);
}

}  // namespace
}  // namespace kiln
