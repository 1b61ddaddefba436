// Planning runs on the CUDA backend (backends/cuda/run_plan.h), on the host
// only: layers whose output dims depend on the data (KernelDef::
// max_output_dims), the GPU kernels of the ops that had none, and the breaks
// before If, Loop and Scan (whose bodies control_flow.cpp runs).
#ifdef KILN_WITH_CUDA
#include <gtest/gtest.h>

#include "backends/cuda/run_plan.h"
#include "ir/parser.h"
#include "ir/rewrite.h"

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

// A body parsed from IR text: its inputs after the first `num_inputs` stand
// for `outer` (values of the graph around it) and are rebound to them.
std::shared_ptr<Graph> body(const char* text, size_t num_inputs, const std::vector<Value*>& outer, Graph& parent) {
  auto b = parse(text);
  for (size_t k = 0; k < outer.size(); ++k) {
    Value* stand_in = b->inputs[num_inputs + k];
    replace_uses(*b, stand_in, outer[k]);
    for (Value*& out : b->outputs)
      if (out == stand_in) out = outer[k];
  }
  b->inputs.resize(num_inputs);
  b->parent = &parent;
  return b;
}

Attribute graph_attr(std::shared_ptr<Graph> g) {
  Attribute a;
  a.kind = Attribute::Kind::kGraph;
  a.g = std::move(g);
  return a;
}

// If(cond computed on the device from x) { Neg(x) } else { Abs(x) }: the
// branches read x from the graph around them.
std::shared_ptr<Graph> if_on_device_cond() {
  auto g = parse(
      "graph main(%x: f32[3]) {\n"
      "  %zero: f32[] = const f32[]{0}\n"
      "  %s: f32[] = ReduceSum(%x) {keepdims = 0}\n"
      "  %c: bool[] = Greater(%s, %zero)\n"
      "  %y: f32[3] = If(%c)\n"
      "  return %y\n"
      "}\n");
  Node* n = g->mutable_nodes()[2].get();
  n->name = "branch";
  Value* x = g->inputs[0];
  n->attrs["then_branch"] =
      graph_attr(body("graph t(%x: f32[3]) {\n  %t: f32[3] = Neg(%x)\n  return %t\n}\n", 0, {x}, *g));
  n->attrs["else_branch"] =
      graph_attr(body("graph e(%x: f32[3]) {\n  %e: f32[3] = Abs(%x)\n  return %e\n}\n", 0, {x}, *g));
  return g;
}

TEST(CudaRunPlan, ControlFlowWithGpuBodiesNeedsNoFallback) {
  auto g = if_on_device_cond();
  Status st = check_graph_supported(*g, false, nullptr);
  EXPECT_TRUE(st.is_ok()) << st.to_string();
}

TEST(CudaRunPlan, UnsupportedNodeInABodyIsNamedWithTheNodesAroundIt) {
  auto g = parse(
      "graph main(%s: string[2], %m: i64[]) {\n"
      "  %y: string[?,2] = Loop(%m, _)\n"
      "  return %y\n"
      "}\n");
  Node* loop = g->mutable_nodes()[0].get();
  loop->name = "loop";
  loop->attrs["body"] =
      graph_attr(body("graph b(%i: i64[], %c: bool[], %s: string[2]) {\n"
                      "  %n: string[2] = StringNormalizer(%s)\n"
                      "  return %c, %n\n"
                      "}\n",
                      2, {g->inputs[0]}, *g));
  Status st = check_graph_supported(*g, false, nullptr);
  ASSERT_FALSE(st.is_ok());
  EXPECT_EQ(st.message(),
            "1 node cannot run on the GPU (--allowCpuFallback runs them on the host):\n"
            "  node 'n0' (StringNormalizer) in node 'loop' (Loop): the CUDA backend has no kernel for "
            "StringNormalizer");
  // With --allowCpuFallback the whole Loop runs on the host.
  std::vector<const Node*> fallback;
  EXPECT_TRUE(check_graph_supported(*g, true, &fallback).is_ok());
  EXPECT_EQ(fallback, (std::vector<const Node*>{loop}));
  PlanState state = inputs_of(*g, {{2}, {}});
  PlanOptions options;
  options.allow_cpu_fallback = true;
  auto seg = plan_segment(*g, 0, state, options);
  ASSERT_TRUE(seg.is_ok()) << seg.status().to_string();
  EXPECT_EQ(seg->control_flow, nullptr);
  EXPECT_EQ(seg->downloads.size(), 2u);  // %s and %m: the host runs the Loop
}

TEST(CudaRunPlan, IfAndLoopCarryingASequenceNeedNoFallback) {
  auto g = if_on_device_cond();
  Node* branch = g->mutable_nodes()[2].get();
  branch->outputs[0]->type = Type::sequence_of(Type::tensor(DType::kF32, Shape()));
  Status st = check_graph_supported(*g, false, nullptr);
  EXPECT_TRUE(st.is_ok()) << st.to_string();
}

