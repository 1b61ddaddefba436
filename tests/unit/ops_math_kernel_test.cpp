// CPU kernels of the math ops: the edge cases the ONNX node tests leave out
// (integer division rules, NaN propagation, vector promotion, upgrades).
#include <cmath>
#include <limits>

#include "ops/op_schema.h"
#include "ops_math_test_util.h"

namespace kiln::testing {
namespace {

Attribute ai(int64_t v) { return Attribute::of_int(v); }

TEST(MathKernels, IntegerDivisionByZeroIsAnErrorNotACrash) {
  auto r = run_op("Div", {i32_tensor({2}, {4, 5}), i32_tensor({2}, {1, 0})});
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find("Div: integer division by zero"), std::string::npos);
  auto m = run_op("Mod", {i64_tensor({1}, {4}), i64_tensor({1}, {0})});
  ASSERT_FALSE(m.is_ok());
  EXPECT_NE(m.status().message().find("Mod: integer division by zero"), std::string::npos);
}

TEST(MathKernels, IntegerDivTruncatesAndMinOverMinusOneWraps) {
  constexpr int32_t kMin = std::numeric_limits<int32_t>::min();
  auto r = run_op("Div", {i32_tensor({3}, {-7, 7, kMin}), i32_tensor({3}, {2, -2, -1})});
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(values_of<int32_t>((*r)[0].tensor), (std::vector<int32_t>{-3, -3, kMin}));
}

TEST(MathKernels, ModTakesTheDivisorsSignUnlessFmod) {
  auto floor_mod = run_op("Mod", {i32_tensor({4}, {-7, 7, -7, 7}), i32_tensor({4}, {3, -3, -3, 3})});
  ASSERT_TRUE(floor_mod.is_ok());
  EXPECT_EQ(values_of<int32_t>((*floor_mod)[0].tensor), (std::vector<int32_t>{2, -2, -1, 1}));
  auto fmod = run_op("Mod", {f32_tensor({2}, {-7, 7}), f32_tensor({2}, {3, -3})}, {{"fmod", ai(1)}});
  ASSERT_TRUE(fmod.is_ok());
  EXPECT_EQ(values_of<float>((*fmod)[0].tensor), (std::vector<float>{-1, 1}));
}

TEST(MathKernels, MaxAndMinPropagateNaN) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  auto r = run_op("Max", {f32_tensor({2}, {nan, 1}), f32_tensor({2}, {3, nan}), f32_tensor({1}, {2})});
  ASSERT_TRUE(r.is_ok());
  auto v = values_of<float>((*r)[0].tensor);
  EXPECT_TRUE(std::isnan(v[0]) && std::isnan(v[1]));
  auto m = run_op("Min", {f32_tensor({2}, {1, 5}), f32_tensor({2, 1}, {nan, 0})});
  ASSERT_TRUE(m.is_ok());
  auto w = values_of<float>((*m)[0].tensor);
  EXPECT_TRUE(std::isnan(w[0]) && std::isnan(w[1]));
  EXPECT_EQ(w[2], 0);
  EXPECT_EQ(w[3], 0);
}

TEST(MathKernels, IntegerPowIsExact) {
  auto r = run_op("Pow", {i64_tensor({2}, {3, 2}), i64_tensor({2}, {39, -1})});
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ(values_of<int64_t>((*r)[0].tensor), (std::vector<int64_t>{4052555153018976267, 0}));
}

TEST(MathKernels, BitShiftPastTheWidthGivesZero) {
  auto r = run_op(
      "BitShift",
      {Tensor::from_vector<uint8_t>(DType::kU8, {2}, {1, 0x80}), Tensor::from_vector<uint8_t>(DType::kU8, {2}, {9, 7})},
      {{"direction", Attribute::of_string("RIGHT")}});
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ(values_of<uint8_t>((*r)[0].tensor), (std::vector<uint8_t>{0, 1}));
}

TEST(MathKernels, MatMulPromotesVectorsAndBroadcastsBatches) {
  auto dot = run_op("MatMul", {f32_tensor({3}, {1, 2, 3}), f32_tensor({3}, {4, 5, 6})});
  ASSERT_TRUE(dot.is_ok());
  EXPECT_EQ((*dot)[0].tensor.dims(), std::vector<int64_t>{});
  EXPECT_EQ(values_of<float>((*dot)[0].tensor), std::vector<float>{32});
  // [2,1,2] x [2,1]: each batch row times the same column.
  auto batched = run_op("MatMul", {f32_tensor({2, 1, 2}, {1, 2, 3, 4}), f32_tensor({2, 1}, {10, 1})});
  ASSERT_TRUE(batched.is_ok());
  EXPECT_EQ((*batched)[0].tensor.dims(), (std::vector<int64_t>{2, 1, 1}));
  EXPECT_EQ(values_of<float>((*batched)[0].tensor), (std::vector<float>{12, 34}));
}

TEST(MathKernels, GemmTransposesScalesAndBroadcastsC) {
  // A^T is [[1,2],[3,4]]; B^T is the identity; C is a row broadcast over M.
  auto r = run_op(
      "Gemm", {f32_tensor({2, 2}, {1, 3, 2, 4}), f32_tensor({2, 2}, {1, 0, 0, 1}), f32_tensor({2}, {10, 20})},
      {{"transA", ai(1)}, {"transB", ai(1)}, {"alpha", Attribute::of_float(2)}, {"beta", Attribute::of_float(0.5f)}});
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(values_of<float>((*r)[0].tensor), (std::vector<float>{7, 14, 11, 18}));
}

