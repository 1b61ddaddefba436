#include "backends/cuda/cuda_runner.h"

#include <fmt/format.h>

#include <algorithm>
#include <list>
#include <set>

#include "backends/cpu/cpu_executor.h"
#include "backends/cuda/control_flow.h"
#include "backends/cuda/cuda_status.h"
#include "backends/cuda/sequence_ops.h"

namespace kiln::cuda {

Expected<std::shared_ptr<const DeviceWeights>> upload_weights(const Graph& graph) {
  auto w = std::make_shared<DeviceWeights>();
  std::vector<const Value*> constants;
  std::set<const Value*> seen;
  auto consider = [&](const Value* v) {
    if (v && v->constant && v->constant->dtype() != DType::kString && seen.insert(v).second) constants.push_back(v);
  };
  for (const auto& n : graph.nodes()) {
    std::vector<const Value*> reads;  // its inputs, and its bodies' reads
    collect_node_reads(*n, reads);
    for (const Value* v : reads) consider(v);
  }
  for (const Value* v : graph.outputs) consider(v);
  for (const Value* v : constants) {
    w->bytes = (w->bytes + 255) / 256 * 256;
    w->offsets[v] = w->bytes;
    w->bytes += v->constant->nbytes();
  }
  if (w->bytes == 0) return std::shared_ptr<const DeviceWeights>(std::move(w));
  KILN_ASSIGN_OR_RETURN(w->buffer, DeviceBuffer::allocate(w->bytes));
  for (const Value* v : constants)
    if (v->constant->nbytes())
      KILN_CUDA_RETURN_IF_ERROR(cudaMemcpy(static_cast<char*>(w->buffer.data()) + w->offsets[v], v->constant->raw(),
                                           v->constant->nbytes(), cudaMemcpyHostToDevice));
  return std::shared_ptr<const DeviceWeights>(std::move(w));
}

Status DeviceBindings::add_input(const Tensor& host, cudaStream_t stream) {
  KILN_ASSIGN_OR_RETURN(auto buf, DeviceBuffer::allocate(host.nbytes()));
  if (host.nbytes()) KILN_RETURN_IF_ERROR(buf.copy_from_host(host.raw(), host.nbytes(), stream));
  inputs.push_back(std::move(buf));
  return Status::ok();
}

const void* DeviceBindings::input(int io) { return inputs.at(static_cast<size_t>(io)).data(); }

Expected<void*> DeviceBindings::output(int io, DType dtype, const std::vector<int64_t>& dims) {
  DeviceBuffer& b = outputs.at(static_cast<size_t>(io));
  const size_t bytes = dtype_storage_bytes(dtype, checked_numel(dims));
  if (b.size() < bytes) {
    b = DeviceBuffer();  // free first: the old and the new buffer need not both fit
    KILN_ASSIGN_OR_RETURN(b, DeviceBuffer::allocate(bytes));
  }
  shapes.at(static_cast<size_t>(io)) = {dtype, dims};
  return b.data();
}

Status DeviceBindings::output_list(int io, const DeviceList& list, cudaStream_t stream) {
  KILN_ASSIGN_OR_RETURN(RunValue host, download_list(list, stream));
  KILN_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream));
  lists.at(static_cast<size_t>(io)) = std::make_shared<RunValue>(std::move(host));
  return Status::ok();
}

Expected<Tensor> DeviceBindings::download_output(size_t io, cudaStream_t stream,
                                                 const std::vector<int64_t>* dims) const {
  const auto& [dtype, last] = shapes.at(io);
  Tensor t(dtype, dims ? *dims : last);
  if (t.nbytes() > dtype_storage_bytes(dtype, checked_numel(last)))
    return internal_error("output {} holds {} elements, {} asked for", io, checked_numel(last), t.numel());
  if (t.nbytes()) KILN_RETURN_IF_ERROR(outputs.at(io).copy_to_host(t.mutable_raw(), t.nbytes(), stream));
  return t;
}

