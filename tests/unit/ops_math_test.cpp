// Shape and type inference of the math ops (elementwise, activations,
// reductions, linear algebra, losses) with symbolic dims.
#include "ops_math_test_util.h"

namespace kiln::testing {
namespace {

Attribute ai(int64_t v) { return Attribute::of_int(v); }
Attribute as(const char* v) { return Attribute::of_string(v); }

TEST(MathShapes, UnaryOpsKeepTypeAndSymbolicDims) {
  for (const char* op : {"Abs",    "Neg",         "Reciprocal", "Floor",     "Ceil",       "Sqrt",
                         "Relu",   "Exp",         "Log",        "Tanh",      "Sigmoid",    "Sin",
                         "Cos",    "Tan",         "Asin",       "Acos",      "Atan",       "Sinh",
                         "Cosh",   "Asinh",       "Acosh",      "Atanh",     "Erf",        "Sign",
                         "Round",  "Softsign",    "Softplus",   "LeakyRelu", "Elu",        "Selu",
                         "Celu",   "HardSigmoid", "HardSwish",  "Mish",      "Gelu",       "ThresholdedRelu",
                         "Shrink", "Swish",       "Clip",       "Softmax",   "LogSoftmax", "Hardmax"}) {
    OneNode g(op, {f32({sym("batch"), 4})});
    EXPECT_EQ(g.infer(), "f32[batch,4]") << op;
  }
  OneNode bn("BitwiseNot", {typed(DType::kI32, {sym("n")})});
  EXPECT_EQ(bn.infer(), "i32[n]");
  OneNode nt("Not", {typed(DType::kBool, {sym("n")})});
  EXPECT_EQ(nt.infer(), "bool[n]");
}

TEST(MathShapes, IsNaNAndIsInfGiveBool) {
  OneNode a("IsNaN", {f32({sym("batch"), 3})});
  EXPECT_EQ(a.infer(), "bool[batch,3]");
  OneNode b("IsInf", {f32({2, sym("s")})});
  EXPECT_EQ(b.infer(), "bool[2,s]");
}

TEST(MathShapes, BinaryOpsBroadcastSymbolicDims) {
  for (const char* op : {"Add", "Sub", "Mul", "Div", "Pow", "Mod", "PRelu"}) {
    OneNode g(op, {f32({sym("batch"), 1, 4}), f32({3, 1})}, {{"fmod", ai(1)}});
    EXPECT_EQ(g.infer(), "f32[batch,3,4]") << op;
  }
  for (const char* op : {"BitwiseAnd", "BitwiseOr", "BitwiseXor"}) {
    OneNode g(op, {typed(DType::kU8, {sym("n"), 1}), typed(DType::kU8, {5})});
    EXPECT_EQ(g.infer(), "u8[n,5]") << op;
  }
  OneNode shift("BitShift", {typed(DType::kU32, {sym("n")}), typed(DType::kU32, {1})}, {{"direction", as("LEFT")}});
  EXPECT_EQ(shift.infer(), "u32[n]");
}

TEST(MathShapes, ComparisonsAndLogicGiveBool) {
  for (const char* op : {"Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual"}) {
    OneNode g(op, {f32({sym("b"), 1}), f32({4})});
    EXPECT_EQ(g.infer(), "bool[b,4]") << op;
  }
  for (const char* op : {"And", "Or", "Xor"}) {
    OneNode g(op, {typed(DType::kBool, {2, 1}), typed(DType::kBool, {sym("n")})});
    EXPECT_EQ(g.infer(), "bool[2,n]") << op;
  }
}

TEST(MathShapes, BinaryOpsRejectMixedDtypesAndClashingDims) {
  OneNode mixed("Add", {f32({2}), typed(DType::kI64, {2})});
  EXPECT_EQ(mixed.infer(), "error: Add inputs must share one dtype, got f32 and i64");
  OneNode clash("Mul", {f32({2}), f32({3})});
  EXPECT_NE(clash.infer().find("cannot broadcast"), std::string::npos);
  OneNode dir("BitShift", {typed(DType::kU8, {1}), typed(DType::kU8, {1})}, {{"direction", as("UP")}});
  EXPECT_NE(dir.infer().find("direction"), std::string::npos);
}

TEST(MathShapes, VariadicOpsBroadcastAllInputs) {
  for (const char* op : {"Sum", "Mean", "Max", "Min"}) {
    OneNode g(op, {f32({sym("b"), 1, 1}), f32({3, 1}), f32({4})});
    EXPECT_EQ(g.infer(), "f32[b,3,4]") << op;
    OneNode one(op, {f32({sym("b")})});
    EXPECT_EQ(one.infer(), "f32[b]") << op;
  }
}

TEST(MathShapes, SoftmaxRejectsAxisOutOfRange) {
  OneNode g("Softmax", {f32({2, 3})}, {{"axis", ai(2)}});
  EXPECT_EQ(g.infer(), "error: axis 2 is out of range for rank 2");
}

TEST(MathShapes, GeluRejectsUnknownApproximation) {
  OneNode g("Gelu", {f32({2})}, {{"approximate", as("fast")}});
  EXPECT_NE(g.infer().find("approximate=\"fast\""), std::string::npos);
}

TEST(MathShapes, ReductionsDropOrKeepConstantAxes) {
  for (const char* op : {"ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
                         "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare"}) {
    OneNode keep(op, {f32({sym("b"), 3, 4}), i64_tensor({1}, {-1})});
    EXPECT_EQ(keep.infer(), "f32[b,3,1]") << op;
    OneNode drop(op, {f32({sym("b"), 3, 4}), i64_tensor({2}, {0, 2})}, {{"keepdims", ai(0)}});
    EXPECT_EQ(drop.infer(), "f32[3]") << op;
    OneNode all(op, {f32({sym("b"), 3})}, {{"keepdims", ai(0)}});
    EXPECT_EQ(all.infer(), "f32[]") << op;
  }
}

TEST(MathShapes, ReductionWithEmptyAxesAndNoopIsIdentity) {
  OneNode g("ReduceSum", {f32({sym("b"), 3}), i64_tensor({0}, {})}, {{"noop_with_empty_axes", ai(1)}});
  EXPECT_EQ(g.infer(), "f32[b,3]");
}

TEST(MathShapes, ReductionWithRuntimeAxesKeepsRankOnly) {
  OneNode keep("ReduceMax", {f32({sym("b"), 3}), typed(DType::kI64, {1})});
  EXPECT_EQ(keep.infer(), "f32[?,?]");
  OneNode drop("ReduceMax", {f32({sym("b"), 3}), typed(DType::kI64, {1})}, {{"keepdims", ai(0)}});
  EXPECT_EQ(drop.infer(), "f32[?]");
}

TEST(MathShapes, ReductionRejectsRepeatedAxes) {
  OneNode g("ReduceSum", {f32({2, 3}), i64_tensor({2}, {1, -1})});
  EXPECT_EQ(g.infer(), "error: ReduceSum: axis -1 is repeated in axes");
}

TEST(MathShapes, ArgMaxAndArgMinGiveI64) {
  OneNode a("ArgMax", {f32({sym("b"), 5, 2})}, {{"axis", ai(1)}});
  EXPECT_EQ(a.infer(), "i64[b,1,2]");
  OneNode b("ArgMin", {f32({sym("b"), 5})}, {{"axis", ai(-1)}, {"keepdims", ai(0)}});
  EXPECT_EQ(b.infer(), "i64[b]");
}

TEST(MathShapes, CumulativeOpsKeepShape) {
  for (const char* op : {"CumSum", "CumProd"}) {
    OneNode g(op, {f32({sym("b"), 5}), i64_tensor({}, {1})});
    EXPECT_EQ(g.infer(), "f32[b,5]") << op;
  }
}

TEST(MathShapes, MatMulBatchesAndPromotesVectors) {
  OneNode batched("MatMul", {f32({sym("b"), 1, sym("m"), 8}), f32({3, 8, 16})});
  EXPECT_EQ(batched.infer(), "f32[b,3,m,16]");
  OneNode vec_left("MatMul", {f32({8}), f32({sym("b"), 8, 4})});
  EXPECT_EQ(vec_left.infer(), "f32[b,4]");
  OneNode vec_right("MatMul", {f32({sym("b"), 2, 8}), f32({8})});
  EXPECT_EQ(vec_right.infer(), "f32[b,2]");
  OneNode dot("MatMul", {f32({8}), f32({8})});
  EXPECT_EQ(dot.infer(), "f32[]");
  OneNode bad("MatMul", {f32({2, 3}), f32({4, 5})});
  EXPECT_EQ(bad.infer(), "error: MatMul: A has K=3 but B has K=4 (shapes [2,3] and [4,5])");
}

TEST(MathShapes, MatMulIntegerGivesI32) {
  OneNode g("MatMulInteger", {typed(DType::kU8, {sym("m"), 4}), typed(DType::kI8, {4, 3})});
  EXPECT_EQ(g.infer(), "i32[m,3]");
}

TEST(MathShapes, GemmTransposesAndChecksC) {
  OneNode g("Gemm", {f32({8, sym("m")}), f32({sym("n"), 8}), f32({1})}, {{"transA", ai(1)}, {"transB", ai(1)}});
  EXPECT_EQ(g.infer(), "f32[m,n]");
  OneNode bad("Gemm", {f32({2, 3}), f32({3, 4}), f32({5, 1, 1})});
  EXPECT_NE(bad.infer().find("does not broadcast"), std::string::npos);
}

TEST(MathShapes, EinsumFollowsExplicitAndImplicitOutputs) {
  OneNode mm("Einsum", {f32({sym("i"), 3}), f32({3, 5})}, {{"equation", as("ij,jk->ik")}});
  EXPECT_EQ(mm.infer(), "f32[i,5]");
  OneNode implicit("Einsum", {f32({2, 3}), f32({3, 5})}, {{"equation", as("ij,jk")}});
  EXPECT_EQ(implicit.infer(), "f32[2,5]");
  OneNode ellipsis("Einsum", {f32({sym("b"), 7, 4, 4})}, {{"equation", as("...ii->...i")}});
  EXPECT_EQ(ellipsis.infer(), "f32[b,7,4]");
  OneNode wrong("Einsum", {f32({2, 3})}, {{"equation", as("ijk->i")}});
  EXPECT_NE(wrong.infer().find("does not match operand 0"), std::string::npos);
}

TEST(MathShapes, DetDropsTheMatrixDims) {
  OneNode g("Det", {f32({sym("b"), 3, 3})});
  EXPECT_EQ(g.infer(), "f32[b]");
  OneNode bad("Det", {f32({2, 3})});
  EXPECT_EQ(bad.infer(), "error: Det: matrices must be square, got [2,3]");
}

TEST(MathShapes, LossesAreScalarUnlessReductionIsNone) {
  OneNode mean("NegativeLogLikelihoodLoss", {f32({sym("n"), 5, 2}), typed(DType::kI64, {sym("n"), 2})});
  EXPECT_EQ(mean.infer(), "f32[]");
  OneNode none("NegativeLogLikelihoodLoss", {f32({sym("n"), 5, 2}), typed(DType::kI64, {sym("n"), 2})},
               {{"reduction", as("none")}});
  EXPECT_EQ(none.infer(), "f32[n,2]");
  OneNode sce("SoftmaxCrossEntropyLoss", {f32({sym("n"), 5}), typed(DType::kI32, {sym("n")})},
              {{"reduction", as("sum")}}, 2);
  EXPECT_EQ(sce.infer(0), "f32[]");
  EXPECT_EQ(sce.node->outputs[1]->type.to_string(), "f32[n,5]");
  OneNode bad("SoftmaxCrossEntropyLoss", {f32({2, 5}), typed(DType::kI64, {2})}, {{"reduction", as("max")}});
  EXPECT_NE(bad.infer().find("reduction must be"), std::string::npos);
}

}  // namespace
}  // namespace kiln::testing
