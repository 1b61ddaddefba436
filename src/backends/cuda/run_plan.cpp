#include "backends/cuda/run_plan.h"

#include <fmt/format.h>

#include <algorithm>
#include <set>

#include "backends/cpu/cpu_executor.h"
#include "backends/cuda/arena_plan.h"
#include "ops/op_schema.h"
#include "support/bytes.h"

namespace kiln::cuda {

size_t PlannedValue::nbytes() const {
  int64_t n = 1;
  for (int64_t d : dims) n *= d;
  return dtype_storage_bytes(dtype, n);
}

namespace {

bool is_identity(const Node& n) { return n.domain.empty() && n.op_type == "Identity"; }

// A sequence or optional: on the device, or only the host has it.
bool is_list(const PlannedValue& pv) { return pv.list || (pv.host && !pv.host->is_tensor()); }

bool is_shape_query(const Node& n) { return n.domain.empty() && (n.op_type == "Shape" || n.op_type == "Size"); }

bool has_subgraphs(const Node& n) {
  for (const auto& [key, a] : n.attrs)
    if (a.g || !a.graphs.empty()) return true;
  return false;
}

// Why the CUDA kernel table cannot take `node`, or ok.
Status kernel_status(const Node& node, const KernelDef** def) {
  *def = KernelRegistry::instance().find(node.domain, node.op_type);
  if (!*def) return unsupported("the CUDA backend has no kernel for {}", node.op_type);
  if ((*def)->supports) {
    Status st = (*def)->supports(node);
    if (!st.is_ok()) return st;
  }
  return Status::ok();
}

bool bodies_run_on_device(const Node& node);

// check_graph_supported over `graph`, a body of the nodes `within` names
// (empty for the top graph).
void check_nodes(const Graph& graph, const std::string& within, bool allow_cpu_fallback,
                 std::vector<const Node*>* fallback, std::vector<std::string>& problems) {
  for (const auto& n : graph.nodes()) {
    if (is_shape_query(*n)) continue;
    bool shape_like = !n->inputs.empty();
    for (const Value* v : n->inputs)
      if (v) shape_like &= v->constant != nullptr || v->shape_value.has_value();
    if (shape_like && !has_subgraphs(*n)) continue;  // evaluated on the host while planning
    if (is_device_sequence_op(n->domain, n->op_type)) continue;
    if (is_identity(*n) && n->input(0) && !n->input(0)->type.is_tensor()) continue;  // of a sequence or optional
    if (is_device_control_flow(n->domain, n->op_type)) {
      if (bodies_run_on_device(*n)) continue;
      if (allow_cpu_fallback) {
        if (fallback) fallback->push_back(n.get());  // all of it on the host
        continue;
      }
      // Name the bodies' nodes without a GPU kernel, else the node itself.
      const size_t before = problems.size();
      for (const auto& [key, a] : n->attrs)
        if (a.g) check_nodes(*a.g, fmt::format(" in {}{}", where(*n), within), false, nullptr, problems);
      if (problems.size() == before)
        problems.push_back(
            fmt::format("  {}{}: the CUDA backend runs {} on the GPU with tensors only, not sequences "
                        "or optionals",
                        where(*n), within, n->op_type));
      continue;
    }
    const KernelDef* def = nullptr;
    Status st = has_subgraphs(*n) ? unsupported("the CUDA backend runs subgraphs of {} on the host", n->op_type)
                                  : kernel_status(*n, &def);
    if (st.is_ok()) continue;
    if (allow_cpu_fallback) {
      if (fallback) fallback->push_back(n.get());
      continue;
    }
    problems.push_back(fmt::format("  {}{}: {}", where(*n), within, st.message()));
  }
}

bool carries_tensors(const std::vector<Value*>& values) {
  for (const Value* v : values)
    if (v && !v->type.is_tensor()) return false;
  return true;
}

// Whether the executor runs `node` (If, Loop, Scan, SequenceMap) on the
// device: every node of its bodies runs on the device or is shape
// arithmetic, and Scan and its body take and give tensors only (If and Loop
// also carry sequences and optionals; SequenceMap maps sequences). Otherwise
// it runs on the host, with --allowCpuFallback.
bool bodies_run_on_device(const Node& node) {
  const bool tensors_only = node.op_type == "Scan";
  if (tensors_only && (!carries_tensors(node.inputs) || !carries_tensors(node.outputs))) return false;
  std::vector<std::string> problems;
  for (const auto& [key, a] : node.attrs) {
    if (!a.g) continue;
    if (tensors_only && (!carries_tensors(a.g->inputs) || !carries_tensors(a.g->outputs))) return false;
    check_nodes(*a.g, "", false, nullptr, problems);
  }
  return problems.empty();
}

// The query a kernel's `workspace` function sees while planning.
class PlanQuery final : public KernelQuery {
 public:
  explicit PlanQuery(const Step& step, const std::string* tactic = nullptr, bool exhaustive = false)
      : step_(step), tactic_(tactic ? *tactic : step.tactic), exhaustive_(exhaustive) {}
  const Node& node() const override { return *step_.node; }
  DType input_dtype(size_t i) const override { return i < step_.in.size() ? step_.in[i].dtype : DType::kUndefined; }
  const std::vector<int64_t>* input_dims(size_t i) const override {
    return i < step_.in.size() && step_.inputs[i] ? &step_.in[i].dims : nullptr;
  }
  const Tensor* host_input(size_t i) const override { return i < step_.host_in.size() ? step_.host_in[i] : nullptr; }
  const std::string& tactic() const override { return tactic_; }
  bool allow_tf32() const override { return step_.allow_tf32; }
  size_t workspace_limit() const override { return step_.workspace_limit; }
  bool exhaustive() const override { return exhaustive_; }

