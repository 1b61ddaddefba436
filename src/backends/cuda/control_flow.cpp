#include "backends/cuda/control_flow.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <numeric>
#include <set>

#include "backends/cpu/cpu_executor.h"
#include "backends/cuda/cuda_status.h"
#include "backends/cuda/sequence_ops.h"
#include "ops/op_schema.h"

namespace kiln::cuda {
namespace {

const Graph* body_of(const Node& node, const char* key) {
  const Attribute* a = node.attr(key);
  return a && a->g ? a->g.get() : nullptr;
}

// Device memory of one control-flow node's run, cudaMallocAsync'ed on the
// run's stream: freed (stream-ordered, after the work queued so far) when
// released or when the node's run ends, unless kept for the run around it.
class Memory {
 public:
  explicit Memory(ControlFlowRun& run) : run_(run) {}
  ~Memory() {
    for (void* p : owned_) cudaFreeAsync(p, run_.stream());
  }
  Memory(const Memory&) = delete;
  Memory& operator=(const Memory&) = delete;

  Expected<void*> allocate(size_t bytes) {
    void* p = nullptr;
    KILN_CUDA_RETURN_IF_ERROR(cudaMallocAsync(&p, std::max<size_t>(bytes, 1), run_.stream()));
    owned_.insert(p);
    return p;
  }
  // Frees `p` if it is this run's (a value read from around the node is not).
  void release(const void* p) {
    auto it = owned_.find(const_cast<void*>(p));
    if (it == owned_.end()) return;
    cudaFreeAsync(*it, run_.stream());
    owned_.erase(it);
  }
  // Gives `p`, if it is this run's, to the run around the node.
  void keep(const void* p) {
    auto it = owned_.find(const_cast<void*>(p));
    if (it == owned_.end()) return;
    run_.hold(*it);
    owned_.erase(it);
  }

 private:
  ControlFlowRun& run_;
  std::set<void*> owned_;
};

// A body run's bindings: its inputs and the outer values on the device, and
// each output in new memory of the node's run.
class BodyBindings final : public RunBindings {
 public:
  BodyBindings(Memory& mem, const std::vector<OuterValue>& inputs, const std::vector<OuterValue>& outer,
               size_t num_outputs)
      : mem_(mem), inputs_(inputs), outer_(outer), outputs_(num_outputs) {}

  const void* input(int io) override {
    const auto i = static_cast<size_t>(io);
    return i < inputs_.size() ? inputs_[i].data : outer_.at(i - inputs_.size()).data;
  }
  Expected<void*> output(int io, DType dtype, const std::vector<int64_t>& dims) override {
    OuterValue& o = outputs_.at(static_cast<size_t>(io));
    mem_.release(o.data);  // asked twice: the last dims hold
    KILN_ASSIGN_OR_RETURN(void* p, mem_.allocate(dtype_storage_bytes(dtype, checked_numel(dims))));
    o.dtype = dtype;
    o.dims = dims;
    o.data = p;
    return p;
  }
  // A sequence or optional output: each element copied into new memory of
  // the node's run (the body's run frees its own when it ends).
  Status output_list(int io, const DeviceList& list, cudaStream_t stream) override {
    OuterValue& o = outputs_.at(static_cast<size_t>(io));
    auto copy = std::make_shared<DeviceList>(list);
    for (DeviceTensor& e : copy->elements) {
      const size_t bytes = e.nbytes();
      KILN_ASSIGN_OR_RETURN(void* p, mem_.allocate(bytes));
      if (bytes) KILN_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(p, e.data, bytes, cudaMemcpyDeviceToDevice, stream));
      e.data = p;
    }
    o.dtype = DType::kUndefined;
    o.dims.clear();
    o.data = nullptr;
    o.list = std::move(copy);
    return Status::ok();
  }
  std::vector<OuterValue> take_outputs() { return std::move(outputs_); }