namespace {

// Library handles and the device, created on first use per runner.
struct Resources {
  std::optional<CublasLt> cublaslt;
  std::optional<Cudnn> cudnn;
  std::optional<DeviceInfo> device;
};

// A plan kept while the input dims stay the same.
struct CachedPlan {
  std::vector<std::vector<int64_t>> input_dims;
  std::string subgraph_key;  // subgraph_key() of a subgraph's run
  PlanState state;
  Segment segment;
  DeviceBuffer consts;
  // The captured CUDA graph and the addresses it was captured with.
  cudaGraphExec_t graph = nullptr;
  std::vector<const void*> graph_addresses;
  int runs = 0;
  ~CachedPlan() {
    if (graph) cudaGraphExecDestroy(graph);
  }
};

// Buffers of one run: per segment, the arena and the uploaded constants.
struct RunBuffers {
  std::vector<char*> arena;
  std::vector<char*> consts;
  std::vector<void*> outputs;       // per graph output, resolved on first use
  std::vector<void*> held;          // Place::kHeld values (control-flow outputs, uploaded host values)
  std::vector<void*> stream_owned;  // cudaMallocAsync'ed, freed on the stream after the run
};

class StepContext final : public KernelContext {
 public:
  StepContext(Step& step, void* workspace, int64_t* dims, cudaStream_t stream, Resources& res, bool tf32)
      : step_(step), workspace_(workspace), dims_(dims), stream_(stream), res_(res), tf32_(tf32) {}
  const Node& node() const override { return *step_.node; }
  const DeviceTensor& input(size_t i) const override {
    static const DeviceTensor empty;
    return i < step_.in.size() && step_.inputs[i] ? step_.in[i] : empty;
  }
  const Tensor* host_input(size_t i) const override { return i < step_.host_in.size() ? step_.host_in[i] : nullptr; }
  const DeviceTensor& output(size_t i) const override {
    static const DeviceTensor empty;
    return i < step_.out.size() && step_.outputs[i] ? step_.out[i] : empty;
  }
  void* workspace() const override { return workspace_; }
  size_t workspace_bytes() const override { return step_.workspace_bytes; }
  int64_t* output_dims() const override { return dims_; }
  cudaStream_t stream() const override { return stream_; }
  const DeviceInfo& device() const override { return *res_.device; }
  Expected<const CublasLt*> cublaslt() override {
    if (!res_.cublaslt) {
      KILN_ASSIGN_OR_RETURN(auto h, CublasLt::create());
      res_.cublaslt.emplace(std::move(h));
    }
    return &*res_.cublaslt;
  }
  Expected<const Cudnn*> cudnn() override {
    if (!res_.cudnn) {
      KILN_ASSIGN_OR_RETURN(auto h, Cudnn::create());
      res_.cudnn.emplace(std::move(h));
    }
    return &*res_.cudnn;
  }
  bool allow_tf32() const override { return tf32_; }
  size_t workspace_limit() const override { return step_.workspace_limit; }
  std::any& state() override { return step_.state; }
  const std::string& tactic() const override { return step_.tactic; }

 private:
  Step& step_;
  void* workspace_;
  int64_t* dims_;
  cudaStream_t stream_;
  Resources& res_;
  bool tf32_;
};

std::string where(const Step& s) {
  return s.node ? fmt::format("node '{}' ({})", s.node->name, s.node->op_type) : std::string("graph output copy");
}

// What a plan for a subgraph depends on besides its input dims: its input
// dtypes, each outer value's dtype and dims, where it is, and its host contents when
// those are not a constant's (shape values the plan may have computed with).
std::string subgraph_key(const SubgraphValues* sub) {
  std::string key;
  if (!sub) return key;
  auto append = [&key](const void* p, size_t n) { key.append(static_cast<const char*>(p), n); };
  for (DType t : sub->input_dtypes) key += static_cast<char>(t);
  for (const auto& l : sub->input_lists) key += l ? 'l' : 't';
  key += '|';
  for (const OuterValue& o : sub->outer) {
    key += static_cast<char>(o.dtype);  // a body's kernels are planned for its outer values' dtypes too
    const size_t rank = o.dims.size();
    append(&rank, sizeof rank);
    append(o.dims.data(), rank * sizeof(int64_t));
    key += o.data ? 'd' : o.list ? 'l' : '-';
    if (!o.host) {
      key += '-';
    } else if (!o.host->is_tensor() || o.host->tensor.dtype() == DType::kString) {
      key += 's';  // not uploaded: planning fails the same way each time
    } else if (o.value && o.value->constant) {
      key += 'c';
    } else {
      key += 'h';
      const size_t n = o.host->tensor.nbytes();
      append(&n, sizeof n);
      if (n) append(o.host->tensor.raw(), n);
    }
  }
  return key;
}

}  // namespace

