// If, Loop and Scan on the CUDA backend (control_flow.cpp): bodies run as
// CUDA kernels, compared with the CPU backend on random inputs. The bodies'
// ops are exact (Add, Mul, Neg, Abs, Concat, comparisons, copies), so the
// results must be the same bytes.
#include <gtest/gtest.h>

#include "backends/cuda/cuda_runner.h"
#include "backends/cuda/run_plan.h"
#include "gpu_graph_test_util.h"
#include "gpu_test_util.h"
#include "ir/parser.h"
#include "ir/rewrite.h"
#include "passes/pass.h"

namespace kiln {
namespace {

using gpu_test::GpuTest;
using gpu_test::random_tensor;

using gpu_test::attach;
using gpu_test::expect_same_as_cpu;
using gpu_test::parse;

Tensor scalar_i64(int64_t v) { return Tensor::scalar_i64(v); }

// If: cond computed on the device from the data; both branches read x from
// around them.
TEST_F(GpuTest, ControlFlowIfTakesEachBranchWithCondFromTheDevice) {
  auto g = parse(
      "graph main(%x: f32[3,4]) {\n"
      "  %zero: f32[] = const f32[]{0}\n"
      "  %s: f32[] = ReduceSum(%x) {keepdims = 0}\n"
      "  %c: bool[] = Greater(%s, %zero)\n"
      "  %y: f32[3,4] = If(%c)\n"
      "  %z: f32[3,4] = Add(%y, %x)\n"
      "  return %z, %y\n"
      "}\n");
  ASSERT_TRUE(g);
  attach(*g, 2, "then_branch", "graph t(%x: f32[3,4]) {\n  %t: f32[3,4] = Neg(%x)\n  return %t\n}\n", 0, {"x"});
  attach(*g, 2, "else_branch",
         "graph e(%x: f32[3,4]) {\n  %a: f32[3,4] = Abs(%x)\n  %e: f32[3,4] = Mul(%a, %x)\n  return %e\n}\n", 0, {"x"});
  Tensor positive = random_tensor(DType::kF32, {3, 4}, 0.5f, 2.f, 1);
  Tensor negative = random_tensor(DType::kF32, {3, 4}, -2.f, -0.5f, 2);
  expect_same_as_cpu(*g, {positive}, "then");
  expect_same_as_cpu(*g, {negative}, "else");
  // The branch output is a graph output and an input of a later kernel.
  auto out = cuda::run_graph_on_cuda(*g, {RunValue::of(positive)});
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  for (int64_t i = 0; i < 12; ++i) EXPECT_EQ((*out)[1].tensor.data<float>()[i], -positive.data<float>()[i]);
}

// Loop body: acc += x (x from around it); scan outputs acc*acc and the
// iteration number.
const char* kAccumulateBody =
    "graph b(%i: i64[], %c: bool[], %acc: f32[2,3], %x: f32[2,3]) {\n"
    "  %next: f32[2,3] = Add(%acc, %x)\n"
    "  %sq: f32[2,3] = Mul(%next, %next)\n"
    "  return %c, %next, %sq, %i\n"
    "}\n";

TEST_F(GpuTest, ControlFlowLoopWithTripCountOnly) {
  auto g = parse(
      "graph main(%x: f32[2,3], %acc0: f32[2,3], %m: i64[]) {\n"
      "  %acc: f32[2,3], %sq: f32[?,2,3], %it: i64[?] = Loop(%m, _, %acc0)\n"
      "  return %acc, %sq, %it\n"
      "}\n");
  ASSERT_TRUE(g);
  attach(*g, 0, "body", kAccumulateBody, 3, {"x"});
  Tensor x = random_tensor(DType::kF32, {2, 3}, -2.f, 2.f, 3), acc0 = random_tensor(DType::kF32, {2, 3}, -2.f, 2.f, 4);
  expect_same_as_cpu(*g, {x, acc0, scalar_i64(5)}, "M = 5");
  expect_same_as_cpu(*g, {x, acc0, scalar_i64(1)}, "M = 1");
  // Past one block of iteration numbers (1024).
  expect_same_as_cpu(*g, {x, acc0, scalar_i64(1030)}, "M = 1030");
}

TEST_F(GpuTest, ControlFlowLoopWithNoIterationGivesItsInitialValues) {
  auto g = parse(
      "graph main(%x: f32[2,3], %acc0: f32[2,3], %m: i64[]) {\n"
      "  %acc: f32[2,3], %sq: f32[?,2,3], %it: i64[?] = Loop(%m, _, %acc0)\n"
      "  return %acc, %sq, %it\n"
      "}\n");
  ASSERT_TRUE(g);
  attach(*g, 0, "body", kAccumulateBody, 3, {"x"});
  Tensor x = random_tensor(DType::kF32, {2, 3}, -2.f, 2.f, 5), acc0 = random_tensor(DType::kF32, {2, 3}, -2.f, 2.f, 6);
  expect_same_as_cpu(*g, {x, acc0, scalar_i64(0)}, "M = 0");
  auto out = cuda::run_graph_on_cuda(*g, {RunValue::of(x), RunValue::of(acc0), RunValue::of(scalar_i64(0))});
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  EXPECT_EQ((*out)[1].tensor.dims(), (std::vector<int64_t>{0, 2, 3}));
  EXPECT_EQ((*out)[2].tensor.dims(), (std::vector<int64_t>{0}));
}

// cond only (no M): the body counts up to `limit` (read from around it),
// its cond computed on the device each iteration.
const char* kCountBody =
    "graph b(%i: i64[], %c: bool[], %n: i64[], %acc: f32[4], %x: f32[4], %limit: i64[]) {\n"
    "  %one: i64[] = const i64[]{1}\n"
    "  %n1: i64[] = Add(%n, %one)\n"
    "  %more: bool[] = Less(%n1, %limit)\n"
    "  %acc1: f32[4] = Add(%acc, %x)\n"
    "  return %more, %n1, %acc1, %acc1\n"
    "}\n";

TEST_F(GpuTest, ControlFlowLoopWithCondOnlyAndWithBoth) {
  auto g = parse(
      "graph main(%x: f32[4], %acc0: f32[4], %limit: i64[], %m: i64[]) {\n"
      "  %zero: i64[] = const i64[]{0}\n"
      "  %c0: bool[] = Less(%zero, %limit)\n"
      "  %n: i64[], %acc: f32[4], %all: f32[?,4] = Loop(_, %c0, %zero, %acc0)\n"
      "  %n2: i64[], %acc2: f32[4], %all2: f32[?,4] = Loop(%m, %c0, %zero, %acc0)\n"
      "  return %n, %acc, %all, %n2, %acc2, %all2\n"
      "}\n");
  ASSERT_TRUE(g);
  attach(*g, 1, "body", kCountBody, 4, {"x", "limit"});
  attach(*g, 2, "body", kCountBody, 4, {"x", "limit"});
  Tensor x = random_tensor(DType::kF32, {4}, -2.f, 2.f, 7), acc0 = random_tensor(DType::kF32, {4}, -2.f, 2.f, 8);
  expect_same_as_cpu(*g, {x, acc0, scalar_i64(6), scalar_i64(3)}, "M stops it");
  expect_same_as_cpu(*g, {x, acc0, scalar_i64(4), scalar_i64(9)}, "cond stops it");
  expect_same_as_cpu(*g, {x, acc0, scalar_i64(0), scalar_i64(9)}, "cond false at the start");
}

// A carried value that grows each iteration (Concat): its dims change per
// iteration, so the body is planned again each time.
TEST_F(GpuTest, ControlFlowLoopCarriedValueChangesShape) {
  auto g = parse(
      "graph main(%x: f32[2], %acc0: f32[2], %m: i64[]) {\n"
      "  %acc: f32[?] = Loop(%m, _, %acc0)\n"
      "  return %acc\n"
      "}\n");
  ASSERT_TRUE(g);
  attach(*g, 0, "body",
         "graph b(%i: i64[], %c: bool[], %acc: f32[?], %x: f32[2]) {\n"
         "  %nx: f32[2] = Neg(%x)\n"
         "  %next: f32[?] = Concat(%acc, %nx) {axis = 0}\n"
         "  return %c, %next\n"
         "}\n",
         3, {"x"});
  Tensor x = random_tensor(DType::kF32, {2}, -2.f, 2.f, 9), acc0 = random_tensor(DType::kF32, {2}, -2.f, 2.f, 10);
  expect_same_as_cpu(*g, {x, acc0, scalar_i64(4)}, "grows");
}

// Scan: a running sum (state) and per-step outputs, forward and reverse,
// scanning along axis 1 (gathered slices), axis 0 with 64-float rows (views)
// and axis 0 with 3-float rows (a view only where a row is 256-byte aligned).
TEST_F(GpuTest, ControlFlowScanDirectionsAndAxes) {
  auto g = parse(
      "graph main(%s0: f32[64], %xs: f32[64,5], %ys: f32[7,64], %t0: f32[3], %zs: f32[6,3]) {\n"
      "  %s: f32[64], %out: f32[64,5] = Scan(%s0, %xs) {num_scan_inputs = 1, scan_input_axes = [1], "
      "scan_input_directions = [1], scan_output_axes = [-1]}\n"
      "  %s2: f32[64], %out2: f32[7,64] = Scan(%s0, %ys) {num_scan_inputs = 1, scan_output_directions = [1]}\n"
      "  %t: f32[3], %out3: f32[3,6] = Scan(%t0, %zs) {num_scan_inputs = 1, scan_output_axes = [1]}\n"
      "  return %s, %out, %s2, %out2, %t, %out3\n"
      "}\n");
  ASSERT_TRUE(g);
  const char* body64 =
      "graph b(%s: f32[64], %x: f32[64]) {\n"
      "  %n: f32[64] = Add(%s, %x)\n"
      "  %p: f32[64] = Mul(%n, %x)\n"
      "  return %n, %p\n"
      "}\n";
  attach(*g, 0, "body", body64, 2, {});
  attach(*g, 1, "body", body64, 2, {});
  attach(*g, 2, "body",
         "graph b(%s: f32[3], %x: f32[3], %s0: f32[64]) {\n"
         "  %n: f32[3] = Add(%s, %x)\n"
         "  return %n, %n\n"
         "}\n",
         2, {"s0"});
  expect_same_as_cpu(
      *g,
      {random_tensor(DType::kF32, {64}, -2.f, 2.f, 11), random_tensor(DType::kF32, {64, 5}, -2.f, 2.f, 12),
       random_tensor(DType::kF32, {7, 64}, -2.f, 2.f, 13), random_tensor(DType::kF32, {3}, -2.f, 2.f, 14),
       random_tensor(DType::kF32, {6, 3}, -2.f, 2.f, 15)},
      "scan");
}

// A Loop inside an If's branch, its body reading a value of the top graph.
TEST_F(GpuTest, ControlFlowNestedLoopInsideIf) {
  auto g = parse(
      "graph main(%x: f32[5], %m: i64[]) {\n"
      "  %zero: f32[] = const f32[]{0}\n"
      "  %s: f32[] = ReduceSum(%x) {keepdims = 0}\n"
      "  %c: bool[] = Greater(%s, %zero)\n"
      "  %y: f32[5] = If(%c)\n"
      "  return %y\n"
      "}\n");
  ASSERT_TRUE(g);
  attach(*g, 2, "then_branch",
         "graph t(%x: f32[5], %m: i64[]) {\n"
         "  %r: f32[5], %all: f32[?,5] = Loop(%m, _, %x)\n"
         "  return %r\n"
         "}\n",
         0, {"x", "m"});
  Graph& then = *g->nodes()[2]->attrs["then_branch"].g;
  attach(then, 0, "body",
         "graph b(%i: i64[], %c: bool[], %acc: f32[5], %x: f32[5]) {\n"
         "  %n: f32[5] = Add(%acc, %x)\n"
         "  return %c, %n, %acc\n"
         "}\n",
         3, {"x"}, g.get());  // the top graph's x (the branch has a stand-in of that name)
  attach(*g, 2, "else_branch", "graph e(%x: f32[5]) {\n  %e: f32[5] = Neg(%x)\n  return %e\n}\n", 0, {"x"});
  expect_same_as_cpu(*g, {random_tensor(DType::kF32, {5}, 0.5f, 2.f, 16), scalar_i64(3)}, "then (the loop)");
  expect_same_as_cpu(*g, {random_tensor(DType::kF32, {5}, -2.f, -0.5f, 17), scalar_i64(3)}, "else");
}

// The body slices x at the iteration number: Slice reads its starts on the
// host, so each body run stops to download them (a body with breaks, its
// values bound from around it and from the iteration numbers).
TEST_F(GpuTest, ControlFlowLoopBodyReadsTheIterationNumberOnTheHost) {
  auto g = parse(
      "graph main(%x: f32[6], %m: i64[]) {\n"
      "  %picked: f32[?,1] = Loop(%m, _)\n"
      "  return %picked\n"
      "}\n");
  ASSERT_TRUE(g);
  attach(*g, 0, "body",
         "graph b(%i: i64[], %c: bool[], %x: f32[6]) {\n"
         "  %zero: i64[1] = const i64[1]{0}\n"
         "  %one: i64[] = const i64[]{1}\n"
         "  %start: i64[1] = Unsqueeze(%i, %zero)\n"
         "  %i1: i64[] = Add(%i, %one)\n"
         "  %end: i64[1] = Unsqueeze(%i1, %zero)\n"
         "  %s: f32[1] = Slice(%x, %start, %end)\n"
         "  %n: f32[1] = Neg(%s)\n"
         "  return %c, %n\n"
         "}\n",
         2, {"x"});
  expect_same_as_cpu(*g, {random_tensor(DType::kF32, {6}, -2.f, 2.f, 18), scalar_i64(4)}, "slices");
}

// With --fp16 the body keeps its f32 types: it reads the 16-bit MatMul
// output through an f32 Cast before the Loop (assign_precision).
TEST_F(GpuTest, ControlFlowLoopBodyWorksAfterAssignPrecision) {
  const char* text =
      "graph main(%x: f32[4,4], %m: i64[]) {\n"
      "  %w: f32[4,4] = const f32[4,4]{1,0.5,0.25,2, 0,1,0,1, 1,1,1,1, 2,0,0,0.5}\n"
      "  %y: f32[4,4] = MatMul(%x, %w)\n"
      "  %r: f32[4,4] = Loop(%m, _, %x)\n"
      "  return %r\n"
      "}\n";
  const char* body =
      "graph b(%i: i64[], %c: bool[], %acc: f32[4,4], %y: f32[4,4]) {\n"
      "  %next: f32[4,4] = Add(%acc, %y)\n"
      "  return %c, %next\n"
      "}\n";
  auto reference = parse(text), lowered = parse(text);
  ASSERT_TRUE(reference && lowered);
  attach(*reference, 1, "body", body, 3, {"y"});
  attach(*lowered, 1, "body", body, 3, {"y"});
  ASSERT_TRUE(assign_precision(*lowered, DType::kF16).is_ok());
  // Multiples of 1/64 in [-1, 1]: with w's entries the products and sums are
  // exact in f16, so the 16-bit MatMul gives the f32 bytes and only a
  // mistake in the body's types could make the results differ.
  Tensor x(DType::kF32, {4, 4});
  for (int64_t i = 0; i < 16; ++i) x.mutable_data<float>()[i] = static_cast<float>((i * 37) % 129 - 64) / 64.f;
  std::vector<RunValue> in{RunValue::of(x), RunValue::of(scalar_i64(3))};
  auto cpu = run_graph_on_cpu(*reference, in);
  ASSERT_TRUE(cpu.is_ok()) << cpu.status().to_string();
  auto gpu = cuda::run_graph_on_cuda(*lowered, in);
  ASSERT_TRUE(gpu.is_ok()) << gpu.status().to_string();
  gpu_test::expect_equal((*gpu)[0].tensor, (*cpu)[0].tensor, "fp16 loop");
}

// One runner, runs whose input dims differ only through a shape value the
// branch reads (Shape(x), computed on the host): the branch's plan is kept
// per those values, so the second run reshapes to its own dims (and the
// third, with the same dims, reuses it).
TEST_F(GpuTest, ControlFlowBodyPlanFollowsTheOuterShapeValues) {
  auto g = parse(
      "graph main(%x: f32[?,?], %c: bool[]) {\n"
      "  %s: i64[2] = Shape(%x)\n"
      "  %flat_shape: i64[1] = const i64[1]{-1}\n"
      "  %flat: f32[?] = Reshape(%x, %flat_shape)\n"
      "  %y: f32[?,?] = If(%c)\n"
      "  return %y\n"
      "}\n");
  ASSERT_TRUE(g);
  attach(*g, 2, "then_branch",
         "graph t(%flat: f32[?], %s: i64[2]) {\n"
         "  %n: f32[?] = Neg(%flat)\n"
         "  %t: f32[?,?] = Reshape(%n, %s)\n"
         "  return %t\n"
         "}\n",
         0, {"flat", "s"});
  attach(*g, 2, "else_branch",
         "graph e(%flat: f32[?], %s: i64[2]) {\n  %e: f32[?,?] = Reshape(%flat, %s)\n  return %e\n}\n", 0,
         {"flat", "s"});
  auto weights = cuda::upload_weights(*g);
  ASSERT_TRUE(weights.is_ok()) << weights.status().to_string();
  // Asked for a CUDA graph, a run with control flow runs uncaptured.
  cuda::RunnerOptions options;
  options.use_cuda_graph = true;
  cuda::Runner runner(*g, *weights, options);
  auto stream = cuda::Stream::create();
  ASSERT_TRUE(stream.is_ok());
  Tensor c = Tensor::from_vector<uint8_t>(DType::kBool, {}, {1});
  for (std::vector<int64_t> dims :
       {std::vector<int64_t>{2, 3}, std::vector<int64_t>{3, 2}, std::vector<int64_t>{3, 2}}) {
    Tensor x = random_tensor(DType::kF32, dims, -2.f, 2.f, 20);
    cuda::DeviceBindings b(1);
    ASSERT_TRUE(b.add_input(x, stream->get()).is_ok());
    ASSERT_TRUE(b.add_input(c, stream->get()).is_ok());
    const RunValue hx = RunValue::of(x), hc = RunValue::of(c);
    Status st = runner.run({dims, {}}, {&hx, &hc}, b, stream->get());
    ASSERT_TRUE(st.is_ok()) << st.to_string();
    ASSERT_TRUE(stream->synchronize().is_ok());
    auto y = b.download_output(0, stream->get());
    ASSERT_TRUE(y.is_ok()) << y.status().to_string();
    EXPECT_EQ(y->dims(), dims);
    for (int64_t i = 0; i < x.numel(); ++i) EXPECT_EQ(y->data<float>()[i], -x.data<float>()[i]);
  }
}

}  // namespace
}  // namespace kiln