 private:
  Memory& mem_;
  const std::vector<OuterValue>& inputs_;
  const std::vector<OuterValue>& outer_;
  std::vector<OuterValue> outputs_;
};

void add_graphs(const Graph& g, std::set<const Graph*>& out) {
  out.insert(&g);
  for (const auto& n : g.nodes())
    for (const auto& [key, a] : n->attrs) {
      if (a.g) add_graphs(*a.g, out);
      for (const auto& sub : a.graphs) add_graphs(*sub, out);
    }
}

// The values of the graphs around `body` that it (or a body inside it) reads.
// The body computes with an outer value's host contents only when they are
// shape arithmetic (its plan is kept per those), else it reads the device's.
Expected<std::vector<OuterValue>> outer_values(const Graph& body, ControlFlowRun& run) {
  std::set<const Graph*> own;
  add_graphs(body, own);
  std::vector<const Value*> reads;
  for (const auto& n : body.nodes()) collect_node_reads(*n, reads);
  reads.insert(reads.end(), body.outputs.begin(), body.outputs.end());
  std::vector<OuterValue> out;
  std::set<const Value*> seen;
  for (const Value* v : reads) {
    if (!v || own.count(v->owner) || !seen.insert(v).second) continue;
    KILN_ASSIGN_OR_RETURN(OuterValue o, run.value(v));
    if (!o.shape_like && o.data) o.host = nullptr;
    out.push_back(std::move(o));
  }
  return out;
}

// Runs `body` of `node` with `inputs` on the device (`sub.outer` bound, its
// input dtypes set here); its outputs are in new memory of `mem`.
Expected<std::vector<OuterValue>> run_body(const Node& node, const Graph& body, const std::vector<OuterValue>& inputs,
                                           SubgraphValues& sub, ControlFlowRun& run, Memory& mem) {
  if (inputs.size() != body.inputs.size())
    return invalid_model("{}: the body takes {} inputs, the node gives it {}", where(node), body.inputs.size(),
                         inputs.size());
  std::vector<std::vector<int64_t>> dims;
  sub.input_dtypes.clear();
  sub.input_lists.clear();
  for (size_t i = 0; i < inputs.size(); ++i) {
    sub.input_lists.push_back(inputs[i].list);
    if (inputs[i].list) {  // a sequence or optional (If/Loop carrying one)
      dims.emplace_back();
      sub.input_dtypes.push_back(DType::kUndefined);
      continue;
    }
    // A body input may declare no type (functions expanded into a Loop).
    const DType declared = body.inputs[i]->type.dtype;
    if (declared != DType::kUndefined && declared != inputs[i].dtype)
      return invalid_model("{}: body input '{}' is declared {}, the node gives it {}", where(node),
                           body.inputs[i]->name, dtype_name(declared), dtype_name(inputs[i].dtype));
    dims.push_back(inputs[i].dims);
    sub.input_dtypes.push_back(inputs[i].dtype);
  }
  const std::vector<const RunValue*> host(inputs.size(), nullptr);
  BodyBindings bindings(mem, inputs, sub.outer, body.outputs.size());
  Status st = run.body_runner(body).run(dims, host, bindings, run.stream(), nullptr, &sub);
  if (!st.is_ok()) return st.with_context(fmt::format("in the body of {}", where(node)));
  std::vector<OuterValue> outs = bindings.take_outputs();
  for (size_t j = 0; j < outs.size(); ++j)
    if (outs[j].dtype == DType::kUndefined && !outs[j].list)
      return internal_error("{}: the body's output {} was not written", where(node), j);
  return outs;
}

Expected<bool> host_bool(const OuterValue& v, const Node& node, const char* what) {
  if (!v.host || !v.host->is_tensor() || v.host->tensor.numel() != 1)
    return invalid_argument("{}: {} must be a tensor of one element", where(node), what);
  return v.host->tensor.element_as_double(0) != 0;
}

// A body's cond output, read on the host (this synchronizes the stream).
Expected<bool> device_bool(const OuterValue& v, const Node& node, cudaStream_t stream) {
  if (checked_numel(v.dims) != 1)
    return invalid_argument("{}: the body's cond output must be a tensor of one element, is {}", where(node),
                            Shape::of(v.dims).to_string());
  Tensor t(v.dtype, v.dims);
  KILN_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(t.mutable_raw(), v.data, t.nbytes(), cudaMemcpyDeviceToHost, stream));
  KILN_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream));
  return t.element_as_double(0) != 0;
}

