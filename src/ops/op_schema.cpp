#include "ops/op_schema.h"

#include <fmt/format.h>

#include <algorithm>

namespace kiln {

InferContext::InferContext(const Node& node, std::vector<const Type*> input_types,
                           std::vector<const Tensor*> input_values, std::vector<const Dims*> input_shape_values)
    : node_(node),
      input_types_(std::move(input_types)),
      input_values_(std::move(input_values)),
      input_shape_values_(std::move(input_shape_values)),
      output_types_(node.outputs.size()),
      output_shape_values_(node.outputs.size()) {
  input_values_.resize(input_types_.size(), nullptr);
  input_shape_values_.resize(input_types_.size(), nullptr);
}

std::optional<std::vector<int64_t>> InferContext::input_ints(size_t i) const {
  if (const Tensor* t = input_value(i)) {
    auto v = t->to_i64_vector();
    if (v) return std::move(v).value();
    return std::nullopt;
  }
  if (i < input_shape_values_.size() && input_shape_values_[i]) {
    std::vector<int64_t> out;
    for (const Dim& d : *input_shape_values_[i]) {
      if (!d.is_fixed()) return std::nullopt;
      out.push_back(d.value);
    }
    return out;
  }
  return std::nullopt;
}

std::optional<Dims> InferContext::input_dims_value(size_t i) const {
  if (i < input_shape_values_.size() && input_shape_values_[i]) return *input_shape_values_[i];
  if (const Tensor* t = input_value(i)) {
    if (t->rank() > 1 || t->numel() > 64) return std::nullopt;
    auto v = t->to_i64_vector();
    if (!v) return std::nullopt;
    Dims out;
    for (int64_t x : *v) out.emplace_back(x);
    return out;
  }
  return std::nullopt;
}

const Type& InferContext::missing_type() {
  static const Type missing;
  return missing;
}

void InferContext::set_output(size_t i, Type t) {
  if (i < output_types_.size()) output_types_[i] = std::move(t);
}

void InferContext::set_output_shape_value(size_t i, Dims value) {
  if (i < output_shape_values_.size()) output_shape_values_[i] = std::move(value);
}

Dim InferContext::new_symbol(const std::string& what) const {
  std::string base = node_.name.empty() ? node_.op_type : node_.name;
  return Dim::symbolic(fmt::format("{}.{}", base, what));
}

Value* UpgradeContext::add_constant(Tensor t, const std::string& what) {
  Value* v =
      graph_.add_value(graph_.unique_name(fmt::format("{}.{}", node_.name.empty() ? node_.op_type : node_.name, what)));
  v->type = Type::tensor(t.dtype(), Shape::of(t.dims()));
  v->constant = std::make_shared<const Tensor>(std::move(t));
  return v;
}

void UpgradeContext::move_ints_attr_to_input(const std::string& key, size_t index) {
  auto it = node_.attrs.find(key);
  if (it == node_.attrs.end()) return;
  std::vector<int64_t> v = it->second.ints;
  node_.attrs.erase(it);
  if (node_.inputs.size() <= index) node_.inputs.resize(index + 1, nullptr);
  node_.inputs[index] = add_constant(Tensor::vector_i64(v), key);
}

Value* UpgradeContext::new_value(const std::string& what) {
  return graph_.add_value(
      graph_.unique_name(fmt::format("{}.{}", node_.name.empty() ? node_.op_type : node_.name, what)));
}

Node* UpgradeContext::append_node(const std::string& op_type, std::vector<Value*> inputs, size_t num_outputs,
                                  const std::string& what) {
  Node* n = graph_.add_node(op_type);
  n->name = graph_.unique_name(fmt::format("{}.{}", node_.name.empty() ? node_.op_type : node_.name, what));
  n->opset = node_.opset;
  n->inputs = std::move(inputs);
  for (size_t i = 0; i < num_outputs; ++i) {
    Value* v = new_value(fmt::format("{}_out{}", what, i));
    v->producer = n;
    v->producer_output = static_cast<int>(i);
    n->outputs.push_back(v);
  }
  return n;
}

OpRegistry& OpRegistry::instance() {
  static OpRegistry registry;
  return registry;
}

static std::string_view canonical_domain(std::string_view d) { return d == "ai.onnx" ? std::string_view() : d; }

void OpRegistry::add(OpSchema schema) {
  schema.domain = std::string(canonical_domain(schema.domain));
  assert(!find(schema.domain, schema.name) && "op registered twice");
  auto& ops = schemas_[schema.domain];
  std::string name = schema.name;
  ops.emplace(std::move(name), std::make_unique<OpSchema>(std::move(schema)));
}

const OpSchema* OpRegistry::find(std::string_view domain, std::string_view name) const {
  auto d = schemas_.find(canonical_domain(domain));
  if (d == schemas_.end()) return nullptr;
  auto it = d->second.find(name);
  return it == d->second.end() ? nullptr : it->second.get();
}

std::vector<const OpSchema*> OpRegistry::all() const {
  std::vector<const OpSchema*> out;
  for (const auto& [domain, ops] : schemas_)
    for (const auto& [name, schema] : ops) out.push_back(schema.get());
  return out;
}

Status infer_node(const Node& node, const OpSchema& schema, InferContext& ctx) {
  auto count = static_cast<int>(node.inputs.size());
  // Trailing omitted inputs do not count.
  while (count > 0 && node.inputs[count - 1] == nullptr) --count;
  if (count < schema.min_inputs || (schema.max_inputs >= 0 && count > schema.max_inputs)) {
    if (schema.max_inputs < 0)
      return invalid_model("{} takes at least {} inputs, got {}", schema.name, schema.min_inputs, count);
    return invalid_model("{} takes {} to {} inputs, got {}", schema.name, schema.min_inputs, schema.max_inputs, count);
  }
  for (int i = 0; i < schema.min_inputs && i < count; ++i)
    if (node.inputs[i] == nullptr) return invalid_model("{} input {} is required but empty", schema.name, i);
  auto outs = static_cast<int>(node.outputs.size());
  if (outs < schema.min_outputs || (schema.max_outputs >= 0 && outs > schema.max_outputs))
    return invalid_model("{} has {} to {} outputs, got {}", schema.name, schema.min_outputs, schema.max_outputs, outs);
  if (!schema.infer) return Status::ok();
  return schema.infer(ctx);
}

}  // namespace kiln
