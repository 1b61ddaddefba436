// Builds one IR graph from a GraphProto: values, nodes in topological order,
// Constant nodes turned into constants, nodes upgraded to their canonical form.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "ir/diagnostic.h"
#include "ir/graph.h"
#include "onnx/tensor_proto.h"

namespace onnx {
class GraphProto;
class NodeProto;
class AttributeProto;
}  // namespace onnx

namespace kiln {

struct ImportScope {
  const std::map<std::string, int64_t>* opsets;  // domain -> version ("" for ai.onnx)
  TensorReadOptions tensor_options;
  std::vector<Diagnostic>* diagnostics;
};

// Imports `proto` into `graph` (whose parent, if any, is already set). `path`
// names the graph in diagnostics ("main", "main/If_0.then_branch").
void import_graph(const onnx::GraphProto& proto, Graph& graph, const ImportScope& scope, const std::string& path);

}  // namespace kiln