// Whether `count` elements of `dtype` take whole bytes (4-bit types split a
// byte when the count is odd: no slicing or stacking at that granularity).
bool whole_bytes(DType dtype, int64_t count) {
  return static_cast<int64_t>(dtype_storage_bytes(dtype, count)) * 8 == count * dtype_bits(dtype);
}

// Slice `at` of `x` along `axis` (dropped): a view when it is contiguous and
// 256-byte aligned (as the memory kernels are given: a kernel may pick a
// vectorized path by alignment), else gathered with one 2-D copy into memory
// of `mem`.
Expected<OuterValue> slice(const Node& node, const OuterValue& x, size_t axis, int64_t at, Memory& mem,
                           cudaStream_t stream) {
  const int64_t outer = dims_product(x.dims, 0, axis), len = x.dims[axis];
  const int64_t inner = dims_product(x.dims, axis + 1, x.dims.size());
  if (!whole_bytes(x.dtype, inner))
    return unsupported("{}: scanning {} along axis {} splits bytes", where(node), dtype_name(x.dtype), axis);
  const size_t inner_bytes = dtype_storage_bytes(x.dtype, inner);
  OuterValue r;
  r.dtype = x.dtype;
  r.dims = x.dims;
  r.dims.erase(r.dims.begin() + static_cast<std::ptrdiff_t>(axis));
  const char* base = static_cast<const char*>(x.data) + static_cast<size_t>(at) * inner_bytes;
  if (outer == 1 && reinterpret_cast<uintptr_t>(base) % 256 == 0) {
    r.data = base;
    return r;
  }
  KILN_ASSIGN_OR_RETURN(void* p, mem.allocate(static_cast<size_t>(outer) * inner_bytes));
  r.data = p;
  if (inner_bytes && outer)
    KILN_CUDA_RETURN_IF_ERROR(cudaMemcpy2DAsync(p, inner_bytes, base, static_cast<size_t>(len) * inner_bytes,
                                                inner_bytes, static_cast<size_t>(outer), cudaMemcpyDeviceToDevice,
                                                stream));
  return r;
}

// `parts` (one per iteration, the same dtype and dims) stacked along a new
// `axis` (negative: from the end of the result), in new memory of `mem`.
Expected<OuterValue> stack(const Node& node, size_t out, const std::vector<OuterValue>& parts, int64_t axis,
                           Memory& mem, cudaStream_t stream) {
  const OuterValue& first = parts[0];
  const auto rank = static_cast<int64_t>(first.dims.size());
  if (axis < 0) axis += rank + 1;
  if (axis < 0 || axis > rank) return invalid_model("{}: the axis of scan output {} is out of range", where(node), out);
  for (size_t t = 1; t < parts.size(); ++t)
    if (parts[t].dtype != first.dtype || parts[t].dims != first.dims)
      return invalid_argument("{}: scan output {} is {} {} in iteration {} and {} {} in iteration 0", where(node), out,
                              dtype_name(parts[t].dtype), Shape::of(parts[t].dims).to_string(), t,
                              dtype_name(first.dtype), Shape::of(first.dims).to_string());
  const auto a = static_cast<size_t>(axis);
  const int64_t outer = dims_product(first.dims, 0, a), inner = dims_product(first.dims, a, first.dims.size());
  if (!whole_bytes(first.dtype, inner))
    return unsupported("{}: stacking {} scan output {} splits bytes", where(node), dtype_name(first.dtype), out);
  const size_t inner_bytes = dtype_storage_bytes(first.dtype, inner), n = parts.size();
  OuterValue r;
  r.dtype = first.dtype;
  r.dims = first.dims;
  r.dims.insert(r.dims.begin() + axis, static_cast<int64_t>(n));
  KILN_ASSIGN_OR_RETURN(void* p, mem.allocate(static_cast<size_t>(outer) * n * inner_bytes));
  r.data = p;
  if (inner_bytes && outer)
    for (size_t t = 0; t < n; ++t)
      KILN_CUDA_RETURN_IF_ERROR(cudaMemcpy2DAsync(static_cast<char*>(p) + t * inner_bytes, n * inner_bytes,
                                                  parts[t].data, inner_bytes, inner_bytes, static_cast<size_t>(outer),
                                                  cudaMemcpyDeviceToDevice, stream));
  return r;
}

