// The op table: one row per op, defined in one place (its family's file under
// src/ops/), giving the op's canonical form and its shape and type inference.
//
// Canonical form: kiln's IR uses the newest ONNX semantics of each op. The
// importer rewrites nodes read at older opsets into that form (attributes that
// later became inputs turn into constant inputs, and so on), so an infer
// function and a kernel only ever see one form.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ir/graph.h"
#include "support/status.h"

namespace kiln {

// What an infer function sees of a node, and where it writes its outputs.
// The same context serves build time (some values unknown, dims symbolic) and
// run time (every input known and fixed).
class InferContext {
 public:
  InferContext(const Node& node, std::vector<const Type*> input_types, std::vector<const Tensor*> input_values,
               std::vector<const Dims*> input_shape_values);

  const Node& node() const { return node_; }
  size_t num_inputs() const { return input_types_.size(); }
  size_t num_outputs() const { return node_.outputs.size(); }
  bool has_input(size_t i) const { return i < input_types_.size() && input_types_[i] != nullptr; }
  // An omitted or out-of-range input reads as an undefined type of unknown
  // rank, so an infer function never dereferences a missing input.
  const Type& input_type(size_t i) const { return has_input(i) ? *input_types_[i] : missing_type(); }
  DType input_dtype(size_t i) const { return input_type(i).dtype; }
  const Shape& input_shape(size_t i) const { return input_type(i).shape; }
  // Known contents of input i (constant or, at run time, the actual tensor).
  const Tensor* input_value(size_t i) const { return i < input_values_.size() ? input_values_[i] : nullptr; }
  // Integer contents of input i when known, from a constant or from a symbolic
  // shape value whose elements are all fixed.
  std::optional<std::vector<int64_t>> input_ints(size_t i) const;
  // Contents of a 0-D/1-D integer input as dims (fixed or symbolic) when known.
  std::optional<Dims> input_dims_value(size_t i) const;

  int64_t attr_int(const std::string& key, int64_t fallback) const { return node_.attr_int(key, fallback); }
  float attr_float(const std::string& key, float fallback) const { return node_.attr_float(key, fallback); }
  std::string attr_string(const std::string& key, const std::string& fallback) const {
    return node_.attr_string(key, fallback);
  }
  std::vector<int64_t> attr_ints(const std::string& key, std::vector<int64_t> fallback = {}) const {
    return node_.attr_ints(key, std::move(fallback));
  }

  static const Type& missing_type();

  void set_output(size_t i, Type t);
  void set_output(size_t i, DType dtype, Shape shape) { set_output(i, Type::tensor(dtype, std::move(shape))); }
  // Symbolic contents of output i (for shape arithmetic ops).
  void set_output_shape_value(size_t i, Dims value);
  // A fresh symbol for a dim only known at run time (NonZero's count, ...).
  Dim new_symbol(const std::string& what) const;

  std::vector<Type>& output_types() { return output_types_; }
  std::vector<std::optional<Dims>>& output_shape_values() { return output_shape_values_; }

 private:
  const Node& node_;
  std::vector<const Type*> input_types_;
  std::vector<const Tensor*> input_values_;
  std::vector<const Dims*> input_shape_values_;
  std::vector<Type> output_types_;
  std::vector<std::optional<Dims>> output_shape_values_;
};

using InferFn = std::function<Status(InferContext&)>;

// Rewrites a node read at an older opset into the op's canonical form, in place.
// It may add constants (an attribute that became an input) and append nodes
// after this one (appended nodes run after it; the node's original output
// values must stay the graph's outputs of the rewrite).
class UpgradeContext {
 public:
  UpgradeContext(Graph& graph, Node& node) : graph_(graph), node_(node) {}
  Graph& graph() { return graph_; }
  Node& node() { return node_; }
  // A new constant value (named after the node) to use as an input.
  Value* add_constant(Tensor t, const std::string& what);
  // Moves attribute `key` (ints) into input slot `index` as an i64 constant; no-op if absent.
  void move_ints_attr_to_input(const std::string& key, size_t index);
  // Appends a node after the current one, with fresh outputs named after `what`.
  Node* append_node(const std::string& op_type, std::vector<Value*> inputs, size_t num_outputs,
                    const std::string& what);
  // A fresh intermediate value.
  Value* new_value(const std::string& what);

 private:
  Graph& graph_;
  Node& node_;
};

using UpgradeFn = std::function<Status(UpgradeContext&)>;

// Nodes read at an opset below `below_opset` go through `fn`.
struct OpUpgrade {
  int below_opset;
  UpgradeFn fn;
};

struct OpSchema {
  std::string domain;  // "" for the default ONNX domain
  std::string name;
  int since_opset = 1;  // oldest opset of `domain` the importer accepts for this op
  int min_inputs = 0;
  int max_inputs = 0;  // -1: variadic
  int min_outputs = 1;
  int max_outputs = 1;              // -1: variadic
  InferFn infer;                    // null: outputs keep what the model declares
  std::vector<OpUpgrade> upgrades;  // applied in order, oldest first
  const char* summary = "";
};

class OpRegistry {
 public:
  static OpRegistry& instance();
  void add(OpSchema schema);
  // "" and "ai.onnx" name the same domain.
  // Runs once per node per inference on the CPU backend: a map lookup, no allocation.
  const OpSchema* find(std::string_view domain, std::string_view name) const;
  std::vector<const OpSchema*> all() const;  // sorted by domain, then name

 private:
  // domain -> op name -> schema
  std::map<std::string, std::map<std::string, std::unique_ptr<OpSchema>, std::less<>>, std::less<>> schemas_;
};

// Registers one schema at load time: `static const OpRegistration reg({...});`
struct OpRegistration {
  explicit OpRegistration(OpSchema schema) { OpRegistry::instance().add(std::move(schema)); }
};

// Runs the node's infer function with what is known of its inputs. Checks the
// input and output counts first. Used by shape inference and the runtime.
Status infer_node(const Node& node, const OpSchema& schema, InferContext& ctx);

}  // namespace kiln
