// Runs a graph on the CPU backend, node by node in the IR's order: infers each
// node's output shapes from the actual inputs, runs its kernel, and frees each
// value after its last use.
#pragma once

#include <map>
#include <vector>

#include "ir/graph.h"
#include "ir/run_value.h"
#include "support/status.h"

namespace kiln {

// Values visible while a graph runs; a subgraph's scope reads through to the
// scopes around it.
struct RunScope {
  const RunScope* parent = nullptr;
  std::map<const Value*, RunValue> values;

  const RunValue* find(const Value* v) const;
};

// Told each top-level node's wall time of a run (for the runtime's Profiler).
// Nodes of subgraphs are not reported apart: their time is their parent's.
class NodeTimeSink {
 public:
  virtual ~NodeTimeSink() = default;
  // `index` is the node's position in graph.nodes().
  virtual void node_time(size_t index, const Node& node, double ms) = 0;
};

// Runs `graph` with `inputs` (one per graph input, in order) and returns its
// outputs in order. `outer` holds the enclosing graph's values for subgraphs.
// With `timer` null, the run reads no clock.
Expected<std::vector<RunValue>> run_graph_on_cpu(const Graph& graph, std::vector<RunValue> inputs,
                                                 const RunScope* outer = nullptr, NodeTimeSink* timer = nullptr);

// Runs one node with values for its inputs (null entries for omitted ones);
// returns its outputs (empty values for omitted ones). Used by constant folding.
Expected<std::vector<RunValue>> run_node_on_cpu(const Node& node, const std::vector<const RunValue*>& inputs);

// Runs one node reading its inputs (and, for subgraphs, every outer value
// they read) from `scope`, and stores its outputs there.
Status run_node_in_scope(const Node& node, RunScope& scope);

// Every value `node` reads: its inputs, and the values its subgraphs read
// from enclosing graphs (with their own values too; callers filter by owner).
void collect_node_reads(const Node& node, std::vector<const Value*>& out);

// The type a run value has (fixed dims), for inference at run time.
Type type_of(const RunValue& v);

}  // namespace kiln