// A scan output of no iterations: the dims inference gives with the actual
// inputs (as the CPU backend does), else the body's declared dims with 0
// inserted at `axis`.
Expected<OuterValue> empty_scan_output(const Node& node, size_t out, const Value* body_out, int64_t axis,
                                       ControlFlowRun& run, Memory& mem) {
  OuterValue r;
  r.dtype = body_out ? body_out->type.dtype : DType::kUndefined;
  bool inferred = false;
  std::vector<Type> types(node.inputs.size());
  std::vector<const Type*> type_ptrs(node.inputs.size(), nullptr);
  std::vector<const Tensor*> values(node.inputs.size(), nullptr);
  std::vector<std::shared_ptr<const RunValue>> hosts;
  for (size_t i = 0; i < node.inputs.size(); ++i) {
    if (!node.inputs[i]) continue;
    KILN_ASSIGN_OR_RETURN(OuterValue v, run.value(node.inputs[i]));
    types[i] = Type::tensor(v.dtype, Shape::of(v.dims));
    type_ptrs[i] = &types[i];
    if (v.host && v.host->is_tensor()) values[i] = &v.host->tensor;
    hosts.push_back(std::move(v.host));
  }
  if (const OpSchema* schema = OpRegistry::instance().find(node.domain, node.op_type)) {
    InferContext ictx(node, type_ptrs, values, {});
    if (infer_node(node, *schema, ictx).is_ok() && out < ictx.output_types().size()) {
      const Type& t = ictx.output_types()[out];
      if (t.is_tensor() && t.shape.is_fixed()) {
        r.dims = t.shape.fixed_dims();
        if (t.dtype != DType::kUndefined) r.dtype = t.dtype;
        inferred = true;
      }
    }
  }
  if (!inferred) {
    if (body_out && body_out->type.shape.is_fixed()) r.dims = body_out->type.shape.fixed_dims();
    const auto rank = static_cast<int64_t>(r.dims.size());
    if (axis < 0) axis += rank + 1;
    r.dims.insert(r.dims.begin() + std::clamp<int64_t>(axis, 0, rank), 0);
  }
  KILN_ASSIGN_OR_RETURN(r.data, mem.allocate(0));
  return r;
}

// Each scan output: its parts stacked (released after), or empty.
Status finish_scan_outputs(const Node& node, size_t first_out, const Graph& body, size_t first_body_out,
                           std::vector<std::vector<OuterValue>>& scans, const std::vector<int64_t>& axes,
                           ControlFlowRun& run, Memory& mem, std::vector<OuterValue>& result) {
  for (size_t k = 0; k < scans.size(); ++k) {
    const size_t out = first_out + k;
    if (!node.output(out)) {
      result.emplace_back();
    } else if (scans[k].empty()) {
      KILN_ASSIGN_OR_RETURN(OuterValue e,
                            empty_scan_output(node, out, body.outputs[first_body_out + k], axes[k], run, mem));
      result.push_back(std::move(e));
    } else {
      KILN_ASSIGN_OR_RETURN(OuterValue s, stack(node, out, scans[k], axes[k], mem, run.stream()));
      result.push_back(std::move(s));
    }
    for (const OuterValue& p : scans[k]) mem.release(p.data);
  }
  return Status::ok();
}