TEST(CudaRunPlan, ScanCarryingASequenceIsNamedAndRunsOnTheHostWithFallback) {
  auto g = parse(
      "graph main(%s: f32[2], %x: f32[3,2]) {\n"
      "  %t: f32[2], %ys: f32[3,2] = Scan(%s, %x) {num_scan_inputs = 1}\n"
      "  return %t, %ys\n"
      "}\n");
  Node* scan = g->mutable_nodes()[0].get();
  scan->name = "scan";
  scan->attrs["body"] = graph_attr(
      body("graph b(%s: f32[2], %x: f32[2]) {\n  %t: f32[2] = Add(%s, %x)\n  return %t, %t\n}\n", 2, {}, *g));
  EXPECT_TRUE(check_graph_supported(*g, false, nullptr).is_ok());
  scan->inputs[0]->type = Type::sequence_of(Type::tensor(DType::kF32, Shape()));
  Status st = check_graph_supported(*g, false, nullptr);
  ASSERT_FALSE(st.is_ok());
  EXPECT_EQ(st.message(),
            "1 node cannot run on the GPU (--allowCpuFallback runs them on the host):\n"
            "  node 'scan' (Scan): the CUDA backend runs Scan on the GPU with tensors only, not sequences or "
            "optionals");
  std::vector<const Node*> fallback;
  EXPECT_TRUE(check_graph_supported(*g, true, &fallback).is_ok());
  EXPECT_EQ(fallback, (std::vector<const Node*>{scan}));
}

TEST(CudaRunPlan, SegmentEndsBeforeControlFlowWithItsCondToDownload) {
  auto g = if_on_device_cond();
  PlanState state = inputs_of(*g, {{3}});
  auto seg = plan_segment(*g, 0, state, {});
  ASSERT_TRUE(seg.is_ok()) << seg.status().to_string();
  ASSERT_EQ(seg->steps.size(), 2u);  // ReduceSum, Greater
  EXPECT_EQ(seg->control_flow, g->nodes()[2].get());
  EXPECT_EQ(seg->downloads, (std::vector<const Value*>{g->nodes()[1]->outputs[0]}));
  EXPECT_EQ(seg->next_node, 3u);
  EXPECT_FALSE(seg->finished());
  // The runner runs the If and plans its output as memory it holds.
  PlannedValue y;
  y.dtype = DType::kF32;
  y.dims = {3};
  y.slot = {Place::kHeld, 0, 0};
  state.values[g->outputs[0]] = y;
  auto rest = plan_segment(*g, 3, state, {});
  ASSERT_TRUE(rest.is_ok()) << rest.status().to_string();
  EXPECT_TRUE(rest->finished());
  ASSERT_EQ(rest->steps.size(), 1u);
  EXPECT_EQ(rest->steps[0].kind, Step::Kind::kCopy);
  EXPECT_EQ(rest->steps[0].in_slot[0].place, Place::kHeld);
  EXPECT_EQ(rest->steps[0].out_slot[0].place, Place::kOutput);
}

TEST(CudaRunPlan, BodyPlanReadsOuterValuesBoundInItsState) {
  auto g = if_on_device_cond();
  const Graph& then = *g->nodes()[2]->attr("then_branch")->g;
  PlanState state;
  PlannedValue x;
  x.dtype = DType::kF32;
  x.dims = {3};
  x.slot = {Place::kInput, 0, 0};  // the body's binding of the outer x
  state.values[g->inputs[0]] = x;
  auto seg = plan_segment(then, 0, state, {});
  ASSERT_TRUE(seg.is_ok()) << seg.status().to_string();
  EXPECT_TRUE(seg->finished());
  ASSERT_EQ(seg->steps.size(), 1u);
  EXPECT_EQ(seg->steps[0].node->op_type, "Neg");
  EXPECT_EQ(seg->steps[0].in_slot[0].place, Place::kInput);
  EXPECT_EQ(seg->steps[0].out_slot[0].place, Place::kOutput);
}

// SplitToSequence, then SequenceAt at a position computed on the device:
// each sequence node ends a segment; SequenceAt's position is downloaded.
const char* kSplitThenAt =
    "graph main(%x: f32[4,3], %p: i64[]) {\n"
    "  %s: seq<f32[1,3]> = SplitToSequence(%x)\n"
    "  %q: i64[] = Neg(%p)\n"
    "  %e: f32[1,3] = SequenceAt(%s, %q)\n"
    "  %y: f32[1,3] = Neg(%e)\n"
    "  return %y\n"
    "}\n";

TEST(CudaRunPlan, SequenceOpsNeedNoFallback) {
  auto g = parse(kSplitThenAt);
  Status st = check_graph_supported(*g, false, nullptr);
  EXPECT_TRUE(st.is_ok()) << st.to_string();
  std::vector<const Node*> fallback;
  EXPECT_TRUE(check_graph_supported(*g, true, &fallback).is_ok());
  EXPECT_TRUE(fallback.empty());
  for (const char* op :
       {"SequenceConstruct", "SequenceAt", "SequenceEmpty", "SequenceErase", "SequenceInsert", "SequenceLength",
        "SplitToSequence", "ConcatFromSequence", "Optional", "OptionalHasElement", "OptionalGetElement"})
    EXPECT_TRUE(is_device_sequence_op("", op)) << op;
  EXPECT_FALSE(is_device_sequence_op("", "SequenceMap"));
  EXPECT_FALSE(is_device_sequence_op("com.example", "SequenceAt"));
}

