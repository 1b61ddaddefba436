// Engine and Runtime: loading an engine file and answering questions about it.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cstdlib>
#include <cstring>
#include <set>

#include "backends/cpu/cpu_kernel.h"
#include "engine/graph_codec.h"
#include "ops/op_schema.h"
#include "runtime/engine_state.h"
#ifdef KILN_WITH_CUDA
#include "backends/cuda/run_plan.h"
#endif

namespace kiln {
namespace {

// Every op the engine uses that this runtime lacks, as "Op (node 'n')".
void missing_ops(const Graph& g, std::set<std::string>& no_schema, std::set<std::string>& no_kernel) {
  for (const auto& n : g.nodes()) {
    std::string op = n->domain.empty() ? n->op_type : n->domain + ":" + n->op_type;
    if (!OpRegistry::instance().find(n->domain, n->op_type))
      no_schema.insert(op);
    else if (!CpuKernelRegistry::instance().find(n->domain, n->op_type))
      no_kernel.insert(op);
    for (const auto& [key, a] : n->attrs) {
      if (a.g) missing_ops(*a.g, no_schema, no_kernel);
      for (const auto& sg : a.graphs) missing_ops(*sg, no_schema, no_kernel);
    }
  }
}

Status check_ops(const Graph& g) {
  std::set<std::string> no_schema, no_kernel;
  missing_ops(g, no_schema, no_kernel);
  if (no_schema.empty() && no_kernel.empty()) return Status::ok();
  std::string msg;
  if (!no_schema.empty())
    msg = fmt::format("the engine uses ops this kiln runtime does not have: {}", fmt::join(no_schema, ", "));
  if (!no_kernel.empty())
    msg +=
        fmt::format("{}the CPU backend has no kernel yet for: {}", msg.empty() ? "" : "; ", fmt::join(no_kernel, ", "));
  return Status(ErrorCode::kUnsupported, msg);
}

Status add_io(EngineState& s, const Value* v, TensorIOMode mode, size_t index) {
  const char* what = mode == TensorIOMode::kInput ? "input" : "output";
  if (!v->type.is_tensor())
    return unsupported("{} '{}' is a {}; the runtime API binds tensors only", what, v->name, v->type.to_string());
  if (v->type.dtype == DType::kUndefined)
    return unsupported("{} '{}' has dtype {}; the runtime API binds numeric, bool and string tensors only", what,
                       v->name, dtype_name(v->type.dtype));
  if (v->type.dtype == DType::kString && s.contents.backend == "cuda")
    return unsupported("{} '{}' holds strings; the runtime API binds string tensors on the cpu backend only", what,
                       v->name);
  if (mode == TensorIOMode::kInput && !v->type.shape.has_rank())
    return unsupported("input '{}' has an unknown rank; export the model with input shapes", v->name);
  if (s.find(v->name) >= 0) return unsupported("two I/O tensors are named '{}'", v->name);
  s.io.push_back({v->name, mode, v->type.dtype, v->type.shape, v, index});
  return Status::ok();
}

std::vector<std::string> unique_layer_names(const Graph& g) {
  std::vector<std::string> names;
  std::set<std::string> seen;
  for (size_t k = 0; k < g.nodes().size(); ++k) {
    const Node& n = *g.nodes()[k];
    std::string name = n.name;
    if (name.empty() || seen.count(name)) name = fmt::format("{}_{}", n.op_type, k);
    while (seen.count(name)) name += "_";
    seen.insert(name);
    names.push_back(std::move(name));
  }
  return names;
}

LayerTensor layer_tensor(const Value& v) {
  LayerTensor t;
  t.name = v.name;
  t.dtype = v.type.dtype;
  t.has_rank = v.type.shape.has_rank();
  if (t.has_rank)
    for (const Dim& d : *v.type.shape.dims) t.dims.push_back(d.to_string());
  t.constant = v.has_constant();
  return t;
}

}  // namespace

int EngineState::find(const std::string& name) const {
  for (size_t i = 0; i < io.size(); ++i)
    if (io[i].name == name) return static_cast<int>(i);
  return -1;
}

Status check_profiles(const Graph& g, const std::vector<EngineProfile>& profiles) {
  for (size_t p = 0; p < profiles.size(); ++p) {
    for (const auto& [name, r] : profiles[p].ranges) {
      const Value* in = nullptr;
      for (const Value* v : g.inputs)
        if (v->name == name) in = v;
      if (!in) return invalid_argument("profile {}: '{}' is not an input of the model", p, name);
      const Shape& s = in->type.shape;
      size_t rank = static_cast<size_t>(s.rank());
      if (!s.has_rank() || r.min.size() != rank || r.opt.size() != rank || r.max.size() != rank)
        return invalid_argument("profile {}: input '{}' has rank {} {}, the ranges have {}/{}/{} dims", p, name,
                                s.rank(), s.to_string(), r.min.size(), r.opt.size(), r.max.size());
      for (size_t d = 0; d < rank; ++d) {
        if (r.min[d] < 0 || r.min[d] > r.opt[d] || r.opt[d] > r.max[d])
          return invalid_argument("profile {}: input '{}' dim {} needs 0 <= min <= opt <= max, got {} / {} / {}", p,
                                  name, d, r.min[d], r.opt[d], r.max[d]);
        const Dim& dim = (*s.dims)[d];
        if (dim.is_fixed() && (r.min[d] != dim.value || r.max[d] != dim.value))
          return invalid_argument("profile {}: input '{}' dim {} is fixed to {}, the range is [{}, {}]", p, name, d,
                                  dim.value, r.min[d], r.max[d]);
      }
    }
    for (const Value* v : g.inputs) {
      if (!v->type.is_tensor() || v->type.shape.is_fixed() || profiles[p].find(v->name)) continue;
      return invalid_argument("profile {} gives no range for dynamic input '{}' {}: every profile needs one", p,
                              v->name, v->type.shape.to_string());
    }
  }
  return Status::ok();
}

Expected<std::shared_ptr<Graph>> clone_graph(const std::shared_ptr<const Graph>& graph) {
  engine::Graph proto;
  SectionList list;
  KILN_RETURN_IF_ERROR(encode_graph(*graph, list, &proto));
  SectionSource src;
  src.owner = graph;  // the copies view the original's tensors
  for (const Tensor* t : list.tensors) src.sections.push_back({static_cast<const std::byte*>(t->raw()), t->nbytes()});
  return decode_graph(proto, src);
}

Expected<std::shared_ptr<const EngineState>> load_engine_state(FileBytes file) {
  auto s = std::make_shared<EngineState>();
  KILN_ASSIGN_OR_RETURN(s->contents, read_engine(file));
  s->file = std::move(file);
  const Graph& g = *s->contents.graph;
  for (size_t i = 0; i < g.inputs.size(); ++i) KILN_RETURN_IF_ERROR(add_io(*s, g.inputs[i], TensorIOMode::kInput, i));
  for (size_t i = 0; i < g.outputs.size(); ++i)
    KILN_RETURN_IF_ERROR(add_io(*s, g.outputs[i], TensorIOMode::kOutput, i));
  Status st = check_profiles(g, s->contents.profiles);
  if (!st.is_ok()) return Status(ErrorCode::kCorrupt, "engine profiles: " + st.message());
  KILN_RETURN_IF_ERROR(check_ops(g));
  if (s->contents.backend == "cuda") {
#ifdef KILN_WITH_CUDA
    KILN_RETURN_IF_ERROR(cuda::check_graph_supported(g, s->contents.settings.allow_cpu_fallback, nullptr));
#endif
  }
  s->layer_names = unique_layer_names(g);
  return std::shared_ptr<const EngineState>(std::move(s));
}

Engine::Engine(std::shared_ptr<const EngineState> state) : state_(std::move(state)) {}
Engine::~Engine() = default;

int Engine::num_io_tensors() const { return static_cast<int>(state_->io.size()); }

std::string Engine::io_tensor_name(int index) const {
  if (index < 0 || index >= num_io_tensors()) return {};
  return state_->io[static_cast<size_t>(index)].name;
}

TensorIOMode Engine::tensor_io_mode(const std::string& name) const {
  int i = state_->find(name);
  return i < 0 ? TensorIOMode::kNone : state_->io[static_cast<size_t>(i)].mode;
}

DType Engine::tensor_dtype(const std::string& name) const {
  int i = state_->find(name);
  return i < 0 ? DType::kUndefined : state_->io[static_cast<size_t>(i)].dtype;
}

static Status no_tensor(const EngineState& s, const std::string& name) {
  std::string names;
  for (const auto& t : s.io) names += (names.empty() ? "'" : ", '") + t.name + "'";
  return make_error(ErrorCode::kNotFound, "the engine has no I/O tensor '{}' (it has {})", name, names);
}

Expected<std::vector<int64_t>> Engine::tensor_shape(const std::string& name) const {
  int i = state_->find(name);
  if (i < 0) return no_tensor(*state_, name);
  const Shape& s = state_->io[static_cast<size_t>(i)].shape;
  if (!s.has_rank()) return make_error(ErrorCode::kOutOfRange, "output '{}' has a rank known only at run time", name);
  std::vector<int64_t> dims;
  for (const Dim& d : *s.dims) dims.push_back(d.is_fixed() ? d.value : -1);
  return dims;
}

Expected<std::vector<std::string>> Engine::tensor_dim_names(const std::string& name) const {
  int i = state_->find(name);
  if (i < 0) return no_tensor(*state_, name);
  const Shape& s = state_->io[static_cast<size_t>(i)].shape;
  std::vector<std::string> out;
  if (s.has_rank())
    for (const Dim& d : *s.dims) out.push_back(d.to_string());
  return out;
}

int Engine::num_optimization_profiles() const { return static_cast<int>(state_->contents.profiles.size()); }

Expected<ShapeRange> Engine::profile_shape(const std::string& input, int profile) const {
  int i = state_->find(input);
  if (i < 0) return no_tensor(*state_, input);
  if (state_->io[static_cast<size_t>(i)].mode != TensorIOMode::kInput)
    return invalid_argument("'{}' is an output; profiles bound inputs", input);
  if (profile < 0 || profile >= num_optimization_profiles())
    return make_error(ErrorCode::kOutOfRange, "profile {} does not exist (the engine has {})", profile,
                      num_optimization_profiles());
  if (const ShapeRange* r = state_->contents.profiles[static_cast<size_t>(profile)].find(input)) return *r;
  auto dims = tensor_shape(input);
  if (!dims) return dims.status();
  return ShapeRange{*dims, *dims, *dims};
}

int Engine::num_layers() const { return static_cast<int>(state_->layer_names.size()); }

Expected<LayerInfo> Engine::layer_info(int index) const {
  if (index < 0 || index >= num_layers())
    return make_error(ErrorCode::kOutOfRange, "layer {} does not exist (the engine has {})", index, num_layers());
  const Node& n = *state_->contents.graph->nodes()[static_cast<size_t>(index)];
  LayerInfo info{state_->layer_names[static_cast<size_t>(index)], n.op_type, n.domain, {}, {}};
  // Omitted optional inputs and outputs are left out; their positions matter
  // to kernels, not to a reader of the layer list.
  for (const Value* v : n.inputs)
    if (v) info.inputs.push_back(layer_tensor(*v));
  for (const Value* v : n.outputs)
    if (v) info.outputs.push_back(layer_tensor(*v));
  auto meta = [&](const char* key) {
    auto it = n.metadata.find(key);
    return it == n.metadata.end() ? std::string() : it->second;
  };
  info.precision = meta("kiln.precision");
  if (info.precision.empty() && !info.outputs.empty()) info.precision = std::string(dtype_name(info.outputs[0].dtype));
  info.tactic = meta("kiln.tactic");
  if (std::string ms = meta("kiln.tactic_ms"); !ms.empty()) info.tactic_ms = std::strtof(ms.c_str(), nullptr);
  info.fused = meta("kiln.fused");
  info.layout = meta("kiln.layout");
  return info;
}

std::string Engine::backend() const { return state_->contents.backend; }
std::string Engine::device() const { return state_->contents.device; }
std::string Engine::kiln_version() const { return state_->contents.kiln_version; }

std::vector<uint8_t> Engine::serialize() const {
  const auto* p = reinterpret_cast<const uint8_t*>(state_->file.data);
  return {p, p + state_->file.size};
}

std::unique_ptr<ExecutionContext> Engine::create_execution_context(AllocationStrategy strategy) {
  return std::make_unique<ExecutionContext>(shared_from_this(), strategy);
}

Expected<std::shared_ptr<Engine>> Runtime::deserialize_file(const std::string& path) {
  KILN_ASSIGN_OR_RETURN(FileBytes file, map_file(path));
  auto state = load_engine_state(std::move(file));
  if (!state) return state.status().with_context(fmt::format("engine '{}'", path));
  return std::make_shared<Engine>(std::move(state).value());
}

Expected<std::shared_ptr<Engine>> Runtime::deserialize(const void* data, size_t size) {
  // Copied into 64-byte aligned memory so weight views are aligned for any dtype.
  size_t rounded = (size + 63) / 64 * 64;
  void* p = ::operator new(rounded == 0 ? 64 : rounded, std::align_val_t(64));
  if (size) std::memcpy(p, data, size);
  FileBytes file;
  file.data = static_cast<const std::byte*>(p);
  file.size = size;
  file.owner = std::shared_ptr<const void>(
      p, [](const void* q) { ::operator delete(const_cast<void*>(q), std::align_val_t(64)); });
  KILN_ASSIGN_OR_RETURN(auto state, load_engine_state(std::move(file)));
  return std::make_shared<Engine>(std::move(state));
}

}  // namespace kiln