// Frees `v`'s memory (a list's elements too) if it is of this node's run.
void release(const OuterValue& v, Memory& mem) {
  mem.release(v.data);
  if (v.list)
    for (const DeviceTensor& e : v.list->elements) mem.release(e.data);
}

Expected<std::vector<OuterValue>> run_if(const Node& node, ControlFlowRun& run, Memory& mem) {
  if (!node.input(0)) return invalid_model("{}: cond is missing", where(node));
  KILN_ASSIGN_OR_RETURN(OuterValue c, run.value(node.input(0)));
  KILN_ASSIGN_OR_RETURN(bool cond, host_bool(c, node, "cond"));
  const Graph* branch = body_of(node, cond ? "then_branch" : "else_branch");
  if (!branch) return invalid_model("{}: the {} graph is missing", where(node), cond ? "then_branch" : "else_branch");
  SubgraphValues sub;
  KILN_ASSIGN_OR_RETURN(sub.outer, outer_values(*branch, run));
  KILN_ASSIGN_OR_RETURN(std::vector<OuterValue> outs, run_body(node, *branch, {}, sub, run, mem));
  if (outs.size() < node.outputs.size())
    return invalid_model("{}: the branch gives {} outputs, the node has {}", where(node), outs.size(),
                         node.outputs.size());
  for (size_t j = node.outputs.size(); j < outs.size(); ++j) release(outs[j], mem);
  outs.resize(node.outputs.size());
  return outs;
}

