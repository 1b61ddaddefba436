// The builder's internal entry: an imported model and a BuildConfig in, an
// engine file's bytes out. kiln::Builder (kiln/builder.h) imports and calls it.
#pragma once

#include <cstdint>
#include <vector>

#include "ir/graph.h"
#include "kiln/builder.h"
#include "support/status.h"

namespace kiln {

// Checks the config against the model, plans it for the backend and writes
// the engine; the result is loaded back once to prove it runs.
Expected<std::vector<uint8_t>> build_engine(const Model& model, const BuildConfig& config);

// The graph rewrites a cuda build makes after the default pipeline (no GPU
// needed): assign_precision (--fp16/--bf16), the channels-last layouts, the
// residual Add + LayerNorm fusion and the elementwise fusion. `kiln inspect --optimized --backend cuda` shows
// what they leave.
Status rewrite_for_cuda(Graph& graph, const BuildConfig& config);

}  // namespace kiln
