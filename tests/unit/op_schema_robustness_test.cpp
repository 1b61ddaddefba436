// Every op's infer function must answer (ok or an error) for any inputs a
// model can give it: too few or too many inputs, omitted ones, unknown or odd
// ranks, scalars, empty dims, missing attributes. Built with
// _GLIBCXX_ASSERTIONS, an out-of-range index aborts and fails this test.
#include <gtest/gtest.h>

#include "ops/op_schema.h"

namespace kiln {
namespace {

std::vector<Type> candidate_types() {
  std::vector<Type> ts;
  ts.push_back(Type());  // undefined dtype, unknown rank
  for (DType d : {DType::kF32, DType::kI64, DType::kBool}) {
    ts.push_back(Type::tensor(d, Shape()));
    ts.push_back(Type::tensor(d, Shape(Dims{})));
    ts.push_back(Type::tensor(d, Shape::of({0})));
    ts.push_back(Type::tensor(d, Shape::of({3})));
    ts.push_back(Type::tensor(d, Shape(Dims{Dim::symbolic("n"), Dim(2)})));
    ts.push_back(Type::tensor(d, Shape::of({2, 1, 4, 4})));
    ts.push_back(Type::tensor(d, Shape(Dims{Dim::unknown(), Dim(1), Dim(1), Dim(1), Dim(1), Dim(1)})));
  }
  ts.push_back(Type::sequence_of(Type::tensor(DType::kF32, Shape())));
  ts.push_back(Type::optional_of(Type::tensor(DType::kF32, Shape::of({2}))));
  return ts;
}

TEST(OpSchemaRobustness, EveryInferFunctionAnswersOddInputs) {
  const auto types = candidate_types();
  size_t calls = 0;
  for (const OpSchema* s : OpRegistry::instance().all()) {
    if (!s->infer) continue;
    int max_in = s->max_inputs < 0 ? s->min_inputs + 2 : s->max_inputs + 1;
    for (int n_in = 0; n_in <= std::min(max_in, 6); ++n_in) {
      for (size_t t = 0; t < types.size(); ++t) {
        for (int omit = -1; omit < n_in; ++omit) {
          Graph g;
          Node* node = g.add_node(s->name, s->domain);
          node->name = "n";
          node->opset = 28;
          std::vector<const Type*> in_types;
          for (int i = 0; i < n_in; ++i) {
            bool omitted = i == omit;
            node->inputs.push_back(omitted ? nullptr
                                           : g.add_value("in" + std::to_string(i), types[(t + i) % types.size()]));
            in_types.push_back(omitted ? nullptr : &node->inputs.back()->type);
          }
          int n_out = std::max(1, s->max_outputs < 0 ? s->min_outputs + 1 : s->max_outputs);
          for (int i = 0; i < n_out; ++i) node->outputs.push_back(g.add_value("out" + std::to_string(i)));
          InferContext ctx(*node, in_types, {}, {});
          Status st = infer_node(*node, *s, ctx);
          (void)st;  // any answer is fine; not answering (a crash) is not
          ++calls;
        }
      }
    }
  }
  EXPECT_GT(calls, 1000u);
}

}  // namespace
}  // namespace kiln
