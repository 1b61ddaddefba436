#include "builder/autotune.h"

#include "builder/reference_slice.h"
#include "builder/tuning_level.h"

#ifdef KILN_WITH_CUDA

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>

#include "backends/cpu/cpu_executor.h"
#include "backends/cuda/cuda_runner.h"
#include "backends/cuda/cuda_status.h"
#include "backends/cuda/cudnn_handle.h"
#include "builder/workspace_filter.h"
#include "engine/timing_cache.h"

namespace kiln {
namespace {

using cuda::DeviceBuffer;

#ifndef KILN_SOURCE_ID
#define KILN_SOURCE_ID "unknown"
#endif

// What can change a tactic's speed or result besides the layer itself (a
// "cudnn:<i>" tactic is the i-th engine of cuDNN's list for the graph), and
// which tactics exist: kiln's version and the commit it was configured from
// (CMakeLists.txt), since commits add and remove tactics.
Expected<std::string> device_key() {
  int index = 0;
  KILN_CUDA_RETURN_IF_ERROR(cudaGetDevice(&index));
  KILN_ASSIGN_OR_RETURN(auto info, cuda::device_info(index));
  return fmt::format("sm_{}{}|{}|{} SMs|cuBLASLt {}|cuDNN {}|kiln {} ({})", info.cc_major, info.cc_minor, info.name,
                     info.sm_count, cublasLtGetVersion(), cudnnGetVersion(), KILN_VERSION, KILN_SOURCE_ID);
}

std::string attribute_text(const Attribute& a) {
  switch (a.kind) {
    case Attribute::Kind::kFloat: return fmt::format("{}", a.f);
    case Attribute::Kind::kInt: return fmt::format("{}", a.i);
    case Attribute::Kind::kString: return a.s;
    case Attribute::Kind::kFloats: return fmt::format("{}", fmt::join(a.floats, ","));
    case Attribute::Kind::kInts: return fmt::format("{}", fmt::join(a.ints, ","));
    case Attribute::Kind::kStrings: return fmt::format("{}", fmt::join(a.strings, ","));
    default: return "?";
  }
}

// The layer's signature: op, attributes, input dtypes and dims, and which
// inputs are constants (weights may be laid out differently), plus TF32, the
// workspace limit (tactics are numbered among those that fit it) and the
// exhaustive search (tuning_signature_suffix).
std::string signature(const cuda::Step& step, const cuda::PlanState& state, bool tf32, const TuningLevel& level) {
  const Node& n = *step.node;
  std::string s = fmt::format("{}:{}", n.domain, n.op_type);
  for (const auto& [k, a] : n.attrs) s += fmt::format(" {}={}", k, attribute_text(a));
  for (size_t i = 0; i < step.inputs.size(); ++i) {
    if (!step.inputs[i]) {
      s += " _";
      continue;
    }
    s += fmt::format(" {}[{}]{}", dtype_name(step.in[i].dtype), fmt::join(step.in[i].dims, "x"),
                     state.values.at(step.inputs[i]).shape_like ? "c" : "");
  }
  s += tf32 ? " tf32" : "";
  if (step.workspace_limit != SIZE_MAX) s += fmt::format(" workspace<={}", step.workspace_limit);
  return s + tuning_signature_suffix(level);
}

Tensor random_input(DType dtype, const std::vector<int64_t>& dims, std::mt19937& rng) {
  Tensor t(dtype, dims);
  std::uniform_real_distribution<float> dist(-1.f, 1.f);
  for (int64_t i = 0; i < t.numel(); ++i) {
    float v = dist(rng);
    switch (dtype) {
      case DType::kF32: t.mutable_data<float>()[i] = v; break;
      case DType::kF16: t.mutable_data<uint16_t>()[i] = f32_to_f16(v); break;
      case DType::kBF16: t.mutable_data<uint16_t>()[i] = f32_to_bf16(v); break;
      case DType::kF64: t.mutable_data<double>()[i] = v; break;
      default: return t;  // integer inputs stay zero: tactics are for float layers
    }
  }
  return t;
}

// max |gpu - cpu| / max |cpu|, NaN when either has a NaN.
double relative_error(const Tensor& gpu, const Tensor& cpu) {
  double diff = 0, scale = 0;
  for (int64_t i = 0; i < cpu.numel(); ++i) {
    const double g = gpu.element_as_double(i), c = cpu.element_as_double(i);
    if (std::isnan(g) || std::isnan(c)) return NAN;
    diff = std::max(diff, std::fabs(g - c));
    scale = std::max(scale, std::fabs(c));
  }
  return diff / std::max(scale, 1e-30);
}

double tolerance(DType t, bool tf32) {
  if (t == DType::kF16 || t == DType::kBF16) return 2e-2;
  return tf32 ? 5e-3 : 1e-4;
}

// One layer alone: a graph of the node with its non-constant inputs as graph
// inputs, random data for them, and the CPU's result on their first rows.
struct LayerBench {
  Graph graph;
  Node* node = nullptr;
  std::vector<RunValue> host_inputs;
  std::vector<std::vector<int64_t>> dims;
  std::vector<Tensor> expected;  // the outputs' first rows
  // On the device once for every candidate: the weights, the inputs, outputs.
  std::shared_ptr<const cuda::DeviceWeights> weights;
  std::unique_ptr<cuda::DeviceBindings> io;
};

Expected<std::unique_ptr<LayerBench>> make_layer_bench(const cuda::Step& step, const cuda::PlanState& state,
                                                       std::mt19937& rng) {
  auto b = std::make_unique<LayerBench>();
  Node* n = b->graph.add_node(step.node->op_type, step.node->domain);
  n->opset = step.node->opset;
  n->attrs = step.node->attrs;
  b->node = n;
  std::vector<std::vector<int64_t>> all_dims;
  for (size_t i = 0; i < step.inputs.size(); ++i)
    all_dims.push_back(step.inputs[i] ? step.in[i].dims : std::vector<int64_t>{});
  std::vector<bool> slice = sliced_inputs(*step.node, all_dims);
  const int64_t rows = reference_rows(*step.node);
  Graph ref;  // the same node over the sliced inputs
  Node* rn = ref.add_node(step.node->op_type, step.node->domain);
  rn->opset = n->opset;
  rn->attrs = n->attrs;
  std::vector<RunValue> ref_inputs;
  for (size_t i = 0; i < step.inputs.size(); ++i) {
    if (!step.inputs[i]) {
      n->inputs.push_back(nullptr);
      rn->inputs.push_back(nullptr);
      continue;
    }
    const cuda::PlannedValue& pv = state.values.at(step.inputs[i]);
    Value* v = b->graph.add_value(fmt::format("in{}", i), Type::tensor(pv.dtype, Shape::of(pv.dims)));
    Value* rv = ref.add_value(fmt::format("in{}", i));
    if (pv.host && pv.host->is_tensor()) {
      // A value the host knows (a weight, or a mask computed from shapes)
      // is a constant of the layer; the reference takes its first rows too
      // when it has the batch.
      v->constant = std::make_shared<const Tensor>(pv.host->tensor);
      rv->constant = slice[i] ? std::make_shared<const Tensor>(first_rows(pv.host->tensor, rows)) : v->constant;
      rv->type = Type::tensor(pv.dtype, Shape::of(rv->constant->dims()));
    } else {
      Tensor data = random_input(pv.dtype, pv.dims, rng);
      Tensor part = slice[i] ? first_rows(data, rows) : data;
      rv->type = Type::tensor(pv.dtype, Shape::of(part.dims()));
      ref.inputs.push_back(rv);
      ref_inputs.push_back(RunValue::of(std::move(part)));
      b->graph.inputs.push_back(v);
      b->host_inputs.push_back(RunValue::of(std::move(data)));
      b->dims.push_back(pv.dims);
    }
    n->inputs.push_back(v);
    rn->inputs.push_back(rv);
  }
  for (size_t i = 0; i < step.outputs.size(); ++i) {
    Value* v = b->graph.add_value(fmt::format("out{}", i));
    v->producer = n;
    v->producer_output = static_cast<int>(i);
    n->outputs.push_back(step.outputs[i] ? v : nullptr);
    Value* rv = ref.add_value(fmt::format("out{}", i));
    rv->producer = rn;
    rv->producer_output = static_cast<int>(i);
    rn->outputs.push_back(step.outputs[i] ? rv : nullptr);
    if (step.outputs[i]) {
      b->graph.outputs.push_back(v);
      ref.outputs.push_back(rv);
    }
  }
  KILN_ASSIGN_OR_RETURN(auto outs, run_graph_on_cpu(ref, std::move(ref_inputs)));
  for (auto& o : outs) b->expected.push_back(std::move(o.tensor));
  KILN_ASSIGN_OR_RETURN(b->weights, cuda::upload_weights(b->graph));
  b->io = std::make_unique<cuda::DeviceBindings>(b->graph.outputs.size());
  for (const RunValue& v : b->host_inputs) KILN_RETURN_IF_ERROR(b->io->add_input(v.tensor));
  return b;
}

class Tuner {
 public:
  Tuner(const BuildConfig& config, cudaStream_t stream) : config_(config), stream_(stream) {}

