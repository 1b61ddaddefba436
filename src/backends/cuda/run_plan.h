// A run plan: what the executor does for one set of input shapes. Planning
// walks the graph once on the host:
//   - infers every node's output dims from the actual input dims;
//   - evaluates shape arithmetic on the host (Shape, Size, and any node whose
//     inputs are all constants or shape values): the host-side shape program,
//     so GPU kernels only ever see resolved shapes and host-known parameters;
//   - gives every other node a step running its CUDA kernel, and every
//     activation a slot in one arena placed by lifetime (arena_plan.h);
//   - stops early (a "break") where it needs values that only the GPU has:
//     a shape-like input computed on the device, or a node that runs on the
//     host (--allowCpuFallback). The executor then downloads those values and
//     plans the rest of the graph from there;
//   - ends the segment before a control-flow node (If, Loop, Scan): the
//     executor runs its bodies on the device (control_flow.h), reading If's
//     cond and Loop's trip count and cond on the host (downloaded at the
//     break, a stream synchronization), then plans on after the node;
//   - ends the segment before a sequence or optional node (SequenceAt,
//     SplitToSequence, Optional, ...: is_device_sequence_op): the executor
//     runs it between segments (sequence_ops.h), with positions and split
//     lengths read on the host. A sequence or optional is a DeviceList: a
//     host-side list of device tensors.
// A plan without breaks depends only on the input dims and is reused while
// they stay the same (and replayed as a CUDA graph when asked).
#pragma once

#include <any>
#include <cstdint>
#include <map>
#include <memory>
#include <string_view>
#include <vector>

#include "backends/cuda/cuda_kernel.h"
#include "ir/graph.h"
#include "ir/run_value.h"

