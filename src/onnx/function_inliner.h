// Expands calls to the model's own functions (ModelProto.functions, which the
// PyTorch dynamo exporter emits) into their bodies, before the graph is read.
#pragma once

#include <vector>

#include "ir/diagnostic.h"

namespace onnx {
class ModelProto;
}

namespace kiln {

// Rewrites every graph of `model` in place; problems (a call with too many
// inputs, recursion) become diagnostics.
void inline_model_functions(onnx::ModelProto& model, std::vector<Diagnostic>& diagnostics);

}  // namespace kiln
