#include "builder/memory_plan.h"

#include <algorithm>
#include <optional>
#include <set>

#ifdef KILN_WITH_CUDA
#include "backends/cuda/run_plan.h"
#endif

namespace kiln {
namespace {

#ifdef KILN_WITH_CUDA
// The input dims of a profile at its opt (or max) shapes: the range where the
// profile has one, else the fixed dims; none when a dynamic input is unbounded.
std::optional<std::vector<std::vector<int64_t>>> profile_dims(const Graph& g, const EngineProfile* profile, bool max) {
  std::vector<std::vector<int64_t>> dims;
  for (const Value* in : g.inputs) {
    const ShapeRange* r = profile ? profile->find(in->name) : nullptr;
    if (r) {
      dims.push_back(max ? r->max : r->opt);
    } else if (in->type.shape.is_fixed()) {
      dims.push_back(in->type.shape.fixed_dims());
    } else {
      return std::nullopt;
    }
  }
  return dims;
}

// The first segment of a run's plan at `dims`, as the runner would plan it.
Expected<cuda::Segment> plan_at(const Graph& g, const std::vector<std::vector<int64_t>>& dims,
                                const BuildConfig& config) {
  cuda::PlanState state;
  for (size_t i = 0; i < g.inputs.size(); ++i) {
    cuda::PlannedValue pv;
    pv.dtype = g.inputs[i]->type.dtype;
    pv.dims = dims[i];
    pv.slot = {cuda::Place::kInput, 0, static_cast<int>(i)};
    state.values[g.inputs[i]] = std::move(pv);
  }
  return cuda::plan_segment(
      g, 0, state, {config.allow_cpu_fallback, config.tf32, cuda::plan_workspace_limit(config.workspace_limit_bytes)});
}

Status plan_cuda(const Graph& g, const BuildConfig& config, const std::vector<EngineProfile>& profiles,
                 MemoryReport& report) {
  const size_t n = std::max<size_t>(profiles.size(), 1);
  std::vector<ProfileMemory> planned;
  for (size_t p = 0; p < n; ++p) {
    const EngineProfile* profile = profiles.empty() ? nullptr : &profiles[p];
    auto opt = profile_dims(g, profile, false), max = profile_dims(g, profile, true);
    if (!opt || !max) return Status::ok();  // unbounded dims: the runs' shapes decide
    ProfileMemory m;
    KILN_ASSIGN_OR_RETURN(cuda::Segment at_opt, plan_at(g, *opt, config));
    KILN_ASSIGN_OR_RETURN(cuda::Segment at_max, plan_at(g, *max, config));
    m.activation_bytes_opt = at_opt.arena_bytes;
    m.activation_bytes_max = at_max.arena_bytes;
    for (const cuda::Step& s : at_max.steps)
      m.workspace_bytes = std::max<uint64_t>(m.workspace_bytes, s.workspace_bytes);
    m.exact = at_opt.finished() && at_max.finished();
    planned.push_back(m);
  }
  report.activations_planned = true;
  report.profiles = std::move(planned);
  return Status::ok();
}
#endif

}  // namespace

uint64_t weight_bytes(const Graph& graph) {
  std::set<const Value*> seen;
  uint64_t total = 0;
  auto count = [&](const Value* v) {
    if (v && v->constant && v->constant->dtype() != DType::kString && seen.insert(v).second)
      total += v->constant->nbytes();
  };
  for (const auto& n : graph.nodes())
    for (const Value* v : n->inputs) count(v);
  for (const Value* v : graph.outputs) count(v);
  return total;
}

Expected<MemoryReport> plan_memory(const Graph& graph, const BuildConfig& config,
                                   const std::vector<EngineProfile>& profiles) {
  MemoryReport report;
  report.weight_bytes = weight_bytes(graph);
  report.workspace_limit_bytes = config.workspace_limit_bytes;
#ifdef KILN_WITH_CUDA
  if (config.backend == "cuda") {
    KILN_RETURN_IF_ERROR(plan_cuda(graph, config, profiles, report));
  }
#endif
  return report;
}

}  // namespace kiln
