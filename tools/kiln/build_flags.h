// The builder flags `kiln build` and `kiln bench` share, named as trtexec's
// (--minShapes/--optShapes/--maxShapes, --fp16, --bf16, --noTF32, --allowCpuFallback,
// --stronglyTyped, --memPoolSize, --timingCacheFile, --builderOptimizationLevel).
#pragma once

#include <CLI/CLI.hpp>
#include <string>
#include <vector>

#include "kiln/builder.h"
#include "support/status.h"

namespace kiln::cli {

struct BuilderFlags {
  std::string backend = "cpu";
  std::vector<std::string> min_shapes, opt_shapes, max_shapes;
  bool fp16 = false, bf16 = false, tf32 = false, no_tf32 = false, strongly_typed = false;
  bool allow_cpu_fallback = false;
  bool heuristic = false, ignore_timing_cache_mismatch = false;
  double workspace_mib = 0;
  std::string mem_pool_size;
  std::string timing_cache;
  int optimization_level = 3;
  std::vector<std::string> disabled_passes;

  bool has_profiles() const { return !min_shapes.empty() || !opt_shapes.empty() || !max_shapes.empty(); }
};

void add_builder_flags(CLI::App& cmd, BuilderFlags& flags);

// The config the flags ask for; an invalid_argument error names the flag.
Expected<BuildConfig> build_config_from_flags(const BuilderFlags& flags);

}  // namespace kiln::cli
