// The fusion passes (LayerNorm/RMSNorm, GELU, attention), before and after as
// IR text, the near misses each must leave alone, and the fused graphs run on
// the CPU backend against the unfused ones on random inputs.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <map>
#include <random>

#include "backends/cpu/cpu_executor.h"
#include "ir/parser.h"
#include "ir/printer.h"
#include "onnx/importer.h"
#include "onnx/value_file.h"
#include "pass_test_util.h"
#include "passes/pass.h"
#include "shared_model_util.h"

namespace kiln {
namespace {

// The largest difference between the graph's outputs before and after
// `pass`, on inputs drawn from [-2, 2]; the fused graph's text in `fused`.
double max_difference(PassFn pass, const std::string& text, std::string* fused) {
  auto before = parse_graph(text);
  auto after = parse_graph(text);
  EXPECT_TRUE(before.is_ok() && after.is_ok());
  if (!before.is_ok() || !after.is_ok()) return INFINITY;
  PassContext ctx;
  EXPECT_TRUE(pass(**after, ctx).is_ok());
  *fused = print_graph(**after);
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> dist(-2.0f, 2.0f);
  std::vector<RunValue> feeds;
  for (const Value* in : (*before)->inputs) {
    Tensor t(DType::kF32, in->type.shape.fixed_dims());
    for (int64_t i = 0; i < t.numel(); ++i) t.mutable_data<float>()[i] = dist(rng);
    feeds.push_back(RunValue::of(std::move(t)));
  }
  auto a = run_graph_on_cpu(**before, feeds);
  auto b = run_graph_on_cpu(**after, feeds);
  EXPECT_TRUE(a.is_ok()) << (a.is_ok() ? "" : a.status().to_string());
  EXPECT_TRUE(b.is_ok()) << (b.is_ok() ? "" : b.status().to_string());
  if (!a.is_ok() || !b.is_ok()) return INFINITY;
  double worst = 0;
  for (size_t o = 0; o < a->size(); ++o) {
    const Tensor &x = (*a)[o].tensor, &y = (*b)[o].tensor;
    EXPECT_EQ(x.dims(), y.dims());
    if (x.dims() != y.dims()) return INFINITY;
    for (int64_t i = 0; i < x.numel(); ++i)
      worst = std::max(worst, static_cast<double>(std::abs(x.data<float>()[i] - y.data<float>()[i])));
  }
  return worst;
}

bool has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// ---- fuse_layer_norm ----

const char* kLayerNorm =
    "graph main(%x: f32[2,3,4]) {\n"
    "  %axes: i64[1] = const i64[1]{-1}\n"
    "  %two: f32[] = const f32[]{2}\n"
    "  %eps: f32[] = const f32[]{1e-05}\n"
    "  %gamma: f32[4] = const f32[4]{1,2,3,4}\n"
    "  %beta: f32[4] = const f32[4]{0.5,0,-1,0}\n"
    "  %m: f32[2,3,1] = ReduceMean(%x, %axes)\n"
    "  %d: f32[2,3,4] = Sub(%x, %m)\n"
    "  %q: f32[2,3,4] = Pow(%d, %two)\n"
    "  %v: f32[2,3,1] = ReduceMean(%q, %axes)\n"
    "  %e: f32[2,3,1] = Add(%v, %eps)\n"
    "  %s: f32[2,3,1] = Sqrt(%e)\n"
    "  %n: f32[2,3,4] = Div(%d, %s)\n"
    "  %g: f32[2,3,4] = Mul(%n, %gamma)\n"
    "  %y: f32[2,3,4] = Add(%g, %beta)\n"
    "  return %y\n"
    "}\n";

TEST(FuseLayerNorm, MeanSubPowMeanAddSqrtDivMulAddBecomesLayerNormalization) {
  EXPECT_EQ(run_pass(fuse_layer_norm, kLayerNorm),
            "graph main(%x: f32[2,3,4]) {\n"
            "  %gamma: f32[4] = const f32[4]{1,2,3,4}\n"
            "  %beta: f32[4] = const f32[4]{0.5,0,-1,0}\n"
            "  %y: f32[2,3,4] = LayerNormalization(%x, %gamma, %beta) {axis=-1, epsilon=1e-05}\n"
            "  return %y\n"
            "}\n");
}

TEST(FuseLayerNorm, FusedGraphComputesTheSameValues) {
  std::string fused;
  EXPECT_LT(max_difference(fuse_layer_norm, kLayerNorm, &fused), 1e-5);
  EXPECT_TRUE(has(fused, "LayerNormalization")) << fused;
}

// Opset-17 form: axes as an attribute, the square as Mul(d, d), 1/std as
// Reciprocal; no gamma and beta (gamma becomes ones, beta stays absent).
TEST(FuseLayerNorm, AcceptsAxesAttributeMulSquareAndReciprocal) {
  EXPECT_EQ(run_pass(fuse_layer_norm,
                     "graph main(%x: f32[2,4]) {\n"
                     "  %eps: f32[1] = const f32[1]{0.001}\n"
                     "  %m: f32[2,1] = ReduceMean(%x) {axes=[1]}\n"
                     "  %d: f32[2,4] = Sub(%x, %m)\n"
                     "  %q: f32[2,4] = Mul(%d, %d)\n"
                     "  %v: f32[2,1] = ReduceMean(%q) {axes=[-1]}\n"
                     "  %e: f32[2,1] = Add(%eps, %v)\n"
                     "  %s: f32[2,1] = Sqrt(%e)\n"
                     "  %r: f32[2,1] = Reciprocal(%s)\n"
                     "  %y: f32[2,4] = Mul(%d, %r)\n"
                     "  return %y\n"
                     "}\n"),
            "graph main(%x: f32[2,4]) {\n"
            "  %x_ones: f32[4] = const f32[4]{1,1,1,1}\n"
            "  %y: f32[2,4] = LayerNormalization(%x, %x_ones) {axis=-1, epsilon=0.001}\n"
            "  return %y\n"
            "}\n");
}

// (The exponent is an integer here: Pow takes one.)
const char* kRmsNorm =
    "graph main(%x: f32[3,4]) {\n"
    "  %axes: i64[1] = const i64[1]{1}\n"
    "  %two: i64[] = const i64[]{2}\n"
    "  %eps: f32[] = const f32[]{1e-06}\n"
    "  %gamma: f32[4] = const f32[4]{1,0.5,2,1}\n"
    "  %q: f32[3,4] = Pow(%x, %two)\n"
    "  %v: f32[3,1] = ReduceMean(%q, %axes)\n"
    "  %e: f32[3,1] = Add(%v, %eps)\n"
    "  %s: f32[3,1] = Sqrt(%e)\n"
    "  %r: f32[3,1] = Reciprocal(%s)\n"
    "  %n: f32[3,4] = Mul(%x, %r)\n"
    "  %y: f32[3,4] = Mul(%gamma, %n)\n"
    "  return %y\n"
    "}\n";

TEST(FuseLayerNorm, RmsNormBecomesRMSNormalization) {
  EXPECT_EQ(run_pass(fuse_layer_norm, kRmsNorm),
            "graph main(%x: f32[3,4]) {\n"
            "  %gamma: f32[4] = const f32[4]{1,0.5,2,1}\n"
            "  %y: f32[3,4] = RMSNormalization(%x, %gamma) {axis=-1, epsilon=1e-06}\n"
            "  return %y\n"
            "}\n");
  std::string fused;
  EXPECT_LT(max_difference(fuse_layer_norm, kRmsNorm, &fused), 1e-5);
  EXPECT_TRUE(has(fused, "RMSNormalization")) << fused;
}

std::string replaced(std::string text, const std::string& from, const std::string& to) {
  size_t at = text.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  if (at != std::string::npos) text.replace(at, from.size(), to);
  return text;
}

TEST(FuseLayerNorm, LeavesNearMissesAlone) {
  // The mean over the first axis is not LayerNormalization(axis=-1).
  std::string first_axis = replaced(kLayerNorm, "const i64[1]{-1}", "const i64[1]{0}");
  EXPECT_EQ(run_pass(fuse_layer_norm, first_axis),
            run_pass([](Graph&, PassContext&) { return Status::ok(); }, first_axis));
  // A non-constant epsilon.
  std::string input_eps = replaced(replaced(kLayerNorm, "  %eps: f32[] = const f32[]{1e-05}\n", ""),
                                   "graph main(%x: f32[2,3,4])", "graph main(%x: f32[2,3,4], %eps: f32[])");
  EXPECT_FALSE(has(run_pass(fuse_layer_norm, input_eps), "LayerNormalization"));
  // The centered value is also a graph output.
  std::string d_read = replaced(kLayerNorm, "  return %y\n", "  return %y, %d\n");
  EXPECT_FALSE(has(run_pass(fuse_layer_norm, d_read), "LayerNormalization"));
  // Squaring with exponent 3.
  std::string cube = replaced(kLayerNorm, "const f32[]{2}", "const f32[]{3}");
  EXPECT_FALSE(has(run_pass(fuse_layer_norm, cube), "Normalization"));
}

// The variance's Sqrt read by a second node: neither norm is fused.
TEST(FuseLayerNorm, LeavesAStdDevReadElsewhere) {
  std::string text = replaced(kRmsNorm, "  return %y\n", "  %z: f32[3,1] = Neg(%s)\n  return %y, %z\n");
  EXPECT_FALSE(has(run_pass(fuse_layer_norm, text), "RMSNormalization"));
}

// ---- fuse_gelu ----

// torch.nn.GELU() as the TorchScript exporter writes it.
const char* kGeluErf =
    "graph main(%x: f32[2,8]) {\n"
    "  %c: f32[] = const f32[]{1.4142135}\n"
    "  %one: f32[] = const f32[]{1}\n"
    "  %half: f32[] = const f32[]{0.5}\n"
    "  %a: f32[2,8] = Div(%x, %c)\n"
    "  %e: f32[2,8] = Erf(%a)\n"
    "  %f: f32[2,8] = Add(%e, %one)\n"
    "  %g: f32[2,8] = Mul(%x, %f)\n"
    "  %y: f32[2,8] = Mul(%g, %half)\n"
    "  return %y\n"
    "}\n";

TEST(FuseGelu, ErfFormBecomesGelu) {
  EXPECT_EQ(run_pass(fuse_gelu, kGeluErf),
            "graph main(%x: f32[2,8]) {\n"
            "  %y: f32[2,8] = Gelu(%x)\n"
            "  return %y\n"
            "}\n");
  std::string fused;
  EXPECT_LT(max_difference(fuse_gelu, kGeluErf, &fused), 1e-6);
}

// Mul by 1/sqrt(2), and the product associated as (x * 0.5) * (1 + erf).
TEST(FuseGelu, ErfFormWithMulAndHalfXFirst) {
  EXPECT_EQ(run_pass(fuse_gelu,
                     "graph main(%x: f32[4]) {\n"
                     "  %c: f32[1] = const f32[1]{0.70710677}\n"
                     "  %one: f32[] = const f32[]{1}\n"
                     "  %half: f32[] = const f32[]{0.5}\n"
                     "  %h: f32[4] = Mul(%half, %x)\n"
                     "  %a: f32[4] = Mul(%c, %x)\n"
                     "  %e: f32[4] = Erf(%a)\n"
                     "  %f: f32[4] = Add(%one, %e)\n"
                     "  %y: f32[4] = Mul(%f, %h)\n"
                     "  return %y\n"
                     "}\n"),
            "graph main(%x: f32[4]) {\n"
            "  %y: f32[4] = Gelu(%x)\n"
            "  return %y\n"
            "}\n");
}

// GPT-2's NewGELU as the dynamo exporter writes it.
const char* kGeluTanh =
    "graph main(%x: f32[2,8]) {\n"
    "  %half: f32[] = const f32[]{0.5}\n"
    "  %three: f32[] = const f32[]{3}\n"
    "  %k: f32[] = const f32[]{0.044715}\n"
    "  %s: f32[] = const f32[]{0.7978846}\n"
    "  %one: f32[] = const f32[]{1}\n"
    "  %h: f32[2,8] = Mul(%x, %half)\n"
    "  %p: f32[2,8] = Pow(%x, %three)\n"
    "  %kp: f32[2,8] = Mul(%p, %k)\n"
    "  %i: f32[2,8] = Add(%x, %kp)\n"
    "  %o: f32[2,8] = Mul(%i, %s)\n"
    "  %t: f32[2,8] = Tanh(%o)\n"
    "  %f: f32[2,8] = Add(%t, %one)\n"
    "  %y: f32[2,8] = Mul(%h, %f)\n"
    "  return %y\n"
    "}\n";

TEST(FuseGelu, TanhFormBecomesGeluTanh) {
  EXPECT_EQ(run_pass(fuse_gelu, kGeluTanh),
            "graph main(%x: f32[2,8]) {\n"
            "  %y: f32[2,8] = Gelu(%x) {approximate=\"tanh\"}\n"
            "  return %y\n"
            "}\n");
  std::string fused;
  EXPECT_LT(max_difference(fuse_gelu, kGeluTanh, &fused), 1e-6);
}

TEST(FuseGelu, TanhFormWithCubeAsProducts) {
  std::string text = replaced(kGeluTanh, "  %p: f32[2,8] = Pow(%x, %three)\n",
                              "  %xx: f32[2,8] = Mul(%x, %x)\n  %p: f32[2,8] = Mul(%xx, %x)\n");
  EXPECT_TRUE(has(run_pass(fuse_gelu, text), "%y: f32[2,8] = Gelu(%x) {approximate=\"tanh\"}"))
      << run_pass(fuse_gelu, text);
}

TEST(FuseGelu, LeavesNearMissesAlone) {
  // 1/sqrt(3) is not GELU's constant.
  EXPECT_FALSE(has(run_pass(fuse_gelu, replaced(kGeluErf, "{1.4142135}", "{1.7320508}")), "Gelu"));
  // 0.4 is not 0.5.
  EXPECT_FALSE(has(run_pass(fuse_gelu, replaced(kGeluErf, "{0.5}", "{0.4}")), "Gelu"));
  // Erf's output read by a second node.
  EXPECT_FALSE(has(run_pass(fuse_gelu, replaced(kGeluErf, "  return %y\n", "  return %y, %e\n")), "Gelu"));
  // The product takes another tensor than the Erf's x.
  std::string other = replaced(replaced(kGeluErf, "Mul(%x, %f)", "Mul(%z, %f)"), "graph main(%x: f32[2,8])",
                               "graph main(%x: f32[2,8], %z: f32[2,8])");
  EXPECT_FALSE(has(run_pass(fuse_gelu, other), "Gelu"));
  // The tanh form's cubic coefficient off by 10%.
  EXPECT_FALSE(has(run_pass(fuse_gelu, replaced(kGeluTanh, "{0.044715}", "{0.04}")), "Gelu"));
}

// ---- fuse_attention ----

// torch SDPA's decomposition (dynamo exporter): sqrt(scale) on Q and on K^T,
// an additive float mask and the IsNaN guard after Softmax.
const char* kSdpa =
    "graph main(%q: f32[2,2,3,4], %k: f32[2,2,5,4], %v: f32[2,2,5,6], %mask: f32[2,1,3,5]) {\n"
    "  %r: f32[] = const f32[]{0.5}\n"
    "  %zero: f32[] = const f32[]{0}\n"
    "  %kt: f32[2,2,4,5] = Transpose(%k) {perm=[0,1,3,2]}\n"
    "  %qs: f32[2,2,3,4] = Mul(%q, %r)\n"
    "  %ks: f32[2,2,4,5] = Mul(%kt, %r)\n"
    "  %s: f32[2,2,3,5] = MatMul(%qs, %ks)\n"
    "  %sm: f32[2,2,3,5] = Add(%s, %mask)\n"
    "  %p: f32[2,2,3,5] = Softmax(%sm) {axis=-1}\n"
    "  %nan: bool[2,2,3,5] = IsNaN(%p)\n"
    "  %pg: f32[2,2,3,5] = Where(%nan, %zero, %p)\n"
    "  %y: f32[2,2,3,6] = MatMul(%pg, %v)\n"
    "  return %y\n"
    "}\n";

TEST(FuseAttention, SdpaWithSplitScaleMaskAndNanGuardBecomesAttention) {
  EXPECT_EQ(run_pass(fuse_attention, kSdpa),
            "graph main(%q: f32[2,2,3,4], %k: f32[2,2,5,4], %v: f32[2,2,5,6], %mask: f32[2,1,3,5]) {\n"
            "  %kt: f32[2,2,4,5] = Transpose(%k) {perm=[0,1,3,2]}\n"
            "  %y: f32[2,2,3,6] = Attention(%q, %k, %v, %mask) {scale=0.25}\n"
            "  return %y\n"
            "}\n");
  std::string fused;
  EXPECT_LT(max_difference(fuse_attention, kSdpa, &fused), 1e-5);
}

// A Mul of Q by a tensor that is not a constant is part of computing Q, not the scale.
TEST(FuseAttention, NonConstantFactorOnQStaysInQ) {
  std::string text = replaced(replaced(kSdpa, "  %r: f32[] = const f32[]{0.5}\n", ""), "%mask: f32[2,1,3,5])",
                              "%mask: f32[2,1,3,5], %r: f32[])");
  std::string out = run_pass(fuse_attention, text);
  EXPECT_TRUE(has(out, "  %qs: f32[2,2,3,4] = Mul(%q, %r)\n")) << out;
  EXPECT_TRUE(has(out, "Attention(%qs, %ks_k, %v, %mask) {scale=1}")) << out;
}

// A fully masked row: Softmax gives NaN there, which the guard makes zeros,
// and Attention gives zeros too. The mask hides every key of batch 0, query 1.
TEST(FuseAttention, FullyMaskedRowsAgreeWithTheGuard) {
  std::string values;
  for (int b = 0; b < 2; ++b)
    for (int i = 0; i < 3; ++i)
      for (int j = 0; j < 5; ++j) values += std::string(values.empty() ? "" : ",") + (b == 0 && i == 1 ? "-inf" : "0");
  std::string text =
      replaced(replaced(kSdpa, ", %mask: f32[2,1,3,5])", ")"),
               "  %r: f32[] =", "  %mask: f32[2,1,3,5] = const f32[2,1,3,5]{" + values + "}\n  %r: f32[] =");
  std::string fused;
  EXPECT_LT(max_difference(fuse_attention, text, &fused), 1e-5);
  EXPECT_TRUE(has(fused, "Attention(%q, %k, %v, %mask) {scale=0.25}")) << fused;
}

// The TorchScript exporter's form: K^T = Transpose(K as [B,S,H,D], perm
// [0,2,3,1]), and Div by sqrt(D): K becomes Transpose(., [0,2,1,3]).
TEST(FuseAttention, DivScaleAndKTransposedFromBshdComposeIntoOneTranspose) {
  const char* text =
      "graph main(%q: f32[1,2,3,4], %kb: f32[1,3,2,4], %v: f32[1,2,3,4]) {\n"
      "  %c: f32[] = const f32[]{2}\n"
      "  %kt: f32[1,2,4,3] = Transpose(%kb) {perm=[0,2,3,1]}\n"
      "  %s: f32[1,2,3,3] = MatMul(%q, %kt)\n"
      "  %d: f32[1,2,3,3] = Div(%s, %c)\n"
      "  %p: f32[1,2,3,3] = Softmax(%d) {axis=3}\n"
      "  %y: f32[1,2,3,4] = MatMul(%p, %v)\n"
      "  return %y\n"
      "}\n";
  EXPECT_EQ(run_pass(fuse_attention, text),
            "graph main(%q: f32[1,2,3,4], %kb: f32[1,3,2,4], %v: f32[1,2,3,4]) {\n"
            "  %kt: f32[1,2,4,3] = Transpose(%kb) {perm=[0,2,3,1]}\n"
            "  %kt_k: f32[1,2,3,4] = Transpose(%kb) {perm=[0,2,1,3]}\n"
            "  %y: f32[1,2,3,4] = Attention(%q, %kt_k, %v) {scale=0.5}\n"
            "  return %y\n"
            "}\n");
  std::string fused;
  EXPECT_LT(max_difference(fuse_attention, text, &fused), 1e-5);
}

// K^T from the dynamo exporter's Reshape([-1,S,D]) -> Transpose(0,2,1) ->
// Reshape([B,H,D,S]) chain reads K itself; K^T given any other way gets a Transpose.
TEST(FuseAttention, ReshapeTransposeReshapeChainReadsKDirectly) {
  const char* text =
      "graph main(%q: f32[2,2,3,4], %k: f32[2,2,3,4], %v: f32[2,2,3,4]) {\n"
      "  %flat: i64[3] = const i64[3]{-1,3,4}\n"
      "  %back: i64[4] = const i64[4]{2,2,4,3}\n"
      "  %kf: f32[4,3,4] = Reshape(%k, %flat)\n"
      "  %kft: f32[4,4,3] = Transpose(%kf) {perm=[0,2,1]}\n"
      "  %kt: f32[2,2,4,3] = Reshape(%kft, %back)\n"
      "  %s: f32[2,2,3,3] = MatMul(%q, %kt)\n"
      "  %p: f32[2,2,3,3] = Softmax(%s) {axis=-1}\n"
      "  %y: f32[2,2,3,4] = MatMul(%p, %v)\n"
      "  return %y\n"
      "}\n";
  std::string out = run_pass(fuse_attention, text);
  EXPECT_TRUE(has(out, "%y: f32[2,2,3,4] = Attention(%q, %k, %v) {scale=1}\n")) << out;
  std::string fused;
  EXPECT_LT(max_difference(fuse_attention, text, &fused), 1e-5);
  // K^T as a graph input: a Transpose makes K.
  std::string given = run_pass(fuse_attention,
                               "graph main(%q: f32[1,1,2,4], %kt: f32[1,1,4,2], %v: f32[1,1,2,4]) {\n"
                               "  %s: f32[1,1,2,2] = MatMul(%q, %kt)\n"
                               "  %p: f32[1,1,2,2] = Softmax(%s) {axis=-1}\n"
                               "  %y: f32[1,1,2,4] = MatMul(%p, %v)\n"
                               "  return %y\n"
                               "}\n");
  EXPECT_TRUE(has(given, "%kt_k: f32[1,1,2,4] = Transpose(%kt) {perm=[0,1,3,2]}\n")) << given;
  EXPECT_TRUE(has(given, "Attention(%q, %kt_k, %v) {scale=1}")) << given;
}

// sink_transposes leaves the scale under the head transposes: Q =
// Transpose(Mul(x, c)), K^T = Transpose(Mul(y, c)). The factors go into the
// scale; Q's Transpose reads x, and K is y transposed once.
TEST(FuseAttention, ScalesUnderTheHeadTransposesFoldIntoTheScale) {
  const char* text =
      "graph main(%xq: f32[1,3,2,4], %xk: f32[1,3,2,4], %v: f32[1,2,3,4]) {\n"
      "  %c: f32[] = const f32[]{0.5}\n"
      "  %qi: f32[1,3,2,4] = Mul(%xq, %c)\n"
      "  %ki: f32[1,3,2,4] = Mul(%xk, %c)\n"
      "  %q: f32[1,2,3,4] = Transpose(%qi) {perm=[0,2,1,3]}\n"
      "  %kt: f32[1,2,4,3] = Transpose(%ki) {perm=[0,2,3,1]}\n"
      "  %s: f32[1,2,3,3] = MatMul(%q, %kt)\n"
      "  %p: f32[1,2,3,3] = Softmax(%s) {axis=-1}\n"
      "  %y: f32[1,2,3,4] = MatMul(%p, %v)\n"
      "  return %y\n"
      "}\n";
  EXPECT_EQ(run_pass(fuse_attention, text),
            "graph main(%xq: f32[1,3,2,4], %xk: f32[1,3,2,4], %v: f32[1,2,3,4]) {\n"
            "  %q: f32[1,2,3,4] = Transpose(%xq) {perm=[0,2,1,3]}\n"
            "  %kt_k: f32[1,2,3,4] = Transpose(%xk) {perm=[0,2,1,3]}\n"
            "  %y: f32[1,2,3,4] = Attention(%q, %kt_k, %v) {scale=0.25}\n"
            "  return %y\n"
            "}\n");
  std::string fused;
  EXPECT_LT(max_difference(fuse_attention, text, &fused), 1e-5);
}

// torchvision's ViT: K^T = Reshape(Transpose(x [B*H,S,D], [0,2,1]), [B,H,D,S]).
// K is a Reshape of x to [B,H,S,D] the graph already has, else a new one.
TEST(FuseAttention, KeyFromFlatHeadsIsAReshapeOfThem) {
  const char* text =
      "graph main(%q: f32[1,2,3,4], %x: f32[2,3,4], %v: f32[1,2,3,4]) {\n"
      "  %s4: i64[4] = const i64[4]{1,2,3,4}\n"
      "  %st: i64[4] = const i64[4]{1,2,4,3}\n"
      "  %k: f32[1,2,3,4] = Reshape(%x, %s4)\n"
      "  %xt: f32[2,4,3] = Transpose(%x) {perm=[0,2,1]}\n"
      "  %kt: f32[1,2,4,3] = Reshape(%xt, %st)\n"
      "  %s: f32[1,2,3,3] = MatMul(%q, %kt)\n"
      "  %p: f32[1,2,3,3] = Softmax(%s) {axis=-1}\n"
      "  %y: f32[1,2,3,4] = MatMul(%p, %v)\n"
      "  %z: f32[1,2,3,4] = Add(%y, %k)\n"
      "  return %z\n"
      "}\n";
  std::string out = run_pass(fuse_attention, text);
  EXPECT_TRUE(has(out, "%y: f32[1,2,3,4] = Attention(%q, %k, %v) {scale=1}\n")) << out;
  std::string fused;
  EXPECT_LT(max_difference(fuse_attention, text, &fused), 1e-5);
  std::string fresh =
      replaced(replaced(text, "  %k: f32[1,2,3,4] = Reshape(%x, %s4)\n", ""), "Add(%y, %k)", "Add(%y, %q)");
  out = run_pass(fuse_attention, fresh);
  EXPECT_TRUE(has(out, "  %kt_k_shape: i64[4] = const i64[4]{-1,2,3,4}\n")) << out;
  EXPECT_TRUE(has(out, "  %kt_k: f32[1,2,3,4] = Reshape(%x, %kt_k_shape)\n")) << out;
  EXPECT_TRUE(has(out, "Attention(%q, %kt_k, %v) {scale=1}")) << out;
  EXPECT_LT(max_difference(fuse_attention, fresh, &fused), 1e-5);
}

const char* kCausal =
    "graph main(%q: f32[1,2,3,4], %k: f32[1,2,3,4], %v: f32[1,2,3,4]) {\n"
    "  %mask: f32[1,1,3,3] = const f32[1,1,3,3]{0,-inf,-inf,0,0,-inf,0,0,0}\n"
    "  %kt: f32[1,2,4,3] = Transpose(%k) {perm=[0,1,3,2]}\n"
    "  %s: f32[1,2,3,3] = MatMul(%q, %kt)\n"
    "  %sm: f32[1,2,3,3] = Add(%mask, %s)\n"
    "  %p: f32[1,2,3,3] = Softmax(%sm) {axis=-1}\n"
    "  %y: f32[1,2,3,4] = MatMul(%p, %v)\n"
    "  return %y\n"
    "}\n";

TEST(FuseAttention, ConstantLowerTriangularMaskBecomesIsCausal) {
  std::string out = run_pass(fuse_attention, kCausal);
  EXPECT_TRUE(has(out, "%y: f32[1,2,3,4] = Attention(%q, %k, %v) {is_causal=1, scale=1}\n")) << out;
  std::string fused;
  EXPECT_LT(max_difference(fuse_attention, kCausal, &fused), 1e-5);
  // The dtype's lowest value hides keys as -inf does.
  std::string lowest = replaced(kCausal, "{0,-inf,-inf,0,0,-inf,0,0,0}",
                                "{0,-3.4028234663852886e38,-3.4028234663852886e38,0,0,-3.4028234663852886e38,0,0,0}");
  EXPECT_TRUE(has(run_pass(fuse_attention, lowest), "is_causal=1"));
}

TEST(FuseAttention, OtherConstantMasksStayTheMaskInput) {
  // Upper triangular: not causal.
  std::string upper = replaced(kCausal, "{0,-inf,-inf,0,0,-inf,0,0,0}", "{0,0,0,-inf,0,0,-inf,-inf,0}");
  std::string out = run_pass(fuse_attention, upper);
  EXPECT_TRUE(has(out, "Attention(%q, %k, %v, %mask) {scale=1}")) << out;
  std::string fused;
  EXPECT_LT(max_difference(fuse_attention, upper, &fused), 1e-5);
  // A -1e4 bias is a finite penalty, not a hidden key.
  std::string soft = replaced(kCausal, "{0,-inf,-inf,0,0,-inf,0,0,0}", "{0,-10000,-10000,0,0,-10000,0,0,0}");
  EXPECT_TRUE(has(run_pass(fuse_attention, soft), "Attention(%q, %k, %v, %mask) {scale=1}"));
}

TEST(FuseAttention, LeavesNearMissesAlone) {
  auto fused = [](const std::string& text) { return has(run_pass(fuse_attention, text), "Attention"); };
  // The scores are also read elsewhere.
  EXPECT_FALSE(fused(replaced(kSdpa, "  return %y\n", "  return %y, %s\n")));
  // The probabilities are also a graph output.
  EXPECT_FALSE(fused(replaced(kSdpa, "  return %y\n", "  return %y, %pg\n")));
  // A divisor of the scores that is not a constant.
  EXPECT_FALSE(fused(replaced(replaced(kSdpa, "  %sm: f32[2,2,3,5] = Add(%s, %mask)\n",
                                       "  %sd: f32[2,2,3,5] = Div(%s, %c)\n  %sm: f32[2,2,3,5] = Add(%sd, %mask)\n"),
                              "%mask: f32[2,1,3,5])", "%mask: f32[2,1,3,5], %c: f32[])")));
  // Softmax over the query axis.
  EXPECT_FALSE(fused(replaced(kSdpa, "Softmax(%sm) {axis=-1}", "Softmax(%sm) {axis=2}")));
  // A guard that writes 1, not 0, where Softmax gave NaN.
  EXPECT_FALSE(fused(replaced(kSdpa, "const f32[]{0}", "const f32[]{1}")));
  // A mask with one key column: Add broadcasts it, Attention would hide keys 1..4.
  EXPECT_FALSE(fused(replaced(kSdpa, "%mask: f32[2,1,3,5])", "%mask: f32[2,1,3,1])")));
  // K with other heads than Q (MatMul broadcasting, not Attention's GQA).
  EXPECT_FALSE(fused(replaced(
      replaced(replaced(kSdpa, "%k: f32[2,2,5,4]", "%k: f32[2,1,5,4]"), "%kt: f32[2,2,4,5]", "%kt: f32[2,1,4,5]"),
      "%ks: f32[2,2,4,5]", "%ks: f32[2,1,4,5]")));
}

// A shared model before and after the default pipeline: the number of each
// op type afterwards, and outputs within 1e-4 of the unoptimized graph's.
std::map<std::string, int> optimize_shared_model(const std::string& name) {
  std::map<std::string, int> ops;
  auto model = load_shared_model(name);
  EXPECT_TRUE(model.is_ok()) << model.status().to_string();
  if (!model.is_ok() || !*model) return ops;
  Graph& g = (*model)->graph();
  const std::vector<RunValue>& x = (*model)->inputs;
  auto before = run_graph_on_cpu(g, x);
  EXPECT_TRUE(before.is_ok()) << before.status().to_string();
  PassContext ctx;
  EXPECT_TRUE(run_passes(g, ctx, default_pipeline()).is_ok());
  for (const auto& n : g.nodes()) ops[n->op_type]++;
  auto after = run_graph_on_cpu(g, x);
  EXPECT_TRUE(after.is_ok()) << after.status().to_string();
  if (!before.is_ok() || !after.is_ok()) return ops;
  const Tensor &a = (*after)[0].tensor, &b = (*before)[0].tensor;
  EXPECT_EQ(a.dims(), b.dims());
  for (int64_t i = 0; i < a.numel() && a.dims() == b.dims(); ++i)
    EXPECT_NEAR(a.element_as_double(i), b.element_as_double(i), 1e-4 * (1 + std::abs(b.element_as_double(i)))) << i;
  return ops;
}

// DistilBERT's legacy export builds its attention mask with Expand(mask,
// Where(Equal(shape, -1), 1, shape)); fold_shape_where gives the mask its
// shape, so both layers' attention fuses, and fuse_attention_heads takes the
// head Transposes in.
TEST(FuseAttention, DistilbertLegacyAttentionFusesOnceTheMaskHasAShape) {
  auto ops = optimize_shared_model("tiny_distilbert_legacy");
  if (ops.empty()) GTEST_SKIP() << "no tiny_distilbert_legacy";
  EXPECT_EQ(ops["Attention"], 2);
  EXPECT_EQ(ops["Transpose"], 0);
}

// torchvision's ViT (nn.MultiheadAttention, sequence-first): every Transpose
// but the patch embedding's gather (patchify_conv_to_matmul) goes, one Split
// per layer.
TEST(FuseMultiheadAttention, VitRunsBatchFirst) {
  auto ops = optimize_shared_model("tiny_vit");
  if (ops.empty()) GTEST_SKIP() << "no tiny_vit";
  EXPECT_EQ(ops["Attention"], 2);
  EXPECT_EQ(ops["Split"], 2);
  EXPECT_EQ(ops["Transpose"], 1);
}

// A constant f32 tensor of `dims` in IR text, small distinct values.
std::string ir_const(const std::string& dims, int n, int seed) {
  std::string s = "const f32[" + dims + "]{";
  for (int i = 0; i < n; ++i) s += (i ? "," : "") + std::to_string(((i * 7 + seed * 3) % 11 - 5) * 0.1);
  return s + "}";
}

// nn.MultiheadAttention exported with a dynamic batch (E=4, H=2, S=3), as IR text.
std::string dynamic_batch_mha() {
  return "graph main(%x: f32[b,3,4]) {\n"
         "  %w: f32[4,12] = " +
         ir_const("4,12", 48, 1) +
         "\n"
         "  %bias: f32[12] = " +
         ir_const("12", 12, 2) +
         "\n"
         "  %wo: f32[4,4] = " +
         ir_const("4,4", 16, 3) +
         "\n"
         "  %s5: i64[5] = const i64[5]{1,3,-1,3,4}\n"
         "  %ax: i64[1] = const i64[1]{3}\n"
         "  %s3: i64[3] = const i64[3]{3,-1,2}\n"
         "  %s4: i64[4] = const i64[4]{-1,2,3,2}\n"
         "  %sm: i64[2] = const i64[2]{-1,4}\n"
         "  %su: i64[3] = const i64[3]{3,-1,4}\n"
         "  %i0: i64[] = const i64[]{0}\n"
         "  %i1: i64[] = const i64[]{1}\n"
         "  %i2: i64[] = const i64[]{2}\n"
         "  %xt: f32[3,b,4] = Transpose(%x) {perm=[1,0,2]}\n"
         "  %xs: i64[3] = Shape(%xt)\n"
         "  %p: f32[3,b,12] = kiln.FusedMatMul(%xt, %w, %bias)\n"
         "  %u: f32[1,3,b,3,4] = Reshape(%p, %s5)\n"
         "  %t: f32[3,3,b,1,4] = Transpose(%u) {perm=[3,1,2,0,4]}\n"
         "  %q3: f32[3,3,b,4] = Squeeze(%t, %ax)\n"
         "  %qi: f32[3,b,4] = Gather(%q3, %i0) {axis=0}\n"
         "  %ki: f32[3,b,4] = Gather(%q3, %i1) {axis=0}\n"
         "  %vi: f32[3,b,4] = Gather(%q3, %i2) {axis=0}\n"
         "  %qr: f32[3,2*b,2] = Reshape(%qi, %s3)\n"
         "  %kr: f32[3,2*b,2] = Reshape(%ki, %s3)\n"
         "  %vr: f32[3,2*b,2] = Reshape(%vi, %s3)\n"
         "  %qt: f32[2*b,3,2] = Transpose(%qr) {perm=[1,0,2]}\n"
         "  %kt: f32[2*b,3,2] = Transpose(%kr) {perm=[1,0,2]}\n"
         "  %vt: f32[2*b,3,2] = Transpose(%vr) {perm=[1,0,2]}\n"
         "  %q4: f32[b,2,3,2] = Reshape(%qt, %s4)\n"
         "  %k4: f32[b,2,3,2] = Reshape(%kt, %s4)\n"
         "  %v4: f32[b,2,3,2] = Reshape(%vt, %s4)\n"
         "  %y: f32[b,2,3,2] = Attention(%q4, %k4, %v4)\n"
         "  %yt: f32[3,b,2,2] = Transpose(%y) {perm=[2,0,1,3]}\n"
         "  %m: f32[3*b,4] = Reshape(%yt, %sm)\n"
         "  %o: f32[3*b,4] = MatMul(%m, %wo)\n"
         "  %n: f32[3,b,4] = Reshape(%o, %su)\n"
         "  %f: f32[b,3,4] = Transpose(%n) {perm=[1,0,2]}\n"
         "  return %f\n"
         "}\n";
}

// nn.MultiheadAttention exported with a dynamic batch (E=4, H=2, S=3): the
// exporter also reads X^T's Shape for the Reshapes' shape inputs (here that
// Shape reads nothing further). The pattern fuses all the same, and the CPU
// gives the same outputs before and after, at two batch sizes.
TEST(FuseMultiheadAttention, FusesWithADynamicBatchWhoseShapeIsReadOffXt) {
  const std::string text = dynamic_batch_mha();
  auto before = parse_graph(text);
  auto after = parse_graph(text);
  ASSERT_TRUE(before.is_ok() && after.is_ok()) << before.status().to_string();
  PassContext ctx;
  ASSERT_TRUE(fuse_multihead_attention(**after, ctx).is_ok());
  ASSERT_TRUE(eliminate_dead_nodes(**after, ctx).is_ok());
  std::map<std::string, int> ops;
  for (const auto& n : (*after)->nodes()) ops[n->op_type]++;
  EXPECT_EQ(ops["Transpose"], 0) << print_graph(**after);
  EXPECT_EQ(ops["Shape"], 0);
  EXPECT_EQ(ops["Split"], 1);
  EXPECT_EQ((*after)->nodes().size(), 6u)
      << print_graph(**after);  // FusedMatMul, Split, Attention, Reshape, MatMul, Reshape
  for (int64_t batch : {1, 2}) {
    Tensor x(DType::kF32, {batch, 3, 4});
    for (int64_t i = 0; i < x.numel(); ++i) x.mutable_data<float>()[i] = static_cast<float>((i * 5) % 13) * 0.1f - 0.6f;
    auto a = run_graph_on_cpu(**before, {RunValue::of(x)});
    auto b = run_graph_on_cpu(**after, {RunValue::of(x)});
    ASSERT_TRUE(a.is_ok() && b.is_ok()) << a.status().to_string() << b.status().to_string();
    const Tensor &ya = (*a)[0].tensor, &yb = (*b)[0].tensor;
    ASSERT_EQ(ya.dims(), yb.dims());
    for (int64_t i = 0; i < ya.numel(); ++i)
      EXPECT_NEAR(yb.element_as_double(i), ya.element_as_double(i), 1e-6) << "batch " << batch << " element " << i;
  }
}

// A projection with a residual (kiln.FusedMatMul's input 4) is left alone:
// the rewrite reorders the rows of what it computes, not of the residual.
TEST(FuseMultiheadAttention, LeavesProjectionsWithAResidual) {
  auto unchanged = [](const std::string& text) {
    EXPECT_EQ(run_pass(fuse_multihead_attention, text),
              run_pass([](Graph&, PassContext&) { return Status::ok(); }, text));
  };
  unchanged(replaced(
      replaced(dynamic_batch_mha(), "graph main(%x: f32[b,3,4]) {", "graph main(%x: f32[b,3,4], %r: f32[3*b,4]) {"),
      "%o: f32[3*b,4] = MatMul(%m, %wo)", "%o: f32[3*b,4] = kiln.FusedMatMul(%m, %wo, _, %r)"));
  unchanged(replaced(
      replaced(dynamic_batch_mha(), "graph main(%x: f32[b,3,4]) {", "graph main(%x: f32[b,3,4], %r: f32[3,b,12]) {"),
      "kiln.FusedMatMul(%xt, %w, %bias)", "kiln.FusedMatMul(%xt, %w, %bias, %r)"));
}

// BERT and GPT-2 keep no head Transposes; GPT-2's Gelu is in its Gemm.
TEST(FuseAttentionHeads, BertAndGpt2KeepNoTransposes) {
  auto bert = optimize_shared_model("tiny_bert");
  if (bert.empty()) GTEST_SKIP() << "no tiny_bert";
  EXPECT_EQ(bert["Transpose"], 0);
  EXPECT_EQ(bert["Attention"], 2);
  auto gpt2 = optimize_shared_model("tiny_gpt2");
  EXPECT_EQ(gpt2["Transpose"], 0);
  EXPECT_EQ(gpt2["Gelu"], 0);
  EXPECT_EQ(gpt2["Attention"], 2);
}

}  // namespace
}  // namespace kiln
