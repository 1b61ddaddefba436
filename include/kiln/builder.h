// kiln's builder API: an ONNX model and a BuildConfig in, a serialized engine
// out (load it with kiln::Runtime, see kiln/runtime.h).
//
//   kiln::BuildConfig config;
//   kiln::OptimizationProfile p;
//   p.set_shape_range("input_ids", {1, 1}, {1, 128}, {8, 512});
//   config.profiles.push_back(p);
//   auto plan = kiln::Builder::build_from_onnx_file("model.onnx", config);
//   if (!plan) { report(plan.status()); return; }   // lists every problem
//
// The same model and config always give a byte-identical engine. Builder
// calls are thread-safe (they share no state).
//
// This header is public and self-contained (standard library only).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "kiln/runtime.h"
#include "kiln/status.h"

namespace kiln {

// One optimization profile: a shape range for each dynamic input. When a
// config has profiles, every profile must cover every input with a dynamic
// dim; when it has none, dynamic dims accept any size.
class OptimizationProfile {
 public:
  // Checks min <= opt <= max dim by dim, equal ranks and no negative dims.
  Status set_shape_range(const std::string& input, std::vector<int64_t> min, std::vector<int64_t> opt,
                         std::vector<int64_t> max);
  // Ranges by input name, in the order they were set.
  const std::vector<std::pair<std::string, ShapeRange>>& ranges() const { return ranges_; }
  const ShapeRange* find(const std::string& input) const;

 private:
  std::vector<std::pair<std::string, ShapeRange>> ranges_;
};

// Told the phases of a build as they start and finish ("importing",
// "optimizing", "tuning tactics", "planning memory", "writing engine", "checking engine"), on the building thread;
// TensorRT's IProgressMonitor. Phases do not nest.
class BuildProgress {
 public:
  virtual ~BuildProgress() = default;
  virtual void phase_start(const std::string& phase) = 0;
  virtual void phase_finish(const std::string& phase) = 0;
  // A line worth showing the user (tactics timed, memory planned).
  virtual void note(const std::string& text) {}
};

struct BuildConfig {
  std::string backend = "cpu";  // "cpu" or "cuda"
  // Precision: allow fp16 / bf16 kernels, tf32 matmuls; strongly_typed keeps
  // the model's types exactly (and excludes fp16/bf16).
  bool fp16 = false;
  bool bf16 = false;
  bool tf32 = true;  // as TensorRT: f32 matmuls and convolutions may use TF32 unless turned off
  bool strongly_typed = false;
  std::vector<OptimizationProfile> profiles;
  size_t workspace_limit_bytes = 0;  // scratch memory a kernel may use; 0: no limit
  std::string timing_cache_path;     // read and updated when tuning (cuda); may be empty
  // Use timing-cache entries measured on another GPU of the same compute capability.
  bool ignore_timing_cache_mismatch = false;
  // 0 (fastest build) .. 5 (most tuning); 5 also times every cuDNN
  // convolution engine config its heuristics do not rank (slow cold builds).
  int optimization_level = 3;
  // Optimization-pipeline passes not to run, by the names `kiln inspect
  // --optimized` prints (to compare an engine without one, or to get round one).
  std::vector<std::string> disabled_passes;
  // cuda: nodes without a GPU kernel run on the host (CPU backend) with copies
  // around them, instead of failing the build; the build lists them.
  bool allow_cpu_fallback = false;
  BuildProgress* progress = nullptr;  // not owned; may be null; not part of the engine
};

class Builder {
 public:
  // Imports, checks and plans the model. An error lists every unsupported or
  // invalid node and every config problem at once.
  static Expected<std::vector<uint8_t>> build_from_onnx_file(const std::string& path, const BuildConfig& config);
  static Expected<std::vector<uint8_t>> build_from_onnx_memory(const void* data, size_t size,
                                                               const BuildConfig& config);
};

}  // namespace kiln