struct Runner::Impl {
  const Graph& graph;
  std::shared_ptr<const DeviceWeights> weights;
  RunnerOptions options;
  Resources res;
  // The plans of the input shapes run last, most recent first: a server's
  // batcher cycles through a few batch sizes, and each plan (with its CUDA
  // graph) stays ready instead of being planned again at every change.
  static constexpr size_t kCachedPlans = 8;
  std::list<std::unique_ptr<CachedPlan>> cached;
  DeviceBuffer arena;
  // The caller's arena (set_arena), used instead of `arena` when set.
  char* external = nullptr;
  size_t external_bytes = 0;
  // A runner per If/Loop/Scan body, keeping its plan across runs.
  std::map<const Graph*, std::unique_ptr<Runner>> bodies;

  // The cached plan of these input dims (moved to the front), or null.
  CachedPlan* find_cached(const std::vector<std::vector<int64_t>>& input_dims, const std::string& key) {
    for (auto it = cached.begin(); it != cached.end(); ++it) {
      if ((*it)->input_dims != input_dims || (*it)->subgraph_key != key) continue;
      cached.splice(cached.begin(), cached, it);
      return cached.front().get();
    }
    return nullptr;
  }

  PlanOptions plan_options() const {
    return {options.run.allow_cpu_fallback, options.run.allow_tf32, plan_workspace_limit(options.run.workspace_limit)};
  }

  // The arena of a cached plan's run: the caller's, or this runner's grown to fit.
  Expected<char*> arena_for(size_t bytes) {
    if (external) {
      if (bytes > external_bytes)
        return invalid_argument(
            "the run needs {} bytes of device memory for these input shapes, the memory given holds {} bytes", bytes,
            external_bytes);
      return external;
    }
    if (arena.size() < bytes) {
      arena = DeviceBuffer();  // free first: the old and new arena need not both fit
      KILN_ASSIGN_OR_RETURN(arena, DeviceBuffer::allocate(bytes));
    }
    return static_cast<char*>(arena.data());
  }

  // Where a slot is in this run; `t` gives an output's dtype and dims when
  // the caller's buffer for it is asked for.
  Expected<void*> address(const Slot& slot, RunBuffers& buffers, RunBindings& bindings, const DeviceTensor& t) {
    switch (slot.place) {
      case Place::kArena: return buffers.arena.at(static_cast<size_t>(slot.segment)) + slot.offset;
      case Place::kConst: return buffers.consts.at(static_cast<size_t>(slot.segment)) + slot.offset;
      case Place::kWeight: return static_cast<char*>(weights->buffer.data()) + slot.offset;
      case Place::kHeld: return buffers.held.at(static_cast<size_t>(slot.io));
      case Place::kInput: return const_cast<void*>(bindings.input(slot.io));
      case Place::kOutput: {
        void*& out = buffers.outputs.at(static_cast<size_t>(slot.io));
        if (!out) {
          KILN_ASSIGN_OR_RETURN(out, bindings.output(slot.io, t.dtype, t.dims));
        }
        return out;
      }
      case Place::kNone: break;
    }
    return internal_error("a value the GPU reads has no device memory");
  }

