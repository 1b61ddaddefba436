// Tiny models for engine and runtime tests, built straight in the IR with ops
// the CPU backend already runs (Identity).
#pragma once

#include <memory>

#include "ir/graph.h"

namespace kiln::testing {

// x: f32[batch,4] -> Identity -> y; w (initializer f32[4] = 0,1,2,3) ->
// Identity -> wout. With `with_subgraph`, a node also carries a graph
// attribute whose body reads the outer x (never run; for round trips).
inline Model identity_model(bool with_subgraph = false) {
  Model m;
  m.opsets = {{"", 17}};
  m.producer_name = "test";
  m.graph = std::make_shared<Graph>();
  Graph& g = *m.graph;
  g.name = "main";
  Shape batch4(Dims{Dim::symbolic("batch"), Dim(4)});
  Value* x = g.add_value("x", Type::tensor(DType::kF32, batch4));
  g.inputs.push_back(x);
  Value* w = g.add_value("w", Type::tensor(DType::kF32, Shape::of({4})));
  w->constant = std::make_shared<const Tensor>(Tensor::from_vector<float>(DType::kF32, {4}, {0, 1, 2, 3}));
  g.initializers.push_back(w);
  Value* y = g.add_value("y", Type::tensor(DType::kF32, batch4));
  Value* wout = g.add_value("wout", Type::tensor(DType::kF32, Shape::of({4})));
  Node* a = g.add_node("Identity");
  a->name = "id_x";
  a->opset = 17;
  a->inputs = {x};
  a->outputs = {y};
  y->producer = a;
  y->producer_output = 0;
  Node* b = g.add_node("Identity");
  b->name = "id_w";
  b->opset = 17;
  b->inputs = {w};
  b->outputs = {wout};
  wout->producer = b;
  wout->producer_output = 0;
  if (with_subgraph) {
    auto body = std::make_shared<Graph>();
    body->name = "body";
    body->parent = &g;
    Value* inner = body->add_value("inner", Type::tensor(DType::kF32, batch4));
    Node* n = body->add_node("Identity");
    n->inputs = {x};
    n->outputs = {inner};
    inner->producer = n;
    body->outputs.push_back(inner);
    Attribute attr;
    attr.kind = Attribute::Kind::kGraph;
    attr.g = body;
    b->attrs["body"] = attr;
    b->attrs["alpha"] = Attribute::of_float(0.5f);
    b->attrs["names"] = Attribute::of_strings({"a", "b"});
    b->attrs["t"] = Attribute::of_tensor(Tensor::from_vector<int64_t>(DType::kI64, {2}, {7, 8}));
  }
  g.outputs = {y, wout};
  return m;
}

}  // namespace kiln::testing