  Status init() {
    int index = 0;
    KILN_CUDA_RETURN_IF_ERROR(cudaGetDevice(&index));
    KILN_ASSIGN_OR_RETURN(auto info, cuda::device_info(index));
    // Twice the L2: writing it before each timed run evicts the layer's data.
    KILN_ASSIGN_OR_RETURN(flush_, DeviceBuffer::allocate(std::max<size_t>(2 * info.l2_cache_bytes, 1 << 20)));
    KILN_ASSIGN_OR_RETURN(start_, cuda::Event::create());
    KILN_ASSIGN_OR_RETURN(stop_, cuda::Event::create());
    return Status::ok();
  }

  // The candidate's median time in ms, or an error (it failed or disagreed).
  Expected<float> time(LayerBench& b, const std::string& tactic) {
    b.node->metadata["kiln.tactic"] = tactic;
    cuda::RunnerOptions options;
    options.run.allow_tf32 = config_.tf32;
    options.run.workspace_limit = config_.workspace_limit_bytes;
    cuda::Runner runner(b.graph, b.weights, options);
    cuda::DeviceBindings& io = *b.io;
    std::vector<const RunValue*> none(b.host_inputs.size(), nullptr);
    KILN_RETURN_IF_ERROR(runner.run(b.dims, none, io, stream_));
    KILN_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream_));
    for (size_t j = 0; j < b.expected.size(); ++j) {
      // The first rows of the output, as many as the reference computed.
      KILN_ASSIGN_OR_RETURN(Tensor got, io.download_output(j, stream_, &b.expected[j].dims()));
      const double err = relative_error(got, b.expected[j]);
      if (!(err <= tolerance(got.dtype(), config_.tf32)))
        return internal_error("tactic {} disagrees with the CPU reference (relative error {:.3g})", tactic, err);
    }
    std::vector<float> times;
    const int runs = tuning_level(config_.optimization_level).runs;
    for (int r = 0; r < runs; ++r) {
      KILN_CUDA_RETURN_IF_ERROR(cudaMemsetAsync(flush_.data(), r & 0xff, flush_.size(), stream_));
      KILN_RETURN_IF_ERROR(start_.record(stream_));
      KILN_RETURN_IF_ERROR(runner.run(b.dims, none, io, stream_));
      KILN_RETURN_IF_ERROR(stop_.record(stream_));
      KILN_RETURN_IF_ERROR(stop_.synchronize());
      KILN_ASSIGN_OR_RETURN(float ms, stop_.elapsed_ms_since(start_));
      times.push_back(ms);
    }
    std::nth_element(times.begin(), times.begin() + runs / 2, times.end());
    return times[static_cast<size_t>(runs / 2)];
  }