  // Launches the segment's steps; the plan fixed every tensor's dims, so a
  // run only resolves addresses (no lookups, no allocation).
  Status execute(Segment& seg, RunBuffers& buffers, RunBindings& bindings, cudaStream_t stream, StepTimes* times) {
    std::vector<std::pair<Event, Event>> events;
    // cudaGetLastError also returns a failure of any earlier runtime call on
    // this thread (a caller's sync that another thread's capture made fail):
    // cleared once here, so each step's last_launch_status names its own
    // launches (a step that fails returns before the next one runs).
    (void)cudaGetLastError();
    for (Step& step : seg.steps) {
      for (size_t i = 0; i < step.inputs.size(); ++i) {
        if (!step.inputs[i]) continue;
        KILN_ASSIGN_OR_RETURN(step.in[i].data, address(step.in_slot[i], buffers, bindings, step.in[i]));
      }
      for (size_t i = 0; i < step.out_slot.size(); ++i) {
        if (!step.outputs[i]) continue;
        KILN_ASSIGN_OR_RETURN(step.out[i].data, address(step.out_slot[i], buffers, bindings, step.out[i]));
      }
      if (times) {
        KILN_ASSIGN_OR_RETURN(auto start, Event::create());
        KILN_ASSIGN_OR_RETURN(auto stop, Event::create());
        KILN_RETURN_IF_ERROR(start.record(stream));
        events.emplace_back(std::move(start), std::move(stop));
      }
      if (step.kind == Step::Kind::kCopy) {
        const size_t bytes = step.out[0].nbytes();
        if (bytes && step.out[0].data != step.in[0].data)
          KILN_CUDA_RETURN_IF_ERROR(
              cudaMemcpyAsync(step.out[0].data, step.in[0].data, bytes, cudaMemcpyDeviceToDevice, stream));
      } else {
        // The workspace is in the arena of the segment being run (the last one).
        char* ws = step.workspace_bytes ? buffers.arena.back() + step.workspace_offset : nullptr;
        auto* dims = step.dims_bytes ? reinterpret_cast<int64_t*>(buffers.arena.back() + step.dims_offset) : nullptr;
        StepContext ctx(step, ws, dims, stream, res, options.run.allow_tf32);
        Status st = step.def->run(ctx);
        if (!st.is_ok()) return st.with_context(where(step));
        st = last_launch_status(step.node->op_type.c_str());
        if (!st.is_ok()) return st.with_context(where(step));
      }
      if (times) KILN_RETURN_IF_ERROR(events.back().second.record(stream));
    }
    if (times) {
      for (size_t s = 0; s < events.size(); ++s) {
        KILN_RETURN_IF_ERROR(events[s].second.synchronize());
        KILN_ASSIGN_OR_RETURN(float ms, events[s].second.elapsed_ms_since(events[s].first));
        times->node_time(seg.steps[s].node_index, ms);
      }
    }
    return Status::ok();
  }

  // Stream-ordered memory for a segment after a break, freed after the run.
  Expected<char*> stream_alloc(size_t bytes, RunBuffers& buffers, cudaStream_t stream) {
    if (bytes == 0) return static_cast<char*>(nullptr);
    void* p = nullptr;
    KILN_CUDA_RETURN_IF_ERROR(cudaMallocAsync(&p, bytes, stream));
    buffers.stream_owned.push_back(p);
    return static_cast<char*>(p);
  }

