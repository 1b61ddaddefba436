// The graph IR: values, nodes and graphs. A Graph owns its nodes and values;
// nodes point at values, values at their producer. Nodes are kept in
// topological order. A subgraph (If/Loop/Scan body) may read values of the
// graphs around it: its nodes point straight at the outer Value.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "ir/attribute.h"
#include "ir/type.h"

namespace kiln {

class Node;
class Graph;

class Value {
 public:
  std::string name;
  Type type;
  Node* producer = nullptr;  // null for graph inputs, initializers and outer-scope reads
  int producer_output = -1;
  // Known contents: initializers, Constant outputs and folded values.
  std::shared_ptr<const Tensor> constant;
  // Symbolic contents of a small 1-D or 0-D integer tensor computed from shapes
  // (Shape -> Gather -> Concat chains): each element a fixed or symbolic dim.
  std::optional<Dims> shape_value;
  Graph* owner = nullptr;

  bool has_constant() const { return constant != nullptr; }
};

class Node {
 public:
  std::string op_type;
  std::string domain;  // "" for the default ONNX domain
  std::string name;
  int opset = 0;                // the opset version of `domain` this node was read with
  std::vector<Value*> inputs;   // null entries are omitted optional inputs
  std::vector<Value*> outputs;  // null entries are omitted optional outputs
  std::map<std::string, Attribute> attrs;
  std::string doc_string;
  std::map<std::string, std::string> metadata;

  const Attribute* attr(const std::string& key) const;
  bool has_attr(const std::string& key) const { return attrs.count(key) != 0; }
  int64_t attr_int(const std::string& key, int64_t fallback) const;
  float attr_float(const std::string& key, float fallback) const;
  std::string attr_string(const std::string& key, const std::string& fallback) const;
  std::vector<int64_t> attr_ints(const std::string& key, std::vector<int64_t> fallback = {}) const;
  std::vector<float> attr_floats(const std::string& key, std::vector<float> fallback = {}) const;

  size_t num_inputs() const { return inputs.size(); }
  // Input i if present (in range and not omitted), else null.
  Value* input(size_t i) const { return i < inputs.size() ? inputs[i] : nullptr; }
  Value* output(size_t i) const { return i < outputs.size() ? outputs[i] : nullptr; }
  // "name (Op)" or "#index (Op)" for messages.
  std::string label() const;
};

class Graph {
 public:
  std::string name;
  std::string doc_string;
  Graph* parent = nullptr;  // the enclosing graph of a subgraph
  std::vector<Value*> inputs;
  std::vector<Value*> outputs;
  std::vector<Value*> initializers;  // values with constants that came from the model

  Value* add_value(std::string name, Type type = {});
  Node* add_node(std::string op_type, std::string domain = "");
  // Moves the node to be last; used by the importer, which adds in topological order.
  const std::vector<std::unique_ptr<Node>>& nodes() const { return nodes_; }
  std::vector<std::unique_ptr<Node>>& mutable_nodes() { return nodes_; }
  const std::vector<std::unique_ptr<Value>>& values() const { return values_; }
  // Value by name in this graph or the graphs around it; null if none.
  Value* find_value(const std::string& name) const;
  // Removes nodes for which `dead` is true and values no node, input or output uses.
  void erase_nodes_if(const std::function<bool(const Node&)>& dead);
  // The nodes reading `v` (this graph and its subgraphs).
  std::vector<Node*> users(const Value* v) const;
  // A name not used by any value of this graph or its parents: "<base>", "<base>_1", ...
  std::string unique_name(const std::string& base);

 private:
  std::vector<std::unique_ptr<Node>> nodes_;
  std::vector<std::unique_ptr<Value>> values_;
  std::map<std::string, Value*> by_name_;
  int64_t name_counter_ = 0;
};

struct OpsetImport {
  std::string domain;
  int64_t version = 0;
};

struct Model {
  int64_t ir_version = 0;
  std::vector<OpsetImport> opsets;
  std::string producer_name;
  std::string producer_version;
  std::string domain;
  int64_t model_version = 0;
  std::string doc_string;
  std::map<std::string, std::string> metadata;
  std::shared_ptr<Graph> graph;

  // Opset version imported for `domain` ("" and "ai.onnx" are the same); 0 if none.
  int64_t opset_version(const std::string& domain) const;
};

}  // namespace kiln
