// Expands calls to the model's own functions (ModelProto.functions, which the
// PyTorch dynamo exporter emits) into their bodies, before the graph is read.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "ir/diagnostic.h"

namespace onnx {
class ModelProto;
}

namespace kiln {

// Rewrites every graph of `model` in place; problems (a call with too many
// inputs, recursion, an expansion past kMaxInlinedNodes) become diagnostics.
// `opsets` (domain -> version) names the calls' opsets in diagnostics.
void inline_model_functions(onnx::ModelProto& model, const std::map<std::string, int64_t>& opsets,
                            std::vector<Diagnostic>& diagnostics);

// A model whose functions would expand past this many nodes is refused: nested
// calls can multiply a small file into billions of nodes.
constexpr int64_t kMaxInlinedNodes = 1 << 20;

}  // namespace kiln