  Status upload_consts(const Segment& seg, char* base, cudaStream_t stream) {
    for (const auto& [offset, value] : seg.consts)
      if (value->tensor.nbytes())
        KILN_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(base + offset, value->tensor.raw(), value->tensor.nbytes(),
                                                  cudaMemcpyHostToDevice, stream));
    return Status::ok();
  }

  // Copies the values planning needs to the host, and the dims a
  // data-dependent layer stored (this synchronizes).
  Status download(const Segment& seg, PlanState& state, RunBuffers& buffers, RunBindings& bindings,
                  cudaStream_t stream) {
    std::vector<int64_t> dims;
    if (seg.data_dependent) {
      const Step& last = seg.steps.back();
      dims.resize(last.dims_bytes / sizeof(int64_t));
      KILN_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(dims.data(), buffers.arena.back() + last.dims_offset, last.dims_bytes,
                                                cudaMemcpyDeviceToHost, stream));
    }
    std::vector<std::pair<PlannedValue*, Tensor>> pending;
    std::vector<std::pair<PlannedValue*, RunValue>> pending_lists;
    for (const Value* v : seg.downloads) {
      PlannedValue& pv = state.values.at(v);
      if (pv.list) {
        // A sequence or optional a host node (CPU fallback) reads.
        KILN_ASSIGN_OR_RETURN(RunValue host, download_list(*pv.list, stream));
        pending_lists.emplace_back(&pv, std::move(host));
        continue;
      }
      KILN_ASSIGN_OR_RETURN(void* src, address(pv.slot, buffers, bindings, DeviceTensor{pv.dtype, pv.dims, nullptr}));
      Tensor host(pv.dtype, pv.dims);
      if (host.nbytes())
        KILN_CUDA_RETURN_IF_ERROR(
            cudaMemcpyAsync(host.mutable_raw(), src, host.nbytes(), cudaMemcpyDeviceToHost, stream));
      pending.emplace_back(&pv, std::move(host));
    }
    KILN_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream));
    for (auto& [pv, host] : pending) pv->host = std::make_shared<RunValue>(RunValue::of(std::move(host)));
    for (auto& [pv, host] : pending_lists) pv->host = std::make_shared<RunValue>(std::move(host));
    if (seg.data_dependent) KILN_RETURN_IF_ERROR(set_data_dependent_dims(seg.steps.back(), dims, state));
    return Status::ok();
  }

  // The actual dims of a data-dependent layer's outputs, each within the
  // largest dims it was placed with.
  static Status set_data_dependent_dims(const Step& step, const std::vector<int64_t>& dims, PlanState& state) {
    size_t at = 0;
    for (size_t i = 0; i < step.out.size(); ++i) {
      const std::vector<int64_t>& largest = step.out[i].dims;  // omitted outputs too (their rank)
      std::vector<int64_t> actual(
          dims.begin() + static_cast<std::ptrdiff_t>(std::min(at, dims.size())),
          dims.begin() + static_cast<std::ptrdiff_t>(std::min(at + largest.size(), dims.size())));
      at += largest.size();
      if (!step.outputs[i]) continue;
      bool fits = actual.size() == largest.size();
      for (size_t d = 0; fits && d < actual.size(); ++d) fits = actual[d] >= 0 && actual[d] <= largest[d];
      if (!fits)
        return internal_error("{}: output {} came out {}, larger than its bound {}", where(step), i,
                              Shape::of(actual).to_string(), Shape::of(largest).to_string());
      state.values.at(step.outputs[i]).dims = std::move(actual);
    }
    return Status::ok();
  }

  PlanState initial_state(const std::vector<std::vector<int64_t>>& input_dims,
                          const std::vector<const RunValue*>& input_host, const SubgraphValues* sub) {
    PlanState state;
    state.weights = &weights->offsets;
    for (size_t i = 0; i < graph.inputs.size(); ++i) {
      PlannedValue pv;
      pv.dtype = sub && i < sub->input_dtypes.size() ? sub->input_dtypes[i] : graph.inputs[i]->type.dtype;
      pv.dims = input_dims[i];
      pv.slot = {Place::kInput, 0, static_cast<int>(i)};
      if (i < input_host.size() && input_host[i]) pv.host = std::make_shared<RunValue>(*input_host[i]);
      if (sub && i < sub->input_lists.size() && sub->input_lists[i]) {
        pv.list = sub->input_lists[i];  // a sequence or optional: no binding
        pv.slot = {};
      }
      state.values[graph.inputs[i]] = std::move(pv);
    }
    for (size_t k = 0; sub && k < sub->outer.size(); ++k) {
      const OuterValue& o = sub->outer[k];
      PlannedValue pv;
      pv.dtype = o.dtype;
      pv.dims = o.dims;
      pv.host = o.host;
      pv.shape_like = o.shape_like && o.host;
      pv.list = o.list;
      // Null data with a host copy: only the host has it (uploaded when a
      // kernel reads it). Without one it is on the device (null: no bytes).
      if (o.data || (!o.host && !o.list)) pv.slot = {Place::kInput, 0, static_cast<int>(graph.inputs.size() + k)};
      state.values[o.value] = std::move(pv);
    }
    return state;
  }

  // Whether a graph output is a sequence or optional (given by give_lists,
  // after a run with breaks; a plan giving one is never cached).
  bool gives_lists(const PlanState& state) const {
    for (const Value* v : graph.outputs) {
      auto it = state.values.find(v);
      if (it != state.values.end() && (it->second.list || (it->second.host && !it->second.host->is_tensor())))
        return true;
    }
    return false;
  }
  // Gives the graph outputs that are sequences or optionals to `bindings`
  // (one only the host has is uploaded first).
  Status give_lists(PlanState& state, RunBuffers& buffers, RunBindings& bindings, cudaStream_t stream) {
    for (size_t j = 0; j < graph.outputs.size(); ++j) {
      PlannedValue& pv = state.values.at(graph.outputs[j]);
      if (!pv.list && pv.host && !pv.host->is_tensor()) {
        KILN_ASSIGN_OR_RETURN(pv.list, upload_list(*pv.host, stream, buffers.stream_owned));
      }
      if (pv.list) KILN_RETURN_IF_ERROR(bindings.output_list(static_cast<int>(j), *pv.list, stream));
    }
    return Status::ok();
  }

  class FlowRun;
  Status run_control_flow(const Node& node, PlanState& state, RunBuffers& buffers, RunBindings& bindings,
                          cudaStream_t stream);
  // run_control_flow for the node that ended `seg`, its time given to `times`.
  Status run_timed_control_flow(const Segment& seg, PlanState& state, RunBuffers& buffers, RunBindings& bindings,
                                cudaStream_t stream, StepTimes* times);
  Status run_cached(CachedPlan& plan, RunBindings& bindings, cudaStream_t stream, StepTimes* times);
  Status run(const std::vector<std::vector<int64_t>>& input_dims, const std::vector<const RunValue*>& input_host,
             RunBindings& bindings, cudaStream_t stream, StepTimes* times, const SubgraphValues* sub);
};

