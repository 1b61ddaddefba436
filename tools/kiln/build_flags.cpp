#include "build_flags.h"

#include <fmt/format.h>

#include <set>

#include "engine/engine_file.h"
#include "shape_spec.h"

namespace kiln::cli {
namespace {

// The k-th --minShapes, --optShapes and --maxShapes form profile k; a bound
// left out takes another's value (opt, then the other bound).
Expected<std::vector<OptimizationProfile>> profiles_from_flags(const BuilderFlags& o) {
  size_t n = std::max({o.min_shapes.size(), o.opt_shapes.size(), o.max_shapes.size()});
  std::vector<OptimizationProfile> out;
  for (size_t k = 0; k < n; ++k) {
    ShapeSpec mins, opts, maxs;
    const std::pair<const std::vector<std::string>*, ShapeSpec*> flags[] = {
        {&o.min_shapes, &mins}, {&o.opt_shapes, &opts}, {&o.max_shapes, &maxs}};
    const char* names_of[] = {"--minShapes", "--optShapes", "--maxShapes"};
    for (int f = 0; f < 3; ++f) {
      if (k >= flags[f].first->size()) continue;
      KILN_ASSIGN_OR_RETURN(*flags[f].second, parse_shape_spec((*flags[f].first)[k], names_of[f]));
    }
    std::vector<std::string> names;
    std::set<std::string> seen;
    for (const ShapeSpec* s : {&mins, &opts, &maxs})
      for (const auto& [name, dims] : *s)
        if (seen.insert(name).second) names.push_back(name);
    OptimizationProfile p;
    for (const auto& name : names) {
      const auto *lo = find_shape(mins, name), *mid = find_shape(opts, name), *hi = find_shape(maxs, name);
      auto pick = [](const std::vector<int64_t>* a, const std::vector<int64_t>* b, const std::vector<int64_t>* c) {
        return a ? *a : b ? *b : *c;
      };
      Status st = p.set_shape_range(name, pick(lo, mid, hi), pick(mid, hi, lo), pick(hi, mid, lo));
      if (!st.is_ok()) return st.with_context(fmt::format("profile {}", k));
    }
    out.push_back(std::move(p));
  }
  return out;
}

// "workspace:1024M" (trtexec; K, M or G suffix, MiB without one).
Expected<size_t> parse_mem_pool(const std::string& text) {
  size_t colon = text.find(':');
  if (colon == std::string::npos || text.substr(0, colon) != "workspace")
    return invalid_argument("--memPoolSize '{}': expected workspace:SIZE such as workspace:1024M", text);
  std::string v = text.substr(colon + 1);
  double scale = 1 << 20;
  if (!v.empty() && (v.back() == 'K' || v.back() == 'M' || v.back() == 'G')) {
    scale = v.back() == 'K' ? 1024.0 : v.back() == 'M' ? double(1 << 20) : double(1 << 30);
    v.pop_back();
  }
  char* end = nullptr;
  double n = std::strtod(v.c_str(), &end);
  if (v.empty() || *end || n < 0) return invalid_argument("--memPoolSize '{}': '{}' is not a size", text, v);
  return static_cast<size_t>(n * scale);
}

}  // namespace

void add_builder_flags(CLI::App& cmd, BuilderFlags& flags) {
  cmd.add_option("--backend", flags.backend, "cpu, cuda, or auto (cuda when a GPU is visible)")->capture_default_str();
  auto shapes = [&](const char* flag, std::vector<std::string>& v, const char* what) {
    cmd.add_option(flag, v, what)->expected(1)->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  };
  shapes("--minShapes", flags.min_shapes, "Smallest shapes of dynamic inputs (NAME:1x8,...); repeat for more profiles");
  shapes("--optShapes", flags.opt_shapes, "Shapes to tune for; repeat for more profiles");
  shapes("--maxShapes", flags.max_shapes, "Largest shapes; repeat for more profiles");
  cmd.add_flag("--fp16", flags.fp16, "Allow fp16 kernels");
  cmd.add_flag("--bf16", flags.bf16, "Allow bf16 kernels");
  cmd.add_flag("--tf32", flags.tf32, "Allow tf32 matmuls and convolutions (the default)");
  cmd.add_flag("--noTF32", flags.no_tf32, "Forbid tf32: f32 math in full fp32");
  cmd.add_flag("--allowCpuFallback", flags.allow_cpu_fallback,
               "cuda: run nodes without a GPU kernel on the host instead of failing the build");
  cmd.add_flag("--stronglyTyped", flags.strongly_typed, "Keep the model's types exactly");
  cmd.add_option("--workspace", flags.workspace_mib, "Scratch memory limit in MiB (0: none)");
  cmd.add_option("--memPoolSize", flags.mem_pool_size, "trtexec form of the limit: workspace:1024M");
  cmd.add_option("--timingCacheFile", flags.timing_cache, "Timing cache to read and update");
  cmd.add_option("--builderOptimizationLevel", flags.optimization_level,
                 "0 (fast build) .. 5 (most tuning): 1..5 time up to 2, 4, 8, 16, 64 tactics a layer; 5 also "
                 "every cuDNN convolution engine its heuristics do not rank (a much slower cold build; the "
                 "timing cache keeps level 5's choices apart)")
      ->capture_default_str();
  cmd.add_option("--disablePasses", flags.disabled_passes,
                 "Optimization passes not to run, by the names `kiln inspect --optimized` prints (comma-separated)")
      ->delimiter(',');
  cmd.add_flag("--heuristic", flags.heuristic, "Time no tactics: the libraries' heuristics choose (level 0)");
  cmd.add_flag("--ignoreTimingCacheMismatch", flags.ignore_timing_cache_mismatch,
               "Use timing-cache entries from another GPU of the same compute capability");
}

Expected<BuildConfig> build_config_from_flags(const BuilderFlags& f) {
  BuildConfig config;
  config.backend = f.backend;
  if (config.backend == "auto") config.backend = current_device("cuda").is_ok() ? "cuda" : "cpu";
  config.fp16 = f.fp16;
  config.bf16 = f.bf16;
  if (f.tf32 && f.no_tf32) return invalid_argument("--tf32 and --noTF32 contradict each other");
  config.tf32 = !f.no_tf32;
  config.allow_cpu_fallback = f.allow_cpu_fallback;
  config.strongly_typed = f.strongly_typed;
  config.timing_cache_path = f.timing_cache;
  config.optimization_level = f.heuristic ? 0 : f.optimization_level;
  config.ignore_timing_cache_mismatch = f.ignore_timing_cache_mismatch;
  config.disabled_passes = f.disabled_passes;
  config.workspace_limit_bytes = static_cast<size_t>(f.workspace_mib * (1 << 20));
  if (!f.mem_pool_size.empty()) {
    KILN_ASSIGN_OR_RETURN(config.workspace_limit_bytes, parse_mem_pool(f.mem_pool_size));
  }
  KILN_ASSIGN_OR_RETURN(config.profiles, profiles_from_flags(f));
  return config;
}

}  // namespace kiln::cli