Expected<std::vector<OuterValue>> run_loop(const Node& node, ControlFlowRun& run, Memory& mem) {
  const Graph* body = body_of(node, "body");
  if (!body) return invalid_model("{}: attribute 'body' is missing", where(node));
  int64_t max_trips = std::numeric_limits<int64_t>::max();
  if (node.input(0)) {
    KILN_ASSIGN_OR_RETURN(OuterValue m, run.value(node.input(0)));
    if (!m.host || !m.host->is_tensor()) return internal_error("{}: M is not on the host", where(node));
    KILN_ASSIGN_OR_RETURN(auto trips, m.host->tensor.to_i64_vector());
    if (trips.size() != 1) return invalid_argument("{}: M must have one element, has {}", where(node), trips.size());
    max_trips = trips[0];
  }
  bool cond = true;
  if (node.input(1)) {
    KILN_ASSIGN_OR_RETURN(OuterValue c, run.value(node.input(1)));
    KILN_ASSIGN_OR_RETURN(cond, host_bool(c, node, "cond"));
  }
  const size_t n_carried = node.inputs.size() > 2 ? node.inputs.size() - 2 : 0;
  if (node.outputs.size() < n_carried)
    return invalid_model("{}: {} loop-carried values but {} outputs", where(node), n_carried, node.outputs.size());
  const size_t n_scan = node.outputs.size() - n_carried;
  if (body->inputs.size() != 2 + n_carried || body->outputs.size() != 1 + n_carried + n_scan)
    return invalid_model("{}: the body takes {} inputs and gives {} outputs, the node needs {} and {}", where(node),
                         body->inputs.size(), body->outputs.size(), 2 + n_carried, 1 + n_carried + n_scan);
  std::vector<OuterValue> carried;
  for (size_t k = 0; k < n_carried; ++k) {
    const Value* v = node.input(2 + k);
    if (!v) return invalid_model("{}: loop-carried input {} is omitted", where(node), k);
    KILN_ASSIGN_OR_RETURN(OuterValue c, run.value(v));
    // A sequence or optional only the host has is uploaded.
    KILN_ASSIGN_OR_RETURN(c.list, device_list(node, c, run));
    if (!c.list && !c.data && c.host && c.dtype == DType::kString)
      return unsupported("{}: loop-carried value '{}' holds strings; the CUDA backend carries numbers only",
                         where(node), v->name);
    carried.push_back(std::move(c));
  }
  SubgraphValues sub;
  KILN_ASSIGN_OR_RETURN(sub.outer, outer_values(*body, run));
  const cudaStream_t stream = run.stream();
  // The body's cond input is true in every iteration that runs.
  static const uint8_t kTrue = 1;
  KILN_ASSIGN_OR_RETURN(void* true_value, mem.allocate(1));
  KILN_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(true_value, &kTrue, 1, cudaMemcpyHostToDevice, stream));
  // Iteration numbers, uploaded a block at a time (an upload from pageable
  // memory returns once the bytes are staged, so `numbers` may change after).
  constexpr int64_t kBlock = 1024;
  std::vector<int64_t> numbers(kBlock);
  void* block = nullptr;
  std::vector<std::vector<OuterValue>> scans(n_scan);
  for (int64_t i = 0; i < max_trips && cond; ++i) {
    if (i % kBlock == 0) {
      mem.release(block);
      std::iota(numbers.begin(), numbers.end(), i);
      KILN_ASSIGN_OR_RETURN(block, mem.allocate(kBlock * sizeof(int64_t)));
      KILN_CUDA_RETURN_IF_ERROR(
          cudaMemcpyAsync(block, numbers.data(), kBlock * sizeof(int64_t), cudaMemcpyHostToDevice, stream));
    }
    std::vector<OuterValue> in(2);
    in[0].dtype = DType::kI64;
    in[0].data = static_cast<const int64_t*>(block) + i % kBlock;
    in[1].dtype = DType::kBool;
    in[1].data = true_value;
    in.insert(in.end(), carried.begin(), carried.end());
    KILN_ASSIGN_OR_RETURN(std::vector<OuterValue> out, run_body(node, *body, in, sub, run, mem));
    // Without a cond input the body's cond output is ignored (a plain for loop).
    if (node.input(1)) {
      KILN_ASSIGN_OR_RETURN(cond, device_bool(out[0], node, stream));
    }
    mem.release(out[0].data);
    for (size_t k = 0; k < n_carried; ++k) {
      release(carried[k], mem);
      carried[k] = std::move(out[1 + k]);
    }
    for (size_t k = 0; k < n_scan; ++k) {
      if (out[1 + n_carried + k].list)
        return invalid_model("{}: scan output {} is a sequence or optional; a Loop stacks tensors", where(node), k);
      scans[k].push_back(std::move(out[1 + n_carried + k]));
    }
  }
  std::vector<OuterValue> result(carried.begin(), carried.end());
  KILN_RETURN_IF_ERROR(finish_scan_outputs(node, n_carried, *body, 1 + n_carried, scans,
                                           std::vector<int64_t>(n_scan, 0), run, mem, result));
  return result;
}