namespace kiln::cuda {

// Where a tensor lives during a run.
enum class Place : uint8_t {
  kNone,    // not on the device (host-only values, omitted inputs)
  kArena,   // the plan's activation arena
  kWeight,  // the engine's weights on the device
  kConst,   // host-computed values the plan uploads once
  kInput,   // the caller's input binding `io`
  kOutput,  // the caller's output binding `io`
  kHeld,    // device memory the run holds until it ends (a control-flow node's outputs), index `io`
};

struct Slot {
  Place place = Place::kNone;
  size_t offset = 0;
  int io = -1;      // kInput / kOutput: the graph input or output index
  int segment = 0;  // kArena / kConst: the segment whose buffer holds it
};

// A sequence or optional value on the device (sequence_ops.h): the host
// holds the list, each element a tensor in device memory that stays valid
// until the run ends (elements are immutable, so lists share them).
struct DeviceList {
  Type::Kind kind = Type::Kind::kSequence;  // kSequence or kOptional
  bool present = true;                      // kOptional: whether it holds a value
  bool holds_sequence = false;              // kOptional: the content is a sequence (else elements[0])
  std::vector<DeviceTensor> elements;
};

struct PlannedValue {
  DType dtype = DType::kUndefined;  // kUndefined for a list
  std::vector<int64_t> dims;
  Slot slot;
  std::shared_ptr<const RunValue> host;    // known on the host (planning read or computed it)
  bool shape_like = false;                 // a constant or computed from shapes only
  std::shared_ptr<const DeviceList> list;  // a sequence or optional on the device (slot kNone)
  size_t nbytes() const;
};

struct Step {
  enum class Kind { kKernel, kCopy } kind = Kind::kKernel;
  const Node* node = nullptr;  // kCopy: null
  size_t node_index = 0;       // position in the graph (kCopy: the graph's node count)
  const KernelDef* def = nullptr;
  std::vector<const Value*> inputs;   // the node's (null when omitted); kCopy: the source
  std::vector<const Value*> outputs;  // the node's (null when omitted); kCopy: the graph output
  std::vector<DeviceTensor> in, out;  // dims and dtypes fixed by the plan; addresses set per run
  std::vector<Slot> in_slot, out_slot;
  std::vector<const Tensor*> host_in;  // per input: host values for the kernel's host_inputs
  std::string tactic;                  // node metadata "kiln.tactic" ("" when untuned)
  bool allow_tf32 = false;
  size_t workspace_limit = SIZE_MAX;  // the engine's limit on workspace_bytes
  size_t workspace_offset = 0;        // in the arena
  size_t workspace_bytes = 0;
  // A layer with data-dependent output dims (KernelDef::max_output_dims):
  // where in the arena it stores them (int64 per output dim), 0 bytes else.
  size_t dims_offset = 0;
  size_t dims_bytes = 0;
  std::any state;  // the kernel's, kept while the plan is reused
};

// The steps from one point of the graph to the end or to the next break.
struct Segment {
  std::vector<Step> steps;
  size_t arena_bytes = 0;
  std::vector<std::pair<size_t, std::shared_ptr<const RunValue>>> consts;  // (offset, value) to upload
  size_t const_bytes = 0;
  size_t next_node = 0;                 // where planning stopped: the graph's node count when it finished
  std::vector<const Value*> downloads;  // device values the rest of planning needs on the host
  // The segment ends with a layer whose output dims depend on the data: its
  // last step (`dims_offset` in this segment's arena) stored them on the
  // device; the executor reads them before planning on. Null otherwise.
  const Node* data_dependent = nullptr;
  // The segment stops before this control-flow node (If, Loop, Scan) or
  // sequence node (is_device_sequence_op): the
  // executor runs it after the download, then plans on from `next_node`
  // (the node after it). Null otherwise.
  const Node* control_flow = nullptr;
  // Planning reached the graph's end: no break, nothing left to plan.
  bool finished() const { return downloads.empty() && !data_dependent && !control_flow && finished_nodes; }
  bool finished_nodes = false;  // next_node is the graph's node count
};

// What planning knows about the graph's values so far (kept across segments).
struct PlanState {
  // Also, for a subgraph, the values of the enclosing graphs it reads (bound
  // before planning): a value the graph reads is planned here if its owner
  // is the graph or it is bound.
  std::map<const Value*, PlannedValue> values;
  // Constants already on the device (the engine's weights): their offsets.
  const std::map<const Value*, size_t>* weights = nullptr;
  int segments = 0;                // segments planned so far
  bool read_input_values = false;  // planning read a graph input's contents (the plan depends on data)
};

struct PlanOptions {
  bool allow_cpu_fallback = false;
  bool allow_tf32 = false;
  // The most workspace one step may use (SIZE_MAX: no limit). A step whose
  // kernel needs more with every tactic fails the plan, naming the node, its
  // smallest workspace and the limit.
  size_t workspace_limit = SIZE_MAX;
};

// The engine setting (0: no limit) as a plan's limit.
inline size_t plan_workspace_limit(uint64_t setting) { return setting == 0 ? SIZE_MAX : static_cast<size_t>(setting); }

// Plans `graph` from node `start` on. `state` holds the values known so far:
// on the first call, the graph inputs (dims, kInput slots, and host copies
// when the caller has them) and the constants (kWeight slots when on the
// device). Node errors name the node.
Expected<Segment> plan_segment(const Graph& graph, size_t start, PlanState& state, const PlanOptions& options);

// The value `v` as planning knows it: from `state`, or a constant (added to
// `state`, in the weights when they hold it). Error for a value not planned yet.
Expected<PlannedValue*> planned_value(PlanState& state, const Value* v);

// "node 'NAME' (OP)", how the CUDA executor names a node in its errors.
std::string where(const Node& n);
// The product of dims[from, to) (1 when empty).
int64_t dims_product(const std::vector<int64_t>& dims, size_t from, size_t to);

// The ops whose bodies the CUDA executor runs on the device (If, Loop, Scan,
// SequenceMap).
bool is_device_control_flow(std::string_view domain, std::string_view op);

// The sequence and optional ops the CUDA executor runs between segments
// (sequence_ops.h): SequenceConstruct/At/Empty/Erase/Insert/Length,
// SplitToSequence, ConcatFromSequence, Optional, OptionalHasElement,
// OptionalGetElement.
bool is_device_sequence_op(std::string_view domain, std::string_view op);

// The query a kernel's `workspace` and `tactics` functions see for a step;
// `exhaustive` is what KernelQuery::exhaustive answers.
std::unique_ptr<KernelQuery> query_of(const Step& step, bool exhaustive = false);

// The step's workspace with `tactic` instead of its own (0 without a
// `workspace` function).
size_t workspace_for_tactic(const Step& step, const std::string& tactic);

// Every node of `graph` that the CUDA backend can neither run on the GPU nor
// evaluate on the host as shape arithmetic, as one error naming each node and
// why; with `allow_cpu_fallback` those are allowed (and listed in `fallback`).
// The bodies of If, Loop and Scan are checked too: a body's node is named
// with the nodes around it ("node 'b' (Foo) in node 'loop' (Loop)").
Status check_graph_supported(const Graph& graph, bool allow_cpu_fallback, std::vector<const Node*>* fallback);

}  // namespace kiln::cuda
