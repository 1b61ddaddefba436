// What the graph-level GPU tests share (control flow, sequences): graphs
// written as IR text with bodies attached, run on both backends and compared
// byte for byte (their ops only move data or are exact).
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "backends/cpu/cpu_executor.h"
#include "backends/cuda/cuda_executor.h"
#include "backends/cuda/run_plan.h"
#include "gpu_test_util.h"
#include "ir/parser.h"
#include "ir/rewrite.h"

namespace kiln::gpu_test {

inline void set_opset(Graph& g) {
  for (const auto& n : g.nodes()) {
    n->opset = 21;
    for (auto& [key, a] : n->attrs)
      if (a.g) set_opset(*a.g);
  }
}

inline std::shared_ptr<Graph> parse(const std::string& text) {
  auto g = parse_graph(text);
  EXPECT_TRUE(g.is_ok()) << g.status().to_string();
  if (!g.is_ok()) return nullptr;
  set_opset(**g);
  return *g;
}

// Gives node `index` of `parent` the body `key`, parsed from IR text: the
// body's inputs after the first `num_inputs` stand for the values named in
// `outer` (found from `scope`, by default `parent`) and are rebound to them.
inline void attach(Graph& parent, size_t index, const char* key, const std::string& text, size_t num_inputs,
                   const std::vector<std::string>& outer, const Graph* scope = nullptr) {
  auto b = parse(text);
  ASSERT_TRUE(b);
  ASSERT_EQ(b->inputs.size(), num_inputs + outer.size());
  for (size_t k = 0; k < outer.size(); ++k) {
    Value* stand_in = b->inputs[num_inputs + k];
    Value* v = (scope ? scope : &parent)->find_value(outer[k]);
    ASSERT_TRUE(v) << outer[k];
    replace_uses(*b, stand_in, v);
    for (Value*& out : b->outputs)
      if (out == stand_in) out = v;
  }
  b->inputs.resize(num_inputs);
  b->parent = &parent;
  Attribute a;
  a.kind = Attribute::Kind::kGraph;
  a.g = std::move(b);
  parent.mutable_nodes()[index]->attrs[key] = std::move(a);
}

// expect_same_as_cpu with sequence and optional inputs and outputs
// (run_graph_on_cuda uploads and downloads them as lists).
inline void expect_same_values_as_cpu(const Graph& g, const std::vector<RunValue>& values, const std::string& what) {
  auto cpu = run_graph_on_cpu(g, values);
  ASSERT_TRUE(cpu.is_ok()) << what << " (cpu): " << cpu.status().to_string();
  Status supported = cuda::check_graph_supported(g, false, nullptr);
  ASSERT_TRUE(supported.is_ok()) << what << ": " << supported.to_string();
  auto gpu = cuda::run_graph_on_cuda(g, values);
  ASSERT_TRUE(gpu.is_ok()) << what << " (cuda): " << gpu.status().to_string();
  ASSERT_EQ(gpu->size(), cpu->size()) << what;
  for (size_t j = 0; j < cpu->size(); ++j) {
    const RunValue &c = (*cpu)[j], &d = (*gpu)[j];
    const std::string out = what + ": output " + std::to_string(j);
    ASSERT_EQ(d.kind, c.kind) << out;
    ASSERT_EQ(d.present, c.present) << out;
    ASSERT_EQ(d.holds_sequence, c.holds_sequence) << out;
    ASSERT_EQ(d.sequence.size(), c.sequence.size()) << out;
    for (size_t e = 0; e < c.sequence.size(); ++e) {
      EXPECT_EQ(d.sequence[e].dims(), c.sequence[e].dims()) << out << " element " << e;
      gpu_test::expect_equal(d.sequence[e], c.sequence[e], out + " element " + std::to_string(e));
    }
    if (c.tensor.is_valid()) {
      EXPECT_EQ(d.tensor.dims(), c.tensor.dims()) << out;
      gpu_test::expect_equal(d.tensor, c.tensor, out);
    }
  }
}

// The same, for tensor inputs.
inline void expect_same_as_cpu(const Graph& g, const std::vector<Tensor>& inputs, const std::string& what) {
  std::vector<RunValue> values;
  for (const Tensor& t : inputs) values.push_back(RunValue::of(t));
  expect_same_values_as_cpu(g, values, what);
}

}  // namespace kiln::gpu_test
