// fuse_elementwise and kiln::FusedElementwise: the pass before and after as IR
// text, the groups it must leave alone, the program's checks, and the fused
// graphs on the CPU backend against the unfused ones (bit for bit, f32 and
// f16) on random inputs and on the shared real models.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <random>

#include "backends/cpu/cpu_executor.h"
#include "ir/half.h"
#include "ir/parser.h"
#include "ir/printer.h"
#include "onnx/importer.h"
#include "onnx/value_file.h"
#include "ops/elementwise_program.h"
#include "pass_test_util.h"
#include "passes/pass.h"
#include "shared_model_util.h"

namespace kiln {
namespace {

std::string fused(const std::string& text) { return run_pass(fuse_elementwise, text); }

size_t count_op(const Graph& g, const std::string& op) {
  size_t n = 0;
  for (const auto& node : g.nodes()) n += node->op_type == op;
  return n;
}

// Mul by a scalar, Add a broadcast bias, Relu: one program, the scalar an immediate.
TEST(FuseElementwise, ChainBecomesOneProgram) {
  const char* before =
      "graph main(%x: f32[2,3], %b: f32[3]) {\n"
      "  %two: f32[] = const f32[]{2}\n"
      "  %m: f32[2,3] = Mul(%x, %two)\n"
      "  %a: f32[2,3] = Add(%m, %b)\n"
      "  %y: f32[2,3] = Relu(%a)\n"
      "  return %y\n"
      "}\n";
  const char* after =
      "graph main(%x: f32[2,3], %b: f32[3]) {\n"
      "  %y: f32[2,3] = kiln.FusedElementwise(%x, %b) {args=[0,2,-1,3,1,-1,4,-1,-1], constants=[2], "
      "dtypes=[1,1,1], ops=[\"Mul\",\"Add\",\"Relu\"]}\n"
      "  return %y\n"
      "}\n";
  EXPECT_EQ(fused(before), after);
}

// The fused node reports the ops it computes, for `kiln inspect`.
TEST(FuseElementwise, RecordsTheFusedOps) {
  auto g = parse_graph(
      "graph main(%x: f16[4]) {\n"
      "  %e: f16[4] = Exp(%x)\n"
      "  %c: f32[4] = Cast(%e) {to=1}\n"
      "  return %c\n"
      "}\n");
  ASSERT_TRUE(g.is_ok()) << g.status().to_string();
  PassContext ctx;
  ASSERT_TRUE(fuse_elementwise(**g, ctx).is_ok());
  ASSERT_EQ((*g)->nodes().size(), 1u);
  const Node& f = *(*g)->nodes()[0];
  EXPECT_EQ(f.op_type, "FusedElementwise");
  EXPECT_EQ(f.metadata.at("kiln.fused"), "Exp+Cast");
  EXPECT_EQ(f.attr_ints("dtypes"), (std::vector<int64_t>{10, 1}));
}

// %t has a second reader: the chain ends before it; each side alone is one op, left as is.
TEST(FuseElementwise, SharedIntermediateEndsTheGroup) {
  const char* text =
      "graph main(%x: f32[4]) {\n"
      "  %t: f32[4] = Exp(%x)\n"
      "  %u: f32[4] = Neg(%t)\n"
      "  %v: f32[4] = Add(%t, %u)\n"
      "  return %v\n"
      "}\n";
  // Neg(t) and Add(t, u) fuse (u has one reader); t has two readers and stays.
  const std::string out = fused(text);
  EXPECT_NE(out.find("%t: f32[4] = Exp(%x)"), std::string::npos) << out;
  EXPECT_NE(out.find("%v: f32[4] = kiln.FusedElementwise(%t)"), std::string::npos) << out;
}

// An intermediate that is a graph output must keep being produced: no fusion through it.
TEST(FuseElementwise, GraphOutputIsNotFusedAway) {
  const char* text =
      "graph main(%x: f32[4]) {\n"
      "  %t: f32[4] = Exp(%x)\n"
      "  %u: f32[4] = Neg(%t)\n"
      "  return %t, %u\n"
      "}\n";
  auto g = parse_graph(text);
  ASSERT_TRUE(g.is_ok());
  EXPECT_EQ(fused(text), print_graph(**g));
}

// A single op, an unknown dim (broadcast not decided) and an f64 chain are left alone.
TEST(FuseElementwise, LeavesUnfusableGroupsAlone) {
  for (const char* text : {
           "graph main(%x: f32[4]) {\n  %y: f32[4] = Exp(%x)\n  return %y\n}\n",
           "graph main(%x: f32[?], %b: f32[?]) {\n  %t: f32[?] = Add(%x, %b)\n  %y: f32[?] = Exp(%t)\n"
           "  return %y\n}\n",
           "graph main(%x: f64[4]) {\n  %t: f64[4] = Exp(%x)\n  %y: f64[4] = Neg(%t)\n  return %y\n}\n",
       }) {
    auto g = parse_graph(text);
    ASSERT_TRUE(g.is_ok()) << g.status().to_string();
    EXPECT_EQ(fused(text), print_graph(**g)) << text;
  }
}

// A scalar constant that would raise the output's rank ([] + [1] -> [1]) cannot be an immediate.
TEST(FuseElementwise, ConstantThatBroadcastsIsNotDropped) {
  const char* text =
      "graph main(%x: f32[]) {\n"
      "  %one: f32[1,1] = const f32[1,1]{1}\n"
      "  %t: f32[1,1] = Add(%x, %one)\n"
      "  %y: f32[1,1] = Exp(%t)\n"
      "  return %y\n"
      "}\n";
  auto g = parse_graph(text);
  ASSERT_TRUE(g.is_ok());
  EXPECT_EQ(fused(text), print_graph(**g));
}

// Symbolic dims that match by name are decided: the group fuses.
TEST(FuseElementwise, SymbolicDimsFuse) {
  const char* text =
      "graph main(%x: f32[batch,4], %b: f32[4]) {\n"
      "  %t: f32[batch,4] = Sub(%x, %b)\n"
      "  %y: f32[batch,4] = Sigmoid(%t)\n"
      "  return %y\n"
      "}\n";
  EXPECT_NE(fused(text).find("kiln.FusedElementwise(%x, %b)"), std::string::npos) << fused(text);
}

// ---- the program's checks (op table) ----

std::string infer_error(const std::string& attrs) {
  auto g = parse_graph("graph main(%x: f32[4]) {\n  %y: f32[4] = kiln.FusedElementwise(%x) {" + attrs +
                       "}\n  return %y\n}\n");
  if (!g) return g.status().to_string();
  auto p = read_elementwise_program(*(*g)->nodes()[0]);
  return p ? "ok" : p.status().message();
}

TEST(FusedElementwiseProgram, ChecksEveryField) {
  EXPECT_EQ(infer_error("args=[0,-1,-1], constants=[], dtypes=[1], ops=[\"Exp\"]"), "ok");
  EXPECT_NE(infer_error("args=[0,-1,-1], dtypes=[1], ops=[\"Frobnicate\"]").find("unknown opcode 'Frobnicate'"),
            std::string::npos);
  EXPECT_NE(infer_error("args=[0,1,-1], dtypes=[1], ops=[\"Exp\"]").find("takes 1 operands but names slot 1"),
            std::string::npos);
  EXPECT_NE(infer_error("args=[0,1,-1], dtypes=[1], ops=[\"Add\"]").find("reads slot 1, but only slots 0..0"),
            std::string::npos);
  EXPECT_NE(infer_error("args=[0,-1,-1], dtypes=[11], ops=[\"Exp\"]").find("has dtype 11"), std::string::npos);
  EXPECT_NE(infer_error("args=[0,-1], dtypes=[1], ops=[\"Exp\"]").find("'args' holds 2 slots"), std::string::npos);
}

// ---- CPU: fused == unfused, bit for bit ----

Tensor random_input(const Value& v, std::mt19937& rng) {
  std::uniform_real_distribution<float> dist(-2.0f, 2.0f);
  Tensor t(v.type.dtype, v.type.shape.fixed_dims());
  for (int64_t i = 0; i < t.numel(); ++i) {
    const float f = dist(rng);
    if (t.dtype() == DType::kF16)
      t.mutable_data<Half>()[i] = Half(f);
    else
      t.mutable_data<float>()[i] = f;
  }
  return t;
}

// Runs `text` before and after the pass on the same random inputs; expects
// one FusedElementwise and identical output bytes.
void expect_bit_identical(const std::string& text) {
  auto before = parse_graph(text);
  auto after = parse_graph(text);
  ASSERT_TRUE(before.is_ok() && after.is_ok()) << before.status().to_string();
  PassContext ctx;
  ASSERT_TRUE(fuse_elementwise(**after, ctx).is_ok());
  ASSERT_EQ((*after)->nodes().size(), 1u) << print_graph(**after);
  std::mt19937 rng(11);
  std::vector<RunValue> feeds;
  for (const Value* in : (*before)->inputs) feeds.push_back(RunValue::of(random_input(*in, rng)));
  auto a = run_graph_on_cpu(**before, feeds);
  auto b = run_graph_on_cpu(**after, feeds);
  ASSERT_TRUE(a.is_ok()) << a.status().to_string();
  ASSERT_TRUE(b.is_ok()) << b.status().to_string();
  const Tensor &x = (*a)[0].tensor, &y = (*b)[0].tensor;
  ASSERT_EQ(x.dtype(), y.dtype());
  ASSERT_EQ(x.dims(), y.dims());
  EXPECT_EQ(std::memcmp(x.raw(), y.raw(), x.nbytes()), 0) << print_graph(**after);
  for (int64_t i = 0; i < y.numel(); ++i) ASSERT_TRUE(std::isfinite(y.element_as_double(i))) << i;
}

// Every opcode once, with broadcasting from three shapes; T is f32 or f16.
std::string every_op_chain(const std::string& t) {
  std::string s =
      "graph main(%x: T[2,3,4], %b: T[4], %c: T[3,1]) {\n"
      "  %half: T[] = const T[]{0.5}\n"
      "  %two: T[] = const T[]{2}\n"
      "  %lo: T[] = const T[]{-0.75}\n"
      "  %hi: T[] = const T[]{0.75}\n"
      "  %t1: T[2,3,4] = Mul(%x, %b)\n"
      "  %t2: T[2,3,4] = Add(%t1, %c)\n"
      "  %t3: T[2,3,4] = Tanh(%t2)\n"
      "  %t4: T[2,3,4] = Clip(%t3, %lo, %hi)\n"
      "  %t5: T[2,3,4] = LeakyRelu(%t4) {alpha=0.1}\n"
      "  %t6: T[2,3,4] = Sub(%t5, %c)\n"
      "  %t7: T[2,3,4] = Abs(%t6)\n"
      "  %t8: T[2,3,4] = Add(%t7, %half)\n"
      "  %t9: T[2,3,4] = Log(%t8)\n"
      "  %t10: T[2,3,4] = Exp(%t9)\n"
      "  %t11: T[2,3,4] = Sqrt(%t10)\n"
      "  %t12: T[2,3,4] = Reciprocal(%t11)\n"
      "  %t13: T[2,3,4] = Pow(%t12, %two)\n"
      "  %t14: T[2,3,4] = Div(%t13, %b)\n"
      "  %t15: T[2,3,4] = Neg(%t14)\n"
      "  %t16: T[2,3,4] = Erf(%t15)\n"
      "  %t17: T[2,3,4] = Softplus(%t16)\n"
      "  %t18: T[2,3,4] = HardSwish(%t17)\n"
      "  %t19: T[2,3,4] = HardSigmoid(%t18) {alpha=0.3, beta=0.4}\n"
      "  %t20: T[2,3,4] = Gelu(%t19)\n"
      "  %t21: T[2,3,4] = Gelu(%t20) {approximate=\"tanh\"}\n"
      "  %t22: T[2,3,4] = Max(%t21, %x)\n"
      "  %t23: T[2,3,4] = Min(%t22, %c)\n"
      "  %t24: T[2,3,4] = Sigmoid(%t23)\n"
      "  %t25: bf16[2,3,4] = Cast(%t24) {to=16}\n"
      "  %t26: T[2,3,4] = Cast(%t25) {to=TO}\n"
      "  %y: T[2,3,4] = Relu(%t26)\n"
      "  return %y\n"
      "}\n";
  for (size_t p; (p = s.find("T[")) != std::string::npos;) s.replace(p, 1, t);
  s.replace(s.find("TO"), 2, t == "f32" ? "1" : "10");
  return s;
}

TEST(FusedElementwiseCpu, EveryOpMatchesUnfusedF32) { expect_bit_identical(every_op_chain("f32")); }
TEST(FusedElementwiseCpu, EveryOpMatchesUnfusedF16) { expect_bit_identical(every_op_chain("f16")); }

// ---- the shared real models ----

// The model through the builder's passes for cuda (the default pipeline,
// assign_precision for fp16), then fused: node counts, the fused groups, and
// the CPU's outputs before and after fusion compared byte for byte.
void check_shared_model(const std::string& name, bool fp16, size_t want_fused, const std::string& want_groups) {
  auto model = load_shared_model(name);
  ASSERT_TRUE(model.is_ok()) << model.status().to_string();
  if (!*model) GTEST_SKIP() << "no " << name;
  Graph& g = (*model)->graph();
  const std::vector<RunValue>& feeds = (*model)->inputs;
  PassContext ctx;
  ASSERT_TRUE(run_passes(g, ctx, default_pipeline()).is_ok());
  if (fp16) ASSERT_TRUE(assign_precision(g, DType::kF16).is_ok());
  auto unfused = run_graph_on_cpu(g, feeds);
  ASSERT_TRUE(unfused.is_ok()) << unfused.status().to_string();
  const size_t nodes_before = g.nodes().size();
  ASSERT_TRUE(fuse_elementwise(g, ctx).is_ok());
  std::string groups;
  for (const auto& n : g.nodes())
    if (n->op_type == "FusedElementwise") groups += (groups.empty() ? "" : " ") + n->metadata.at("kiln.fused");
  std::cout << name << (fp16 ? " fp16" : " fp32") << ": " << nodes_before << " nodes -> " << g.nodes().size()
            << ", fused: " << groups << "\n";
  EXPECT_EQ(count_op(g, "FusedElementwise"), want_fused);
  EXPECT_EQ(groups, want_groups);
  auto fused_out = run_graph_on_cpu(g, feeds);
  ASSERT_TRUE(fused_out.is_ok()) << fused_out.status().to_string();
  ASSERT_EQ(fused_out->size(), unfused->size());
  for (size_t o = 0; o < unfused->size(); ++o) {
    const Tensor &a = (*unfused)[o].tensor, &b = (*fused_out)[o].tensor;
    ASSERT_EQ(a.dims(), b.dims());
    EXPECT_EQ(std::memcmp(a.raw(), b.raw(), a.nbytes()), 0) << name << " output " << o;
  }
}

// After the earlier fusions (LayerNorm, Gelu, attention, FusedMatMul) BERT
// keeps its embedding sum and, in fp16, the pooler's Tanh and output Cast.
TEST(FuseElementwise, TinyBertStaysBitIdentical) { check_shared_model("tiny_bert", false, 1, "Add+Add"); }
TEST(FuseElementwise, TinyBertFp16StaysBitIdentical) { check_shared_model("tiny_bert", true, 2, "Add+Add Tanh+Cast"); }
// GPT-2's elementwise ops are all taken by the earlier fusions or read twice (residuals).
TEST(FuseElementwise, TinyGpt2Fp16HasNoChainLeft) { check_shared_model("tiny_gpt2", true, 0, ""); }

}  // namespace
}  // namespace kiln
