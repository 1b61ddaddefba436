// Planning runs on the CUDA backend (backends/cuda/run_plan.h), on the host
// only: layers whose output dims depend on the data (KernelDef::
// max_output_dims) and the GPU kernels of the ops that had none.
#ifdef KILN_WITH_CUDA
#include <gtest/gtest.h>

#include "backends/cuda/run_plan.h"
#include "ir/parser.h"

namespace kiln::cuda {
namespace {

std::shared_ptr<Graph> parse(const char* text) {
  auto g = parse_graph(text);
  EXPECT_TRUE(g.is_ok()) << g.status().to_string();
  return g.is_ok() ? *g : nullptr;
}

PlanState inputs_of(const Graph& g, const std::vector<std::vector<int64_t>>& dims) {
  PlanState state;
  for (size_t i = 0; i < g.inputs.size(); ++i) {
    PlannedValue pv;
    pv.dtype = g.inputs[i]->type.dtype;
    pv.dims = dims[i];
    pv.slot = {Place::kInput, 0, static_cast<int>(i)};
    state.values[g.inputs[i]] = std::move(pv);
  }
  return state;
}

const char* kNonZeroThenNeg =
    "graph main(%x: f32[2,3]) {\n"
    "  %n: i64[2,?] = NonZero(%x)\n"
    "  %y: i64[2,?] = Neg(%n)\n"
    "  return %y\n"
    "}\n";

TEST(CudaRunPlan, DataDependentLayerEndsTheSegmentWithItsLargestOutputs) {
  auto g = parse(kNonZeroThenNeg);
  PlanState state = inputs_of(*g, {{2, 3}});
  auto seg = plan_segment(*g, 0, state, {});
  ASSERT_TRUE(seg.is_ok()) << seg.status().to_string();
  ASSERT_EQ(seg->steps.size(), 1u);
  EXPECT_EQ(seg->data_dependent, g->nodes()[0].get());
  EXPECT_EQ(seg->next_node, 1u);
  EXPECT_FALSE(seg->finished());
  const Value* n = g->nodes()[0]->outputs[0];
  const PlannedValue& pv = state.values.at(n);
  EXPECT_EQ(pv.dims, (std::vector<int64_t>{2, 6}));  // every element kept
  EXPECT_EQ(pv.slot.place, Place::kArena);
  // Its dims (2 x int64) live apart from the output, which is read later.
  const Step& step = seg->steps[0];
  EXPECT_EQ(step.dims_bytes, 16u);
  const bool apart = step.dims_offset >= pv.slot.offset + pv.nbytes() || pv.slot.offset >= step.dims_offset + 16;
  EXPECT_TRUE(apart) << step.dims_offset << " vs " << pv.slot.offset;
  EXPECT_GE(seg->arena_bytes, pv.nbytes() + 16);
}

TEST(CudaRunPlan, PlanningGoesOnWithTheDimsTheLayerReported) {
  auto g = parse(kNonZeroThenNeg);
  PlanState state = inputs_of(*g, {{2, 3}});
  ASSERT_TRUE(plan_segment(*g, 0, state, {}).is_ok());
  state.values.at(g->nodes()[0]->outputs[0]).dims = {2, 4};  // what the executor reads back
  auto rest = plan_segment(*g, 1, state, {});
  ASSERT_TRUE(rest.is_ok()) << rest.status().to_string();
  EXPECT_TRUE(rest->finished());
  ASSERT_EQ(rest->steps.size(), 1u);
  EXPECT_EQ(rest->steps[0].in[0].dims, (std::vector<int64_t>{2, 4}));
  EXPECT_EQ(rest->steps[0].out[0].dims, (std::vector<int64_t>{2, 4}));
  EXPECT_EQ(rest->steps[0].out_slot[0].place, Place::kOutput);
}

TEST(CudaRunPlan, DataDependentGraphOutputIsCopiedOutOnceItsDimsAreKnown) {
  auto g = parse(
      "graph main(%x: i32[5], %c: bool[3]) {\n"
      "  %y: i32[?] = Compress(%x, %c) {axis = 0}\n"
      "  return %y\n"
      "}\n");
  PlanState state = inputs_of(*g, {{5}, {3}});
  auto first = plan_segment(*g, 0, state, {});
  ASSERT_TRUE(first.is_ok()) << first.status().to_string();
  EXPECT_EQ(first->next_node, 1u);  // the graph's last node, but its dims are not known yet
  EXPECT_FALSE(first->finished());
  EXPECT_EQ(first->steps[0].out_slot[0].place, Place::kArena);  // not the caller's buffer: its size is unknown
  EXPECT_EQ(first->steps[0].out[0].dims, (std::vector<int64_t>{3}));
  state.values.at(g->outputs[0]).dims = {1};
  auto copy = plan_segment(*g, 1, state, {});
  ASSERT_TRUE(copy.is_ok()) << copy.status().to_string();
  EXPECT_TRUE(copy->finished());
  ASSERT_EQ(copy->steps.size(), 1u);
  EXPECT_EQ(copy->steps[0].kind, Step::Kind::kCopy);
  EXPECT_EQ(copy->steps[0].in[0].dims, (std::vector<int64_t>{1}));
  EXPECT_EQ(copy->steps[0].in_slot[0].place, Place::kArena);
  EXPECT_EQ(copy->steps[0].in_slot[0].segment, 0);
}

TEST(CudaRunPlan, DataDependentBoundErrorNamesTheNode) {
  auto g = parse(
      "graph main(%x: i32[2,2], %c: bool[3]) {\n"
      "  %y: i32[?,2] = Compress(%x, %c) {axis = 0}\n"
      "  return %y\n"
      "}\n");
  g->nodes()[0]->name = "pick";
  PlanState state = inputs_of(*g, {{2, 2}, {3}});
  auto seg = plan_segment(*g, 0, state, {});
  ASSERT_FALSE(seg.is_ok());
  EXPECT_EQ(seg.status().message(), "node 'pick' (Compress): Compress: condition has 3 entries for an axis of 2");
}

TEST(CudaRunPlan, FormerlyHostOnlyOpsHaveGpuKernels) {
  auto g = parse(
      "graph main(%x: f32[4], %b: f32[1,4,4], %s: f32[1,1,4], %r: f32[], %t: i64[], %g: f32[4], %v: f32[4], "
      "%h: f32[4]) {\n"
      "  %nz: i64[1,?] = NonZero(%x)\n"
      "  %u: f32[?] = Unique(%x)\n"
      "  %sel: i64[?,3] = NonMaxSuppression(%b, %s)\n"
      "  %rn: f32[4] = RandomNormalLike(%x)\n"
      "  %be: f32[4] = Bernoulli(%x)\n"
      "  %x1: f32[4], %v1: f32[4], %h1: f32[4] = ai.onnx.preview.training.Adam(%r, %t, %x, %g, %v, %h)\n"
      "  %x2: f32[4], %v2: f32[4] = ai.onnx.preview.training.Momentum(%r, %t, %x, %g, %v) {mode = \"nesterov\"}\n"
      "  %x3: f32[4], %h3: f32[4] = ai.onnx.preview.training.Adagrad(%r, %t, %x, %g, %h)\n"
      "  return %nz, %u, %sel, %rn, %be, %x1, %x2, %x3\n"
      "}\n");
  Status st = check_graph_supported(*g, false, nullptr);
  EXPECT_TRUE(st.is_ok()) << st.to_string();
}

}  // namespace
}  // namespace kiln::cuda
#endif
