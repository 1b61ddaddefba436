// Sequences and optionals on the CUDA backend (sequence_ops.cpp): sequence
// values are lists of device tensors, compared with the CPU backend on random
// inputs. These ops only move data, so the results must be the same bytes.
// Graph inputs and outputs are tensors: the sequences are made and consumed
// inside each graph.
#include <gtest/gtest.h>

#include "backends/cuda/cuda_runner.h"
#include "backends/cuda/run_plan.h"
#include "gpu_graph_test_util.h"
#include "gpu_test_util.h"
#include "ir/parser.h"
#include "ir/rewrite.h"

namespace kiln {
namespace {

using gpu_test::GpuTest;
using gpu_test::random_tensor;

using gpu_test::attach;
using gpu_test::expect_same_as_cpu;
using gpu_test::expect_same_values_as_cpu;
using gpu_test::parse;

Tensor i64s(std::vector<int64_t> dims, std::vector<int64_t> v) {
  return Tensor::from_vector<int64_t>(DType::kI64, std::move(dims), v);
}
Tensor scalar_i64(int64_t v) { return Tensor::scalar_i64(v); }

// SplitToSequence (split lengths from the device, read on the host at the
// break), SequenceAt at a position from the device, SequenceLength, and
// ConcatFromSequence back along the split axis.
const char* kSplitAtConcat =
    "graph main(%x: f32[4,6], %split: i64[3], %p: i64[]) {\n"
    "  %s: seq<f32[4,?]> = SplitToSequence(%x, %split) {axis = 1}\n"
    "  %e: f32[4,?] = SequenceAt(%s, %p)\n"
    "  %n: i64[] = SequenceLength(%s)\n"
    "  %c: f32[4,6] = ConcatFromSequence(%s) {axis = -1}\n"
    "  %y: f32[4,?] = Neg(%e)\n"
    "  return %y, %n, %c, %e\n"
    "}\n";

TEST_F(GpuTest, SequenceSplitWithLengthsAtAndConcat) {
  auto g = parse(kSplitAtConcat);
  ASSERT_TRUE(g);
  Tensor x = random_tensor(DType::kF32, {4, 6}, -2.f, 2.f, 1);
  for (int64_t p : {0, 1, 2, -1, -3})
    expect_same_as_cpu(*g, {x, i64s({3}, {1, 3, 2}), scalar_i64(p)}, "split 1,3,2 at " + std::to_string(p));
  // An empty piece.
  expect_same_as_cpu(*g, {x, i64s({3}, {0, 6, 0}), scalar_i64(-3)}, "split 0,6,0");
}

TEST_F(GpuTest, SequenceSplitToSequenceScalarSplitAndKeepdims) {
  auto g = parse(
      "graph main(%x: f32[5,3,2]) {\n"
      "  %two: i64[] = const i64[]{2}\n"
      "  %minus1: i64[] = const i64[]{-1}\n"
      "  %a: seq<f32[?,3,2]> = SplitToSequence(%x, %two)\n"
      "  %b: seq<f32[3,2]> = SplitToSequence(%x) {keepdims = 0}\n"
      "  %k: seq<f32[5,3,1]> = SplitToSequence(%x) {axis = 2}\n"
      "  %ca: f32[5,3,2] = ConcatFromSequence(%a) {axis = 0}\n"
      "  %cb: f32[3,5,2] = ConcatFromSequence(%b) {axis = 1, new_axis = 1}\n"
      "  %ck: f32[5,3,2] = ConcatFromSequence(%k) {axis = -1}\n"
      "  %la: i64[] = SequenceLength(%a)\n"
      "  %last: f32[?,3,2] = SequenceAt(%a, %minus1)\n"
      "  return %ca, %cb, %ck, %la, %last\n"
      "}\n");
  ASSERT_TRUE(g);
  expect_same_as_cpu(*g, {random_tensor(DType::kF32, {5, 3, 2}, -2.f, 2.f, 2)}, "split 2, keepdims 0");
}

// Insert and erase at positions from the device (negative ones too), and
// ConcatFromSequence with new_axis 0 and 1.
TEST_F(GpuTest, SequenceInsertEraseAtNegativePositions) {
  auto g = parse(
      "graph main(%x: i32[2,3], %y: i32[2,3], %z: i32[2,3], %p: i64[], %q: i64[]) {\n"
      "  %s: seq<i32[2,3]> = SequenceConstruct(%x, %y)\n"
      "  %t: seq<i32[2,3]> = SequenceInsert(%s, %z, %p)\n"
      "  %u: seq<i32[2,3]> = SequenceErase(%t, %q)\n"
      "  %stacked: i32[2,?,3] = ConcatFromSequence(%t) {axis = 1, new_axis = 1}\n"
      "  %cat: i32[?,3] = ConcatFromSequence(%u) {axis = 0}\n"
      "  %n: i64[] = SequenceLength(%u)\n"
      "  %at: i32[2,3] = SequenceAt(%t, %q)\n"
      "  return %stacked, %cat, %n, %at\n"
      "}\n");
  ASSERT_TRUE(g);
  Tensor x = random_tensor(DType::kI32, {2, 3}, -100.f, 100.f, 3);
  Tensor y = random_tensor(DType::kI32, {2, 3}, -100.f, 100.f, 4);
  Tensor z = random_tensor(DType::kI32, {2, 3}, -100.f, 100.f, 5);
  for (auto [p, q] : std::vector<std::pair<int64_t, int64_t>>{{0, 0}, {2, -1}, {-1, -3}, {-2, 1}, {1, 2}})
    expect_same_as_cpu(*g, {x, y, z, scalar_i64(p), scalar_i64(q)},
                       "insert at " + std::to_string(p) + ", erase at " + std::to_string(q));
}

// Omitted positions (insert at the end, erase the last), a sequence built
// from SequenceEmpty, and one only the host has (from constants), uploaded
// when a device value is inserted.
TEST_F(GpuTest, SequenceDefaultPositionsEmptyAndHostSequences) {
  auto g = parse(
      "graph main(%x: f32[3], %y: f32[3]) {\n"
      "  %e: seq<f32[3]> = SequenceEmpty() {dtype = 1}\n"
      "  %s: seq<f32[3]> = SequenceInsert(%e, %x)\n"
      "  %t: seq<f32[3]> = SequenceInsert(%s, %y)\n"
      "  %u: seq<f32[3]> = SequenceErase(%t)\n"
      "  %ct: f32[6] = ConcatFromSequence(%t) {axis = 0}\n"
      "  %cu: f32[1,3] = ConcatFromSequence(%u) {axis = 0, new_axis = 1}\n"
      "  %k: f32[3] = const f32[3]{1, 2, 3}\n"
      "  %one: i64[] = const i64[]{1}\n"
      "  %h: seq<f32[3]> = SequenceConstruct(%k, %k)\n"
      "  %hx: seq<f32[3]> = SequenceInsert(%h, %x, %one)\n"
      "  %chx: f32[3,3] = ConcatFromSequence(%hx) {axis = 0, new_axis = 1}\n"
      "  %n: i64[] = SequenceLength(%e)\n"
      "  return %ct, %cu, %chx, %n\n"
      "}\n");
  ASSERT_TRUE(g);
  expect_same_as_cpu(*g, {random_tensor(DType::kF32, {3}, -2.f, 2.f, 6), random_tensor(DType::kF32, {3}, -2.f, 2.f, 7)},
                     "defaults");
}

Attribute type_attr(Type t) {
  Attribute a;
  a.kind = Attribute::Kind::kType;
  a.type = std::move(t);
  return a;
}

// Optional present (a tensor, a sequence) and empty: OptionalHasElement is
// known on the host, OptionalGetElement gives the device memory back.
TEST_F(GpuTest, SequenceOptionalEmptyAndPresent) {
  auto g = parse(
      "graph main(%x: f32[2,3]) {\n"
      "  %o: opt<f32[2,3]> = Optional(%x)\n"
      "  %none: opt<f32[2,3]> = Optional()\n"
      "  %has: bool[] = OptionalHasElement(%o)\n"
      "  %has_none: bool[] = OptionalHasElement(%none)\n"
      "  %omitted: bool[] = OptionalHasElement(_)\n"
      "  %got: f32[2,3] = OptionalGetElement(%o)\n"
      "  %neg: f32[2,3] = Neg(%got)\n"
      "  %s: seq<f32[1,3]> = SplitToSequence(%x)\n"
      "  %os: opt<seq<f32[1,3]>> = Optional(%s)\n"
      "  %gs: seq<f32[1,3]> = OptionalGetElement(%os)\n"
      "  %hs: bool[] = OptionalHasElement(%os)\n"
      "  %cs: f32[1,6] = ConcatFromSequence(%gs) {axis = 1, new_axis = 0}\n"
      "  %tensor_has: bool[] = OptionalHasElement(%x)\n"
      "  return %has, %has_none, %omitted, %neg, %got, %hs, %cs, %tensor_has\n"
      "}\n");
  ASSERT_TRUE(g);
  g->mutable_nodes()[1]->attrs["type"] = type_attr(Type::tensor(DType::kF32, Shape::of({2, 3})));
  expect_same_as_cpu(*g, {random_tensor(DType::kF32, {2, 3}, -2.f, 2.f, 8)}, "optionals");
}

TEST_F(GpuTest, SequenceOptionalGetElementOfAnEmptyOptionalIsAnError) {
  auto g = parse(
      "graph main(%x: f32[2]) {\n"
      "  %none: opt<f32[2]> = Optional()\n"
      "  %got: f32[2] = OptionalGetElement(%none)\n"
      "  %y: f32[2] = Add(%got, %x)\n"
      "  return %y\n"
      "}\n");
  ASSERT_TRUE(g);
  g->mutable_nodes()[0]->name = "none";
  g->mutable_nodes()[1]->name = "get";
  g->mutable_nodes()[0]->attrs["type"] = type_attr(Type::tensor(DType::kF32, Shape::of({2})));
  auto gpu = cuda::run_graph_on_cuda(*g, {RunValue::of(random_tensor(DType::kF32, {2}, -2.f, 2.f, 9))});
  ASSERT_FALSE(gpu.is_ok());
  EXPECT_NE(gpu.status().message().find("node 'get' (OptionalGetElement): the optional is empty"), std::string::npos)
      << gpu.status().to_string();
}

TEST_F(GpuTest, SequencePositionOutOfRangeIsAnError) {
  auto g = parse(kSplitAtConcat);
  ASSERT_TRUE(g);
  g->mutable_nodes()[1]->name = "at";
  auto gpu = cuda::run_graph_on_cuda(*g, {RunValue::of(random_tensor(DType::kF32, {4, 6}, -2.f, 2.f, 10)),
                                          RunValue::of(i64s({3}, {1, 3, 2})), RunValue::of(scalar_i64(-4))});
  ASSERT_FALSE(gpu.is_ok());
  EXPECT_NE(gpu.status().message().find("node 'at' (SequenceAt): position -4 is out of range [-3, 2]"),
            std::string::npos)
      << gpu.status().to_string();
}

// A Loop whose body (tensors in and out) uses sequences inside: it rotates
// the rows of its carried value (split, erase the first row, insert it at
// the end, concat).
TEST_F(GpuTest, SequenceOpsInsideALoopBody) {
  auto g = parse(
      "graph main(%x: f32[4,3], %m: i64[]) {\n"
      "  %y: f32[4,3] = Loop(%m, _, %x)\n"
      "  return %y\n"
      "}\n");
  ASSERT_TRUE(g);
  auto body = parse(
      "graph b(%i: i64[], %c: bool[], %acc: f32[4,3]) {\n"
      "  %zero: i64[] = const i64[]{0}\n"
      "  %s: seq<f32[1,3]> = SplitToSequence(%acc) {axis = 0}\n"
      "  %first: f32[1,3] = SequenceAt(%s, %zero)\n"
      "  %rest: seq<f32[1,3]> = SequenceErase(%s, %zero)\n"
      "  %r: seq<f32[1,3]> = SequenceInsert(%rest, %first)\n"
      "  %next: f32[4,3] = ConcatFromSequence(%r) {axis = 0}\n"
      "  return %c, %next\n"
      "}\n");
  ASSERT_TRUE(body);
  body->parent = g.get();
  Attribute a;
  a.kind = Attribute::Kind::kGraph;
  a.g = std::move(body);
  g->mutable_nodes()[0]->attrs["body"] = std::move(a);
  Tensor x = random_tensor(DType::kF32, {4, 3}, -2.f, 2.f, 11);
  for (int64_t m : {0, 1, 3, 5}) expect_same_as_cpu(*g, {x, scalar_i64(m)}, "M = " + std::to_string(m));
}

// A Loop carrying a sequence (from SequenceEmpty): each iteration inserts
// x[0:i+1] (a Slice whose end comes from the iteration number).
TEST_F(GpuTest, SequenceLoopCarriesASequence) {
  auto g = parse(
      "graph main(%x: f32[5], %m: i64[]) {\n"
      "  %minus1: i64[] = const i64[]{-1}\n"
      "  %e: seq<f32[?]> = SequenceEmpty() {dtype = 1}\n"
      "  %s: seq<f32[?]> = Loop(%m, _, %e)\n"
      "  %c: f32[?] = ConcatFromSequence(%s) {axis = 0}\n"
      "  %n: i64[] = SequenceLength(%s)\n"
      "  %last: f32[?] = SequenceAt(%s, %minus1)\n"
      "  return %c, %n, %last\n"
      "}\n");
  ASSERT_TRUE(g);
  attach(*g, 1, "body",
         "graph b(%i: i64[], %c: bool[], %seq_in: seq<f32[?]>, %x: f32[5]) {\n"
         "  %one: i64[] = const i64[]{1}\n"
         "  %start: i64[1] = const i64[1]{0}\n"
         "  %axes: i64[1] = const i64[1]{0}\n"
         "  %end: i64[] = Add(%i, %one)\n"
         "  %end1: i64[1] = Unsqueeze(%end, %axes)\n"
         "  %piece: f32[?] = Slice(%x, %start, %end1)\n"
         "  %seq_out: seq<f32[?]> = SequenceInsert(%seq_in, %piece)\n"
         "  return %c, %seq_out\n"
         "}\n",
         3, {"x"});
  Tensor x = random_tensor(DType::kF32, {5}, -2.f, 2.f, 12);
  for (int64_t m : {1, 3, 5}) expect_same_as_cpu(*g, {x, scalar_i64(m)}, "M = " + std::to_string(m));
}

// If giving a sequence (built from outer device values, or only the host
// has it: from constants) and an optional (present or empty).
TEST_F(GpuTest, SequenceIfGivesSequencesAndOptionals) {
  auto g = parse(
      "graph main(%c: bool[], %x: f32[3], %y: f32[3]) {\n"
      "  %s: seq<f32[3]> = If(%c)\n"
      "  %o: opt<f32[3]> = If(%c)\n"
      "  %n: i64[] = SequenceLength(%s)\n"
      "  %cat: f32[?] = ConcatFromSequence(%s) {axis = 0}\n"
      "  %has: bool[] = OptionalHasElement(%o)\n"
      "  return %n, %cat, %has\n"
      "}\n");
  ASSERT_TRUE(g);
  attach(*g, 0, "then_branch",
         "graph t(%x: f32[3], %y: f32[3]) {\n  %t: seq<f32[3]> = SequenceConstruct(%x, %y, %x)\n  return %t\n}\n", 0,
         {"x", "y"});
  attach(*g, 0, "else_branch",
         "graph e() {\n  %k: f32[3] = const f32[3]{5, 4, 3}\n  %e: seq<f32[3]> = SequenceConstruct(%k)\n"
         "  return %e\n}\n",
         0, {});
  attach(*g, 1, "then_branch", "graph t(%x: f32[3]) {\n  %t: opt<f32[3]> = Optional(%x)\n  return %t\n}\n", 0, {"x"});
  attach(*g, 1, "else_branch", "graph e() {\n  %e: opt<f32[3]> = Optional()\n  return %e\n}\n", 0, {});
  g->mutable_nodes()[1]->attr("else_branch")->g->mutable_nodes()[0]->attrs["type"] =
      type_attr(Type::tensor(DType::kF32, Shape::of({3})));
  Tensor x = random_tensor(DType::kF32, {3}, -2.f, 2.f, 13), y = random_tensor(DType::kF32, {3}, -2.f, 2.f, 14);
  Tensor yes = Tensor::from_vector<uint8_t>(DType::kBool, {}, {1}),
         no = Tensor::from_vector<uint8_t>(DType::kBool, {}, {0});
  expect_same_as_cpu(*g, {yes, x, y}, "then");
  expect_same_as_cpu(*g, {no, x, y}, "else");
}

// SequenceMap over two sequences and a tensor, with two outputs.
TEST_F(GpuTest, SequenceMapTwoSequencesAndATensor) {
  auto g = parse(
      "graph main(%x: i32[3,4], %y: i32[3,4], %z: i32[1,4]) {\n"
      "  %a: seq<i32[1,4]> = SplitToSequence(%x) {axis = 0}\n"
      "  %b: seq<i32[1,4]> = SplitToSequence(%y) {axis = 0}\n"
      "  %r: seq<i32[1,4]>, %n: seq<i32[1,4]> = SequenceMap(%a, %b, %z)\n"
      "  %cr: i32[3,4] = ConcatFromSequence(%r) {axis = 0}\n"
      "  %cn: i32[1,3,4] = ConcatFromSequence(%n) {axis = 1, new_axis = 1}\n"
      "  return %cr, %cn\n"
      "}\n");
  ASSERT_TRUE(g);
  attach(*g, 2, "body",
         "graph m(%p: i32[1,4], %q: i32[1,4], %w: i32[1,4]) {\n"
         "  %pq: i32[1,4] = Mul(%p, %q)\n"
         "  %r: i32[1,4] = Add(%pq, %w)\n"
         "  %n: i32[1,4] = Neg(%p)\n"
         "  return %r, %n\n"
         "}\n",
         3, {});
  expect_same_as_cpu(
      *g,
      {random_tensor(DType::kI32, {3, 4}, -50.f, 50.f, 15), random_tensor(DType::kI32, {3, 4}, -50.f, 50.f, 16),
       random_tensor(DType::kI32, {1, 4}, -50.f, 50.f, 17)},
      "map");
}

// Sequence and optional graph inputs and outputs (as the ONNX node tests
// have them): uploaded as lists, given back downloaded.
TEST_F(GpuTest, SequenceGraphInputsAndOutputsAreLists) {
  auto g = parse(
      "graph main(%s: seq<f32[?,3]>, %x: f32[2,3], %p: i64[], %o: opt<f32[2,3]>) {\n"
      "  %t: seq<f32[?,3]> = SequenceInsert(%s, %x, %p)\n"
      "  %u: seq<f32[?,3]> = SplitToSequence(%x) {axis = 0}\n"
      "  %has: bool[] = OptionalHasElement(%o)\n"
      "  %o2: opt<seq<f32[?,3]>> = Optional(%t)\n"
      "  return %t, %u, %has, %o2, %s\n"
      "}\n");
  ASSERT_TRUE(g);
  std::vector<Tensor> elements{random_tensor(DType::kF32, {1, 3}, -2.f, 2.f, 18),
                               random_tensor(DType::kF32, {4, 3}, -2.f, 2.f, 19)};
  RunValue present;
  present.kind = Type::Kind::kOptional;
  present.tensor = random_tensor(DType::kF32, {2, 3}, -2.f, 2.f, 20);
  RunValue empty;
  empty.kind = Type::Kind::kOptional;
  empty.present = false;
  Tensor x = random_tensor(DType::kF32, {2, 3}, -2.f, 2.f, 21);
  for (int64_t p : {0, -1, 2})
    for (const RunValue* o : {&present, &empty})
      expect_same_values_as_cpu(
          *g, {RunValue::of_sequence(elements), RunValue::of(x), RunValue::of(scalar_i64(p)), *o},
          "insert at " + std::to_string(p) + (o->present ? ", optional present" : ", optional empty"));
  // An empty sequence in.
  expect_same_values_as_cpu(*g, {RunValue::of_sequence({}), RunValue::of(x), RunValue::of(scalar_i64(0)), present},
                            "empty sequence");
}

}  // namespace
}  // namespace kiln