Expected<std::vector<OuterValue>> run_scan(const Node& node, ControlFlowRun& run, Memory& mem) {
  const Graph* body = body_of(node, "body");
  if (!body) return invalid_model("{}: attribute 'body' is missing", where(node));
  const int64_t scan_inputs = node.attr_int("num_scan_inputs", 0);
  if (scan_inputs < 0 || static_cast<size_t>(scan_inputs) > node.inputs.size())
    return invalid_model("{}: num_scan_inputs {} for {} inputs", where(node), scan_inputs, node.inputs.size());
  const auto n_scan_in = static_cast<size_t>(scan_inputs);
  const size_t n_state = node.inputs.size() - n_scan_in;
  if (node.outputs.size() < n_state)
    return invalid_model("{}: {} state values but {} outputs", where(node), n_state, node.outputs.size());
  const size_t n_scan_out = node.outputs.size() - n_state;
  auto in_axes = node.attr_ints("scan_input_axes", std::vector<int64_t>(n_scan_in, 0));
  const auto in_dirs = node.attr_ints("scan_input_directions", std::vector<int64_t>(n_scan_in, 0));
  const auto out_axes = node.attr_ints("scan_output_axes", std::vector<int64_t>(n_scan_out, 0));
  const auto out_dirs = node.attr_ints("scan_output_directions", std::vector<int64_t>(n_scan_out, 0));
  if (in_axes.size() != n_scan_in || in_dirs.size() != n_scan_in || out_axes.size() != n_scan_out ||
      out_dirs.size() != n_scan_out)
    return invalid_model("{}: the scan axes and directions must have one entry per scan input and output", where(node));
  if (body->inputs.size() != n_state + n_scan_in || body->outputs.size() != n_state + n_scan_out)
    return invalid_model("{}: the body takes {} inputs and gives {} outputs, the node needs {} and {}", where(node),
                         body->inputs.size(), body->outputs.size(), n_state + n_scan_in, n_state + n_scan_out);
  std::vector<OuterValue> states, xs;
  for (size_t i = 0; i < node.inputs.size(); ++i) {
    if (!node.inputs[i]) return invalid_model("{}: input {} is omitted", where(node), i);
    KILN_ASSIGN_OR_RETURN(OuterValue v, run.value(node.inputs[i]));
    if (!v.data && v.host && (!v.host->is_tensor() || v.dtype == DType::kString))
      return unsupported("{}: input '{}' is not a numeric tensor; the CUDA backend scans those only", where(node),
                         node.inputs[i]->name);
    (i < n_state ? states : xs).push_back(std::move(v));
  }
  int64_t steps = 0;
  for (size_t j = 0; j < n_scan_in; ++j) {
    const auto rank = static_cast<int64_t>(xs[j].dims.size());
    int64_t& axis = in_axes[j];
    if (axis < 0) axis += rank;
    if (axis < 0 || axis >= rank) return invalid_model("{}: scan_input_axes[{}] is out of range", where(node), j);
    const int64_t len = xs[j].dims[static_cast<size_t>(axis)];
    if (j > 0 && len != steps)
      return invalid_argument("{}: scan input {} has {} steps, scan input 0 has {}", where(node), j, len, steps);
    steps = len;
  }
  SubgraphValues sub;
  KILN_ASSIGN_OR_RETURN(sub.outer, outer_values(*body, run));
  const cudaStream_t stream = run.stream();
  std::vector<std::vector<OuterValue>> scans(n_scan_out);
  for (int64_t t = 0; t < steps; ++t) {
    std::vector<OuterValue> in = states;
    for (size_t j = 0; j < n_scan_in; ++j) {
      const int64_t at = in_dirs[j] == 1 ? steps - 1 - t : t;
      KILN_ASSIGN_OR_RETURN(OuterValue s, slice(node, xs[j], static_cast<size_t>(in_axes[j]), at, mem, stream));
      in.push_back(std::move(s));
    }
    KILN_ASSIGN_OR_RETURN(std::vector<OuterValue> out, run_body(node, *body, in, sub, run, mem));
    for (size_t j = n_state; j < in.size(); ++j) mem.release(in[j].data);  // gathered slices (views are not its)
    for (size_t i = 0; i < n_state; ++i) {
      mem.release(states[i].data);
      states[i] = std::move(out[i]);
    }
    for (size_t k = 0; k < n_scan_out; ++k) scans[k].push_back(std::move(out[n_state + k]));
  }
  for (size_t k = 0; k < n_scan_out; ++k)
    if (out_dirs[k] == 1) std::reverse(scans[k].begin(), scans[k].end());
  std::vector<OuterValue> result(states.begin(), states.end());
  KILN_RETURN_IF_ERROR(finish_scan_outputs(node, n_state, *body, n_state, scans, out_axes, run, mem, result));
  return result;
}

