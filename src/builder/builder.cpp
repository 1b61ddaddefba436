#include "builder/builder.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <set>

#include "builder/memory_plan.h"
#include "engine/engine_file.h"
#include "onnx/importer.h"
#include "passes/pass.h"
#include "runtime/engine_state.h"
#ifdef KILN_WITH_CUDA
#include "backends/cuda/nvrtc_codegen.h"
#include "backends/cuda/run_plan.h"
#include "builder/autotune.h"
#endif

namespace kiln {
namespace {

Status check_config(const BuildConfig& c) {
  if (c.optimization_level < 0 || c.optimization_level > 5)
    return invalid_argument("optimization level {} is outside 0..5", c.optimization_level);
  if (c.strongly_typed && (c.fp16 || c.bf16))
    return invalid_argument("strongly typed mode keeps the model's types; it excludes --fp16 and --bf16");
  std::set<std::string> known;
  for (const PassInfo& p : default_pipeline()) known.insert(p.name);
  std::vector<std::string> unknown;
  for (const std::string& name : c.disabled_passes)
    if (!known.count(name)) unknown.push_back(name);
  if (!unknown.empty())
    return invalid_argument("no pass named {} to disable; the pipeline's passes are {}", fmt::join(unknown, ", "),
                            fmt::join(known, ", "));
  return current_device(c.backend).status();
}

// Reports one phase around `fn` when the config has a progress monitor.
template <typename Fn>
auto in_phase(const BuildConfig& config, const char* phase, Fn&& fn) {
  if (config.progress) config.progress->phase_start(phase);
  auto result = fn();
  if (config.progress) config.progress->phase_finish(phase);
  return result;
}

Expected<std::vector<uint8_t>> build_from_import(Expected<ImportResult> imported, const BuildConfig& config) {
  if (!imported) return imported.status();
  if (!imported->ok()) {
    const auto& diags = imported->diagnostics;
    bool invalid = false;
    for (const auto& d : diags) invalid |= d.reason == Diagnostic::Reason::kInvalidModel;
    return Status(invalid ? ErrorCode::kInvalidModel : ErrorCode::kUnsupported,
                  fmt::format("the model has {} problem{}:\n{}", diags.size(), diags.size() == 1 ? "" : "s",
                              format_diagnostics(diags)));
  }
  return build_engine(imported->model, config);
}

}  // namespace

Status OptimizationProfile::set_shape_range(const std::string& input, std::vector<int64_t> min,
                                            std::vector<int64_t> opt, std::vector<int64_t> max) {
  if (min.size() != opt.size() || opt.size() != max.size())
    return invalid_argument("input '{}': min, opt and max have {}, {} and {} dims; they need the same rank", input,
                            min.size(), opt.size(), max.size());
  for (size_t d = 0; d < min.size(); ++d)
    if (min[d] < 0 || min[d] > opt[d] || opt[d] > max[d])
      return invalid_argument("input '{}' dim {}: needs 0 <= min <= opt <= max, got {} / {} / {}", input, d, min[d],
                              opt[d], max[d]);
  ShapeRange r{std::move(min), std::move(opt), std::move(max)};
  for (auto& [name, range] : ranges_)
    if (name == input) {
      range = std::move(r);
      return Status::ok();
    }
  ranges_.emplace_back(input, std::move(r));
  return Status::ok();
}

const ShapeRange* OptimizationProfile::find(const std::string& input) const {
  for (const auto& [name, r] : ranges_)
    if (name == input) return &r;
  return nullptr;
}

Status rewrite_for_cuda(Graph& graph, const BuildConfig& config) {
  PassContext passes;
  // Before assign_precision: the concatenated weights are lowered with the others.
  KILN_RETURN_IF_ERROR(
      in_phase(config, "packing QKV projections", [&] { return pack_qkv_projections(graph, passes); }));
  if (config.fp16 || config.bf16) {
    KILN_RETURN_IF_ERROR(in_phase(config, "assigning precisions",
                                  [&] { return assign_precision(graph, config.fp16 ? DType::kF16 : DType::kBF16); }));
    graph.erase_nodes_if([](const Node&) { return false; });  // drops the f32 weights now unread
  }
  KILN_RETURN_IF_ERROR(in_phase(config, "assigning layouts", [&]() -> Status {
    KILN_RETURN_IF_ERROR(space_to_depth_stem(graph, passes));
    KILN_RETURN_IF_ERROR(assign_conv_layout(graph, passes));
    KILN_RETURN_IF_ERROR(assign_pool_layout(graph, passes));
    // The input Casts space_to_depth_stem folded into its SpaceToDepthPad.
    return eliminate_dead_nodes(graph, passes);
  }));
  graph.erase_nodes_if([](const Node&) { return false; });  // drops the NCHW weights now unread
  // After assign_precision, which lowers the Split and the Attention together.
  KILN_RETURN_IF_ERROR(
      in_phase(config, "fusing packed attention", [&] { return fuse_packed_attention(graph, passes); }));
  // Before fuse_elementwise, which would take the residual Adds into its programs.
  KILN_RETURN_IF_ERROR(
      in_phase(config, "fusing residual adds into layer norms", [&] { return fuse_skip_layer_norm(graph, passes); }));
  // Last of the rewrites: the Casts assign_precision added fuse with their neighbours.
  return in_phase(config, "fusing elementwise chains", [&] { return fuse_elementwise(graph, passes); });
}

Expected<std::vector<uint8_t>> build_engine(const Model& model, const BuildConfig& config) {
  KILN_RETURN_IF_ERROR(check_config(config));
  if (!model.graph) return invalid_model("the model has no graph");
  EngineContents c;
  c.kiln_version = KILN_VERSION;
  c.backend = config.backend;
  KILN_ASSIGN_OR_RETURN(c.device, current_device(config.backend));
  PassContext passes;
  passes.disabled.insert(config.disabled_passes.begin(), config.disabled_passes.end());
  KILN_RETURN_IF_ERROR(
      in_phase(config, "optimizing", [&] { return run_passes(*model.graph, passes, default_pipeline()); }));
  if (config.backend == "cuda") {
    KILN_RETURN_IF_ERROR(rewrite_for_cuda(*model.graph, config));
#ifdef KILN_WITH_CUDA
    // Every node the GPU cannot run, named at once (unless allowed on the host).
    KILN_RETURN_IF_ERROR(cuda::check_graph_supported(*model.graph, config.allow_cpu_fallback, nullptr));
    KILN_ASSIGN_OR_RETURN(int sm, cuda::current_device_sm());
    KILN_ASSIGN_OR_RETURN(size_t kernels, in_phase(config, "compiling fused kernels",
                                                   [&] { return cuda::compile_fused_kernels(*model.graph, sm); }));
    if (config.progress && kernels > 0)
      config.progress->note(fmt::format("fused kernels: {} compiled with NVRTC for sm_{}", kernels, sm));
#endif
  }
  c.graph = model.graph;
  c.opsets = model.opsets;
  c.producer_name = model.producer_name;
  c.producer_version = model.producer_version;
  for (const auto& p : config.profiles) c.profiles.push_back({p.ranges()});
  KILN_RETURN_IF_ERROR(check_profiles(*c.graph, c.profiles));
#ifdef KILN_WITH_CUDA
  if (config.backend == "cuda" && config.optimization_level > 0) {
    KILN_ASSIGN_OR_RETURN(AutotuneStats tuned,
                          in_phase(config, "tuning tactics", [&] { return autotune(*c.graph, config, c.profiles); }));
    if (config.progress)
      config.progress->note(tuned.skipped.empty()
                                ? fmt::format("tactics: {} layers with a choice, {} timed, {} from the timing cache, "
                                              "{} candidates rejected",
                                              tuned.layers, tuned.timed, tuned.cached, tuned.rejected)
                                : "tactics: not tuned: " + tuned.skipped);
    if (config.progress && !tuned.over_workspace.empty()) {
      config.progress->note(
          fmt::format("tactics: {} candidates over the workspace limit, not timed:", tuned.over_workspace.size()));
      for (const std::string& why : tuned.over_workspace) config.progress->note("  " + why);
    }
  }
#endif
  c.settings = {config.fp16,
                config.bf16,
                config.tf32,
                config.strongly_typed,
                config.workspace_limit_bytes,
                config.optimization_level,
                config.allow_cpu_fallback};
  KILN_ASSIGN_OR_RETURN(c.memory,
                        in_phase(config, "planning memory", [&] { return plan_memory(*c.graph, config, c.profiles); }));
  if (config.progress) config.progress->note(to_string(c.memory));
  KILN_ASSIGN_OR_RETURN(auto bytes, in_phase(config, "writing engine", [&] { return write_engine(c); }));
  // Loading the result checks what the runtime will check, at build time.
  FileBytes view{reinterpret_cast<const std::byte*>(bytes.data()), bytes.size(), nullptr};
  auto loaded = in_phase(config, "checking engine", [&] { return load_engine_state(view); });
  if (!loaded) return loaded.status();
  return bytes;
}

Expected<std::vector<uint8_t>> Builder::build_from_onnx_file(const std::string& path, const BuildConfig& config) {
  return build_from_import(in_phase(config, "importing", [&] { return import_onnx_file(path); }), config);
}

Expected<std::vector<uint8_t>> Builder::build_from_onnx_memory(const void* data, size_t size,
                                                               const BuildConfig& config) {
  return build_from_import(in_phase(config, "importing", [&] { return import_onnx_bytes(data, size); }), config);
}

}  // namespace kiln
