// kiln build MODEL.onnx -o MODEL.kiln: imports, checks and plans a model and
// writes the engine file. Flags follow trtexec where it has one
// (--saveEngine, --minShapes/--optShapes/--maxShapes, --fp16, --stronglyTyped,
// --memPoolSize, --timingCacheFile, --builderOptimizationLevel).
#include <fmt/format.h>

#include <chrono>
#include <set>

#include "commands.h"
#include "kiln/builder.h"
#include "shape_spec.h"
#include "support/file.h"

namespace kiln::cli {
namespace {

struct BuildOptions {
  std::string model;
  std::string output;
  std::string backend = "cpu";
  std::vector<std::string> min_shapes, opt_shapes, max_shapes;
  bool fp16 = false, bf16 = false, tf32 = false, strongly_typed = false;
  double workspace_mib = 0;
  std::string mem_pool_size;
  std::string timing_cache;
  int optimization_level = 3;
};

// The k-th --minShapes, --optShapes and --maxShapes form profile k; a bound
// left out takes another's value (opt, then the other bound).
Expected<std::vector<OptimizationProfile>> profiles_from_flags(const BuildOptions& o) {
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

int exit_code_for(const Status& st) {
  switch (st.code()) {
    case ErrorCode::kNotFound:
    case ErrorCode::kIoError:
    case ErrorCode::kInvalidArgument: return kExitUsageError;
    default: return kExitModelError;
  }
}

int run_build(const BuildOptions& o) {
  if (o.output.empty()) {
    fmt::print(stderr, "kiln build: give the engine's path with -o or --saveEngine\n");
    return kExitUsageError;
  }
  BuildConfig config;
  config.backend = o.backend;
  config.fp16 = o.fp16;
  config.bf16 = o.bf16;
  config.tf32 = o.tf32;
  config.strongly_typed = o.strongly_typed;
  config.timing_cache_path = o.timing_cache;
  config.optimization_level = o.optimization_level;
  config.workspace_limit_bytes = static_cast<size_t>(o.workspace_mib * (1 << 20));
  if (!o.mem_pool_size.empty()) {
    auto bytes = parse_mem_pool(o.mem_pool_size);
    if (!bytes) {
      fmt::print(stderr, "kiln build: {}\n", bytes.status().message());
      return kExitUsageError;
    }
    config.workspace_limit_bytes = *bytes;
  }
  auto profiles = profiles_from_flags(o);
  if (!profiles) {
    fmt::print(stderr, "kiln build: {}\n", profiles.status().message());
    return kExitUsageError;
  }
  config.profiles = std::move(profiles).value();
  auto start = std::chrono::steady_clock::now();
  auto plan = Builder::build_from_onnx_file(o.model, config);
  if (!plan) {
    fmt::print(stderr, "kiln build: {}\n", plan.status().to_string());
    return exit_code_for(plan.status());
  }
  Status st = write_file(o.output, plan->data(), plan->size());
  if (!st.is_ok()) {
    fmt::print(stderr, "kiln build: {}\n", st.to_string());
    return kExitUsageError;
  }
  double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  fmt::print("built {} ({} bytes, backend {}, {} profile{}) in {:.0f} ms\n", o.output, plan->size(), config.backend,
             config.profiles.size(), config.profiles.size() == 1 ? "" : "s", ms);
  return kExitOk;
}

}  // namespace

void add_build_command(CLI::App& app, int& exit_code) {
  auto o = std::make_shared<BuildOptions>();
  CLI::App* cmd = app.add_subcommand("build", "Build an engine file from an ONNX model");
  cmd->add_option("model", o->model, "ONNX model file")->required();
  cmd->add_option("-o,--output,--saveEngine", o->output, "Engine file to write");
  cmd->add_option("--backend", o->backend, "cpu or cuda")->capture_default_str();
  auto shapes = [&](const char* flag, std::vector<std::string>& v, const char* what) {
    cmd->add_option(flag, v, what)->expected(1)->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  };
  shapes("--minShapes", o->min_shapes, "Smallest shapes of dynamic inputs (NAME:1x8,...); repeat for more profiles");
  shapes("--optShapes", o->opt_shapes, "Shapes to tune for; repeat for more profiles");
  shapes("--maxShapes", o->max_shapes, "Largest shapes; repeat for more profiles");
  cmd->add_flag("--fp16", o->fp16, "Allow fp16 kernels");
  cmd->add_flag("--bf16", o->bf16, "Allow bf16 kernels");
  cmd->add_flag("--tf32", o->tf32, "Allow tf32 matmuls and convolutions");
  cmd->add_flag("--stronglyTyped", o->strongly_typed, "Keep the model's types exactly");
  cmd->add_option("--workspace", o->workspace_mib, "Scratch memory limit in MiB (0: none)");
  cmd->add_option("--memPoolSize", o->mem_pool_size, "trtexec form of the limit: workspace:1024M");
  cmd->add_option("--timingCacheFile", o->timing_cache, "Timing cache to read and update");
  cmd->add_option("--builderOptimizationLevel", o->optimization_level, "0 (fast build) .. 5 (most tuning)")
      ->capture_default_str();
  cmd->callback([o, &exit_code] { exit_code = run_build(*o); });
}

}  // namespace kiln::cli