// SequenceMap: the body runs once per element of the input sequences (the
// tensor inputs given whole each time); output k is the sequence of the
// body's output k.
Expected<std::vector<OuterValue>> run_sequence_map(const Node& node, ControlFlowRun& run, Memory& mem) {
  const Graph* body = body_of(node, "body");
  if (!body) return invalid_model("{}: attribute 'body' is missing", where(node));
  if (!node.input(0)) return invalid_model("{}: input 0 is missing", where(node));
  std::vector<OuterValue> ins;
  std::vector<std::shared_ptr<const DeviceList>> seqs;
  for (size_t j = 0; j < node.inputs.size(); ++j) {
    if (!node.inputs[j]) return invalid_model("{}: input {} is omitted", where(node), j);
    KILN_ASSIGN_OR_RETURN(OuterValue v, run.value(node.inputs[j]));
    KILN_ASSIGN_OR_RETURN(auto list, device_list(node, v, run));
    if (list && list->kind != Type::Kind::kSequence)
      return invalid_argument("{}: input {} is an optional; SequenceMap takes sequences and tensors", where(node), j);
    if (!list && !v.data && v.host && v.dtype == DType::kString)
      return unsupported("{}: input {} holds strings; the CUDA backend maps numbers only", where(node), j);
    if (j == 0 && !list) return invalid_argument("{}: input 0 must be a sequence", where(node));
    if (j > 0 && list && list->elements.size() != seqs[0]->elements.size())
      return invalid_argument("{}: input {} has {} elements, input 0 has {}", where(node), j, list->elements.size(),
                              seqs[0]->elements.size());
    seqs.push_back(std::move(list));
    ins.push_back(std::move(v));
  }
  if (body->outputs.size() < node.outputs.size())
    return invalid_model("{}: the body gives {} outputs, the node has {}", where(node), body->outputs.size(),
                         node.outputs.size());
  SubgraphValues sub;
  KILN_ASSIGN_OR_RETURN(sub.outer, outer_values(*body, run));
  std::vector<DeviceList> outs(node.outputs.size());
  for (size_t i = 0; i < seqs[0]->elements.size(); ++i) {
    std::vector<OuterValue> in;
    for (size_t j = 0; j < ins.size(); ++j) {
      if (!seqs[j]) {
        in.push_back(ins[j]);
        continue;
      }
      const DeviceTensor& e = seqs[j]->elements[i];
      OuterValue o;
      o.dtype = e.dtype;
      o.dims = e.dims;
      o.data = e.data;
      in.push_back(std::move(o));
    }
    KILN_ASSIGN_OR_RETURN(std::vector<OuterValue> out, run_body(node, *body, in, sub, run, mem));
    for (size_t k = 0; k < out.size(); ++k) {
      if (k >= outs.size() || out[k].list) {
        if (out[k].list)
          return unsupported("{}: body output {} is a sequence or optional; SequenceMap collects tensors", where(node),
                             k);
        release(out[k], mem);
        continue;
      }
      outs[k].elements.push_back({out[k].dtype, out[k].dims, const_cast<void*>(out[k].data)});
    }
  }
  std::vector<OuterValue> result;
  for (DeviceList& l : outs) {
    OuterValue o;
    o.list = std::make_shared<const DeviceList>(std::move(l));
    result.push_back(std::move(o));
  }
  return result;
}

}  // namespace

Expected<std::vector<OuterValue>> run_control_flow(const Node& node, ControlFlowRun& run) {
  Memory mem(run);
  Expected<std::vector<OuterValue>> outs = unsupported("{}: not a control-flow op the CUDA backend runs", where(node));
  if (node.op_type == "If") outs = run_if(node, run, mem);
  if (node.op_type == "Loop") outs = run_loop(node, run, mem);
  if (node.op_type == "Scan") outs = run_scan(node, run, mem);
  if (node.op_type == "SequenceMap") outs = run_sequence_map(node, run, mem);
  if (!outs) return outs.status();
  for (const OuterValue& o : *outs) {
    mem.keep(o.data);
    if (o.list)
      for (const DeviceTensor& e : o.list->elements) mem.keep(e.data);
  }
  return outs;
}

}  // namespace kiln::cuda
