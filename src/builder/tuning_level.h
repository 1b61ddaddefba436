// What --builderOptimizationLevel (BuildConfig::optimization_level, 0..5)
// asks of the tuner (autotune.h). Level 0 times nothing (the libraries'
// heuristics choose); levels 1..5 time up to 2, 4, 8, 16, 64 candidates per
// layer, each over more runs. Level 5 also searches exhaustively: kernels
// list every further candidate they know after those 64
// (KernelQuery::exhaustive; for convolutions, every cuDNN engine config its
// heuristics do not rank, "cudnn_all:<id>" and "cudnn_fused_all:<id>"),
// which makes a cold build much slower (each config is built, runtime fusion
// engines compile a kernel each, and each is timed); the timing cache keeps
// level-5 choices under signatures of their own, so a warm rebuild is as
// fast as at any level.
#pragma once

#include <cstddef>
#include <string>

namespace kiln {

struct TuningLevel {
  size_t candidates = 1;    // the kernels' first candidates timed per layer
  int runs = 5;             // timed runs per candidate (their median counts)
  bool exhaustive = false;  // kernels list the rest they know after `candidates`
};

// The level's tuning; levels outside 0..5 count as the nearest.
TuningLevel tuning_level(int optimization_level);

// What the level adds to a layer's timing-cache signature: " exhaustive" at
// level 5 (its candidate lists hold configs no other level times), "" below.
std::string tuning_signature_suffix(const TuningLevel& level);

}  // namespace kiln