TEST(CudaRunPlan, IdentityOfASequenceAndSequenceMapNeedNoFallback) {
  auto g = parse(
      "graph main(%x: f32[4,3]) {\n"
      "  %s: seq<f32[1,3]> = SplitToSequence(%x)\n"
      "  %t: seq<f32[1,3]> = Identity(%s)\n"
      "  %m: seq<f32[1,3]> = SequenceMap(%t)\n"
      "  %y: f32[4,3] = ConcatFromSequence(%m) {axis = 0}\n"
      "  return %y\n"
      "}\n");
  g->mutable_nodes()[2]->attrs["body"] =
      graph_attr(body("graph b(%e: f32[1,3]) {\n  %n: f32[1,3] = Neg(%e)\n  return %n\n}\n", 1, {}, *g));
  Status st = check_graph_supported(*g, false, nullptr);
  EXPECT_TRUE(st.is_ok()) << st.to_string();
  // A body node without a GPU kernel is named, as in If/Loop/Scan bodies.
  g->mutable_nodes()[2]->attrs["body"] = graph_attr(
      body("graph b(%e: string[1,3]) {\n  %n: string[1,3] = StringNormalizer(%e)\n  return %n\n}\n", 1, {}, *g));
  g->mutable_nodes()[2]->name = "map";
  st = check_graph_supported(*g, false, nullptr);
  ASSERT_FALSE(st.is_ok());
  EXPECT_EQ(st.message(),
            "1 node cannot run on the GPU (--allowCpuFallback runs them on the host):\n"
            "  node 'n0' (StringNormalizer) in node 'map' (SequenceMap): the CUDA backend has no kernel for "
            "StringNormalizer");
}

TEST(CudaRunPlan, SequenceNodesEndSegmentsAndTheirPositionsAreDownloaded) {
  auto g = parse(kSplitThenAt);
  PlanState state = inputs_of(*g, {{4, 3}, {}});
  auto first = plan_segment(*g, 0, state, {});
  ASSERT_TRUE(first.is_ok()) << first.status().to_string();
  EXPECT_TRUE(first->steps.empty());
  EXPECT_EQ(first->control_flow, g->nodes()[0].get());
  EXPECT_TRUE(first->downloads.empty());  // SplitToSequence without split reads nothing on the host
  EXPECT_EQ(first->next_node, 1u);
  // The runner runs SplitToSequence and holds its list.
  PlannedValue s;
  auto list = std::make_shared<DeviceList>();
  list->elements.assign(4, DeviceTensor{DType::kF32, {1, 3}, nullptr});
  s.list = list;
  state.values[g->nodes()[0]->outputs[0]] = s;
  auto second = plan_segment(*g, 1, state, {});
  ASSERT_TRUE(second.is_ok()) << second.status().to_string();
  ASSERT_EQ(second->steps.size(), 1u);  // Neg(p)
  EXPECT_EQ(second->control_flow, g->nodes()[2].get());
  EXPECT_EQ(second->downloads, (std::vector<const Value*>{g->nodes()[1]->outputs[0]}));
  EXPECT_EQ(second->next_node, 3u);
  // SequenceAt's output is the element's memory, held by the run.
  PlannedValue e;
  e.dtype = DType::kF32;
  e.dims = {1, 3};
  e.slot = {Place::kHeld, 0, 0};
  state.values[g->nodes()[2]->outputs[0]] = e;
  auto rest = plan_segment(*g, 3, state, {});
  ASSERT_TRUE(rest.is_ok()) << rest.status().to_string();
  EXPECT_TRUE(rest->finished());
  ASSERT_EQ(rest->steps.size(), 1u);
  EXPECT_EQ(rest->steps[0].node->op_type, "Neg");
  EXPECT_EQ(rest->steps[0].in_slot[0].place, Place::kHeld);
}

TEST(CudaRunPlan, AKernelReadingADeviceSequenceIsAPreciseError) {
  auto g = parse(
      "graph main(%x: f32[4,3]) {\n"
      "  %s: seq<f32[1,3]> = SplitToSequence(%x)\n"
      "  %y: f32[1,3] = Neg(%s)\n"
      "  return %y\n"
      "}\n");
  g->nodes()[1]->name = "neg";
  PlanState state = inputs_of(*g, {{4, 3}});
  PlannedValue s;
  s.list = std::make_shared<DeviceList>();
  state.values[g->nodes()[0]->outputs[0]] = s;
  auto seg = plan_segment(*g, 1, state, {});
  ASSERT_FALSE(seg.is_ok());
  EXPECT_EQ(seg.status().message(), "node 'neg' (Neg): input 's' is a sequence or optional; GPU kernels take tensors");
}

}  // namespace
}  // namespace kiln::cuda
#endif