 private:
  const Step& step_;
  const std::string& tactic_;
  bool exhaustive_;
};

// The error for a step whose kernel needs more workspace than the limit
// allows: its smallest need over the kernel's default and all its tactics.
Status over_workspace_limit(const Step& step) {
  size_t smallest = step.workspace_bytes;
  std::string which = step.tactic;
  std::vector<std::string> candidates{""};
  if (step.def->tactics) {
    std::vector<std::string> more = step.def->tactics(PlanQuery(step), 64);
    candidates.insert(candidates.end(), more.begin(), more.end());
  }
  for (const std::string& t : candidates) {
    const size_t bytes = workspace_for_tactic(step, t);
    if (bytes < smallest) smallest = bytes, which = t;
  }
  return make_error(ErrorCode::kOutOfRange,
                    "{}: needs at least {} of workspace{}, over the workspace limit of {} (raise it with "
                    "--memPoolSize=workspace:SIZE)",
                    where(*step.node), format_bytes(smallest), which.empty() ? "" : " (tactic " + which + ")",
                    format_bytes(step.workspace_limit));
}

class Planner {
 public:
  Planner(const Graph& graph, PlanState& state, const PlanOptions& options)
      : graph_(graph), state_(state), options_(options), segment_index_(state.segments) {}

  Expected<Segment> run(size_t start);

 private:
  Expected<PlannedValue*> value(const Value* v);
  // Whether the graph's nodes read `v` from this scope: a value of the graph
  // or one bound from the graphs around it (not a value of a nested body).
  bool in_scope(const Value* v) const { return v->owner == &graph_ || state_.values.count(v) != 0; }
  Status evaluate_on_host(const Node& node, bool shape_like);
  Status plan_kernel(const Node& node, size_t index, const KernelDef& def);
  Status place_on_device(const Value* v);
  void add_output_copies();
  void lay_out_memory();
  // Device values `node` needs on the host that planning does not know yet.
  Expected<std::vector<const Value*>> missing_on_host(const std::vector<const Value*>& reads);
  int graph_output_index(const Value* v) const;