 private:
  const BuildConfig& config_;
  cudaStream_t stream_;
  DeviceBuffer flush_;
  cuda::Event start_, stop_;
};

// The input dims to tune for: the first profile's opt shapes, or the fixed
// dims; empty when a dynamic dim has no profile.
std::optional<std::vector<std::vector<int64_t>>> tuning_dims(const Graph& g,
                                                             const std::vector<EngineProfile>& profiles) {
  std::vector<std::vector<int64_t>> dims;
  for (const Value* in : g.inputs) {
    const ShapeRange* r = profiles.empty() ? nullptr : profiles[0].find(in->name);
    if (r) {
      dims.push_back(r->opt);
    } else if (in->type.shape.is_fixed()) {
      dims.push_back(in->type.shape.fixed_dims());
    } else {
      return std::nullopt;
    }
  }
  return dims;
}

}  // namespace

Expected<AutotuneStats> autotune(Graph& graph, const BuildConfig& config, const std::vector<EngineProfile>& profiles) {
  AutotuneStats stats;
  const TuningLevel level = tuning_level(config.optimization_level);
  const size_t limit = level.candidates;
  auto dims = tuning_dims(graph, profiles);
  if (!dims) {
    stats.skipped = "dynamic inputs without a profile: the libraries' heuristics choose (give --optShapes to tune)";
    return stats;
  }
  cuda::PlanState state;
  for (size_t i = 0; i < graph.inputs.size(); ++i) {
    cuda::PlannedValue pv;
    pv.dtype = graph.inputs[i]->type.dtype;
    pv.dims = (*dims)[i];
    pv.slot = {cuda::Place::kInput, 0, static_cast<int>(i)};
    state.values[graph.inputs[i]] = std::move(pv);
  }
  const size_t workspace_limit = cuda::plan_workspace_limit(config.workspace_limit_bytes);
  KILN_ASSIGN_OR_RETURN(
      cuda::Segment seg,
      cuda::plan_segment(graph, 0, state, cuda::PlanOptions{config.allow_cpu_fallback, config.tf32, workspace_limit}));
  KILN_ASSIGN_OR_RETURN(std::string device, device_key());
  TimingCache cache;
  if (!config.timing_cache_path.empty()) {
    KILN_ASSIGN_OR_RETURN(cache, TimingCache::load(config.timing_cache_path));
  }
  KILN_ASSIGN_OR_RETURN(auto stream, cuda::Stream::create());
  Tuner tuner(config, stream.get());
  bool tuner_ready = false;
  std::mt19937 rng(12345);
  for (const cuda::Step& step : seg.steps) {
    if (!step.node || !step.def || !step.def->tactics) continue;
    Node* node = const_cast<Node*>(step.node);
    const std::string sig = signature(step, state, config.tf32, level);
    // The cache answers before the candidates are listed: listing builds a
    // cuDNN plan per engine (runtime fusion engines compile a kernel each),
    // which made a warm build of MobileNetV2 take 17 s. Only layers that had
    // a choice (and so the same list, under this signature) are cached.
    if (auto hit = cache.find(device, sig, config.ignore_timing_cache_mismatch)) {
      node->metadata["kiln.tactic"] = hit->tactic;
      node->metadata["kiln.tactic_ms"] = fmt::format("{:.4f}", hit->ms);
      ++stats.layers;
      ++stats.cached;
      continue;
    }
    std::vector<std::string> candidates = step.def->tactics(*cuda::query_of(step, level.exhaustive), limit);
    if (!level.exhaustive && candidates.size() > limit) candidates.resize(limit);
    WorkspaceFilter fits = filter_by_workspace(
        candidates, [&](const std::string& t) { return cuda::workspace_for_tactic(step, t); }, workspace_limit);
    for (const std::string& why : fits.rejected)
      stats.over_workspace.push_back(fmt::format("layer '{}' ({}): {}", step.node->name, step.node->op_type, why));
    candidates = std::move(fits.eligible);
    if (candidates.size() < 2) continue;  // the kernel's default, which planning checked against the limit
    ++stats.layers;
    if (!tuner_ready) {
      KILN_RETURN_IF_ERROR(tuner.init());
      tuner_ready = true;
    }
    KILN_ASSIGN_OR_RETURN(auto bench, make_layer_bench(step, state, rng));
    std::string best;
    float best_ms = 0;
    for (const std::string& c : candidates) {
      auto ms = tuner.time(*bench, c);
      if (!ms) {
        // A candidate that fails to run (a cuDNN engine whose launch fails on
        // this GPU) is dropped like one that disagrees; its launch error, if
        // it is not sticky, must not fail the next candidate's launch check.
        (void)cudaGetLastError();
        ++stats.rejected;
        continue;
      }
      if (best.empty() || *ms < best_ms) {
        best = c;
        best_ms = *ms;
      }
    }
    ++stats.timed;
    if (best.empty()) continue;  // every candidate failed: the kernel's default runs
    node->metadata["kiln.tactic"] = best;
    node->metadata["kiln.tactic_ms"] = fmt::format("{:.4f}", best_ms);
    cache.add(device, sig, {best, best_ms});
  }
  if (!config.timing_cache_path.empty() && stats.timed > 0) KILN_RETURN_IF_ERROR(cache.save(config.timing_cache_path));
  return stats;
}

}  // namespace kiln

#endif  // KILN_WITH_CUDA
