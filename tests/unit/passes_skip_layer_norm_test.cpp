// fuse_skip_layer_norm before and after as IR text, the near misses it must
// leave alone, kiln.SkipLayerNormalization's inference and CPU kernel, the
// fused graphs' CPU outputs against the unfused ones (f32 and f16: the same
// bits), and where rewrite_for_cuda runs it.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <random>

#include "backends/cpu/cpu_executor.h"
#include "builder/builder.h"
#include "ir/half.h"
#include "onnx/importer.h"
#include "onnx/value_file.h"
#include "pass_test_util.h"
#include "shared_model_util.h"

namespace kiln {
namespace {

bool has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// BERT's post-LN residual: the sum is read by the LayerNorm only.
const char* kPostLn =
    "graph main(%x: f32[2,3,4], %r: f32[2,3,4]) {\n"
    "  %g: f32[4] = const f32[4]{1,2,0.5,-1}\n"
    "  %b: f32[4] = const f32[4]{0.5,0,-1,0.25}\n"
    "  %s: f32[2,3,4] = Add(%x, %r)\n"
    "  %y: f32[2,3,4] = LayerNormalization(%s, %g, %b) {axis=-1, epsilon=1e-05}\n"
    "  return %y\n"
    "}\n";

TEST(FuseSkipLayerNorm, AddReadOnlyByTheLayerNormFusesWithoutTheSum) {
  EXPECT_EQ(run_pass(fuse_skip_layer_norm, kPostLn),
            "graph main(%x: f32[2,3,4], %r: f32[2,3,4]) {\n"
            "  %g: f32[4] = const f32[4]{1,2,0.5,-1}\n"
            "  %b: f32[4] = const f32[4]{0.5,0,-1,0.25}\n"
            "  %y: f32[2,3,4] = kiln.SkipLayerNormalization(%x, %r, %g, %b) {axis=-1, epsilon=1e-05}\n"
            "  return %y\n"
            "}\n");
}

// GPT-2 / ViT pre-LN: the residual stream (the sum) is read on; axis 2 is
// the last axis too, and B may be absent.
const char* kPreLn =
    "graph main(%x: f32[2,3,4], %r: f32[2,3,4]) {\n"
    "  %g: f32[4] = const f32[4]{1,2,0.5,-1}\n"
    "  %s: f32[2,3,4] = Add(%r, %x)\n"
    "  %y: f32[2,3,4] = LayerNormalization(%s, %g) {axis=2, epsilon=0.001}\n"
    "  %t: f32[2,3,4] = Mul(%y, %s)\n"
    "  return %t, %s\n"
    "}\n";

TEST(FuseSkipLayerNorm, SumReadElsewhereIsOutputOne) {
  EXPECT_EQ(run_pass(fuse_skip_layer_norm, kPreLn),
            "graph main(%x: f32[2,3,4], %r: f32[2,3,4]) {\n"
            "  %g: f32[4] = const f32[4]{1,2,0.5,-1}\n"
            "  %y: f32[2,3,4], %s: f32[2,3,4] = kiln.SkipLayerNormalization(%r, %x, %g) {axis=-1, epsilon=0.001}\n"
            "  %t: f32[2,3,4] = Mul(%y, %s)\n"
            "  return %t, %s\n"
            "}\n");
}

TEST(FuseSkipLayerNorm, OfTwoLayerNormsOfOneAddTheFirstFusesAndTheSecondReadsTheSum) {
  EXPECT_EQ(run_pass(fuse_skip_layer_norm,
                     "graph main(%x: f32[2,4], %r: f32[2,4]) {\n"
                     "  %g: f32[4] = const f32[4]{1,2,0.5,-1}\n"
                     "  %s: f32[2,4] = Add(%x, %r)\n"
                     "  %y: f32[2,4] = LayerNormalization(%s, %g) {axis=-1, epsilon=1e-05}\n"
                     "  %z: f32[2,4] = LayerNormalization(%s, %g) {axis=-1, epsilon=0.01}\n"
                     "  return %y, %z\n"
                     "}\n"),
            "graph main(%x: f32[2,4], %r: f32[2,4]) {\n"
            "  %g: f32[4] = const f32[4]{1,2,0.5,-1}\n"
            "  %y: f32[2,4], %s: f32[2,4] = kiln.SkipLayerNormalization(%x, %r, %g) {axis=-1, epsilon=1e-05}\n"
            "  %z: f32[2,4] = LayerNormalization(%s, %g) {axis=-1, epsilon=0.01}\n"
            "  return %y, %z\n"
            "}\n");
}

// Each near miss is one change to kPostLn's shape of graph.
TEST(FuseSkipLayerNorm, LeavesNearMissesAlone) {
  auto graph = [](const std::string& inputs, const std::string& body) {
    return "graph main(" + inputs +
           ") {\n"
           "  %g: f32[4] = const f32[4]{1,2,0.5,-1}\n"
           "  %b: f32[4] = const f32[4]{0.5,0,-1,0.25}\n" +
           body + "}\n";
  };
  const std::string both = "%x: f32[2,3,4], %r: f32[2,3,4]";
  const std::string ln = "  %y: f32[2,3,4] = LayerNormalization(%s, %g, %b) {axis=-1, epsilon=1e-05}\n  return %y\n";
  // A broadcasting Add: Skip [4] is not X's shape.
  EXPECT_FALSE(
      has(run_pass(fuse_skip_layer_norm, graph("%x: f32[2,3,4], %r: f32[4]", "  %s: f32[2,3,4] = Add(%x, %r)\n" + ln)),
          "Skip"));
  // Over axis 1 of a rank-3 input: not the last axis alone.
  EXPECT_FALSE(has(run_pass(fuse_skip_layer_norm, graph(both,
                                                        "  %s: f32[2,3,4] = Add(%x, %r)\n"
                                                        "  %y: f32[2,3,4] = LayerNormalization(%s, %g, %b) {axis=1}\n"
                                                        "  return %y\n")),
                   "Skip"));
  // Scale a graph input, not a constant.
  EXPECT_FALSE(has(run_pass(fuse_skip_layer_norm, graph(both + ", %h: f32[4]",
                                                        "  %s: f32[2,3,4] = Add(%x, %r)\n"
                                                        "  %y: f32[2,3,4] = LayerNormalization(%s, %h, %b)\n"
                                                        "  return %y\n")),
                   "Skip"));
  // A scalar B (it broadcasts in LayerNormalization, not in the fused op).
  EXPECT_FALSE(has(run_pass(fuse_skip_layer_norm, graph(both,
                                                        "  %one: f32[1] = const f32[1]{1}\n"
                                                        "  %s: f32[2,3,4] = Add(%x, %r)\n"
                                                        "  %y: f32[2,3,4] = LayerNormalization(%s, %g, %one)\n"
                                                        "  return %y\n")),
                   "Skip"));
  // The LayerNorm reads Relu(sum), not the sum.
  EXPECT_FALSE(has(run_pass(fuse_skip_layer_norm, graph(both,
                                                        "  %a: f32[2,3,4] = Add(%x, %r)\n"
                                                        "  %s: f32[2,3,4] = Relu(%a)\n" +
                                                            ln)),
                   "Skip"));
  // Its Mean output is read.
  EXPECT_FALSE(
      has(run_pass(fuse_skip_layer_norm, graph(both,
                                               "  %s: f32[2,3,4] = Add(%x, %r)\n"
                                               "  %y: f32[2,3,4], %m: f32[2,3,1] = LayerNormalization(%s, %g, %b)\n"
                                               "  return %y, %m\n")),
          "Skip"));
  // An unknown dim: the addends' shapes cannot be proven equal.
  EXPECT_FALSE(has(run_pass(fuse_skip_layer_norm, graph("%x: f32[?,3,4], %r: f32[?,3,4]",
                                                        "  %s: f32[?,3,4] = Add(%x, %r)\n"
                                                        "  %y: f32[?,3,4] = LayerNormalization(%s, %g, %b)\n"
                                                        "  return %y\n")),
                   "Skip"));
}

TEST(FuseSkipLayerNorm, SymbolicDimsFuse) {
  EXPECT_TRUE(has(run_pass(fuse_skip_layer_norm,
                           "graph main(%x: f32[batch,seq,4], %r: f32[batch,seq,4]) {\n"
                           "  %g: f32[4] = const f32[4]{1,2,0.5,-1}\n"
                           "  %s: f32[batch,seq,4] = Add(%x, %r)\n"
                           "  %y: f32[batch,seq,4] = LayerNormalization(%s, %g)\n"
                           "  return %y\n"
                           "}\n"),
                  "kiln.SkipLayerNormalization(%x, %r, %g)"));
}

TEST(SkipLayerNormalizationOp, InfersXsTypeForBothOutputsAndRejectsWhatItCannotRun) {
  auto g = parse_graph(
      "graph main(%x: f16[batch,7,8], %r: f16[batch,7,8], %g: f16[8]) {\n"
      "  %y: undefined[*], %s: undefined[*] = kiln.SkipLayerNormalization(%x, %r, %g)\n"
      "  return %y, %s\n"
      "}\n");
  ASSERT_TRUE(g.is_ok()) << g.status().to_string();
  std::vector<Diagnostic> diags;
  infer_shapes(**g, diags);
  EXPECT_TRUE(diags.empty()) << diags[0].message;
  EXPECT_EQ((*g)->outputs[0]->type.to_string(), "f16[batch,7,8]");
  EXPECT_EQ((*g)->outputs[1]->type.to_string(), "f16[batch,7,8]");

  auto one = [](const std::string& inputs, const std::string& call) {
    return first_diagnostic("graph main(" + inputs + ") {\n  %y: undefined[*] = kiln.SkipLayerNormalization(" + call +
                            "\n  return %y\n}\n");
  };
  const std::string xs = "%x: f32[2,3,4], %r: f32[2,3,4], %g: f32[4]";
  EXPECT_TRUE(has(one(xs, "%x, %r, %g) {axis=1}"),
                  "axis 1 is not the last axis of rank 3; only the last axis (-1) is supported"));
  EXPECT_EQ(one(xs, "%x, %r, %g) {axis=2}"), "none");
  EXPECT_TRUE(has(one("%x: f32[2,3,4], %r: f32[3,4], %g: f32[4]", "%x, %r, %g)"),
                  "Skip [3,4] does not have X's shape [2,3,4] (no broadcasting)"))
      << one("%x: f32[2,3,4], %r: f32[3,4], %g: f32[4]", "%x, %r, %g)");
  EXPECT_TRUE(has(one("%x: f32[2,3,4], %r: f32[2,3,4], %g: f32[3]", "%x, %r, %g)"),
                  "Scale [3] does not match the last dim of X [2,3,4]"));
  EXPECT_TRUE(has(one("%x: f32[2,3,4], %r: f32[2,3,4], %g: f32[4], %b: f32[1,4]", "%x, %r, %g, %b)"), "B must be 1-D"));
  EXPECT_TRUE(has(one("%x: f32[2,3,4], %r: f16[2,3,4], %g: f32[4]", "%x, %r, %g)"), "Skip is f16 but X is f32"));
}

Expected<std::vector<RunValue>> run(const std::string& text, const std::vector<Tensor>& inputs, bool fuse) {
  auto g = parse_graph(text);
  if (!g) return g.status();
  if (fuse) {
    PassContext ctx;
    KILN_RETURN_IF_ERROR(fuse_skip_layer_norm(**g, ctx));
    if (!has(print_graph(**g), "kiln.SkipLayerNormalization")) return internal_error("did not fuse");
  }
  std::vector<RunValue> values;
  for (const Tensor& t : inputs) values.push_back(RunValue::of(t));
  return run_graph_on_cpu(**g, std::move(values));
}

// X + Skip = [1, -1]: mean 0, variance 1, so with epsilon 0 the normalized
// row is [1, -1] exactly; * Scale [2, 3] + B [0.5, 0.5] = [2.5, -2.5].
TEST(SkipLayerNormalizationOp, CpuKernelNormalizesTheSumAndReturnsIt) {
  auto out =
      run("graph main(%x: f32[1,2], %r: f32[1,2]) {\n"
          "  %g: f32[2] = const f32[2]{2,3}\n"
          "  %b: f32[2] = const f32[2]{0.5,0.5}\n"
          "  %y: f32[1,2], %s: f32[1,2] = kiln.SkipLayerNormalization(%x, %r, %g, %b) {epsilon=0}\n"
          "  return %y, %s\n"
          "}\n",
          {Tensor::from_vector<float>(DType::kF32, {1, 2}, {0.25f, -3.f}),
           Tensor::from_vector<float>(DType::kF32, {1, 2}, {0.75f, 2.f})},
          false);
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  const Tensor &y = (*out)[0].tensor, &s = (*out)[1].tensor;
  EXPECT_EQ(y.data<float>()[0], 2.5f);
  EXPECT_EQ(y.data<float>()[1], -2.5f);
  EXPECT_EQ(s.data<float>()[0], 1.f);
  EXPECT_EQ(s.data<float>()[1], -1.f);
}

TEST(SkipLayerNormalizationOp, CpuRunRejectsASkipOfAnotherShape) {
  auto out =
      run("graph main(%x: f32[2,2], %r: f32[1,2]) {\n"
          "  %g: f32[2] = const f32[2]{2,3}\n"
          "  %y: f32[2,2] = kiln.SkipLayerNormalization(%x, %r, %g)\n"
          "  return %y\n"
          "}\n",
          {Tensor::from_vector<float>(DType::kF32, {2, 2}, {1, 2, 3, 4}),
           Tensor::from_vector<float>(DType::kF32, {1, 2}, {1, 2})},
          false);
  ASSERT_FALSE(out.is_ok());
  EXPECT_TRUE(has(out.status().to_string(), "Skip [1,2] does not have X's shape [2,2] (no broadcasting)"))
      << out.status().to_string();
}

Tensor random_input(DType t, const std::vector<int64_t>& dims, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-3.f, 3.f);
  Tensor x(t, dims);
  for (int64_t i = 0; i < x.numel(); ++i) {
    const float v = dist(rng);
    if (t == DType::kF16)
      x.mutable_data<Half>()[i] = Half(v);
    else
      x.mutable_data<float>()[i] = v;
  }
  return x;
}

// The fused graph's outputs are the unfused graph's, bit for bit: the same sum
// (rounded to the dtype) goes through the same LayerNormalization code.
void expect_same_bits(const std::string& text, DType t, const std::vector<int64_t>& dims) {
  const std::vector<Tensor> inputs = {random_input(t, dims, 1), random_input(t, dims, 2)};
  auto plain = run(text, inputs, false);
  auto fused = run(text, inputs, true);
  ASSERT_TRUE(plain.is_ok()) << plain.status().to_string();
  ASSERT_TRUE(fused.is_ok()) << fused.status().to_string();
  ASSERT_EQ(plain->size(), fused->size());
  for (size_t o = 0; o < plain->size(); ++o) {
    const Tensor &a = (*plain)[o].tensor, &b = (*fused)[o].tensor;
    ASSERT_EQ(a.dtype(), b.dtype());
    ASSERT_EQ(a.dims(), b.dims());
    EXPECT_EQ(std::memcmp(a.raw(), b.raw(), a.nbytes()), 0) << "output " << o << " of\n" << text;
  }
}

std::string residual_graph(const char* dt, bool sum_read) {
  const std::string t = dt;
  return "graph main(%x: " + t + "[3,5,8], %r: " + t + "[3,5,8]) {\n  %g: " + t + "[8] = const " + t +
         "[8]{1,2,0.5,-1,1.5,0.25,-0.75,3}\n  %b: " + t + "[8] = const " + t +
         "[8]{0.5,0,-1,0.25,2,-2,0.125,1}\n  %s: " + t + "[3,5,8] = Add(%x, %r)\n  %y: " + t +
         "[3,5,8] = LayerNormalization(%s, %g, %b) {axis=-1, epsilon=1e-05}\n" +
         (sum_read ? "  %z: " + t + "[3,5,8] = Relu(%s)\n  return %y, %z\n}\n" : "  return %y\n}\n");
}

TEST(SkipLayerNormalizationOp, FusedGraphsGiveTheUnfusedBitsOnTheCpu) {
  for (const char* dt : {"f32", "f16"})
    for (bool sum_read : {false, true})
      expect_same_bits(residual_graph(dt, sum_read), std::string(dt) == "f16" ? DType::kF16 : DType::kF32, {3, 5, 8});
}

// rewrite_for_cuda fuses after assign_precision (the fused op computes in
// f16) and before fuse_elementwise, which would otherwise take the Add.
TEST(FuseSkipLayerNorm, RewriteForCudaFusesTheAddBeforeTheElementwiseFusion) {
  auto g = parse_graph(
      "graph main(%x: f32[3,8], %r: f32[3,8]) {\n"
      "  %g: f32[8] = const f32[8]{1,2,0.5,-1,1.5,0.25,-0.75,3}\n"
      "  %a: f32[3,8] = Relu(%x)\n"
      "  %s: f32[3,8] = Add(%a, %r)\n"
      "  %y: f32[3,8] = LayerNormalization(%s, %g)\n"
      "  return %y\n"
      "}\n");
  ASSERT_TRUE(g.is_ok()) << g.status().to_string();
  BuildConfig config;
  config.backend = "cuda";
  config.fp16 = true;
  ASSERT_TRUE(rewrite_for_cuda(**g, config).is_ok());
  const std::string text = print_graph(**g);
  EXPECT_TRUE(has(text, "%y_lp: f16[3,8] = kiln.SkipLayerNormalization(")) << text;
  EXPECT_FALSE(has(text, "LayerNormalization(%s")) << text;
}

// The default pipeline without fuse_matmul_residual, which would make
// the shared transformers' residual Adds its FusedMatMuls' residuals.
std::vector<PassInfo> pipeline_keeping_residual_adds() {
  std::vector<PassInfo> passes;
  for (const PassInfo& p : default_pipeline())
    if (std::string(p.name) != "fuse_matmul_residual") passes.push_back(p);
  return passes;
}

// The shared transformers with their residual Adds left (see above): BERT
// (post-LN), GPT-2 and ViT (pre-LN, the sum read on) fuse every residual Add
// whose addends have one shape (the embeddings' broadcast Add stays), and give
// the same bits.
TEST(FuseSkipLayerNorm, SharedTransformersFuseTheirResidualAddsAndKeepTheirOutputs) {
  for (const char* name : {"tiny_bert", "tiny_gpt2", "tiny_vit"}) {
    auto model = load_shared_model(name);
    ASSERT_TRUE(model.is_ok()) << model.status().to_string();
    if (!*model) GTEST_SKIP() << "no " << name;
    Graph& g = (*model)->graph();
    const std::vector<RunValue>& x = (*model)->inputs;
    PassContext ctx;
    ASSERT_TRUE(run_passes(g, ctx, pipeline_keeping_residual_adds()).is_ok());
    auto before = run_graph_on_cpu(g, x);
    ASSERT_TRUE(fuse_skip_layer_norm(g, ctx).is_ok());
    auto after = run_graph_on_cpu(g, x);
    ASSERT_TRUE(before.is_ok() && after.is_ok()) << name;
    int fused = 0, plain = 0, sums = 0;
    for (const auto& n : g.nodes()) {
      fused += n->op_type == "SkipLayerNormalization";
      plain += n->op_type == "LayerNormalization";
      sums += n->op_type == "SkipLayerNormalization" && n->outputs.size() == 2;
    }
    EXPECT_EQ(fused, 4) << name;
    EXPECT_EQ(plain, 1) << name;
    EXPECT_EQ(sums, std::string(name) == "tiny_bert" ? 0 : 3) << name;
    expect_same_bytes((*before)[0].tensor, (*after)[0].tensor, name);
  }
}

}  // namespace
}  // namespace kiln
