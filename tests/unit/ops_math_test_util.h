// Builders for the math op tests: a one-node graph with typed inputs (some
// constant), shape inference on it, and a run on the CPU backend.
#pragma once

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "backends/cpu/cpu_executor.h"
#include "ir/graph.h"
#include "ops/shape_inference.h"

namespace kiln::testing {

inline Dim sym(const char* s) { return Dim::symbolic(s); }
inline Type f32(Dims d) { return Type::tensor(DType::kF32, Shape(std::move(d))); }
inline Type typed(DType t, Dims d) { return Type::tensor(t, Shape(std::move(d))); }

// An input of a one-node graph: a type, and contents if it is a constant.
struct In {
  Type type;
  std::shared_ptr<const Tensor> constant;
  In(Type t) : type(std::move(t)) {}  // NOLINT(google-explicit-constructor)
  In(Tensor t) : type(Type::tensor(t.dtype(), Shape::of(t.dims()))), constant(std::make_shared<Tensor>(t)) {}  // NOLINT
};

struct OneNode {
  Graph graph;
  Node* node = nullptr;
  std::vector<Diagnostic> diagnostics;

  OneNode(const std::string& op, std::vector<In> ins, std::map<std::string, Attribute> attrs = {}, int outputs = 1,
          int opset = 28) {
    node = graph.add_node(op);
    node->opset = opset;
    node->attrs = std::move(attrs);
    for (size_t i = 0; i < ins.size(); ++i) {
      Value* v = graph.add_value("in" + std::to_string(i), ins[i].type);
      v->constant = ins[i].constant;
      if (!v->constant) graph.inputs.push_back(v);
      node->inputs.push_back(v);
    }
    for (int i = 0; i < outputs; ++i) {
      Value* v = graph.add_value("out" + std::to_string(i));
      v->producer = node;
      v->producer_output = i;
      node->outputs.push_back(v);
      graph.outputs.push_back(v);
    }
  }
  // Output i's inferred type as a string ("f32[batch,4]"), or the first diagnostic.
  std::string infer(size_t i = 0) {
    infer_shapes(graph, diagnostics);
    if (!diagnostics.empty()) return "error: " + diagnostics.front().message;
    return node->outputs[i]->type.to_string();
  }
};

// Runs `op` on the CPU with these tensors as its (non-constant) inputs.
inline Expected<std::vector<RunValue>> run_op(const std::string& op, const std::vector<Tensor>& ins,
                                              std::map<std::string, Attribute> attrs = {}, int outputs = 1) {
  std::vector<In> typed_ins;
  for (const Tensor& t : ins) typed_ins.emplace_back(Type::tensor(t.dtype(), Shape::of(t.dims())));
  OneNode g(op, typed_ins, std::move(attrs), outputs);
  std::vector<RunValue> values;
  for (const Tensor& t : ins) values.push_back(RunValue::of(t));
  return run_graph_on_cpu(g.graph, std::move(values));
}

template <typename T>
std::vector<T> values_of(const Tensor& t) {
  return std::vector<T>(t.data<T>(), t.data<T>() + t.numel());
}

inline Tensor f32_tensor(std::vector<int64_t> dims, std::vector<float> v) {
  return Tensor::from_vector(DType::kF32, std::move(dims), v);
}
inline Tensor i32_tensor(std::vector<int64_t> dims, std::vector<int32_t> v) {
  return Tensor::from_vector(DType::kI32, std::move(dims), v);
}
inline Tensor i64_tensor(std::vector<int64_t> dims, std::vector<int64_t> v) {
  return Tensor::from_vector(DType::kI64, std::move(dims), v);
}

}  // namespace kiln::testing