// A control-flow node's view of the run around it (a run with breaks).
class Runner::Impl::FlowRun final : public ControlFlowRun {
 public:
  FlowRun(Runner::Impl& impl, PlanState& state, RunBuffers& buffers, RunBindings& bindings, cudaStream_t stream)
      : impl_(impl), state_(state), buffers_(buffers), bindings_(bindings), stream_(stream) {}

  Expected<OuterValue> value(const Value* v) override;
  void hold(void* p) override { buffers_.stream_owned.push_back(p); }
  cudaStream_t stream() const override { return stream_; }
  Runner& body_runner(const Graph& body) override;

 private:
  Runner::Impl& impl_;
  PlanState& state_;
  RunBuffers& buffers_;
  RunBindings& bindings_;
  cudaStream_t stream_;
};

Expected<OuterValue> Runner::Impl::FlowRun::value(const Value* v) {
  KILN_ASSIGN_OR_RETURN(PlannedValue * pv, planned_value(state_, v));
  OuterValue o{v, pv->dtype, pv->dims, nullptr, pv->host, pv->shape_like, pv->list};
  if (pv->slot.place == Place::kNone && pv->host && pv->host->is_tensor() && pv->dtype != DType::kString) {
    // Only the host has it: upload it once, held until the run ends.
    void* p = nullptr;
    const Tensor& t = pv->host->tensor;
    KILN_CUDA_RETURN_IF_ERROR(cudaMallocAsync(&p, std::max<size_t>(t.nbytes(), 1), stream_));
    hold(p);
    if (t.nbytes()) KILN_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(p, t.raw(), t.nbytes(), cudaMemcpyHostToDevice, stream_));
    buffers_.held.push_back(p);
    pv->slot = {Place::kHeld, 0, static_cast<int>(buffers_.held.size() - 1)};
  }
  if (pv->slot.place != Place::kNone) {
    KILN_ASSIGN_OR_RETURN(o.data,
                          impl_.address(pv->slot, buffers_, bindings_, DeviceTensor{pv->dtype, pv->dims, nullptr}));
  }
  return o;
}

Runner& Runner::Impl::FlowRun::body_runner(const Graph& body) {
  std::unique_ptr<Runner>& r = impl_.bodies[&body];
  if (!r) r = std::make_unique<Runner>(body, impl_.weights, RunnerOptions{impl_.options.run, false});
  return *r;
}

Status Runner::Impl::run_control_flow(const Node& node, PlanState& state, RunBuffers& buffers, RunBindings& bindings,
                                      cudaStream_t stream) {
  FlowRun flow(*this, state, buffers, bindings, stream);
  KILN_ASSIGN_OR_RETURN(std::vector<OuterValue> outs, !is_device_control_flow(node.domain, node.op_type)
                                                          ? run_sequence_op(node, flow)
                                                          : cuda::run_control_flow(node, flow));
  for (size_t i = 0; i < node.outputs.size(); ++i) {
    if (!node.outputs[i]) continue;
    if (i >= outs.size())
      return internal_error("node '{}' ({}): gave {} outputs of {}", node.name, node.op_type, outs.size(),
                            node.outputs.size());
    PlannedValue pv;
    pv.dtype = outs[i].dtype;
    pv.dims = std::move(outs[i].dims);
    if (outs[i].list) {
      pv.list = std::move(outs[i].list);  // a sequence or optional: its elements are on the device
    } else if (!outs[i].data && outs[i].host) {
      pv.host = std::move(outs[i].host);  // known on the host (SequenceLength): uploaded when a kernel reads it
    } else {
      buffers.held.push_back(const_cast<void*>(outs[i].data));
      pv.slot = {Place::kHeld, 0, static_cast<int>(buffers.held.size() - 1)};
    }
    state.values[node.outputs[i]] = std::move(pv);
  }
  return Status::ok();
}