  const Graph& graph_;
  PlanState& state_;
  const PlanOptions& options_;
  const int segment_index_;
  Segment seg_;
  std::map<const Value*, std::pair<size_t, size_t>> lifetime_;  // arena values: first and last step
  std::map<const Value*, const Value*> alias_root_;
};

Expected<PlannedValue*> Planner::value(const Value* v) { return planned_value(state_, v); }

int Planner::graph_output_index(const Value* v) const {
  for (size_t j = 0; j < graph_.outputs.size(); ++j)
    if (graph_.outputs[j] == v) return static_cast<int>(j);
  return -1;
}

Expected<std::vector<const Value*>> Planner::missing_on_host(const std::vector<const Value*>& reads) {
  std::vector<const Value*> missing;
  for (const Value* v : reads) {
    KILN_ASSIGN_OR_RETURN(PlannedValue * pv, value(v));
    if (!pv->host && std::find(missing.begin(), missing.end(), v) == missing.end()) missing.push_back(v);
  }
  return missing;
}

// Runs `node` with the CPU backend on host values; its outputs become host
// values (uploaded later if a GPU kernel reads them).
Status Planner::evaluate_on_host(const Node& node, bool shape_like) {
  RunScope scope;
  std::vector<const Value*> reads;
  collect_node_reads(node, reads);
  for (const Value* v : reads) {
    if (!in_scope(v)) continue;  // a nested body's own value
    KILN_ASSIGN_OR_RETURN(PlannedValue * pv, value(v));
    if (pv->host) {
      scope.values[v] = *pv->host;
    } else if (is_shape_query(node)) {
      // Shape and Size read only the dims: a view without data.
      scope.values[v] = RunValue::of(Tensor::view(pv->dtype, pv->dims, nullptr, 0, nullptr));
    } else {
      return internal_error("{}: input '{}' is not on the host", where(node), v->name);
    }
  }
  KILN_RETURN_IF_ERROR(run_node_in_scope(node, scope));
  for (const Value* out : node.outputs) {
    if (!out) continue;
    PlannedValue pv;
    auto rv = std::make_shared<RunValue>(std::move(scope.values[out]));
    if (rv->is_tensor()) {
      pv.dtype = rv->tensor.dtype();
      pv.dims = rv->tensor.dims();
    }
    pv.host = std::move(rv);
    pv.shape_like = shape_like;
    state_.values[out] = std::move(pv);
  }
  return Status::ok();
}

// Gives a host-only value a device slot: uploaded once with the segment.
Status Planner::place_on_device(const Value* v) {
  PlannedValue& pv = state_.values.at(v);
  if (pv.slot.place != Place::kNone || alias_root_.count(v)) return Status::ok();  // a view gets its slot last
  if (!pv.host || !pv.host->is_tensor())
    return unsupported("value '{}' is a sequence or optional; GPU kernels take tensors only", v->name);
  if (pv.dtype == DType::kString) return unsupported("value '{}' holds strings; GPU kernels take numbers", v->name);
  seg_.const_bytes = (seg_.const_bytes + kArenaAlignment - 1) / kArenaAlignment * kArenaAlignment;
  pv.slot = {Place::kConst, seg_.const_bytes, -1, segment_index_};
  seg_.consts.emplace_back(seg_.const_bytes, pv.host);
  seg_.const_bytes += pv.nbytes();
  return Status::ok();
}

Status Planner::plan_kernel(const Node& node, size_t index, const KernelDef& def) {
  Step step;
  step.node = &node;
  step.node_index = index;
  step.def = &def;
  step.allow_tf32 = options_.allow_tf32;
  step.workspace_limit = options_.workspace_limit;
  if (auto t = node.metadata.find("kiln.tactic"); t != node.metadata.end()) step.tactic = t->second;
  step.inputs.assign(node.inputs.begin(), node.inputs.end());
  step.in.resize(node.inputs.size());
  step.host_in.assign(node.inputs.size(), nullptr);
  std::vector<Type> types(node.inputs.size());
  std::vector<const Type*> type_ptrs(node.inputs.size(), nullptr);
  std::vector<const Tensor*> values(node.inputs.size(), nullptr);
  for (size_t i = 0; i < node.inputs.size(); ++i) {
    const Value* v = node.inputs[i];
    if (!v) continue;
    KILN_ASSIGN_OR_RETURN(PlannedValue * pv, value(v));
    if ((pv->host && !pv->host->is_tensor()) || pv->list)
      return unsupported("{}: input '{}' is a sequence or optional; GPU kernels take tensors", where(node), v->name);
    types[i] = Type::tensor(pv->dtype, Shape::of(pv->dims));
    type_ptrs[i] = &types[i];
    if (pv->host) values[i] = &pv->host->tensor;
    step.in[i] = {pv->dtype, pv->dims, nullptr};
  }
  for (size_t i : def.host_inputs)
    if (i < values.size()) {
      step.host_in[i] = values[i];
      // A host input that is not shape arithmetic is a graph input's contents:
      // the plan then depends on the data, not only on the dims.
      if (values[i] && !state_.values.at(node.inputs[i]).shape_like) state_.read_input_values = true;
    }
  const OpSchema* schema = OpRegistry::instance().find(node.domain, node.op_type);
  if (!schema) return unsupported("{}: kiln has no op '{}'", where(node), node.op_type);
  InferContext ictx(node, type_ptrs, values, {});
  KILN_RETURN_IF_ERROR(infer_node(node, *schema, ictx).with_context(where(node)));
  // Data-dependent dims: the outputs take their largest dims, in the arena
  // (the caller's buffers are asked for once the dims are known).
  std::vector<std::vector<int64_t>> largest;
  if (def.max_output_dims) {
    auto bound = def.max_output_dims(PlanQuery(step));
    if (!bound) return bound.status().with_context(where(node));
    largest = std::move(bound).value();
    if (largest.size() != node.outputs.size())
      return internal_error("{}: the kernel bounds {} outputs of {}", where(node), largest.size(), node.outputs.size());
    for (const auto& d : largest) step.dims_bytes += d.size() * sizeof(int64_t);
    step.dims_bytes = std::max<size_t>(step.dims_bytes, sizeof(int64_t));
  }
  const size_t step_index = seg_.steps.size();
  step.outputs.assign(node.outputs.begin(), node.outputs.end());
  step.out.resize(node.outputs.size());
  for (size_t i = 0; i < node.outputs.size(); ++i) {
    const Value* out = node.outputs[i];
    // An omitted output keeps its place in the stored dims: its rank is kept.
    if (def.max_output_dims) step.out[i].dims = largest[i];
    if (!out) continue;
    const Type& t = ictx.output_types()[i];
    if (!t.is_tensor() || (!def.max_output_dims && !t.shape.is_fixed()))
      return unsupported("{}: output {} has a shape that depends on the data ({}); the CUDA kernel needs it known",
                         where(node), i, t.to_string());
    PlannedValue pv;
    pv.dtype = t.dtype;
    pv.dims = def.max_output_dims ? largest[i] : t.shape.fixed_dims();
    step.out[i] = {pv.dtype, pv.dims, nullptr};
    const int io = graph_output_index(out);
    // A view shares its input's memory, unless it is a graph output: then the
    // kernel writes the caller's buffer (view kernels copy when not aliased).
    if (def.max_output_dims) {
      pv.slot = {Place::kArena, 0, -1, segment_index_};
      lifetime_[out] = {step_index, step_index};
    } else if (i == 0 && def.alias_input >= 0 && io < 0) {
      const Value* src = node.inputs[static_cast<size_t>(def.alias_input)];
      auto root = alias_root_.find(src);
      alias_root_[out] = root == alias_root_.end() ? src : root->second;
    } else if (io >= 0) {
      pv.slot = {Place::kOutput, 0, io};
    } else {
      pv.slot = {Place::kArena, 0, -1, segment_index_};
      lifetime_[out] = {step_index, step_index};
    }
    state_.values[out] = std::move(pv);
  }
  for (size_t i = 0; i < node.inputs.size(); ++i) {
    const Value* v = node.inputs[i];
    if (!v) continue;
    KILN_RETURN_IF_ERROR(place_on_device(v));
    auto root = alias_root_.find(v);
    auto life = lifetime_.find(root == alias_root_.end() ? v : root->second);
    if (life != lifetime_.end()) life->second.second = step_index;
  }
  if (def.workspace) step.workspace_bytes = def.workspace(PlanQuery(step));
  if (step.workspace_bytes > step.workspace_limit) return over_workspace_limit(step);
  seg_.steps.push_back(std::move(step));
  return Status::ok();
}

// Graph outputs not written in place by a kernel (inputs, constants, host
// values, the same value twice) are copied into the caller's buffers last.
void Planner::add_output_copies() {
  for (size_t j = 0; j < graph_.outputs.size(); ++j) {
    const Value* v = graph_.outputs[j];
    const PlannedValue& pv = state_.values.at(v);
    if (pv.slot.place == Place::kOutput && pv.slot.io == static_cast<int>(j)) continue;
    if (is_list(pv)) continue;
    Step copy;
    copy.kind = Step::Kind::kCopy;
    copy.node_index = graph_.nodes().size();
    copy.inputs = {v};
    copy.outputs = {v};
    copy.in = {{pv.dtype, pv.dims, nullptr}};
    copy.out = copy.in;
    copy.out_slot = {{Place::kOutput, 0, static_cast<int>(j)}};
    seg_.steps.push_back(std::move(copy));
  }
}

void Planner::lay_out_memory() {
  std::vector<ArenaRequest> requests;
  std::vector<const Value*> owners;  // null for a step's workspace
  std::vector<size_t> workspace_step;
  for (const auto& [v, life] : lifetime_) {
    requests.push_back({state_.values.at(v).nbytes(), life.first, life.second});
    owners.push_back(v);
    workspace_step.push_back(0);
  }
  for (size_t s = 0; s < seg_.steps.size(); ++s)
    if (seg_.steps[s].workspace_bytes) {
      requests.push_back({seg_.steps[s].workspace_bytes, s, s});
      owners.push_back(nullptr);
      workspace_step.push_back(s);
    }
  // A layer's data-dependent dims stay until the executor reads them, after
  // the segment's last step.
  const size_t dims_request = requests.size();
  if (seg_.data_dependent) requests.push_back({seg_.steps.back().dims_bytes, seg_.steps.size() - 1, seg_.steps.size()});
  ArenaLayout layout = plan_arena(requests);
  seg_.arena_bytes = layout.total_bytes;
  for (size_t r = 0; r < dims_request; ++r) {
    if (owners[r])
      state_.values.at(owners[r]).slot.offset = layout.offsets[r];
    else
      seg_.steps[workspace_step[r]].workspace_offset = layout.offsets[r];
  }
  if (seg_.data_dependent) seg_.steps.back().dims_offset = layout.offsets[dims_request];
  for (const auto& [v, root] : alias_root_) state_.values.at(v).slot = state_.values.at(root).slot;
  for (Step& step : seg_.steps) {
    step.in_slot.resize(step.inputs.size());
    for (size_t i = 0; i < step.inputs.size(); ++i)
      if (step.inputs[i]) step.in_slot[i] = state_.values.at(step.inputs[i]).slot;
    if (step.node) {
      step.out_slot.resize(step.outputs.size());
      for (size_t i = 0; i < step.outputs.size(); ++i)
        if (step.outputs[i]) step.out_slot[i] = state_.values.at(step.outputs[i]).slot;
    }
  }
}

Expected<Segment> Planner::run(size_t start) {
  const auto& nodes = graph_.nodes();
  size_t k = start;
  for (; k < nodes.size(); ++k) {
    const Node& node = *nodes[k];
    std::vector<const Value*> reads;
    collect_node_reads(node, reads);
    std::erase_if(reads, [&](const Value* v) { return !in_scope(v); });
    bool shape_like = !reads.empty();
    for (const Value* v : reads) {
      KILN_ASSIGN_OR_RETURN(PlannedValue * pv, value(v));
      shape_like &= pv->shape_like && pv->host != nullptr;
    }
    if (is_shape_query(node) || shape_like) {
      KILN_RETURN_IF_ERROR(evaluate_on_host(node, true));
      continue;
    }
    bool list_identity = false;  // Identity of a sequence or optional: the executor passes it on
    if (is_identity(node) && node.input(0)) {
      KILN_ASSIGN_OR_RETURN(PlannedValue * pv, value(node.input(0)));
      list_identity = is_list(*pv);
    }
    if (is_device_sequence_op(node.domain, node.op_type) || list_identity) {
      // The executor runs it (sequence_ops.h) once it has the positions and
      // split lengths on the host.
      std::vector<const Value*> host_reads;
      const size_t host_input =
          node.op_type == "SequenceAt" || node.op_type == "SequenceErase" || node.op_type == "SplitToSequence" ? 1
          : node.op_type == "SequenceInsert"                                                                   ? 2
                                             : SIZE_MAX;
      if (node.input(host_input)) host_reads.push_back(node.input(host_input));
      KILN_ASSIGN_OR_RETURN(seg_.downloads, missing_on_host(host_reads));
      seg_.control_flow = &node;
      break;
    }
    if (is_device_control_flow(node.domain, node.op_type) && bodies_run_on_device(node)) {
      // The executor runs it (control_flow.h) once it has If's cond and
      // Loop's trip count and cond on the host.
      std::vector<const Value*> host_reads;
      for (size_t i = 0; i < (node.op_type == "If" ? 1u : node.op_type == "Loop" ? 2u : 0u); ++i)
        if (node.input(i)) host_reads.push_back(node.input(i));
      KILN_ASSIGN_OR_RETURN(seg_.downloads, missing_on_host(host_reads));
      seg_.control_flow = &node;
      break;
    }
    if (!options_.allow_cpu_fallback) {
      for (const Value* v : reads) {
        KILN_ASSIGN_OR_RETURN(PlannedValue * pv, value(v));
        if (pv->list)
          return unsupported("{}: input '{}' is a sequence or optional; GPU kernels take tensors", where(node),
                             v->name);
      }
    }
    const KernelDef* def = nullptr;
    Status usable =
        has_subgraphs(node) ? unsupported("the CUDA backend runs subgraphs on the host") : kernel_status(node, &def);
    if (usable.is_ok()) {
      std::vector<const Value*> host_reads;
      for (size_t i : def->host_inputs)
        if (node.input(i)) host_reads.push_back(node.input(i));
      KILN_ASSIGN_OR_RETURN(auto missing, missing_on_host(host_reads));
      if (!missing.empty()) {
        seg_.downloads = std::move(missing);
        break;
      }
      Status st = plan_kernel(node, k, *def);
      if (st.is_ok() && def->max_output_dims) {
        seg_.data_dependent = &node;
        ++k;
        break;
      }
      if (st.is_ok()) continue;
      if (st.code() != ErrorCode::kUnsupported || !options_.allow_cpu_fallback) return st;
      usable = st;  // a data-dependent shape: the host runs it
    }
    if (!options_.allow_cpu_fallback)
      return Status(usable.code(),
                    fmt::format("{}: {} (--allowCpuFallback runs it on the host)", where(node), usable.message()));
    KILN_ASSIGN_OR_RETURN(auto missing, missing_on_host(reads));
    if (!missing.empty()) {
      seg_.downloads = std::move(missing);
      break;
    }
    KILN_RETURN_IF_ERROR(evaluate_on_host(node, false).with_context("on the host (CPU fallback)"));
  }
  seg_.next_node = seg_.control_flow ? k + 1 : k;
  seg_.finished_nodes = k == nodes.size();
  if (!seg_.finished()) {
    // Arena values read after the break (from the control-flow node on)
    // stay alive to the segment's end.
    std::set<const Value*> read_later;
    for (size_t r = k; r < nodes.size(); ++r) {
      std::vector<const Value*> reads;
      collect_node_reads(*nodes[r], reads);
      read_later.insert(reads.begin(), reads.end());
    }
    read_later.insert(graph_.outputs.begin(), graph_.outputs.end());
    for (const Value* v : read_later) {
      auto root = alias_root_.find(v);
      auto life = lifetime_.find(root == alias_root_.end() ? v : root->second);
      if (life != lifetime_.end()) life->second.second = seg_.steps.size();
    }
  } else {
    for (const Value* v : graph_.outputs) {
      KILN_ASSIGN_OR_RETURN(PlannedValue * pv, value(v));
      if (is_list(*pv)) continue;  // the executor gives it (RunBindings::output_list)
      if (pv->slot.place != Place::kOutput) KILN_RETURN_IF_ERROR(place_on_device(v));
    }
    add_output_copies();
  }
  lay_out_memory();  // also gives the output copies their source slots
  state_.segments = segment_index_ + 1;
  return std::move(seg_);
}

}  // namespace

std::string where(const Node& n) { return fmt::format("node '{}' ({})", n.name, n.op_type); }

int64_t dims_product(const std::vector<int64_t>& dims, size_t from, size_t to) {
  int64_t n = 1;
  for (size_t d = from; d < to; ++d) n *= dims[d];
  return n;
}

Expected<PlannedValue*> planned_value(PlanState& state, const Value* v) {
  auto it = state.values.find(v);
  if (it != state.values.end()) return &it->second;
  if (!v->constant) return internal_error("value '{}' has no plan (read before it is written)", v->name);
  PlannedValue pv;
  pv.dtype = v->constant->dtype();
  pv.dims = v->constant->dims();
  pv.host = std::make_shared<RunValue>(RunValue::of(*v->constant));
  pv.shape_like = true;
  if (state.weights) {
    auto w = state.weights->find(v);
    if (w != state.weights->end()) pv.slot = {Place::kWeight, w->second};
  }
  return &state.values.emplace(v, std::move(pv)).first->second;
}

bool is_device_control_flow(std::string_view domain, std::string_view op) {
  return domain.empty() && (op == "If" || op == "Loop" || op == "Scan" || op == "SequenceMap");
}

bool is_device_sequence_op(std::string_view domain, std::string_view op) {
  static const std::set<std::string_view> kOps{"SequenceConstruct",  "SequenceAt",         "SequenceEmpty",
                                               "SequenceErase",      "SequenceInsert",     "SequenceLength",
                                               "SplitToSequence",    "ConcatFromSequence", "Optional",
                                               "OptionalHasElement", "OptionalGetElement"};
  return domain.empty() && kOps.count(op) != 0;
}

std::unique_ptr<KernelQuery> query_of(const Step& step, bool exhaustive) {
  return std::make_unique<PlanQuery>(step, nullptr, exhaustive);
}

size_t workspace_for_tactic(const Step& step, const std::string& tactic) {
  return step.def && step.def->workspace ? step.def->workspace(PlanQuery(step, &tactic)) : 0;
}

Expected<Segment> plan_segment(const Graph& graph, size_t start, PlanState& state, const PlanOptions& options) {
  Planner planner(graph, state, options);
  return planner.run(start);
}

Status check_graph_supported(const Graph& graph, bool allow_cpu_fallback, std::vector<const Node*>* fallback) {
  std::vector<std::string> problems;
  check_nodes(graph, "", allow_cpu_fallback, fallback, problems);
  if (problems.empty()) return Status::ok();
  std::string text;
  for (const auto& p : problems) text += "\n" + p;
  return unsupported("{} node{} cannot run on the GPU (--allowCpuFallback runs them on the host):{}", problems.size(),
                     problems.size() == 1 ? "" : "s", text);
}

}  // namespace kiln::cuda