TEST(MathKernels, ReduceMaxOfBoolIsAnyAndOfEmptyAxesIsAll) {
  auto any =
      run_op("ReduceMax", {Tensor::from_vector<uint8_t>(DType::kBool, {2, 2}, {0, 1, 0, 0}), i64_tensor({1}, {1})},
             {{"keepdims", ai(0)}});
  ASSERT_TRUE(any.is_ok()) << any.status().to_string();
  EXPECT_EQ(values_of<bool>((*any)[0].tensor), (std::vector<bool>{true, false}));
  auto all = run_op("ReduceSum", {i32_tensor({2, 2}, {1, 2, 3, 4})}, {{"keepdims", ai(0)}});
  ASSERT_TRUE(all.is_ok());
  EXPECT_EQ(values_of<int32_t>((*all)[0].tensor), std::vector<int32_t>{10});
}

TEST(MathKernels, ArgMaxSelectsFirstOrLastOfTies) {
  auto first = run_op("ArgMax", {f32_tensor({4}, {1, 3, 3, 0})});
  ASSERT_TRUE(first.is_ok());
  EXPECT_EQ(values_of<int64_t>((*first)[0].tensor), std::vector<int64_t>{1});
  auto last = run_op("ArgMax", {f32_tensor({4}, {1, 3, 3, 0})}, {{"select_last_index", ai(1)}});
  ASSERT_TRUE(last.is_ok());
  EXPECT_EQ(values_of<int64_t>((*last)[0].tensor), std::vector<int64_t>{2});
}

TEST(MathKernels, EinsumTakesTracesAndBatchedProducts) {
  auto trace = run_op("Einsum", {f32_tensor({2, 2}, {1, 2, 3, 4})}, {{"equation", Attribute::of_string("ii")}});
  ASSERT_TRUE(trace.is_ok()) << trace.status().to_string();
  EXPECT_EQ(values_of<float>((*trace)[0].tensor), std::vector<float>{5});
  auto bmm = run_op("Einsum", {f32_tensor({1, 1, 2}, {1, 2}), f32_tensor({2, 2, 1}, {1, 1, 2, 3})},
                    {{"equation", Attribute::of_string("...ij,...jk->...ik")}});
  ASSERT_TRUE(bmm.is_ok()) << bmm.status().to_string();
  EXPECT_EQ((*bmm)[0].tensor.dims(), (std::vector<int64_t>{2, 1, 1}));
  EXPECT_EQ(values_of<float>((*bmm)[0].tensor), (std::vector<float>{3, 8}));
}

TEST(MathKernels, DetOfSingularMatrixIsZero) {
  auto r = run_op("Det", {f32_tensor({2, 2, 2}, {1, 2, 2, 4, 0, 1, 1, 0})});
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ(values_of<float>((*r)[0].tensor), (std::vector<float>{0, -1}));
}

TEST(MathKernels, NllLossRejectsClassOutOfRange) {
  auto r = run_op("NegativeLogLikelihoodLoss", {f32_tensor({1, 2}, {0, 0}), i64_tensor({1}, {2})});
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find("class 2 is out of range [0, 2)"), std::string::npos);
}

TEST(MathKernels, ClipWithMinAboveMaxGivesMax) {
  auto r = run_op("Clip", {f32_tensor({3}, {-5, 0, 5}), f32_tensor({}, {2}), f32_tensor({}, {1})});
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ(values_of<float>((*r)[0].tensor), (std::vector<float>{1, 1, 1}));
}

// Opset < 13: softmax over the 2-D coercion at `axis`, which for a middle
// axis is Flatten -> Softmax(-1) -> Reshape to the input's shape.
TEST(MathUpgrades, OldSoftmaxOnAMiddleAxisBecomesFlattenSoftmaxReshape) {
  OneNode g("Softmax", {f32({2, 3, 4})}, {{"axis", ai(1)}}, 1, 11);
  Value* y = g.node->outputs[0];
  UpgradeContext ctx(g.graph, *g.node);
  ASSERT_TRUE(OpRegistry::instance().find("", "Softmax")->upgrades[0].fn(ctx).is_ok());
  std::vector<std::string> ops;
  for (const auto& n : g.graph.nodes()) ops.push_back(n->op_type);
  EXPECT_EQ(ops, (std::vector<std::string>{"Flatten", "Softmax", "Shape", "Reshape"}));
  EXPECT_EQ(y->producer, g.graph.nodes().back().get());
}

TEST(MathUpgrades, OldSoftmaxOnTheLastAxisStaysOneNode) {
  OneNode g("LogSoftmax", {f32({2, 3})}, {}, 1, 11);
  UpgradeContext ctx(g.graph, *g.node);
  ASSERT_TRUE(OpRegistry::instance().find("", "LogSoftmax")->upgrades[0].fn(ctx).is_ok());
  EXPECT_EQ(g.graph.nodes().size(), 1u);
  EXPECT_EQ(g.node->attr_int("axis", 0), -1);
}

TEST(MathUpgrades, OldClipAttributesBecomeInputs) {
  OneNode g("Clip", {f32({3})}, {{"min", Attribute::of_float(-1)}, {"max", Attribute::of_float(1)}}, 1, 6);
  UpgradeContext ctx(g.graph, *g.node);
  ASSERT_TRUE(OpRegistry::instance().find("", "Clip")->upgrades[0].fn(ctx).is_ok());
  ASSERT_EQ(g.node->inputs.size(), 3u);
  EXPECT_EQ(g.node->inputs[1]->constant->data<float>()[0], -1);
  EXPECT_EQ(g.node->inputs[2]->constant->data<float>()[0], 1);
  EXPECT_FALSE(g.node->has_attr("min"));
}

}  // namespace
}  // namespace kiln::testing