Status Runner::Impl::run_timed_control_flow(const Segment& seg, PlanState& state, RunBuffers& buffers,
                                            RunBindings& bindings, cudaStream_t stream, StepTimes* times) {
  if (!times) return run_control_flow(*seg.control_flow, state, buffers, bindings, stream);
  // Profiled: the node's time is its bodies' (host work between them included).
  KILN_ASSIGN_OR_RETURN(auto start, Event::create());
  KILN_ASSIGN_OR_RETURN(auto stop, Event::create());
  KILN_RETURN_IF_ERROR(start.record(stream));
  KILN_RETURN_IF_ERROR(run_control_flow(*seg.control_flow, state, buffers, bindings, stream));
  KILN_RETURN_IF_ERROR(stop.record(stream));
  KILN_RETURN_IF_ERROR(stop.synchronize());
  KILN_ASSIGN_OR_RETURN(float ms, stop.elapsed_ms_since(start));
  times->node_time(seg.next_node - 1, ms);
  return Status::ok();
}

Status Runner::Impl::run_cached(CachedPlan& plan, RunBindings& bindings, cudaStream_t stream, StepTimes* times) {
  KILN_ASSIGN_OR_RETURN(char* base, arena_for(plan.segment.arena_bytes));
  RunBuffers buffers;
  buffers.arena = {base};
  buffers.consts = {static_cast<char*>(plan.consts.data())};
  buffers.outputs.assign(graph.outputs.size(), nullptr);
  const bool graphable = options.use_cuda_graph && !times;
  if (!graphable || plan.runs == 0) {
    // Only a run that completed counts as the warm-up: a capture must find
    // every step's state made (cuBLASLt's algorithm, library handles), as
    // the heuristics and handle creation are not legal while capturing.
    Status st = execute(plan.segment, buffers, bindings, stream, times);
    if (st.is_ok()) ++plan.runs;
    return st;
  }
  // Replay when the addresses are those captured; capture (again) otherwise.
  std::vector<const void*> addresses{base};
  for (size_t i = 0; i < graph.inputs.size(); ++i) addresses.push_back(bindings.input(static_cast<int>(i)));
  for (size_t j = 0; j < graph.outputs.size(); ++j) {
    const PlannedValue& pv = plan.state.values.at(graph.outputs[j]);
    KILN_ASSIGN_OR_RETURN(buffers.outputs[j], bindings.output(static_cast<int>(j), pv.dtype, pv.dims));
    addresses.push_back(buffers.outputs[j]);
  }
  if (!plan.graph || addresses != plan.graph_addresses) {
    if (plan.graph) cudaGraphExecDestroy(std::exchange(plan.graph, nullptr));
    KILN_CUDA_RETURN_IF_ERROR(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
    Status st = execute(plan.segment, buffers, bindings, stream, nullptr);
    cudaGraph_t g = nullptr;
    cudaError_t end = cudaStreamEndCapture(stream, &g);
    if (!st.is_ok() || end != cudaSuccess) {
      if (g) cudaGraphDestroy(g);  // a partial graph: a step failed after the capture began
      KILN_RETURN_IF_ERROR(st.with_context("while capturing a CUDA graph"));
      KILN_CUDA_RETURN_IF_ERROR(end);
    }
    cudaGraphExec_t exec = nullptr;
    cudaError_t inst = cudaGraphInstantiate(&exec, g, 0);
    cudaGraphDestroy(g);
    KILN_CUDA_RETURN_IF_ERROR(inst);
    plan.graph = exec;
    plan.graph_addresses = std::move(addresses);
  }
  ++plan.runs;
  KILN_CUDA_RETURN_IF_ERROR(cudaGraphLaunch(plan.graph, stream));
  return Status::ok();
}

Status Runner::Impl::run(const std::vector<std::vector<int64_t>>& input_dims,
                         const std::vector<const RunValue*>& input_host, RunBindings& bindings, cudaStream_t stream,
                         StepTimes* times, const SubgraphValues* sub) {
  if (!res.device) {
    int index = 0;
    KILN_CUDA_RETURN_IF_ERROR(cudaGetDevice(&index));
    KILN_ASSIGN_OR_RETURN(auto info, device_info(index));
    res.device = std::move(info);
  }
  std::string key = subgraph_key(sub);
  if (CachedPlan* hit = find_cached(input_dims, key)) return run_cached(*hit, bindings, stream, times);
  const PlanOptions popts = plan_options();
  PlanState state = initial_state(input_dims, input_host, sub);
  KILN_ASSIGN_OR_RETURN(Segment first, plan_segment(graph, 0, state, popts));
  if (first.finished() && !state.read_input_values && !gives_lists(state)) {
    auto plan = std::make_unique<CachedPlan>();
    plan->input_dims = input_dims;
    plan->subgraph_key = std::move(key);
    plan->state = std::move(state);
    plan->segment = std::move(first);
    if (plan->segment.const_bytes) {
      KILN_ASSIGN_OR_RETURN(plan->consts, DeviceBuffer::allocate(plan->segment.const_bytes));
      KILN_RETURN_IF_ERROR(upload_consts(plan->segment, static_cast<char*>(plan->consts.data()), stream));
    }
    cached.push_front(std::move(plan));
    if (cached.size() > kCachedPlans) cached.pop_back();
    return run_cached(*cached.front(), bindings, stream, times);
  }
  // A plan with breaks: run it segment by segment, planning as values arrive.
  RunBuffers buffers;
  buffers.outputs.assign(graph.outputs.size(), nullptr);
  Segment seg = std::move(first);
  Status st = Status::ok();
  while (st.is_ok()) {
    if (options.use_cuda_graph && seg.data_dependent) {
      st = unsupported(
          "node '{}' ({}): its output shape depends on the data, which the host reads mid-run (a stream "
          "synchronization), so the run cannot be captured as a CUDA graph (run without --useCudaGraph)",
          seg.data_dependent->name, seg.data_dependent->op_type);
      break;
    }
    KILN_ASSIGN_OR_RETURN(char* a, stream_alloc(seg.arena_bytes, buffers, stream));
    KILN_ASSIGN_OR_RETURN(char* c, stream_alloc(seg.const_bytes, buffers, stream));
    buffers.arena.push_back(a);
    buffers.consts.push_back(c);
    st = upload_consts(seg, c, stream);
    if (st.is_ok()) st = execute(seg, buffers, bindings, stream, times);
    if (!st.is_ok() || seg.finished()) break;
    st = download(seg, state, buffers, bindings, stream);
    // A control-flow node runs its bodies here; planning goes on after it.
    if (st.is_ok() && seg.control_flow) st = run_timed_control_flow(seg, state, buffers, bindings, stream, times);
    if (!st.is_ok()) break;
    auto next = plan_segment(graph, seg.next_node, state, popts);
    if (!next) st = next.status();
    if (!st.is_ok()) break;
    seg = std::move(next).value();
  }
  if (st.is_ok()) st = give_lists(state, buffers, bindings, stream);
  for (void* p : buffers.stream_owned) cudaFreeAsync(p, stream);
  return st;
}

Runner::Runner(const Graph& graph, std::shared_ptr<const DeviceWeights> weights, RunnerOptions options)
    : impl_(std::make_unique<Impl>(Impl{graph, std::move(weights), options, {}, {}, {}})) {}

Runner::~Runner() = default;

Status Runner::run(const std::vector<std::vector<int64_t>>& input_dims, const std::vector<const RunValue*>& input_host,
                   RunBindings& bindings, cudaStream_t stream, StepTimes* times, const SubgraphValues* sub) {
  if (input_dims.size() != impl_->graph.inputs.size())
    return internal_error("the graph takes {} inputs, the run gave dims for {}", impl_->graph.inputs.size(),
                          input_dims.size());
  return impl_->run(input_dims, input_host, bindings, stream, times, sub);
}

size_t Runner::arena_bytes() const { return impl_->cached.empty() ? 0 : impl_->cached.front()->segment.arena_bytes; }

void Runner::set_arena(void* data, size_t bytes) {
  impl_->external = static_cast<char*>(data);
  impl_->external_bytes = data ? bytes : 0;
  if (data) impl_->arena = DeviceBuffer();  // its own is no longer used
}

Expected<size_t> Runner::plan_arena_bytes(const std::vector<std::vector<int64_t>>& input_dims) {
  if (input_dims.size() != impl_->graph.inputs.size())
    return internal_error("the graph takes {} inputs, dims were given for {}", impl_->graph.inputs.size(),
                          input_dims.size());
  for (const std::unique_ptr<CachedPlan>& plan : impl_->cached)
    if (plan->input_dims == input_dims) return plan->segment.arena_bytes;
  PlanState state = impl_->initial_state(input_dims, {}, nullptr);
  KILN_ASSIGN_OR_RETURN(Segment first, plan_segment(impl_->graph, 0, state, impl_->plan_options()));
  return first.arena_bytes;
}

}  // namespace kiln::cuda
